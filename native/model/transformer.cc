// The built-in transformer's forward, backward, AdamW and KV-cache decode (see transformer.h for
// shapes and the determinism argument). Dense work is in matmul.cc; here are the per-row pieces
// (LayerNorm, GELU, attention) and the data flow between them.
#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "../common/philox.h"
#include "../common/threadpool.h"
#include "matmul.h"

namespace grpo {

using model::matmul;
using model::matmul_dw;
using model::transpose;

namespace {

constexpr float kLnEps = 1e-5f;
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluA = 0.044715f;

// Per-token work of about `per_item` flops: chunks of >= ~16k flops per thread.
int64_t chunk_for(int64_t per_item) { return std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, per_item)); }

// LayerNorm of one row: y = (x - mu) * rs * g + b, rs = 1/sqrt(var + eps). Stats in double.
inline void ln_row(const float* x, const float* g, const float* b, float* y, int64_t d, float* mu_out, float* rs_out) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) s += x[j];
  const float mu = static_cast<float>(s / static_cast<double>(d));
  double ss = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double t = static_cast<double>(x[j]) - mu;
    ss += t * t;
  }
  const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + kLnEps));
  for (int64_t j = 0; j < d; ++j) y[j] = (x[j] - mu) * rs * g[j] + b[j];
  if (mu_out) *mu_out = mu;
  if (rs_out) *rs_out = rs;
}

void layernorm(const float* x, const float* g, const float* b, float* y, float* mu, float* rs, int64_t N, int64_t d) {
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) ln_row(x + n * d, g, b, y + n * d, d, mu ? mu + n : nullptr, rs ? rs + n : nullptr);
  }, chunk_for(8 * d));
}

// LayerNorm backward. dx (+)= rs * (dy*g - mean(dy*g) - xhat * mean(dy*g*xhat)); dg += dy*xhat,
// db += dy summed over rows in ascending order.
void layernorm_backward(const float* dy, const float* x, const float* mu, const float* rs, const float* g, float* dx,
                        bool accumulate, float* dg, float* db, int64_t N, int64_t d) {
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* dyr = dy + n * d;
      const float* xr = x + n * d;
      const float m = mu[n], r = rs[n];
      double s1 = 0, s2 = 0;
      for (int64_t j = 0; j < d; ++j) {
        const float dyg = dyr[j] * g[j];
        s1 += dyg;
        s2 += static_cast<double>(dyg) * ((xr[j] - m) * r);
      }
      const float m1 = static_cast<float>(s1 / d), m2 = static_cast<float>(s2 / d);
      float* dxr = dx + n * d;
      for (int64_t j = 0; j < d; ++j) {
        const float xhat = (xr[j] - m) * r;
        const float v = r * (dyr[j] * g[j] - m1 - xhat * m2);
        dxr[j] = accumulate ? dxr[j] + v : v;
      }
    }
  }, chunk_for(12 * d));
  for (int64_t n = 0; n < N; ++n) {  // column sums: cheap, kept serial for a fixed order
    const float* dyr = dy + n * d;
    const float* xr = x + n * d;
    const float m = mu[n], r = rs[n];
    for (int64_t j = 0; j < d; ++j) {
      dg[j] += dyr[j] * ((xr[j] - m) * r);
      db[j] += dyr[j];
    }
  }
}

