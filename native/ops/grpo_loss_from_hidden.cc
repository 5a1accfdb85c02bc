// grpoLossFromHidden CPU kernel: spec §8. Shapes: S sequences × T tokens = N rows of hidden
// states h [N, D]; output weight W [V, D]; logits z = h·Wᵀ [N, V] exist one chunk of C rows at
// a time (C = a.chunk).
//
// Per chunk of rows [r0, r0 + C):
//   forward   Zt[V, C] = W · HcT (the project's matmul, native/model/matmul.cc, with W as the
//             [rows, in] operand: no transposed copy of W is ever made), in vocabulary slabs so
//             the slab of Zt stays in L2 (and a bf16/f16 W is widened one slab at a time);
//             then Z[C, V] = Ztᵀ (a parallel blocked transpose) for the row kernels.
//   rows      ℓ, H and the softmax sums of each row with the row kernels of grpoLossFromLogits
//             (native/kernels: stats + finish_row), then dL/dz = g·(1[v=y] − p)/τ in place
//             over Z (exp_scale_store), g = dL/dℓ from the loss core.
//   backward  Zt = dZᵀ (the gradient, transposed back); per vocabulary slab
//             dW[slab] += Zt[slab] · Hc (matmul, accumulating into the caller's buffer) and
//             dh[C, D] += Zt[slab]ᵀ · W[slab] (matmul_dw, slabs in ascending v).
// g for a chunk's rows comes from the shared loss core (grpo_loss_core.h), never re-derived:
// - token-level ratio without top-entropy selection: g_n depends on row n and O(S) masked-token
//   counts only, so grpo_sequence_pass runs over the chunk's part of each sequence (with the
//   dr_grpo length pinned to T) and the chunk is done in one forward (3 matmuls per chunk);
// - sequence level (GSPO) or top-entropy selection: g needs every row's ℓ/H first, so pass A
//   computes ℓ, H (and keeps zmax and the sums) for every chunk, grpo_loss_cpu gives g, and
//   pass B recomputes each chunk's logits (4 matmuls per chunk).
// The loss, metrics and dL/dℓ always come from grpo_loss_cpu over the ℓ, H written here; in
// the one-forward case its dL/dℓ is bit-identical to the per-chunk g (the same statements).
//
// Determinism: every logit, every dW and dh element is a fixed-order reduction (the matmul's
// guarantee: independent of rows per call, of slab splits and of threads), and a row's stats
// depend on that row only, so every output is bit-identical for any chunk size and thread count.
#include "grpo_loss_from_hidden.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "../common/half.h"
#include "../common/threadpool.h"
#include "../kernels/row_kernels.h"
#include "../model/matmul.h"
#include "grpo_loss_core.h"

namespace grpo {

namespace {

float load_f(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::F16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

std::unique_ptr<float[]> floats(int64_t n) { return std::unique_ptr<float[]>(new float[static_cast<size_t>(n > 0 ? n : 1)]); }

// dst[r, :] = float(src[r0 + r, :]) for rows [0, rows) of a [*, D] tensor, in parallel.
void widen_rows(const TensorView& src, int64_t r0, int64_t rows, int64_t D, float* dst) {
  parallel_for(rows, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t k = 0; k < D; ++k) dst[r * D + k] = load_f(src.data, src.dtype, (r0 + r) * D + k);
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)));
}

// dst[C, V] = src[V, C]ᵀ (or back), in blocks of 64 vocabulary entries so one block of the
// [V, C] side (64·C floats) stays in L1 while its C rows of the [C, V] side are written.
void transpose_vc(float* zt, float* z, int64_t V, int64_t C, bool to_rows) {
  const int64_t nb = (V + 63) / 64;
  parallel_for(nb, [&](int64_t b, int64_t e, int) {
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t v0 = blk * 64, v1 = std::min(V, v0 + 64);
      if (to_rows) {
        for (int64_t j = 0; j < C; ++j)
          for (int64_t v = v0; v < v1; ++v) z[j * V + v] = zt[v * C + j];
      } else {
        for (int64_t v = v0; v < v1; ++v)
          for (int64_t j = 0; j < C; ++j) zt[v * C + j] = z[j * V + v];
      }
    }
  }, 4);
}

