// The built-in decoder-only transformer (GPT-2 shape), native on the CPU: forward, backward,
// AdamW, and a KV-cache decode step. No N-API here: model_binding.cc wraps it for JS.
//
// Shapes (stated once): B = batch rows, L = sequence length, N = B*L tokens, d = dModel,
// H = heads, hd = d/H, F = dFF, V = vocab, T = maxSeqLen, nL = layers.
//   x = wte[tok] + wpe[pos]
//   per block:  x += o(attn(ln1(x)));  x += proj(gelu(fc(ln2(x))))     (pre-norm, LayerNorm)
//   logits = ln_f(x) · head                                              (untied head, no bias)
// Every weight matrix is stored [in, out] (y = x·W + b), so each output row is a sum of scaled
// weight rows: the inner loops are axpys over `out` that the compiler vectorises without
// reassociating anything.
//
// Determinism: every reduction runs in a fixed order that does not depend on the thread count
// or on how rows are grouped (weight gradients are split over the rows of dW, each summed over
// tokens in ascending order; per-token work is split over tokens). So forward, backward and
// step are bit-identical at any thread count, and a token's logits in decode() are bit-identical
// to its logits in forward() of the same prefix.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace grpo {

// A built-in media encoder (multimodal.md in the README): each media item arrives as rows of
// patch features [M, P] (vision: p×p×3 pixels of a patch in each of temporalPatch consecutive
// frames, concatenated frame-major, Qwen2-VL's tubelets, an image repeating itself; built by
// lib/models/media.ts, so P and the temporal table's size come from there; audio: k
// stacked log-mel frames, i.e. a 1-D convolution of kernel = stride = k), then
//   h = feat · patch.weight + patch.bias + pos[spos] (+ temporal[tpos], video)
//   E = gelu(h) · proj.weight + proj.bias                         (the projector / aligner)
// and row m of E replaces the token embedding of decoder token dest[m] (a placeholder id).
// P = 0: no such encoder (no parameters, the text-only layout is exactly today's).
struct EncoderConfig {
  int64_t P = 0, Hd = 0, npos = 0, ntemp = 0;
};
constexpr int kNumEncoders = 2;  // 0 vision (images and video frames), 1 audio

struct ModelConfig {
  int64_t V = 0, d = 0, n_layers = 0, H = 0, F = 0, T = 0;
  uint64_t seed = 0;
  EncoderConfig enc[kNumEncoders];
  // ms-swift freeze_vit (patch embedding + positions) / freeze_aligner (projector): no gradient
  // is accumulated into those tensors and step() leaves them unchanged.
  bool freeze_encoder = false, freeze_projector = false;
};

// One encoder's input for a forward / decode: M rows of P features, each with its spatial
// position id (row of pos), temporal id (row of temporal, -1: none) and destination token
// (index into the call's flattened tokens). The binding checks every index.
struct MediaInput {
  int64_t M = 0;
  const float* feat = nullptr;
  const int32_t* spos = nullptr;
  const int32_t* tpos = nullptr;
  const int32_t* dest = nullptr;
};

// One named tensor inside the flat parameter buffer.
struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, size = 0;
  bool decay = false;  // AdamW weight decay applies (matrices and embeddings, not norms/biases)
  bool frozen = false;  // freeze_encoder / freeze_projector: no gradient, no update
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  double max_grad_norm = 0;  // <= 0: no clipping
};

// One decode call: for each of R rows, `count[r]` new tokens at positions start[r].. of cache
// slot slot[r]. Their K/V are written into the cache; logits [R, V] are for each row's last
// new token. cache: [2 (K, V), nL, S (slots), ctx, d], ctx <= T the positions a slot holds.
struct DecodeArgs {
  float* cache = nullptr;
  int64_t slots = 0, ctx = 0;
  int64_t R = 0;
  const int32_t* tokens = nullptr;  // [sum(count)], row after row
  const int32_t* slot = nullptr;    // [R]
  const int32_t* start = nullptr;   // [R]
  const int32_t* count = nullptr;   // [R], >= 1
  float* logits = nullptr;          // [R, V]
  MediaInput media[kNumEncoders];   // dest indexes `tokens`
};