// exp(y) for y <= 0 (Cephes expf: Cody-Waite reduction, degree-6 polynomial, ~1 ulp), without
// branches or library calls so the loops using it vectorise. |y| is clamped to 87 with integer
// bit operations (non-negative floats order like their bits; a float select would stop GCC
// vectorising): exp(-87) ~ 1.6e-38 stands in for anything smaller.
inline float exp_nonpos(float y) {
  uint32_t yb;
  std::memcpy(&yb, &y, sizeof yb);
  yb = std::min(yb & 0x7fffffffu, 0x42ae0000u) | 0x80000000u;  // -min(|y|, 87)
  std::memcpy(&y, &yb, sizeof y);
  const float n = (y * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  float r = y - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|): absolute error ~1e-7 (all GELU needs).
// The sign is restored with integer bit operations (no float select: the loops vectorise).
inline float tanh_fast(float u) {
  uint32_t ub;
  std::memcpy(&ub, &u, sizeof ub);
  const uint32_t ab = ub & 0x7fffffffu;
  float a;
  std::memcpy(&a, &ab, sizeof a);
  const float e = exp_nonpos(-2.f * a);
  float t = (1.f - e) / (1.f + e);
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  tb |= ub & 0x80000000u;
  std::memcpy(&t, &tb, sizeof t);
  return t;
}

inline float gelu(float x) { return 0.5f * x * (1.f + tanh_fast(kGeluC * (x + kGeluA * x * x * x))); }
inline float gelu_grad(float x) {
  const float t = tanh_fast(kGeluC * (x + kGeluA * x * x * x));
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kGeluC * (1.f + 3.f * kGeluA * x * x);
}

// Dot product in a fixed order: 8 interleaved partial sums (one SIMD register's worth), added
// pairwise, then the tail. Vectorises without reassociation flags.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; ++u) acc[u] += a[j + u] * b[j + u];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

// y += a * x over n floats (vectorised; y and x never overlap).
inline void axpy(float* __restrict y, float a, const float* __restrict x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}

// Element-wise and fixed-order row work is also compiled for AVX2 (no FMA, so no contraction:
// every element gets the same operations at either width) and picked at load time (x86 ELF).
#if (defined(__x86_64__) || defined(__i386__)) && defined(__ELF__) && !defined(__clang__)
#define GRPO_MODEL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GRPO_MODEL_CLONES
#endif

GRPO_MODEL_CLONES void gelu_rows(const float* x, float* y, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) y[i] = gelu(x[i]);
}

GRPO_MODEL_CLONES void gelu_backward_rows(const float* x, float* g, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) g[i] *= gelu_grad(x[i]);
}

void gelu_forward(const float* x, float* y, int64_t n) {
  parallel_for(n, [&](int64_t b, int64_t e, int) { gelu_rows(x, y, b, e); }, 1 << 14);
}

// One query over n_ctx keys/values (rows `ld` floats apart): p = softmax(q·k * scale), y = p·V.
GRPO_MODEL_CLONES void attend(const float* q, const float* K, const float* Vv, int64_t ld, int64_t n_ctx, int64_t hd, float scale,
                   float* p, float* y) {
  float mx = -INFINITY;
  for (int64_t s = 0; s < n_ctx; ++s) {
    p[s] = dot(q, K + s * ld, hd) * scale;
    mx = std::max(mx, p[s]);
  }
  for (int64_t s = 0; s < n_ctx; ++s) p[s] = exp_nonpos(p[s] - mx);
  float sum = 0.f;
  for (int64_t s = 0; s < n_ctx; ++s) sum += p[s];
  const float inv = 1.f / sum;
  for (int64_t s = 0; s < n_ctx; ++s) p[s] *= inv;
  for (int64_t j = 0; j < hd; ++j) y[j] = 0.f;
  for (int64_t s = 0; s < n_ctx; ++s) axpy(y, p[s], Vv + s * ld, hd);
}

void add_inplace(float* y, const float* x, int64_t n) {  // y = x + y (residual first)
  parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] + y[i];
  }, 1 << 15);
}

template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parameters

int64_t Transformer::add_param(const std::string& name, std::vector<int64_t> shape, bool decay) {
  ParamInfo p;
  p.name = name;
  p.shape = std::move(shape);
  p.size = 1;
  for (int64_t s : p.shape) p.size *= s;
  p.offset = layout_.empty() ? 0 : layout_.back().offset + layout_.back().size;
  p.decay = decay;
  layout_.push_back(p);
  return p.offset;
}

