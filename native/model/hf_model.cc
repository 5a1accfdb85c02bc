#include "hf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "../common/threadpool.h"
#include "matmul.h"
#include "../common/half.h"

namespace grpo {

using model::matmul;
using model::matmul_bf16_nn;
using model::matmul_bf16_nt;
using model::matmul_dw;
using model::transpose;

namespace {

int64_t chunk_for(int64_t per_item) { return std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, per_item)); }

template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; ++u) acc[u] += a[j + u] * b[j + u];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

inline void axpy(float* __restrict y, float a, const float* __restrict x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}

// RMSNorm of one row (HF LlamaRMSNorm: fp32 variance, x·rsqrt(mean(x²)+eps), then ·weight).
inline float rms_row(const float* x, const float* w, float* y, int64_t d, float eps) {
  double ss = 0;
  for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(x[j]) * x[j];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
  for (int64_t j = 0; j < d; ++j) y[j] = w[j] * (x[j] * r);
  return r;
}

// rows of width d, `rs` (may be null) receives each row's 1/rms.
void rmsnorm(const float* x, const float* w, float* y, float* rs, int64_t rows, int64_t d, float eps) {
  parallel_for(rows, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      const float r = rms_row(x + n * d, w, y + n * d, d, eps);
      if (rs) rs[n] = r;
    }
  }, chunk_for(4 * d));
}

// y = w ⊙ x·r with r = (mean(x²)+eps)^-½:  dx = r·(w⊙dy) − x·r³·mean(w⊙dy⊙x);  dw += dy⊙x·r.
// `period` rows share one weight (per-head norms: rows of hd inside a token).
void rmsnorm_backward(const float* dy, const float* x, const float* rs, const float* w, float* dx, bool accumulate, float* dw,
                      int64_t rows, int64_t d) {
  parallel_for(rows, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* dyr = dy + n * d;
      const float* xr = x + n * d;
      const float r = rs[n];
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += static_cast<double>(dyr[j]) * w[j] * xr[j];
      const float c = static_cast<float>(s / static_cast<double>(d)) * r * r * r;
      float* dxr = dx + n * d;
      for (int64_t j = 0; j < d; ++j) {
        const float v = r * (w[j] * dyr[j]) - xr[j] * c;
        dxr[j] = accumulate ? dxr[j] + v : v;
      }
    }
  }, chunk_for(6 * d));
  if (!dw) return;  // a frozen weight
  for (int64_t n = 0; n < rows; ++n) {  // weight gradient: serial, a fixed order
    const float* dyr = dy + n * d;
    const float* xr = x + n * d;
    const float r = rs[n];
    for (int64_t j = 0; j < d; ++j) dw[j] += dyr[j] * (xr[j] * r);
  }
}

// softmax(q·K[0..n_ctx)ᵀ·scale) into p, y = p·V; K and V rows `ld` apart.
void attend(const float* q, const float* K, const float* Vv, int64_t ld, int64_t n_ctx, int64_t hd, float scale, float* p, float* y) {
  float mx = -INFINITY;
  for (int64_t s = 0; s < n_ctx; ++s) {
    p[s] = dot(q, K + s * ld, hd) * scale;
    mx = std::max(mx, p[s]);
  }
  float sum = 0.f;
  for (int64_t s = 0; s < n_ctx; ++s) {
    p[s] = std::exp(p[s] - mx);
    sum += p[s];
  }
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

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// a = silu(g) ⊙ u
void swiglu(const float* g, const float* u, float* a, int64_t n) {
  parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) a[i] = g[i] * sigmoid(g[i]) * u[i];
  }, 1 << 13);
}

// rotate_half RoPE of `heads` heads of width hd per token, in place; inverse=true rotates back
// (the backward pass of the rotation).
void rope(float* x, int64_t N, int64_t heads, int64_t hd, const float* cs, const float* sn, bool inverse) {
  const int64_t h2 = hd / 2;
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* c = cs + n * h2;
      const float* s = sn + n * h2;
      for (int64_t h = 0; h < heads; ++h) {
        float* r = x + (n * heads + h) * hd;
        for (int64_t i = 0; i < h2; ++i) {
          const float x1 = r[i], x2 = r[i + h2];
          const float si = inverse ? -s[i] : s[i];
          r[i] = x1 * c[i] - x2 * si;
          r[i + h2] = x2 * c[i] + x1 * si;
        }
      }
    }
  }, chunk_for(heads * hd));
}

}  // namespace

int64_t HfModel::add(const std::string& name, std::vector<int64_t> shape, bool decay, bool transposed) {
  ParamInfo p;
  p.name = name;
  p.shape = std::move(shape);
  p.size = 1;
  for (int64_t s : p.shape) p.size *= s;
  p.offset = layout_.empty() ? 0 : layout_.back().offset + layout_.back().size;
  p.decay = decay;
  layout_.push_back(p);
  transposed_.push_back(transposed);
  return p.offset;
}