class Transformer {
 public:
  explicit Transformer(const ModelConfig& cfg);

  const ModelConfig& config() const { return cfg_; }
  const std::vector<ParamInfo>& layout() const { return layout_; }
  int64_t num_params() const { return static_cast<int64_t>(params_.size()); }

  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  float* adam_m() { return m_.data(); }
  float* adam_v() { return v_.data(); }
  int64_t adam_step() const { return step_; }
  void set_adam_step(int64_t s) { step_ = s; }

  // tokens [B*L] -> logits [B*L, V]. train=true keeps the activations for backward().
  // media (optional, [kNumEncoders]): encoder rows that replace the embeddings of their dest tokens.
  void forward(const int32_t* tokens, int64_t B, int64_t L, float* logits, bool train, const MediaInput* media = nullptr);
  // Accumulates dL/dparams from dL/dlogits [B*L, V] of the last train forward.
  void backward(const float* dlogits);
  bool has_train_forward() const { return train_valid_; }
  int64_t train_tokens() const { return train_valid_ ? train_.B * train_.L : 0; }
  void zero_grad();
  // AdamW (decoupled weight decay) after global-norm clipping; returns the norm before clipping.
  // A non-finite norm skips the update (parameters and moments unchanged, step not counted).
  double step(const AdamWOptions& o);
  void decode(const DecodeArgs& a);

 private:
  struct Layer {
    int64_t ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_w, ln2_b, wfc, bfc, wproj, bproj;
  };
  // Activations of one block kept for backward, each [N, .] (att: [B, H, L, L]).
  struct LayerActs {
    std::vector<float> x_in, ln1, mu1, rs1, q, k, v, att, y, x_mid, ln2, mu2, rs2, fc, act;
  };
  // One encoder's activations (kept for backward): inputs copied, h before GELU, a after.
  struct EncActs {
    int64_t M = 0;
    std::vector<float> feat, h, a;
    std::vector<int32_t> spos, tpos, dest;
  };
  struct EncParams {
    int64_t w_in = -1, b_in = -1, pos = -1, temporal = -1, w_out = -1, b_out = -1;
  };
  struct Acts {
    int64_t B = 0, L = 0;
    std::vector<int32_t> tokens;
    EncActs enc[kNumEncoders];
    std::vector<LayerActs> layers;
    std::vector<float> x_out, lnf, muf, rsf;
    void ensure(const ModelConfig& c, int64_t B, int64_t L);
  };

  int64_t add_param(const std::string& name, std::vector<int64_t> shape, bool decay);
  void init_params();
  // E [M, d] of encoder e for `in` (h, a: [M, Hd] scratch kept for backward).
  void encode(int e, const MediaInput& in, float* h, float* a, float* E);
  // Copies `media` into A.enc, runs the encoders and writes their rows over x0 [N, d] (+ wpe).
  void splice(Acts& A, const MediaInput* media, float* x0, int64_t L, const int32_t* pos);
  void encoder_backward(int e, const EncActs& a, const float* dres);
  const float* P(int64_t off) const { return params_.data() + off; }
  float* G(int64_t off) { return grads_.data() + off; }

  ModelConfig cfg_;
  std::vector<ParamInfo> layout_;
  std::vector<Layer> layers_;
  int64_t wte_ = 0, wpe_ = 0, lnf_w_ = 0, lnf_b_ = 0, head_ = 0;
  EncParams encp_[kNumEncoders];
  std::vector<float> s_enc_;  // encoder scratch (E rows, decode h/a)
  std::vector<float> params_, grads_, m_, v_;
  int64_t step_ = 0;

  // The last train forward (kept for backward) and eval forwards (which leave it intact).
  Acts train_, eval_, dec_;  // dec_: only its encoder activations are used (decode)
  bool train_valid_ = false;
  // Scratch, grown as needed: backward (s_*) and decode (d_*).
  std::vector<float> s_res_, s_dx_, s_big_, s_dk_, s_dv_, s_wt_, s_row_;
  std::vector<float> d_x_, d_h_, d_q_, d_k_, d_v_, d_y_, d_t_, d_fc_;
};

}  // namespace grpo