Transformer::Transformer(const ModelConfig& cfg) : cfg_(cfg) {
  if (cfg.V < 1 || cfg.d < 1 || cfg.n_layers < 1 || cfg.H < 1 || cfg.F < 1 || cfg.T < 1 || cfg.d % cfg.H != 0)
    throw std::invalid_argument("grpo-kernels (native): invalid transformer config");
  const int64_t d = cfg.d, F = cfg.F;
  wte_ = add_param("wte", {cfg.V, d}, true);
  wpe_ = add_param("wpe", {cfg.T, d}, true);
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    Layer L;
    L.ln1_w = add_param(p + "ln1.weight", {d}, false);
    L.ln1_b = add_param(p + "ln1.bias", {d}, false);
    L.wq = add_param(p + "attn.q.weight", {d, d}, true);
    L.bq = add_param(p + "attn.q.bias", {d}, false);
    L.wk = add_param(p + "attn.k.weight", {d, d}, true);
    L.bk = add_param(p + "attn.k.bias", {d}, false);
    L.wv = add_param(p + "attn.v.weight", {d, d}, true);
    L.bv = add_param(p + "attn.v.bias", {d}, false);
    L.wo = add_param(p + "attn.o.weight", {d, d}, true);
    L.bo = add_param(p + "attn.o.bias", {d}, false);
    L.ln2_w = add_param(p + "ln2.weight", {d}, false);
    L.ln2_b = add_param(p + "ln2.bias", {d}, false);
    L.wfc = add_param(p + "mlp.fc.weight", {d, F}, true);
    L.bfc = add_param(p + "mlp.fc.bias", {F}, false);
    L.wproj = add_param(p + "mlp.proj.weight", {F, d}, true);
    L.bproj = add_param(p + "mlp.proj.bias", {d}, false);
    layers_.push_back(L);
  }
  lnf_w_ = add_param("ln_f.weight", {d}, false);
  lnf_b_ = add_param("ln_f.bias", {d}, false);
  head_ = add_param("head.weight", {d, cfg.V}, true);
  // Encoders after every decoder tensor, so a text-only model's layout is exactly the old one.
  for (int e = 0; e < kNumEncoders; ++e) {
    const EncoderConfig& ec = cfg.enc[e];
    if (ec.P == 0) continue;
    if (ec.P < 0 || ec.Hd < 1 || ec.npos < 1 || ec.ntemp < 0)
      throw std::invalid_argument("grpo-kernels (native): invalid encoder config");
    const std::string p = e == 0 ? "vision." : "audio.";
    EncParams& E = encp_[e];
    const size_t first = layout_.size();
    E.w_in = add_param(p + "patch.weight", {ec.P, ec.Hd}, true);
    E.b_in = add_param(p + "patch.bias", {ec.Hd}, false);
    E.pos = add_param(p + "pos", {ec.npos, ec.Hd}, true);
    if (ec.ntemp > 0) E.temporal = add_param(p + "temporal", {ec.ntemp, ec.Hd}, true);
    for (size_t i = first; i < layout_.size(); ++i) layout_[i].frozen = cfg.freeze_encoder;
    const size_t proj = layout_.size();
    E.w_out = add_param(p + "proj.weight", {ec.Hd, d}, true);
    E.b_out = add_param(p + "proj.bias", {d}, false);
    for (size_t i = proj; i < layout_.size(); ++i) layout_[i].frozen = cfg.freeze_projector;
  }
  const size_t n = static_cast<size_t>(layout_.back().offset + layout_.back().size);
  params_.assign(n, 0.f);
  grads_.assign(n, 0.f);
  m_.assign(n, 0.f);
  v_.assign(n, 0.f);
  init_params();
}

// GPT-2 initialisation: N(0, 0.02) weights (residual projections scaled by 1/sqrt(2 nL)), zero
// biases, unit norm gains. Normals from Philox keyed by the seed and counted by (tensor, index).
void Transformer::init_params() {
  const uint32_t k0 = static_cast<uint32_t>(cfg_.seed), k1 = static_cast<uint32_t>(cfg_.seed >> 32);
  const double resid = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg_.n_layers));
  for (size_t t = 0; t < layout_.size(); ++t) {
    const ParamInfo& p = layout_[t];
    float* w = params_.data() + p.offset;
    const std::string& nm = p.name;
    auto ends = [&](const char* s) {
      const size_t n = std::strlen(s);
      return nm.size() >= n && nm.compare(nm.size() - n, n, s) == 0;
    };
    if (p.shape.size() == 1) {
      const bool gain = ends("ln1.weight") || ends("ln2.weight") || ends("ln_f.weight");
      std::fill(w, w + p.size, gain ? 1.f : 0.f);
      continue;
    }
    // the patch embedding sees raw pixels / log-mels: 1/sqrt(fan_in) keeps h at unit scale
    const double std = ends("patch.weight") ? 1.0 / std::sqrt(static_cast<double>(p.shape[0]))
                       : (ends("attn.o.weight") || ends("mlp.proj.weight")) ? resid : 0.02;
    for (int64_t j = 0; j < p.size; ++j) {
      Philox4 c{{static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32), static_cast<uint32_t>(t), 0x6d6f646cu}};
      const Philox4 r = philox4x32_10(c, k0, k1);
      const double u1 = philox_uniform_open(r.v[0]), u2 = philox_uniform_open(r.v[1]);
      w[j] = static_cast<float>(std * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
  }
}