HfModel::HfModel(const HfConfig& c) : cfg_(c) {
  if (c.V < 1 || c.d < 1 || c.n_layers < 1 || c.H < 1 || c.KVH < 1 || c.H % c.KVH != 0 || c.hd < 2 || c.hd % 2 != 0 || c.F < 1 ||
      c.T < 1 || static_cast<int64_t>(c.inv_freq.size()) != c.hd / 2)
    throw std::invalid_argument("grpo-kernels (native): invalid HF model config");
  const int64_t d = c.d, qd = c.H * c.hd, kvd = c.KVH * c.hd, F = c.F;
  embed_ = add("model.embed_tokens.weight", {c.V, d}, true, false);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L{};
    L.ln_in = add(p + "input_layernorm.weight", {d}, false, false);
    L.wq = add(p + "self_attn.q_proj.weight", {qd, d}, true, true);
    L.bq = c.qkv_bias ? add(p + "self_attn.q_proj.bias", {qd}, false, false) : -1;
    L.wk = add(p + "self_attn.k_proj.weight", {kvd, d}, true, true);
    L.bk = c.qkv_bias ? add(p + "self_attn.k_proj.bias", {kvd}, false, false) : -1;
    L.wv = add(p + "self_attn.v_proj.weight", {kvd, d}, true, true);
    L.bv = c.qkv_bias ? add(p + "self_attn.v_proj.bias", {kvd}, false, false) : -1;
    L.wo = add(p + "self_attn.o_proj.weight", {d, qd}, true, true);
    L.qn = c.qk_norm ? add(p + "self_attn.q_norm.weight", {c.hd}, false, false) : -1;
    L.kn = c.qk_norm ? add(p + "self_attn.k_norm.weight", {c.hd}, false, false) : -1;
    L.ln_post = add(p + "post_attention_layernorm.weight", {d}, false, false);
    L.wg = add(p + "mlp.gate_proj.weight", {F, d}, true, true);
    L.wu = add(p + "mlp.up_proj.weight", {F, d}, true, true);
    L.wd = add(p + "mlp.down_proj.weight", {d, F}, true, true);
    layers_.push_back(L);
  }
  norm_ = add("model.norm.weight", {d}, false, false);
  if (!c.tied) head_ = add("lm_head.weight", {c.V, d}, true, false);  // kept [V, d] like the embedding
  static const char* kMod[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
  const size_t n_base = layout_.size();
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (int m = 0; m < 7; ++m) {
      Layer& L = layers_[l];
      L.la[m] = L.lb[m] = -1;
      if (c.lora_r <= 0 || !(c.lora_targets & (1u << m))) continue;
      // PEFT's names in adapter_model.safetensors; HF shapes A [r, in], B [out, r]
      const std::string p = "base_model.model.model.layers." + std::to_string(l) + "." + kMod[m] + ".";
      L.la[m] = add(p + "lora_A.weight", {c.lora_r, in_of(m)}, true, true);
      L.lb[m] = add(p + "lora_B.weight", {out_of(m), c.lora_r}, true, true);
    }
  if (c.lora_r > 0 && layout_.size() == n_base) throw std::invalid_argument("grpo-kernels (native): LoRA with no target modules");
  if (c.frozen && c.lora_r > 0) throw std::invalid_argument("grpo-kernels (native): a frozen model has no LoRA adapters");
  train_base_ = c.lora_r <= 0 && !c.frozen;
  n_logical_ = layout_.back().offset + layout_.back().size;
  grad_base_ = train_base_ ? 0 : n_base < layout_.size() ? layout_[n_base].offset : n_logical_;
  trainable_.assign(layout_.size(), false);
  for (size_t i = 0; i < layout_.size(); ++i) trainable_[i] = train_base_ || (i >= n_base && !c.frozen);
  // storage: float32 tensors packed in layout order in params_, bf16 ones in pbf_
  bf_.assign(layout_.size(), false);
  store_.assign(layout_.size(), 0);
  int64_t nf = 0, nb = 0;
  for (size_t i = 0; i < layout_.size(); ++i) {
    tidx_[layout_[i].offset] = i;
    bf_[i] = c.bf16_frozen && !trainable_[i] && i < n_base && layout_[i].shape.size() == 2;
    if (bf_[i]) transposed_[i] = false;  // kept as the file has it, [out, in]
    store_[i] = bf_[i] ? nb : nf;
    (bf_[i] ? nb : nf) += layout_[i].size;
  }
  params_.assign(static_cast<size_t>(nf), 0.f);
  pbf_.assign(static_cast<size_t>(nb), 0);
}

void HfModel::embed_row(int64_t tok, float* dst) const {
  const int64_t d = cfg_.d;
  if (bf(embed_)) {
    const uint16_t* r = BF(embed_) + tok * d;
    for (int64_t j = 0; j < d; ++j) dst[j] = bf16_to_float(r[j]);
  } else {
    std::memcpy(dst, P(embed_) + tok * d, sizeof(float) * d);
  }
}

