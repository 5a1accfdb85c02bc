// Hugging Face causal LMs of the Llama family (LlamaForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM), native on the CPU: forward, backward, AdamW and a KV-cache decode step.
// No N-API here: hf_binding.cc wraps it for JS (lib/models/hf/model.ts).
//
// Shapes (stated once): B = batch rows, L = sequence length, N = B*L tokens, d = hidden_size,
// H = attention heads, KVH = key/value heads (GQA: head h reads kv head h / (H/KVH)),
// hd = head_dim, F = intermediate_size, V = vocab, nL = layers.
//   x = embed[tok]
//   per layer: h = rms(x)·w_in;  q = h·Wq (+bq), k = h·Wk (+bk), v = h·Wv (+bv)     [Qwen2 biases]
//              q, k = rms_per_head(q)·q_norm, rms_per_head(k)·k_norm                   [Qwen3]
//              q, k = rope(q, pos), rope(k, pos)          (rotate_half, inv_freq from lib/)
//              x += softmax(q·kᵀ/√hd + causal)·v · Wo
//              h = rms(x)·w_post;  x += (silu(h·Wg) ⊙ h·Wu)·Wd
//   logits = rms(x)·w_norm · headᵀ              (head = lm_head, or embed when tied)
// Matrices are kept transposed from the HF files, as [in, out], so that the forward pass runs
// on the tuned kernels of matmul.h (the binding transposes at load and save); the embedding and
// lm_head stay [V, d], the layout grpoLossFromHidden reads. Trained parameters are float32 (their
// own master copies); frozen matrices may stay bf16 in the HF layout (HfConfig::bf16_frozen).
// Gradients and Adam moments are allocated on first use, so a frozen reference model costs only
// its weights.
//
// Determinism: as in transformer.h, every reduction has a fixed order independent of the
// thread count, so resumed training continues bit-exactly.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "transformer.h"  // ParamInfo, AdamWOptions, DecodeArgs

namespace grpo {

struct HfConfig {
  int64_t V = 0, d = 0, n_layers = 0, H = 0, KVH = 0, hd = 0, F = 0, T = 0;
  float eps = 1e-6f;
  bool qkv_bias = false;  // Qwen2
  bool qk_norm = false;   // Qwen3
  bool tied = false;      // lm_head = embed_tokens
  std::vector<float> inv_freq;  // [hd/2], RoPE frequencies after any scaling (computed in lib/)
  // LoRA (PEFT): y = x·W + scale·(x·Aᵀ)·Bᵀ on the projections whose bit is set in lora_targets
  // (bit i: q, k, v, o, gate, up, down). With r > 0 only the adapters train: the base weights
  // get no gradients or Adam moments, and forward with adapters off is the base model (the
  // reference for the KL term, without a second copy of the weights).
  int64_t lora_r = 0;
  float lora_scale = 0.f;  // alpha / r
  uint32_t lora_targets = 0;
  // Nothing trains (a frozen reference copy): no gradients or optimizer state at all.
  bool frozen = false;
  // Frozen matrices (the embedding, lm_head and the seven projections, when they get no
  // gradient: the LoRA base, a frozen copy) stay bfloat16 in memory, in the HF layout [out, in],
  // read by the matmuls that widen one panel at a time and accumulate in float32. Trained
  // parameters, norms and biases are float32 (the trained ones their own master copies).
  bool bf16_frozen = false;
};


class HfModel {
 public:
  explicit HfModel(const HfConfig& cfg);

  const HfConfig& config() const { return cfg_; }
  // ParamInfo.shape is the HF shape; `transposed[i]` says the tensor is stored [in, out].
  const std::vector<ParamInfo>& layout() const { return layout_; }
  const std::vector<bool>& transposed() const { return transposed_; }
  int64_t num_params() const { return n_logical_; }
  // Bytes of weights held (float32 and bfloat16 storage together).
  int64_t weight_bytes() const { return static_cast<int64_t>(params_.size() * 4 + pbf_.size() * 2); }
  bool is_bf16(size_t t) const { return bf_.at(t); }
  // Copies tensor t from checkpoint bytes (HF layout; dtype 0 F32, 1 BF16, 2 F16) into its storage,
  // converting, rounding (float -> bf16, to nearest even) or transposing as it is stored.
  void load_tensor(size_t t, const uint8_t* src, int dtype);

  // which: 0 params, 1 grads, 2 Adam m, 3 Adam v (allocated on demand). Buffers 1..3 hold the
  // trainable tensors only, from offset grad_base() of the parameter buffer on.
  float* buffer(int which);
  int64_t grad_base() const { return grad_base_; }
  const std::vector<bool>& trainable() const { return trainable_; }
  // Forward / decode with the LoRA adapters applied (default) or not (the base model).
  void set_adapters(bool on) { adapters_on_ = on; }
  int64_t adam_step() const { return step_; }
  void set_adam_step(int64_t s) { step_ = s; }

  // Copies tensor `t` (HF layout, row-major) into or out of buffer `which`.
  void set_tensor(int which, size_t t, const float* src);
  void get_tensor(int which, size_t t, float* dst);