void Transformer::zero_grad() { std::fill(grads_.begin(), grads_.end(), 0.f); }

// ---------------------------------------------------------------------------------------------
// Forward

void Transformer::Acts::ensure(const ModelConfig& c, int64_t B, int64_t L) {
  const size_t N = static_cast<size_t>(B * L), d = static_cast<size_t>(c.d), F = static_cast<size_t>(c.F);
  const size_t att = static_cast<size_t>(B * c.H * L * L);
  layers.resize(static_cast<size_t>(c.n_layers));
  for (auto& a : layers) {
    for (auto* v : {&a.x_in, &a.ln1, &a.q, &a.k, &a.v, &a.y, &a.x_mid, &a.ln2}) grow(*v, N * d);
    for (auto* v : {&a.mu1, &a.rs1, &a.mu2, &a.rs2}) grow(*v, N);
    grow(a.fc, N * F);
    grow(a.act, N * F);
    grow(a.att, att);
  }
  grow(x_out, N * d);
  grow(lnf, N * d);
  grow(muf, N);
  grow(rsf, N);
  tokens.resize(N);
}

void Transformer::encode(int e, const MediaInput& in, float* h, float* a, float* E) {
  const EncoderConfig& ec = cfg_.enc[e];
  const EncParams& W = encp_[e];
  const int64_t M = in.M, Hd = ec.Hd, d = cfg_.d;
  matmul(in.feat, P(W.w_in), P(W.b_in), h, M, ec.P, Hd, false);
  for (int64_t m = 0; m < M; ++m) {
    axpy(h + m * Hd, 1.f, P(W.pos) + static_cast<int64_t>(in.spos[m]) * Hd, Hd);
    if (W.temporal >= 0 && in.tpos[m] >= 0) axpy(h + m * Hd, 1.f, P(W.temporal) + static_cast<int64_t>(in.tpos[m]) * Hd, Hd);
  }
  gelu_forward(h, a, M * Hd);
  matmul(a, P(W.w_out), P(W.b_out), E, M, Hd, d, false);
}

// The splice: row m of encoder e's output replaces the token embedding of token dest[m]; the
// decoder's position embedding is still added (its sequence position: n % L in forward, pos[n]
// in decode), so media rows sit in the sequence exactly like the text around them.
void Transformer::splice(Acts& A, const MediaInput* media, float* x0, int64_t L, const int32_t* pos) {
  const int64_t d = cfg_.d;
  for (int e = 0; e < kNumEncoders; ++e) {
    EncActs& ea = A.enc[e];
    ea.M = 0;
    if (!media || media[e].M == 0) continue;
    const MediaInput& in = media[e];
    const int64_t M = in.M, P_ = cfg_.enc[e].P, Hd = cfg_.enc[e].Hd;
    ea.M = M;
    ea.feat.assign(in.feat, in.feat + M * P_);
    ea.spos.assign(in.spos, in.spos + M);
    ea.tpos.assign(in.tpos, in.tpos + M);
    ea.dest.assign(in.dest, in.dest + M);
    grow(ea.h, static_cast<size_t>(M * Hd));
    grow(ea.a, static_cast<size_t>(M * Hd));
    grow(s_enc_, static_cast<size_t>(M * d));
    MediaInput own{M, ea.feat.data(), ea.spos.data(), ea.tpos.data(), ea.dest.data()};
    encode(e, own, ea.h.data(), ea.a.data(), s_enc_.data());
    for (int64_t m = 0; m < M; ++m) {
      const int64_t n = ea.dest[m];
      const float* pe = P(wpe_) + (pos ? static_cast<int64_t>(pos[n]) : n % L) * d;
      for (int64_t j = 0; j < d; ++j) x0[n * d + j] = s_enc_[m * d + j] + pe[j];
    }
  }
}