void HfModel::load_tensor(size_t t, const uint8_t* src, int dtype) {
  const ParamInfo& p = layout_.at(t);
  const int64_t n = p.size;
  auto val = [src, dtype](int64_t i) -> float {
    if (dtype == 0) {
      float f;
      std::memcpy(&f, src + 4 * i, 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    return dtype == 1 ? bf16_to_float(h) : f16_to_float(h);
  };
  if (bf_[t]) {
    uint16_t* dst = pbf_.data() + store_[t];
    if (dtype == 1) {
      std::memcpy(dst, src, 2 * static_cast<size_t>(n));  // bf16 file into bf16 memory: a copy
    } else {
      parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) dst[i] = float_to_bf16(val(i));
      }, 1 << 16);
    }
  } else if (transposed_[t]) {  // HF [out, in] -> [in, out], 32x32 blocks, rows of blocks in parallel
    const int64_t O = p.shape[0], I = p.shape[1];
    float* dst = params_.data() + store_[t];
    parallel_for((O + 31) / 32, [&](int64_t b, int64_t e, int) {
      for (int64_t ob = b; ob < e; ++ob)
        for (int64_t i0 = 0; i0 < I; i0 += 32)
          for (int64_t o = ob * 32; o < std::min(O, ob * 32 + 32); ++o)
            for (int64_t i = i0; i < std::min(I, i0 + 32); ++i) dst[i * O + o] = val(o * I + i);
    }, 1);
  } else {
    float* dst = params_.data() + store_[t];
    if (dtype == 0) std::memcpy(dst, src, 4 * static_cast<size_t>(n));
    else
      parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) dst[i] = val(i);
      }, 1 << 16);
  }
  if (t == tensor_at(head_off())) head_valid_ = false;
}

int64_t HfModel::in_of(int m) const { return m == 3 ? cfg_.H * cfg_.hd : m == 6 ? cfg_.F : cfg_.d; }
int64_t HfModel::out_of(int m) const {
  return m == 0 ? cfg_.H * cfg_.hd : (m == 1 || m == 2) ? cfg_.KVH * cfg_.hd : (m == 3 || m == 6) ? cfg_.d : cfg_.F;
}
int64_t HfModel::w_of(const Layer& W, int m) const {
  const int64_t w[7] = {W.wq, W.wk, W.wv, W.wo, W.wg, W.wu, W.wd};
  return w[m];
}
int64_t HfModel::b_of(const Layer& W, int m) const { return m == 0 ? W.bq : m == 1 ? W.bk : m == 2 ? W.bv : -1; }

void HfModel::proj_forward(const Layer& W, int m, const float* X, int64_t N, float* Y, float* t) {
  const int64_t in = in_of(m), out = out_of(m), b = b_of(W, m), r = cfg_.lora_r;
  const int64_t w = w_of(W, m);
  if (bf(w))
    matmul_bf16_nt(X, BF(w), b >= 0 ? P(b) : nullptr, Y, N, in, out, false);
  else
    matmul(X, P(w), b >= 0 ? P(b) : nullptr, Y, N, in, out, false);
  if (W.la[m] < 0 || !adapters_on_) return;
  if (!t) {
    grow(s_lt_, static_cast<size_t>(N * r));
    t = s_lt_.data();
  }
  matmul(X, P(W.la[m]), nullptr, t, N, in, r, false);
  grow(s_sdy_, static_cast<size_t>(N * r));
  float* st = s_sdy_.data();
  for (int64_t i = 0; i < N * r; ++i) st[i] = t[i] * cfg_.lora_scale;
  matmul(st, P(W.lb[m]), nullptr, Y, N, r, out, true);
}

// dX (= or +=) dY·Wᵀ (+ LoRA's path); dW, db only when the base trains; dA, dB with adapters.
void HfModel::proj_backward(const Layer& W, int m, const float* X, const float* t, const float* dY, int64_t N, float* dX, bool acc) {
  const int64_t in = in_of(m), out = out_of(m), w = w_of(W, m), b = b_of(W, m), r = cfg_.lora_r;
  if (train_base_) matmul_dw(X, dY, G(w), b >= 0 ? G(b) : nullptr, N, in, out);
  if (bf(w)) {
    matmul_bf16_nn(dY, BF(w), dX, N, out, in, acc);  // W is [out, in] as stored: dX = dY·W
  } else {
    float* wt = s_wt_.data();
    transpose(P(w), wt, in, out);
    matmul(dY, wt, nullptr, dX, N, out, in, acc);
  }
  if (W.la[m] < 0) return;
  grow(s_sdy_, static_cast<size_t>(N * std::max(out, r)));
  grow(s_lt_, static_cast<size_t>(N * r));
  grow(s_wt2_, static_cast<size_t>(r * std::max(in, out)));
  float* sdy = s_sdy_.data();
  for (int64_t i = 0; i < N * out; ++i) sdy[i] = dY[i] * cfg_.lora_scale;
  matmul_dw(t, sdy, G(W.lb[m]), nullptr, N, r, out);  // dBᵀ[r, out] += tᵀ·(s·dY)
  transpose(P(W.lb[m]), s_wt2_.data(), r, out);
  float* dt = s_lt_.data();
  matmul(sdy, s_wt2_.data(), nullptr, dt, N, out, r, false);  // dt = s·dY·B
  matmul_dw(X, dt, G(W.la[m]), nullptr, N, in, r);             // dAᵀ[in, r] += Xᵀ·dt
  transpose(P(W.la[m]), s_wt2_.data(), in, r);
  matmul(dt, s_wt2_.data(), nullptr, dX, N, r, in, true);     // dX += dt·A
}