struct RowKeep {  // what the gradient of a row needs from its stats
  float zmax;
  double s, one_minus_py;
};

class Chunks {
 public:
  explicit Chunks(const GrpoLossFromHiddenArgs& a) : a_(a), k_(row_kernels()) {
    C_ = std::max<int64_t>(1, std::min<int64_t>(a.chunk, a.S * a.T));
    // A slab of Zt of ~256 KiB (C·Vs floats) stays in L2 across the matmul's column panels.
    Vs_ = std::min<int64_t>(a.V, std::max<int64_t>(64, (int64_t(1) << 16) / C_));
    const int64_t D = a.D;
    if (a.hidden.dtype != DType::F32) hc_ = floats(C_ * D);
    hct_ = floats(D * C_);
    zt_ = floats(a.V * C_);
    z_ = floats(C_ * a.V);
    if (a.weight.dtype != DType::F32) wbuf_ = floats(Vs_ * D);
  }
  int64_t chunk() const { return C_; }
  float* z() { return z_.get(); }

  // Hc (f32 rows r0 .. r0+c) and its transpose HcT [D, c].
  void load_hidden(int64_t r0, int64_t c) {
    const int64_t D = a_.D;
    if (a_.hidden.dtype == DType::F32) {
      hc_ptr_ = static_cast<const float*>(a_.hidden.data) + r0 * D;
    } else {
      widen_rows(a_.hidden, r0, c, D, hc_.get());
      hc_ptr_ = hc_.get();
    }
    model::transpose(hc_ptr_, hct_.get(), c, D);
  }

  // Z[c, V] = Hc · Wᵀ.
  void forward(int64_t c) {
    const int64_t V = a_.V, D = a_.D;
    for (int64_t v0 = 0; v0 < V; v0 += Vs_) {
      const int64_t vs = std::min(Vs_, V - v0);
      model::matmul(weight_slab(v0, vs), hct_.get(), nullptr, zt_.get() + v0 * c, vs, D, c, false);
    }
    transpose_vc(zt_.get(), z_.get(), V, c, true);
  }

  // From dZ[c, V] (in z): dW += dZᵀ·Hc and dh[c, D] = dZ·W (dh may be null).
  void backward(int64_t c, float* dh) {
    const int64_t V = a_.V, D = a_.D;
    if (dh) std::fill(dh, dh + c * D, 0.0f);
    if (!dh && !a_.grad_weight) return;
    transpose_vc(zt_.get(), z_.get(), V, c, false);
    for (int64_t v0 = 0; v0 < V; v0 += Vs_) {
      const int64_t vs = std::min(Vs_, V - v0);
      const float* zs = zt_.get() + v0 * c;
      if (a_.grad_weight) model::matmul(zs, hc_ptr_, nullptr, a_.grad_weight + v0 * D, vs, c, D, true);
      if (dh) model::matmul_dw(zs, weight_slab(v0, vs), dh, nullptr, vs, c, D);
    }
  }

  // ℓ, H of rows r0 .. r0+c from Z (and what their gradient needs).
  void row_stats(int64_t r0, int64_t c, RowKeep* keep) {
    const int64_t V = a_.V;
    const float inv = 1.0f / a_.temperature;
    const double inv_d = 1.0 / static_cast<double>(a_.temperature);
    parallel_for(c, [&](int64_t b, int64_t e, int) {
      for (int64_t j = b; j < e; ++j) {
        const int64_t n = r0 + j, y = a_.targets[n];
        const float* row = z_.get() + j * V;
        RowStats st = k_.stats(0, row, V, inv, y);
        RowResult r = finish_row(row[y], st.zmax, inv_d, st.sums);
        a_.logp[n] = static_cast<float>(r.logp);
        a_.entropy[n] = static_cast<float>(r.entropy);
        keep[j] = RowKeep{st.zmax, r.s, r.one_minus_py};
      }
    }, 1);
  }