// Gradients of encoder e from dL/dx0 (dres [N, d]) at its dest rows.
void Transformer::encoder_backward(int e, const EncActs& ea, const float* dres) {
  const EncoderConfig& ec = cfg_.enc[e];
  const EncParams& W = encp_[e];
  const int64_t M = ea.M, Hd = ec.Hd, d = cfg_.d;
  if (M == 0 || (cfg_.freeze_encoder && cfg_.freeze_projector)) return;
  std::vector<float> dE(static_cast<size_t>(M * d)), da(static_cast<size_t>(M * Hd)), wt(static_cast<size_t>(Hd * d));
  for (int64_t m = 0; m < M; ++m) std::memcpy(dE.data() + m * d, dres + static_cast<int64_t>(ea.dest[m]) * d, sizeof(float) * d);
  if (!cfg_.freeze_projector) matmul_dw(ea.a.data(), dE.data(), G(W.w_out), G(W.b_out), M, Hd, d);
  if (cfg_.freeze_encoder) return;
  transpose(P(W.w_out), wt.data(), Hd, d);
  matmul(dE.data(), wt.data(), nullptr, da.data(), M, d, Hd, false);
  gelu_backward_rows(ea.h.data(), da.data(), 0, M * Hd);
  matmul_dw(ea.feat.data(), da.data(), G(W.w_in), G(W.b_in), M, ec.P, Hd);
  for (int64_t m = 0; m < M; ++m) {  // position tables: scatter-add in row order
    axpy(G(W.pos) + static_cast<int64_t>(ea.spos[m]) * Hd, 1.f, da.data() + m * Hd, Hd);
    if (W.temporal >= 0 && ea.tpos[m] >= 0) axpy(G(W.temporal) + static_cast<int64_t>(ea.tpos[m]) * Hd, 1.f, da.data() + m * Hd, Hd);
  }
}

void Transformer::forward(const int32_t* tokens, int64_t B, int64_t L, float* logits, bool train, const MediaInput* media) {
  const int64_t N = B * L, d = cfg_.d, F = cfg_.F, H = cfg_.H, hd = d / H, V = cfg_.V;
  // The binding has checked L <= maxSeqLen and every id against V.
  Acts& A = train ? train_ : eval_;
  if (train) train_valid_ = false;
  A.ensure(cfg_, B, L);
  A.B = B;
  A.L = L;
  std::copy(tokens, tokens + N, A.tokens.begin());
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));

  // x = wte[tok] + wpe[pos]
  float* x0 = A.layers[0].x_in.data();
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* te = P(wte_) + static_cast<int64_t>(tokens[n]) * d;
      const float* pe = P(wpe_) + (n % L) * d;
      for (int64_t j = 0; j < d; ++j) x0[n * d + j] = te[j] + pe[j];
    }
  }, chunk_for(d));
  splice(A, media, x0, L, nullptr);

  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const Layer& W = layers_[l];
    LayerActs& a = A.layers[l];
    layernorm(a.x_in.data(), P(W.ln1_w), P(W.ln1_b), a.ln1.data(), a.mu1.data(), a.rs1.data(), N, d);
    matmul(a.ln1.data(), P(W.wq), P(W.bq), a.q.data(), N, d, d, false);
    matmul(a.ln1.data(), P(W.wk), P(W.bk), a.k.data(), N, d, d, false);
    matmul(a.ln1.data(), P(W.wv), P(W.bv), a.v.data(), N, d, d, false);
    // causal attention, one (batch row, head, query) per item
    parallel_for(B * H * L, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = i % L, h = (i / L) % H, b = i / (L * H);
        const int64_t row = b * L + t;
        attend(a.q.data() + row * d + h * hd, a.k.data() + b * L * d + h * hd, a.v.data() + b * L * d + h * hd, d, t + 1,
               hd, scale, a.att.data() + i * L, a.y.data() + row * d + h * hd);
      }
    }, chunk_for(4 * hd * L));
    matmul(a.y.data(), P(W.wo), P(W.bo), a.x_mid.data(), N, d, d, false);
    add_inplace(a.x_mid.data(), a.x_in.data(), N * d);
    layernorm(a.x_mid.data(), P(W.ln2_w), P(W.ln2_b), a.ln2.data(), a.mu2.data(), a.rs2.data(), N, d);
    matmul(a.ln2.data(), P(W.wfc), P(W.bfc), a.fc.data(), N, d, F, false);
    gelu_forward(a.fc.data(), a.act.data(), N * F);
    float* next = l + 1 < cfg_.n_layers ? A.layers[l + 1].x_in.data() : A.x_out.data();
    matmul(a.act.data(), P(W.wproj), P(W.bproj), next, N, F, d, false);
    add_inplace(next, a.x_mid.data(), N * d);
  }
  layernorm(A.x_out.data(), P(lnf_w_), P(lnf_b_), A.lnf.data(), A.muf.data(), A.rsf.data(), N, d);
  matmul(A.lnf.data(), P(head_), nullptr, logits, N, d, V, false);
  if (train) train_valid_ = true;
}