float* HfModel::buffer(int which) {
  std::vector<float>* b = which == 0 ? &params_ : which == 1 ? &grads_ : which == 2 ? &m_ : which == 3 ? &v_ : nullptr;
  if (!b) throw std::invalid_argument("grpo-kernels (native): buffer which must be 0..3");
  const size_t n = which == 0 ? params_.size() : static_cast<size_t>(n_logical_ - grad_base_);
  if (b->size() != n) b->assign(n, 0.f);
  return b->data();
}

void HfModel::set_tensor(int which, size_t t, const float* src) {
  const ParamInfo& p = layout_.at(t);
  if (which != 0 && !trainable_[t]) throw std::invalid_argument("grpo-kernels (native): " + p.name + " is frozen (no gradient or optimizer state)");
  if (which == 0) {
    load_tensor(t, reinterpret_cast<const uint8_t*>(src), 0);
    return;
  }
  float* dst = buffer(which) + p.offset - grad_base_;
  if (transposed_[t])
    transpose(src, dst, p.shape[0], p.shape[1]);  // HF [out, in] -> [in, out]
  else
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(p.size));
}

void HfModel::get_tensor(int which, size_t t, float* dst) {
  const ParamInfo& p = layout_.at(t);
  if (which != 0 && !trainable_[t]) throw std::invalid_argument("grpo-kernels (native): " + p.name + " is frozen (no gradient or optimizer state)");
  if (which == 0 && bf_[t]) {
    const uint16_t* b = pbf_.data() + store_[t];
    for (int64_t i = 0; i < p.size; ++i) dst[i] = bf16_to_float(b[i]);
    return;
  }
  const float* src = which == 0 ? params_.data() + store_[t] : buffer(which) + p.offset - grad_base_;
  if (transposed_[t])
    transpose(src, dst, p.shape[1], p.shape[0]);
  else
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(p.size));
}

const float* HfModel::head_t() {
  if (!head_valid_) {
    grow(s_head_, static_cast<size_t>(cfg_.V * cfg_.d));
    const int64_t ho = head_off();
    if (bf(ho)) {  // (the forward and decode use the bf16 kernel instead; kept for completeness)
      const uint16_t* w = BF(ho);
      float* t = s_head_.data();
      for (int64_t v = 0; v < cfg_.V; ++v)
        for (int64_t j = 0; j < cfg_.d; ++j) t[j * cfg_.V + v] = bf16_to_float(w[v * cfg_.d + j]);
    } else {
      transpose(P(ho), s_head_.data(), cfg_.V, cfg_.d);
    }
    head_valid_ = true;
  }
  return s_head_.data();
}

void HfModel::head_logits(const float* h, int64_t N, float* logits) {
  const int64_t ho = head_off();
  if (bf(ho))
    matmul_bf16_nt(h, BF(ho), nullptr, logits, N, cfg_.d, cfg_.V, false);
  else
    matmul(h, head_t(), nullptr, logits, N, cfg_.d, cfg_.V, false);
}

void HfModel::zero_grad() {
  buffer(1);
  std::fill(grads_.begin(), grads_.end(), 0.f);
}

void HfModel::Acts::ensure(const HfConfig& c, int64_t B, int64_t L) {
  const size_t N = static_cast<size_t>(B * L), d = static_cast<size_t>(c.d), qd = static_cast<size_t>(c.H * c.hd),
               kvd = static_cast<size_t>(c.KVH * c.hd), F = static_cast<size_t>(c.F);
  layers.resize(static_cast<size_t>(c.n_layers));
  for (auto& a : layers) {
    for (auto* v : {&a.x_in, &a.h1, &a.x_mid, &a.h2}) grow(*v, N * d);
    for (auto* v : {&a.q, &a.y}) grow(*v, N * qd);
    for (auto* v : {&a.k, &a.v}) grow(*v, N * kvd);
    if (c.qk_norm) {
      grow(a.q_raw, N * qd);
      grow(a.k_raw, N * kvd);
      grow(a.qrs, N * static_cast<size_t>(c.H));
      grow(a.krs, N * static_cast<size_t>(c.KVH));
    }
    for (auto* v : {&a.rs1, &a.rs2}) grow(*v, N);
    for (auto* v : {&a.g, &a.u, &a.a}) grow(*v, N * F);
    grow(a.att, static_cast<size_t>(B * c.H * L * L));
    if (c.lora_r > 0)
      for (auto& t : a.lt) grow(t, N * static_cast<size_t>(c.lora_r));
  }
  grow(x_out, N * d);
  grow(hf, N * d);
  grow(rsf, N);
  tokens.resize(N);
}