  // dL/dz of rows r0 .. r0+c over Z in place; false when every g (and dL/dH, gh, when the
  // entropy bonus is on; null otherwise) is 0 (nothing to propagate).
  bool row_grads(int64_t r0, int64_t c, const float* g, const float* gh, const RowKeep* keep) {
    const int64_t V = a_.V;
    const float inv = 1.0f / a_.temperature;
    const double inv_d = 1.0 / static_cast<double>(a_.temperature);
    if (!any_grad(r0, c, g, gh)) return false;
    parallel_for(c, [&](int64_t b, int64_t e, int) {
      for (int64_t j = b; j < e; ++j) {
        const int64_t n = r0 + j;
        float* row = z_.get() + j * V;
        const double gn = a_.mask[n] ? static_cast<double>(g[n]) : 0.0;
        const double ghn = a_.mask[n] && gh ? static_cast<double>(gh[n]) : 0.0;
        if (gn == 0 && ghn == 0) {
          k_.zero_row(0, row, V, false);
          continue;
        }
        if (ghn != 0) {
          // The entropy bonus, as grpoLossFromLogits' pass B: ∂H/∂z_v = −(p_v/τ)(log p_v + H), so
          // dL/dz_v = e_v·(c + cd·d_v), c = −(g + gh·(H − log s))/(τ s), cd = −gh/(τ s), and the
          // target entry is g·(1 − p_y)/τ − gh·p_y·(ℓ + H)/τ.
          const double s = keep[j].s, H = a_.entropy[n], lp = a_.logp[n], py = 1.0 - keep[j].one_minus_py;
          const float cc = static_cast<float>(-(gn + ghn * (H - std::log(s))) * inv_d / s);
          const float cd = static_cast<float>(-ghn * inv_d / s);
          const float ty = static_cast<float>(gn * inv_d * keep[j].one_minus_py - ghn * py * inv_d * (lp + H));
          k_.exp_scale_store_h(0, row, V, keep[j].zmax, inv, cc, cd, a_.targets[n], ty, row, false);
          continue;
        }
        const float cc = static_cast<float>(-gn * inv_d / keep[j].s);
        const float ty = static_cast<float>(gn * inv_d * keep[j].one_minus_py);
        k_.exp_scale_store(0, row, V, keep[j].zmax, inv, cc, a_.targets[n], ty, row, false);
      }
    }, 1);
    return true;
  }

  bool any_grad(int64_t r0, int64_t c, const float* g, const float* gh) const {
    for (int64_t j = 0; j < c; ++j)
      if (a_.mask[r0 + j] && (g[r0 + j] != 0.0f || (gh && gh[r0 + j] != 0.0f))) return true;
    return false;
  }

 private:
  const float* weight_slab(int64_t v0, int64_t vs) {
    if (a_.weight.dtype == DType::F32) return static_cast<const float*>(a_.weight.data) + v0 * a_.D;
    widen_rows(a_.weight, v0, vs, a_.D, wbuf_.get());
    return wbuf_.get();
  }

  const GrpoLossFromHiddenArgs& a_;
  const RowKernels& k_;
  int64_t C_ = 1, Vs_ = 1;
  std::unique_ptr<float[]> hc_, hct_, zt_, z_, wbuf_;
  const float* hc_ptr_ = nullptr;
};

}  // namespace