// ---------------------------------------------------------------------------------------------
// Backward

void Transformer::backward(const float* dlogits) {
  if (!train_valid_) throw std::logic_error("grpo-kernels (native): backward() needs a forward with train: true first");
  Acts& A = train_;
  const int64_t B = A.B, L = A.L, N = B * L, d = cfg_.d, F = cfg_.F, H = cfg_.H, hd = d / H, V = cfg_.V;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const size_t Nd = static_cast<size_t>(N * d), NF = static_cast<size_t>(N * std::max(F, d));
  grow(s_res_, Nd);
  grow(s_dx_, Nd);
  grow(s_big_, NF);
  grow(s_dk_, Nd);
  grow(s_dv_, Nd);
  grow(s_wt_, static_cast<size_t>(std::max({d * F, d * V, d * d})));
  const int workers = num_threads();
  grow(s_row_, static_cast<size_t>(workers * L));
  float* dres = s_res_.data();
  float* dx = s_dx_.data();
  float* big = s_big_.data();
  float* wt = s_wt_.data();

  // head: logits = lnf · head
  matmul_dw(A.lnf.data(), dlogits, G(head_), nullptr, N, d, V);
  transpose(P(head_), wt, d, V);
  matmul(dlogits, wt, nullptr, dx, N, V, d, false);
  layernorm_backward(dx, A.x_out.data(), A.muf.data(), A.rsf.data(), P(lnf_w_), dres, false, G(lnf_w_), G(lnf_b_), N, d);

  for (int64_t l = cfg_.n_layers - 1; l >= 0; --l) {
    const Layer& W = layers_[l];
    LayerActs& a = A.layers[l];
    // MLP: out = gelu(ln2 · Wfc + bfc) · Wproj + bproj
    matmul_dw(a.act.data(), dres, G(W.wproj), G(W.bproj), N, F, d);
    transpose(P(W.wproj), wt, F, d);
    matmul(dres, wt, nullptr, big, N, d, F, false);
    {
      const float* fc = a.fc.data();
      parallel_for(N * F, [&](int64_t b, int64_t e, int) {
        gelu_backward_rows(fc, big, b, e);
      }, 1 << 14);
    }
    matmul_dw(a.ln2.data(), big, G(W.wfc), G(W.bfc), N, d, F);
    transpose(P(W.wfc), wt, d, F);
    matmul(big, wt, nullptr, dx, N, F, d, false);
    layernorm_backward(dx, a.x_mid.data(), a.mu2.data(), a.rs2.data(), P(W.ln2_w), dres, true, G(W.ln2_w), G(W.ln2_b), N, d);

    // attention output projection: out = y · Wo + bo
    matmul_dw(a.y.data(), dres, G(W.wo), G(W.bo), N, d, d);
    transpose(P(W.wo), wt, d, d);
    float* dy = dx;
    matmul(dres, wt, nullptr, dy, N, d, d, false);

    // attention core, one (batch row, head) per item: dq into big, dk, dv accumulated over queries
    float* dq = big;
    float* dk = s_dk_.data();
    float* dv = s_dv_.data();
    std::fill(dk, dk + N * d, 0.f);
    std::fill(dv, dv + N * d, 0.f);
    parallel_for(B * H, [&, dy, dq, dk, dv](int64_t i0, int64_t i1, int worker) {
      float* dp = s_row_.data() + static_cast<int64_t>(worker) * L;
      const float* att = a.att.data();
      const float* qb = a.q.data();
      const float* kb = a.k.data();
      const float* vb = a.v.data();
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t h = i % H, b = i / H;
        const int64_t base = b * L * d + h * hd;
        for (int64_t t = 0; t < L; ++t) {
          const float* p = att + (i * L + t) * L;
          const float* dyt = dy + base + t * d;
          const float* qt = qb + base + t * d;
          float* dqt = dq + base + t * d;
          float dsum = 0.f;
          for (int64_t s = 0; s <= t; ++s) {
            dp[s] = dot(dyt, vb + base + s * d, hd);
            dsum += p[s] * dp[s];
          }
          for (int64_t j = 0; j < hd; ++j) dqt[j] = 0.f;
          for (int64_t s = 0; s <= t; ++s) {
            const float ds = p[s] * (dp[s] - dsum) * scale;
            axpy(dqt, ds, kb + base + s * d, hd);
            axpy(dk + base + s * d, ds, qt, hd);
            axpy(dv + base + s * d, p[s], dyt, hd);
          }
        }
      }
    }, 1);

    matmul_dw(a.ln1.data(), dq, G(W.wq), G(W.bq), N, d, d);
    matmul_dw(a.ln1.data(), dk, G(W.wk), G(W.bk), N, d, d);
    matmul_dw(a.ln1.data(), dv, G(W.wv), G(W.bv), N, d, d);
    float* dln1 = dx;  // dy is dead now
    transpose(P(W.wq), wt, d, d);
    matmul(dq, wt, nullptr, dln1, N, d, d, false);
    transpose(P(W.wk), wt, d, d);
    matmul(dk, wt, nullptr, dln1, N, d, d, true);
    transpose(P(W.wv), wt, d, d);
    matmul(dv, wt, nullptr, dln1, N, d, d, true);
    layernorm_backward(dln1, a.x_in.data(), a.mu1.data(), a.rs1.data(), P(W.ln1_w), dres, true, G(W.ln1_w), G(W.ln1_b), N, d);
  }

  // embeddings: scatter-add in token order; a spliced token's row goes to its encoder, not wte
  std::vector<char> spliced;
  for (int e = 0; e < kNumEncoders; ++e) {
    if (A.enc[e].M == 0) continue;
    spliced.resize(static_cast<size_t>(N), 0);
    for (int64_t m = 0; m < A.enc[e].M; ++m) spliced[A.enc[e].dest[m]] = 1;
  }
  float* gte = G(wte_);
  float* gpe = G(wpe_);
  for (int64_t n = 0; n < N; ++n) {
    float* pe = gpe + (n % L) * d;
    const float* g = dres + n * d;
    if (spliced.empty() || !spliced[n]) {
      float* te = gte + static_cast<int64_t>(A.tokens[n]) * d;
      for (int64_t j = 0; j < d; ++j) te[j] += g[j];
    }
    for (int64_t j = 0; j < d; ++j) pe[j] += g[j];
  }
  for (int e = 0; e < kNumEncoders; ++e) encoder_backward(e, A.enc[e], dres);
}