// Per-head q/k norms (Qwen3) on the raw projections, then RoPE at each token's position.
// q_raw/k_raw in q/k on entry; with qk_norm the normed values overwrite them (raw kept by the caller).
void HfModel::qk_prepare(float* q, float* k, float* qrs, float* krs, const int32_t* pos, int64_t N, const Layer& W) {
  const int64_t hd = cfg_.hd, h2 = hd / 2;
  if (cfg_.qk_norm) {
    rmsnorm(q, P(W.qn), q, qrs, N * cfg_.H, hd, cfg_.eps);
    rmsnorm(k, P(W.kn), k, krs, N * cfg_.KVH, hd, cfg_.eps);
  }
  (void)h2;
  rope(q, N, cfg_.H, hd, cos_.data(), sin_.data(), false);
  rope(k, N, cfg_.KVH, hd, cos_.data(), sin_.data(), false);
  (void)pos;
}

namespace {
// cos/sin [N, hd/2] of angle = pos·inv_freq (the product rounded to float as HF computes it).
void rope_table(const std::vector<float>& inv_freq, const int32_t* pos, int64_t N, std::vector<float>& cs, std::vector<float>& sn) {
  const int64_t h2 = static_cast<int64_t>(inv_freq.size());
  grow(cs, static_cast<size_t>(N * h2));
  grow(sn, static_cast<size_t>(N * h2));
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t i = 0; i < h2; ++i) {
        const float ang = static_cast<float>(pos[n]) * inv_freq[i];
        cs[n * h2 + i] = static_cast<float>(std::cos(static_cast<double>(ang)));
        sn[n * h2 + i] = static_cast<float>(std::sin(static_cast<double>(ang)));
      }
  }, chunk_for(16 * h2));
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Forward

void HfModel::forward(const int32_t* tokens, int64_t B, int64_t L, float* logits, bool train) {
  Acts& A = body(tokens, B, L, train);
  head_logits(A.hf.data(), B * L, logits);
  if (train) train_valid_ = adapters_on_;  // gradients are only defined for the model that trains
}

void HfModel::forward_hidden(const int32_t* tokens, int64_t B, int64_t L, const int32_t* rows, int64_t R, float* hidden, bool train) {
  Acts& A = body(tokens, B, L, train);
  const int64_t d = cfg_.d;
  for (int64_t r = 0; r < R; ++r) {
    if (rows[r] < 0) std::fill(hidden + r * d, hidden + (r + 1) * d, 0.f);
    else std::memcpy(hidden + r * d, A.hf.data() + static_cast<int64_t>(rows[r]) * d, sizeof(float) * d);
  }
  if (train) {
    train_rows_.assign(rows, rows + R);
    train_hidden_valid_ = adapters_on_;
  }
}

HfModel::Acts& HfModel::body(const int32_t* tokens, int64_t B, int64_t L, bool train) {
  const HfConfig& c = cfg_;
  const int64_t N = B * L, d = c.d, H = c.H, KVH = c.KVH, hd = c.hd, qd = H * hd, kvd = KVH * hd, F = c.F;
  const int64_t group = H / KVH;
  Acts& A = train ? train_ : eval_;
  if (train) train_valid_ = train_hidden_valid_ = false;
  A.ensure(c, B, L);
  A.B = B;
  A.L = L;
  std::copy(tokens, tokens + N, A.tokens.begin());
  grow(pos_, static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) pos_[n] = static_cast<int32_t>(n % L);
  rope_table(c.inv_freq, pos_.data(), N, cos_, sin_);
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));

  float* x0 = A.layers[0].x_in.data();
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) embed_row(tokens[n], x0 + n * d);
  }, chunk_for(d));

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Layer& W = layers_[l];
    LayerActs& a = A.layers[l];
    rmsnorm(a.x_in.data(), P(W.ln_in), a.h1.data(), a.rs1.data(), N, d, c.eps);
    auto lt = [&](int m) { return c.lora_r > 0 ? a.lt[m].data() : nullptr; };
    proj_forward(W, 0, a.h1.data(), N, a.q.data(), lt(0));
    proj_forward(W, 1, a.h1.data(), N, a.k.data(), lt(1));
    proj_forward(W, 2, a.h1.data(), N, a.v.data(), lt(2));
    if (c.qk_norm) {
      std::memcpy(a.q_raw.data(), a.q.data(), sizeof(float) * N * qd);
      std::memcpy(a.k_raw.data(), a.k.data(), sizeof(float) * N * kvd);
    }
    qk_prepare(a.q.data(), a.k.data(), c.qk_norm ? a.qrs.data() : nullptr, c.qk_norm ? a.krs.data() : nullptr, pos_.data(), N, W);
    parallel_for(B * H * L, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = i % L, h = (i / L) % H, b = i / (L * H);
        const int64_t row = b * L + t, g = h / group;
        attend(a.q.data() + row * qd + h * hd, a.k.data() + b * L * kvd + g * hd, a.v.data() + b * L * kvd + g * hd, kvd, t + 1, hd,
               scale, a.att.data() + i * L, a.y.data() + row * qd + h * hd);
      }
    }, chunk_for(4 * hd * L));
    proj_forward(W, 3, a.y.data(), N, a.x_mid.data(), lt(3));
    add_inplace(a.x_mid.data(), a.x_in.data(), N * d);
    rmsnorm(a.x_mid.data(), P(W.ln_post), a.h2.data(), a.rs2.data(), N, d, c.eps);
    proj_forward(W, 4, a.h2.data(), N, a.g.data(), lt(4));
    proj_forward(W, 5, a.h2.data(), N, a.u.data(), lt(5));
    swiglu(a.g.data(), a.u.data(), a.a.data(), N * F);
    float* next = l + 1 < c.n_layers ? A.layers[l + 1].x_in.data() : A.x_out.data();
    proj_forward(W, 6, a.a.data(), N, next, lt(6));
    add_inplace(next, a.x_mid.data(), N * d);
  }
  rmsnorm(A.x_out.data(), P(norm_), A.hf.data(), A.rsf.data(), N, d, c.eps);
  return A;
}