void grpo_loss_from_hidden_cpu(GrpoLossFromHiddenArgs& a) {
  const int64_t S = a.S, T = a.T, N = S * T;
  const GrpoOptions& o = a.opt;
  a.metrics = GrpoMetrics{};
  if (N <= 0) return;
  const bool grad = a.grad_hidden != nullptr || a.grad_weight != nullptr;
  const bool one_forward = grad && o.level == Level::Token && !(o.top_entropy_quantile < 1) && !loss_needs_core_pass(o);

  std::vector<float> grad_logp_local;
  float* g = a.grad_logp;
  if (!g && grad) {
    grad_logp_local.resize(static_cast<size_t>(N));
    g = grad_logp_local.data();
  }
  GrpoLossArgs la = per_token_loss_args(a);
  la.grad_logp = g;
  // The entropy bonus: dL/dH per token from the loss core, chained into dL/dz in pass B
  // (entropy_coef != 0 always takes the two-pass route: loss_needs_core_pass).
  std::vector<float> grad_h;
  if (grad && o.entropy_coef != 0) {
    grad_h.resize(static_cast<size_t>(N));
    la.grad_entropy = grad_h.data();
  }
  const float* gh = grad_h.empty() ? nullptr : grad_h.data();

  Chunks ch(a);
  const int64_t C = ch.chunk();

  if (one_forward) {
    // O(S) constants of the aggregation weights, as grpo_loss_cpu counts them.
    std::vector<double> n_seq(static_cast<size_t>(S), 0.0);
    double n_batch = 0;
    for (int64_t i = 0; i < S; ++i) {
      int64_t cnt = 0;
      for (int64_t t = 0; t < T; ++t) cnt += a.mask[i * T + t] != 0;
      n_seq[i] = static_cast<double>(cnt);
      n_batch += static_cast<double>(cnt);
    }
    // A chunk holds part of a sequence: pin dr_grpo's T_max to the full T (aggregation_weight
    // would otherwise take the part's length).
    GrpoOptions oc = o;
    if (!(oc.max_completion_length > 0)) oc.max_completion_length = static_cast<double>(T);
    std::vector<RowKeep> keep(static_cast<size_t>(C));
    for (int64_t r0 = 0; r0 < N; r0 += C) {
      const int64_t c = std::min(C, N - r0);
      ch.load_hidden(r0, c);
      ch.forward(c);
      ch.row_stats(r0, c, keep.data());
      // g of the chunk's rows: the loss core over each sequence's part in this chunk.
      for (int64_t i = r0 / T; i * T < r0 + c; ++i) {
        const int64_t t0 = std::max(r0, i * T), t1 = std::min(r0 + c, (i + 1) * T);
        SeqInputs q;
        q.mask = a.mask + t0;
        q.logp = a.logp + t0;
        q.old_logp = a.old_logp ? a.old_logp + t0 : nullptr;
        q.ref_logp = a.ref_logp ? a.ref_logp + t0 : nullptr;
        q.entropy = a.entropy + t0;
        q.grad_logp = g + t0;
        q.per_token_loss = nullptr;
        q.T = t1 - t0;
        q.advantage = a.advantages[i];
        q.n_i = n_seq[i];
        q.n_batch = n_batch;
        q.S = S;
        q.select = false;
        q.threshold = 0;
        grpo_sequence_pass(q, oc);
      }
      float* dh = a.grad_hidden ? a.grad_hidden + r0 * a.D : nullptr;
      if (ch.row_grads(r0, c, g, nullptr, keep.data())) {
        ch.backward(c, dh);
      } else if (dh) {
        std::fill(dh, dh + c * a.D, 0.0f);
      }
    }
    grpo_loss_cpu(la);  // loss and metrics; its dL/dℓ has the bits the chunks used
    a.metrics = la.metrics;
    return;
  }

  // Pass A: ℓ, H of every row (and the sums the gradient needs), one chunk at a time.
  std::vector<RowKeep> keep(static_cast<size_t>(grad ? N : C));
  for (int64_t r0 = 0; r0 < N; r0 += C) {
    const int64_t c = std::min(C, N - r0);
    ch.load_hidden(r0, c);
    ch.forward(c);
    ch.row_stats(r0, c, keep.data() + (grad ? r0 : 0));
  }
  grpo_loss_cpu(la);
  a.metrics = la.metrics;
  if (!grad) return;
  // Pass B: the logits again (the same bits), their gradient, and the two products.
  for (int64_t r0 = 0; r0 < N; r0 += C) {
    const int64_t c = std::min(C, N - r0);
    float* dh = a.grad_hidden ? a.grad_hidden + r0 * a.D : nullptr;
    if (!ch.any_grad(r0, c, g, gh)) {  // masked, clipped or deselected rows: nothing to recompute
      if (dh) std::fill(dh, dh + c * a.D, 0.0f);
      continue;
    }
    ch.load_hidden(r0, c);
    ch.forward(c);
    ch.row_grads(r0, c, g, gh, keep.data() + r0);
    ch.backward(c, dh);
  }
}

}  // namespace grpo