// ---------------------------------------------------------------------------------------------
// AdamW

double Transformer::step(const AdamWOptions& o) {
  const int64_t n = num_params();
  // Global norm: fixed 64k-element partial sums in double, added in order (thread-count free).
  constexpr int64_t kPart = 1 << 16;
  const int64_t parts = (n + kPart - 1) / kPart;
  std::vector<double> partial(static_cast<size_t>(parts), 0.0);
  const float* g = grads_.data();
  parallel_for(parts, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      double s = 0;
      for (int64_t i = p * kPart, end = std::min(n, (p + 1) * kPart); i < end; ++i) s += static_cast<double>(g[i]) * g[i];
      partial[p] = s;
    }
  }, 1);
  double sq = 0;
  for (double s : partial) sq += s;
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) return norm;
  const float clip = (o.max_grad_norm > 0 && norm > o.max_grad_norm) ? static_cast<float>(o.max_grad_norm / (norm + 1e-6)) : 1.f;

  ++step_;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step_));
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  const float step_size = static_cast<float>(o.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float eps = static_cast<float>(o.eps);
  const float decay = static_cast<float>(1.0 - o.lr * o.weight_decay);
  for (const ParamInfo& p : layout_) {
    if (p.frozen) continue;
    float* w = params_.data() + p.offset;
    const float* gg = g + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    const bool dec = p.decay && o.weight_decay != 0;
    parallel_for(p.size, [=](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const float gi = gg[i] * clip;
        const float mi = b1 * m[i] + (1.f - b1) * gi;
        const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float wi = dec ? w[i] * decay : w[i];
        w[i] = wi - step_size * (mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps));
      }
    }, 1 << 14);
  }
  return norm;
}

// ---------------------------------------------------------------------------------------------
// KV-cache decode