// ---------------------------------------------------------------------------------------------
// Backward

void HfModel::backward(const float* dlogits) {
  if (!train_valid_) throw std::logic_error("grpo-kernels (native): backward() needs a forward with train: true first");
  const HfConfig& c = cfg_;
  const int64_t N = train_.B * train_.L, d = c.d, V = c.V;
  buffer(1);  // gradients exist from here on
  grow(s_dx_, static_cast<size_t>(N * std::max(d, c.H * c.hd)));
  float* dx = s_dx_.data();
  const int64_t ho = head_off();
  // head [V, d]: dHead += dlogitsᵀ·hf straight into the gradient (dlogits as the "input" side:
  // rows of dHead are split between threads, each row's sum over tokens in a fixed order). The
  // former route — zero a [d, V] scratch (0.5 GB for a 151k vocabulary), fill it, add it back
  // transposed with a stride-V read per element — cost more than the matmul itself at tens of
  // tokens (bench/results/hf_model.md); dhf = dlogits·head
  if (train_base_) matmul_dw(dlogits, train_.hf.data(), G(ho), nullptr, N, V, d);
  if (bf(ho))
    matmul_bf16_nn(dlogits, BF(ho), dx, N, V, d, false);
  else
    matmul(dlogits, P(ho), nullptr, dx, N, V, d, false);
  backward_body(dx);
}

void HfModel::backward_hidden(const float* dh) {
  if (!train_hidden_valid_) throw std::logic_error("grpo-kernels (native): backwardHidden() needs a forwardHidden with train: true first");
  const int64_t N = train_.B * train_.L, d = cfg_.d, R = static_cast<int64_t>(train_rows_.size());
  buffer(1);
  grow(s_dx_, static_cast<size_t>(N * std::max(d, cfg_.H * cfg_.hd)));
  float* dx = s_dx_.data();
  std::fill(dx, dx + N * d, 0.f);
  // rows in order: a row listed twice adds in a fixed order
  for (int64_t r = 0; r < R; ++r)
    if (train_rows_[r] >= 0) axpy(dx + static_cast<int64_t>(train_rows_[r]) * d, 1.f, dh + r * d, d);
  backward_body(dx);
}

float* HfModel::head_grad() {
  if (!train_base_) return nullptr;
  buffer(1);
  return G(head_off());
}