  void forward(const int32_t* tokens, int64_t B, int64_t L, float* logits, bool train);
  void backward(const float* dlogits);
  // The final normed hidden states of `rows` (indices into the B*L positions; -1 = a zero row)
  // into hidden [R, d], without the head. With train, backward_hidden(dh [R, d]) follows; the
  // head's own gradient is the caller's (head_weight / head_grad: it accumulates there).
  void forward_hidden(const int32_t* tokens, int64_t B, int64_t L, const int32_t* rows, int64_t R, float* hidden, bool train);
  void backward_hidden(const float* dh);
  bool has_train_hidden() const { return train_hidden_valid_; }
  int64_t train_hidden_rows() const { return train_hidden_valid_ ? static_cast<int64_t>(train_rows_.size()) : 0; }
  // The output weight [V, d] (lm_head, or the embedding when tied) and its gradient (null when
  // frozen); both stay at fixed addresses for the model's life.
  const void* head_weight() const { return bf_[tensor_at(head_off())] ? static_cast<const void*>(BF(head_off())) : P(head_off()); }
  bool head_bf16() const { return bf_[tensor_at(head_off())]; }
  float* head_grad();
  bool has_train_forward() const { return train_valid_; }
  int64_t train_tokens() const { return train_valid_ ? train_.B * train_.L : 0; }
  void zero_grad();
  double step(const AdamWOptions& o);
  // cache: [2 (K, V), nL, slots, ctx, KVH*hd].
  void decode(const DecodeArgs& a);

 private:
  struct Layer {
    int64_t ln_in, wq, bq, wk, bk, wv, bv, wo, qn, kn, ln_post, wg, wu, wd;
    int64_t la[7], lb[7];  // LoRA A [in, r] and B [r, out] (stored transposed), -1 without
  };
  struct LayerActs {
    std::vector<float> x_in, rs1, h1, q_raw, k_raw, qrs, krs, q, k, v, att, y, x_mid, rs2, h2, g, u, a;
    std::vector<float> lt[7];  // x·A of each adapted projection [N, r]
  };
  // One projection of a layer: Y = X·W (+b) (+ LoRA); `t` receives X·A [N, r] when adapted.
  void proj_forward(const Layer& W, int m, const float* X, int64_t N, float* Y, float* t);
  void proj_backward(const Layer& W, int m, const float* X, const float* t, const float* dY, int64_t N, float* dX, bool acc);
  int64_t w_of(const Layer& W, int m) const;
  int64_t b_of(const Layer& W, int m) const;
  int64_t in_of(int m) const;
  int64_t head_off() const { return cfg_.tied ? embed_ : head_; }
  struct Acts;
  Acts& body(const int32_t* tokens, int64_t B, int64_t L, bool train);
  void backward_body(float* dx);
  int64_t out_of(int m) const;
  struct Acts {
    int64_t B = 0, L = 0;
    std::vector<int32_t> tokens;
    std::vector<LayerActs> layers;
    std::vector<float> x_out, rsf, hf;
    void ensure(const HfConfig& c, int64_t B, int64_t L);
  };

  int64_t add(const std::string& name, std::vector<int64_t> shape, bool decay, bool transposed);
  size_t tensor_at(int64_t off) const { return tidx_.at(off); }
  const float* P(int64_t off) const { return params_.data() + store_[tensor_at(off)]; }
  float* Pm(int64_t off) { return params_.data() + store_[tensor_at(off)]; }
  const uint16_t* BF(int64_t off) const { return pbf_.data() + store_[tensor_at(off)]; }
  bool bf(int64_t off) const { return bf_[tensor_at(off)]; }
  // Row `tok` of the embedding, as float32, into dst[d].
  void embed_row(int64_t tok, float* dst) const;
  float* G(int64_t off) { return grads_.data() + (off - grad_base_); }
  // q/k of N tokens at positions pos[n]: per-head RMS norm (Qwen3) then RoPE, in place.
  void qk_prepare(float* q, float* k, float* qrs, float* krs, const int32_t* pos, int64_t N, const Layer& W);
  void head_logits(const float* h, int64_t N, float* logits);  // logits [N, V] = h·headᵀ
  const float* head_t();  // the head [V, d] transposed into scratch [d, V] (for the logits matmul)

  HfConfig cfg_;
  std::vector<ParamInfo> layout_;
  std::vector<bool> transposed_;
  std::vector<Layer> layers_;
  int64_t embed_ = 0, norm_ = 0, head_ = -1;
  std::vector<float> params_, grads_, m_, v_;
  std::vector<uint16_t> pbf_;       // the bf16-stored tensors
  std::vector<int64_t> store_;      // per tensor: its offset in params_ or pbf_
  std::vector<bool> bf_;            // per tensor: stored bf16
  std::unordered_map<int64_t, size_t> tidx_;  // layout offset -> tensor index
  int64_t n_logical_ = 0;
  std::vector<bool> trainable_;
  int64_t grad_base_ = 0;
  bool train_base_ = true, adapters_on_ = true;
  int64_t step_ = 0;
  std::vector<float> s_lt_, s_sdy_, s_wt2_;

  Acts train_, eval_;
  bool train_valid_ = false, train_hidden_valid_ = false;
  std::vector<int32_t> train_rows_;
  bool head_valid_ = false;  // s_head_ holds the tied head transposed for the current weights
  std::vector<int32_t> pos_;
  std::vector<float> cos_, sin_;  // RoPE table of the last qk_prepare positions [N, hd/2]
  std::vector<float> s_head_, s_wt_, s_res_, s_dx_, s_big_, s_big2_, s_dq_, s_dk_, s_dv_, s_row_;
  std::vector<float> d_x_, d_h_, d_q_, d_k_, d_v_, d_y_, d_t_, d_g_, d_u_;
};

}  // namespace grpo