void Transformer::decode(const DecodeArgs& a) {
  const int64_t d = cfg_.d, F = cfg_.F, H = cfg_.H, hd = d / H, V = cfg_.V, nL = cfg_.n_layers;
  const int64_t R = a.R, S = a.slots, T = a.ctx;
  // The binding has checked slots, positions (inside [0, ctx)) and token ids.
  std::vector<int64_t> first(static_cast<size_t>(R + 1), 0);  // token offset of each row
  for (int64_t r = 0; r < R; ++r) first[r + 1] = first[r] + a.count[r];
  const int64_t M = first[R];
  // token m -> (row, position)
  std::vector<int32_t> mrow(static_cast<size_t>(M)), mpos(static_cast<size_t>(M));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < a.count[r]; ++i) {
      mrow[first[r] + i] = static_cast<int32_t>(r);
      mpos[first[r] + i] = a.start[r] + static_cast<int32_t>(i);
    }
  const size_t Md = static_cast<size_t>(M * d);
  grow(d_x_, Md);
  grow(d_h_, Md);
  grow(d_q_, Md);
  grow(d_k_, Md);
  grow(d_v_, Md);
  grow(d_y_, Md);
  grow(d_t_, Md);
  grow(d_fc_, static_cast<size_t>(M * F));
  const int workers = num_threads();
  grow(s_row_, static_cast<size_t>(workers * T));
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  float *x = d_x_.data(), *h = d_h_.data(), *q = d_q_.data(), *k = d_k_.data(), *v = d_v_.data(), *y = d_y_.data(),
        *t2 = d_t_.data(), *fc = d_fc_.data();
  auto kc = [&](int64_t l, int64_t slot) { return a.cache + ((0 * nL + l) * S + slot) * T * d; };
  auto vc = [&](int64_t l, int64_t slot) { return a.cache + ((1 * nL + l) * S + slot) * T * d; };

  for (int64_t m = 0; m < M; ++m) {
    const float* te = P(wte_) + static_cast<int64_t>(a.tokens[m]) * d;
    const float* pe = P(wpe_) + static_cast<int64_t>(mpos[m]) * d;
    for (int64_t j = 0; j < d; ++j) x[m * d + j] = te[j] + pe[j];
  }
  splice(dec_, a.media, x, 0, mpos.data());
  for (int64_t l = 0; l < nL; ++l) {
    const Layer& W = layers_[l];
    layernorm(x, P(W.ln1_w), P(W.ln1_b), h, nullptr, nullptr, M, d);
    matmul(h, P(W.wq), P(W.bq), q, M, d, d, false);
    matmul(h, P(W.wk), P(W.bk), k, M, d, d, false);
    matmul(h, P(W.wv), P(W.bv), v, M, d, d, false);
    for (int64_t m = 0; m < M; ++m) {
      const int64_t slot = a.slot[mrow[m]], pos = mpos[m];
      std::memcpy(kc(l, slot) + pos * d, k + m * d, sizeof(float) * d);
      std::memcpy(vc(l, slot) + pos * d, v + m * d, sizeof(float) * d);
    }
    parallel_for(M * H, [&](int64_t i0, int64_t i1, int worker) {
      float* p = s_row_.data() + static_cast<int64_t>(worker) * T;
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t m = i / H, hh = i % H;
        const int64_t slot = a.slot[mrow[m]], pos = mpos[m];
        attend(q + m * d + hh * hd, kc(l, slot) + hh * hd, vc(l, slot) + hh * hd, d, pos + 1, hd, scale, p, y + m * d + hh * hd);
      }
    }, chunk_for(4 * hd * T));
    matmul(y, P(W.wo), P(W.bo), t2, M, d, d, false);
    add_inplace(t2, x, M * d);  // t2 = x_mid
    layernorm(t2, P(W.ln2_w), P(W.ln2_b), h, nullptr, nullptr, M, d);
    matmul(h, P(W.wfc), P(W.bfc), fc, M, d, F, false);
    gelu_forward(fc, fc, M * F);
    matmul(fc, P(W.wproj), P(W.bproj), x, M, F, d, false);
    add_inplace(x, t2, M * d);
  }
  // logits of each row's last new token
  for (int64_t r = 0; r < R; ++r) std::memcpy(t2 + r * d, x + (first[r + 1] - 1) * d, sizeof(float) * d);
  layernorm(t2, P(lnf_w_), P(lnf_b_), h, nullptr, nullptr, R, d);
  matmul(h, P(head_), nullptr, a.logits, R, d, V, false);
}

}  // namespace grpo