// From dL/d(final normed hidden) [N, d] (in s_dx_) down to the embedding.
void HfModel::backward_body(float* dx) {
  const HfConfig& c = cfg_;
  Acts& A = train_;
  const int64_t B = A.B, L = A.L, N = B * L, d = c.d, H = c.H, KVH = c.KVH, hd = c.hd, qd = H * hd, kvd = KVH * hd, F = c.F, V = c.V;
  const int64_t group = H / KVH;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  grow(s_res_, static_cast<size_t>(N * d));
  grow(s_big_, static_cast<size_t>(N * F));
  grow(s_big2_, static_cast<size_t>(N * std::max(F, qd)));
  grow(s_dq_, static_cast<size_t>(N * qd));
  grow(s_dk_, static_cast<size_t>(N * kvd));
  grow(s_dv_, static_cast<size_t>(N * kvd));
  grow(s_wt_, static_cast<size_t>(std::max({d * F, d * qd})));
  grow(s_row_, static_cast<size_t>(num_threads() * L));
  grow(pos_, static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) pos_[n] = static_cast<int32_t>(n % L);
  rope_table(c.inv_freq, pos_.data(), N, cos_, sin_);
  float* dres = s_res_.data();
  (void)V;
  auto GW = [&](int64_t off) { return train_base_ ? G(off) : nullptr; };
  rmsnorm_backward(dx, A.x_out.data(), A.rsf.data(), P(norm_), dres, false, GW(norm_), N, d);

  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const Layer& W = layers_[l];
    LayerActs& a = A.layers[l];
    // MLP: x_next = x_mid + (silu(g)⊙u)·Wd
    float* da = s_big_.data();
    float* du = s_big2_.data();
    auto lt = [&](int m) { return c.lora_r > 0 ? a.lt[m].data() : nullptr; };
    proj_backward(W, 6, a.a.data(), lt(6), dres, N, da, false);
    {
      const float* g = a.g.data();
      const float* u = a.u.data();
      parallel_for(N * F, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          const float s = sigmoid(g[i]);
          du[i] = da[i] * g[i] * s;
          da[i] = da[i] * u[i] * s * (1.f + g[i] * (1.f - s));  // now dg
        }
      }, 1 << 13);
    }
    proj_backward(W, 4, a.h2.data(), lt(4), da, N, dx, false);
    proj_backward(W, 5, a.h2.data(), lt(5), du, N, dx, true);
    rmsnorm_backward(dx, a.x_mid.data(), a.rs2.data(), P(W.ln_post), dres, true, GW(W.ln_post), N, d);

    // attention output: x_mid = x_in + y·Wo
    float* dy = dx;
    proj_backward(W, 3, a.y.data(), lt(3), dres, N, dy, false);
    float* dq = s_dq_.data();
    float* dk = s_dk_.data();
    float* dv = s_dv_.data();
    std::fill(dk, dk + N * kvd, 0.f);
    std::fill(dv, dv + N * kvd, 0.f);
    // one item per (batch row, kv head): its heads' dK/dV land in its own columns only
    parallel_for(B * KVH, [&, dy, dq, dk, dv](int64_t i0, int64_t i1, int worker) {
      float* dp = s_row_.data() + static_cast<int64_t>(worker) * L;
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t g = i % KVH, b = i / KVH;
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          for (int64_t t = 0; t < L; ++t) {
            const int64_t row = b * L + t;
            const float* p = a.att.data() + ((b * H + h) * L + t) * L;
            const float* dyt = dy + row * qd + h * hd;
            const float* qt = a.q.data() + row * qd + h * hd;
            float* dqt = dq + row * qd + h * hd;
            float dsum = 0.f;
            for (int64_t s = 0; s <= t; ++s) {
              dp[s] = dot(dyt, a.v.data() + (b * L + s) * kvd + g * hd, hd);
              dsum += p[s] * dp[s];
            }
            for (int64_t j = 0; j < hd; ++j) dqt[j] = 0.f;
            for (int64_t s = 0; s <= t; ++s) {
              const float ds = p[s] * (dp[s] - dsum) * scale;
              const int64_t ks = (b * L + s) * kvd + g * hd;
              axpy(dqt, ds, a.k.data() + ks, hd);
              axpy(dk + ks, ds, qt, hd);
              axpy(dv + ks, p[s], dyt, hd);
            }
          }
        }
      }
    }, 1);
    rope(dq, N, H, hd, cos_.data(), sin_.data(), true);
    rope(dk, N, KVH, hd, cos_.data(), sin_.data(), true);
    if (c.qk_norm) {  // through the per-head norms: d(raw) overwrites d(normed) in place
      float* t = s_big2_.data();
      rmsnorm_backward(dq, a.q_raw.data(), a.qrs.data(), P(W.qn), t, false, GW(W.qn), N * H, hd);
      std::memcpy(dq, t, sizeof(float) * N * qd);
      rmsnorm_backward(dk, a.k_raw.data(), a.krs.data(), P(W.kn), t, false, GW(W.kn), N * KVH, hd);
      std::memcpy(dk, t, sizeof(float) * N * kvd);
    }
    proj_backward(W, 0, a.h1.data(), lt(0), dq, N, dx, false);
    proj_backward(W, 1, a.h1.data(), lt(1), dk, N, dx, true);
    proj_backward(W, 2, a.h1.data(), lt(2), dv, N, dx, true);
    rmsnorm_backward(dx, a.x_in.data(), a.rs1.data(), P(W.ln_in), dres, true, GW(W.ln_in), N, d);
  }
  if (!train_base_) return;
  // embedding rows, tokens in order (repeated ids add in a fixed order)
  float* ge = G(embed_);
  for (int64_t n = 0; n < N; ++n) axpy(ge + static_cast<int64_t>(A.tokens[n]) * d, 1.f, dres + n * d, d);
}

// ---------------------------------------------------------------------------------------------
// AdamW (as Transformer::step; moments allocated on the first step)

double HfModel::step(const AdamWOptions& o) {
  const float* g = buffer(1);
  const int64_t n = static_cast<int64_t>(grads_.size());
  buffer(2);
  buffer(3);
  constexpr int64_t kPart = 1 << 16;
  const int64_t parts = (n + kPart - 1) / kPart;
  std::vector<double> partial(static_cast<size_t>(parts), 0.0);
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
  for (size_t t = 0; t < layout_.size(); ++t) {
    if (!trainable_[t]) continue;
    const ParamInfo& p = layout_[t];
    float* w = params_.data() + store_[t];
    const float* gg = g + (p.offset - grad_base_);
    float* m = m_.data() + (p.offset - grad_base_);
    float* v = v_.data() + (p.offset - grad_base_);
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
  head_valid_ = false;
  return norm;
}

// ---------------------------------------------------------------------------------------------
// KV-cache decode: the same per-token operations as forward(), so a token's logits here equal
// its logits in forward() of the same prefix.

void HfModel::decode(const DecodeArgs& a) {
  const HfConfig& c = cfg_;
  const int64_t d = c.d, H = c.H, KVH = c.KVH, hd = c.hd, qd = H * hd, kvd = KVH * hd, F = c.F, V = c.V, nL = c.n_layers;
  const int64_t group = H / KVH;
  const int64_t R = a.R, S = a.slots, T = a.ctx;
  std::vector<int64_t> first(static_cast<size_t>(R + 1), 0);
  for (int64_t r = 0; r < R; ++r) first[r + 1] = first[r] + a.count[r];
  const int64_t M = first[R];
  std::vector<int32_t> mrow(static_cast<size_t>(M)), mpos(static_cast<size_t>(M));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < a.count[r]; ++i) {
      mrow[first[r] + i] = static_cast<int32_t>(r);
      mpos[first[r] + i] = a.start[r] + static_cast<int32_t>(i);
    }
  grow(d_x_, static_cast<size_t>(M * d));
  grow(d_h_, static_cast<size_t>(M * d));
  grow(d_t_, static_cast<size_t>(M * d));
  grow(d_q_, static_cast<size_t>(M * qd));
  grow(d_y_, static_cast<size_t>(M * qd));
  grow(d_k_, static_cast<size_t>(M * kvd));
  grow(d_v_, static_cast<size_t>(M * kvd));
  grow(d_g_, static_cast<size_t>(M * F));
  grow(d_u_, static_cast<size_t>(M * F));
  grow(s_row_, static_cast<size_t>(num_threads() * T));
  std::vector<float> qrs(c.qk_norm ? static_cast<size_t>(M * H) : 0), krs(c.qk_norm ? static_cast<size_t>(M * KVH) : 0);
  rope_table(c.inv_freq, mpos.data(), M, cos_, sin_);
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  float *x = d_x_.data(), *h = d_h_.data(), *q = d_q_.data(), *k = d_k_.data(), *v = d_v_.data(), *y = d_y_.data(), *t2 = d_t_.data(),
        *g = d_g_.data(), *u = d_u_.data();
  auto kc = [&](int64_t l, int64_t slot) { return a.cache + ((0 * nL + l) * S + slot) * T * kvd; };
  auto vc = [&](int64_t l, int64_t slot) { return a.cache + ((1 * nL + l) * S + slot) * T * kvd; };

  for (int64_t m = 0; m < M; ++m) embed_row(a.tokens[m], x + m * d);
  for (int64_t l = 0; l < nL; ++l) {
    const Layer& W = layers_[l];
    rmsnorm(x, P(W.ln_in), h, nullptr, M, d, c.eps);
    proj_forward(W, 0, h, M, q, nullptr);
    proj_forward(W, 1, h, M, k, nullptr);
    proj_forward(W, 2, h, M, v, nullptr);
    qk_prepare(q, k, c.qk_norm ? qrs.data() : nullptr, c.qk_norm ? krs.data() : nullptr, mpos.data(), M, W);
    for (int64_t m = 0; m < M; ++m) {
      const int64_t slot = a.slot[mrow[m]], pos = mpos[m];
      std::memcpy(kc(l, slot) + pos * kvd, k + m * kvd, sizeof(float) * kvd);
      std::memcpy(vc(l, slot) + pos * kvd, v + m * kvd, sizeof(float) * kvd);
    }
    parallel_for(M * H, [&](int64_t i0, int64_t i1, int worker) {
      float* p = s_row_.data() + static_cast<int64_t>(worker) * T;
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t m = i / H, hh = i % H, gg = hh / group;
        const int64_t slot = a.slot[mrow[m]], pos = mpos[m];
        attend(q + m * qd + hh * hd, kc(l, slot) + gg * hd, vc(l, slot) + gg * hd, kvd, pos + 1, hd, scale, p, y + m * qd + hh * hd);
      }
    }, chunk_for(4 * hd * T));
    proj_forward(W, 3, y, M, t2, nullptr);
    add_inplace(t2, x, M * d);  // t2 = x_mid
    rmsnorm(t2, P(W.ln_post), h, nullptr, M, d, c.eps);
    proj_forward(W, 4, h, M, g, nullptr);
    proj_forward(W, 5, h, M, u, nullptr);
    swiglu(g, u, g, M * F);
    proj_forward(W, 6, g, M, x, nullptr);
    add_inplace(x, t2, M * d);
  }
  for (int64_t r = 0; r < R; ++r) std::memcpy(t2 + r * d, x + (first[r + 1] - 1) * d, sizeof(float) * d);
  rmsnorm(t2, P(norm_), h, nullptr, R, d, c.eps);
  head_logits(h, R, a.logits);
  (void)V;
}

}  // namespace grpo
