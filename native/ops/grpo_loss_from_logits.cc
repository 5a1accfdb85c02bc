// grpoLossFromLogits CPU kernel: spec §7 = §1 (per-row ℓ, H) + §4-§6 (grpo_loss_cpu) + the
// chain rule dL/dz_v = g_n·(1[v=y] − p_v)/τ, g_n = dL/dℓ_n. Shapes: S sequences × T tokens =
// N rows of V logits (f32 / bf16 / f16), row n = i·T + t.
//
// Memory traffic is the cost (N·V is ~1 GB at N=2048, V=151936), so rows are visited as few
// times as possible:
// - one pass (token-level ratio, no top-entropy selection, no loss needing the core pass): g_n
//   depends only on row n and O(N) batch constants (mask counts), so each row is read from
//   memory once: block by block, max (memory), exp (L1) stored as e relative to the block's
//   running max (over the logits themselves when in place and float32, else per-thread float
//   row reused across rows and calls); then ℓ, H, g_n and one factor per block; then the
//   gradient e·factor is written out from e still in L2 (streaming stores for a separate
//   buffer). GRPO_FUSED_SCHEDULE=pipe instead writes row n−1's gradient in the same block loop
//   as row n's read (two e rows per thread, which overflow a 1 MB L2 at V = 151936).
//   On a 2-core box the exp work, not memory, bounds every schedule: bench/results/fused-floor.md.
// - two passes (sequence level, top-entropy selection: g needs every row's ℓ/H first; or
//   GRPO_FUSED_SCHEDULE=two). Pass A
//   reads each row once (blocked online max) for ℓ, H, zmax and Σexp; grpo_loss_cpu gives g;
//   pass B reads the row again, exponentiates and streams the gradient out.
// - no gradient: pass A only.
// The loss, metrics and dL/dℓ always come from grpo_loss_cpu over the ℓ, H written here; the
// one-pass g_n is the same per-token formula (formulas.h) evaluated inline.
#include "grpo_loss_from_logits.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../common/formulas.h"
#include "../common/half.h"
#include "../common/threadpool.h"
#include "../kernels/row_kernels.h"

namespace grpo {

namespace {

float load_logit(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::F16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Per-thread buffers of the pipelined one-pass gradient, allocated once and reused across rows
// and calls: two float rows for e_v (this row's and the previous row's; 608 KB each at
// V = 151936, not needed when e overwrites float32 logits in place), and per row block its
// running max and its gradient factor.
struct PipeBuffers {
  float* e[2] = {nullptr, nullptr};
  float* bmax[2] = {nullptr, nullptr};
  float* fac[2] = {nullptr, nullptr};
  int64_t cap_v = 0, cap_b = 0;
  ~PipeBuffers() {
    for (int k = 0; k < 2; ++k) {
      std::free(e[k]);
      std::free(bmax[k]);
      std::free(fac[k]);
    }
  }
};
float* alloc_floats(int64_t n) {
  size_t bytes = (static_cast<size_t>(n) * 4 + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!p) throw std::bad_alloc();
  return p;
}
PipeBuffers& pipe_buffers(int64_t V, int64_t nblk) {
  thread_local PipeBuffers b;
  if (b.cap_v < V) {
    for (int k = 0; k < 2; ++k) {
      std::free(b.e[k]);
      b.e[k] = nullptr;
    }
    for (int k = 0; k < 2; ++k) b.e[k] = alloc_floats(V);
    b.cap_v = V;
  }
  if (b.cap_b < nblk || !b.bmax[0]) {
    for (int k = 0; k < 2; ++k) {
      std::free(b.bmax[k]);
      std::free(b.fac[k]);
      b.bmax[k] = b.fac[k] = nullptr;
    }
    for (int k = 0; k < 2; ++k) {
      b.bmax[k] = alloc_floats(nblk);
      b.fac[k] = alloc_floats(nblk);
    }
    b.cap_b = nblk;
  }
  return b;
}

// Calls body(n) for every row, rows handed out dynamically (masked rows are cheaper, so a
// static split could leave a core idle); each row's result is independent of who runs it.
template <class F> void for_rows(int64_t N, int64_t V, const RowKernels& k, F&& body) {
  if (N <= 0) return;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1));
  std::atomic<int64_t> next{0};
  int64_t workers = std::min<int64_t>(num_threads(), (N + grain - 1) / grain);
  parallel_for(workers, [&](int64_t, int64_t, int) {
    for (;;) {
      int64_t r0 = next.fetch_add(grain, std::memory_order_relaxed);
      if (r0 >= N) break;
      int64_t r1 = std::min(N, r0 + grain);
      for (int64_t n = r0; n < r1; ++n) body(n);
    }
    k.store_fence();  // streaming stores are visible before the caller reads the gradient
  }, 1);
}

}  // namespace

void grpo_loss_from_logits_cpu(GrpoLossFromLogitsArgs& a) {
  const int64_t S = a.S, T = a.T, V = a.V, N = S * T;
  const GrpoOptions& o = a.opt;
  const RowKernels& k = row_kernels();
  const DType dtype = a.logits.dtype;
  const int dt = static_cast<int>(dtype);
  const int64_t row_bytes = V * dtype_size(dtype);
  const char* in = static_cast<const char*>(a.logits.data);
  char* out = static_cast<char*>(a.grad_logits.data);
  const bool grad = a.grad_mode != GradMode::None && out != nullptr;
  const bool inplace = a.grad_mode == GradMode::InPlace;
  const float inv = 1.0f / a.temperature;
  const double inv_d = 1.0 / static_cast<double>(a.temperature);
  // Which schedule: one pass wherever one pass can serve, one row at a time (`row`). Float32 keeps
  // e in the output row itself (in place: the logits row; separate: the gradient row, RFO'd while
  // the exp work keeps the core busy) and scales it there with ordinary stores, so the dirty lines
  // are written back while the next row is read. Float32 with a separate gradient used to take
  // two passes, then one pass with e in an L2 scratch row and streamed stores: on a quiet 2-core
  // box (N=2048, V=151936, 2 threads, schedules interleaved call by call, three runs) e in the
  // gradient row took 0.93-1.22x the 3-pass floor against 1.08-1.13x for two passes and
  // 1.14-1.23x for the previous build (bench/results/fused-floor.md, "Stop 17"). 16-bit
  // gradients cannot hold a float e, so they keep the scratch row (608 KB at V = 151936, stays
  // in a 1 MB L2) and stream when separate.
  // GRPO_FUSED_SCHEDULE=two|pipe|row (read per call, for A/B runs in one process:
  // bench/fused_schedule.js) overrides it. `row` and `pipe` compute the same bits; two passes
  // exponentiate twice (the gradient may differ from them by float rounding only).
  const char* sched_env = std::getenv("GRPO_FUSED_SCHEDULE");
  const std::string sched = sched_env ? sched_env : "";
  const bool one_pass_ok = grad && o.level == Level::Token && !(o.top_entropy_quantile < 1) && !loss_needs_core_pass(o);
  const bool one_pass = one_pass_ok && sched != "two";
  const bool pipelined = sched == "pipe";

  std::vector<float> grad_logp_local;
  float* grad_logp = a.grad_logp;
  if (!grad_logp && grad) {
    grad_logp_local.resize(static_cast<size_t>(N));
    grad_logp = grad_logp_local.data();
  }

  GrpoLossArgs la = per_token_loss_args(a);
  la.grad_logp = grad_logp;
  // The entropy bonus: dL/dH per token from the loss core, chained into dL/dz in pass B.
  std::vector<float> grad_h;
  if (grad && o.entropy_coef != 0) {
    grad_h.resize(static_cast<size_t>(N));
    la.grad_entropy = grad_h.data();
  }

  if (one_pass) {
    // O(N) batch constants of the aggregation weight: masked-token counts.
    std::vector<double> n_seq(static_cast<size_t>(S), 0.0);
    double n_batch = 0;
    for (int64_t i = 0; i < S; ++i) {
      int64_t c = 0;
      for (int64_t t = 0; t < T; ++t) c += a.mask[i * T + t] != 0;
      n_seq[i] = static_cast<double>(c);
      n_batch += static_cast<double>(c);
    }
    // Each worker takes a contiguous range of rows and pipelines them: one block loop reads and
    // exponentiates row n (online max, e stored per block) while it writes row n−1's gradient.
    const int64_t nblk = (V + kRowBlock - 1) / kRowBlock;
    const bool e_in_out = dtype == DType::F32;  // e kept in the output row (see the schedule above)
    const bool nt = !inplace && !e_in_out;       // streamed stores only into a row not read back
    const int64_t min_rows = V >= 65536 ? 1 : 65536 / V;
    parallel_for(N, [&](int64_t b, int64_t e, int) {
      PipeBuffers& pb = pipe_buffers(e_in_out ? 0 : V, nblk);
      int cur = 0;
      const float* e_prev = nullptr;
      const float* fac_prev = nullptr;
      void* out_prev = nullptr;
      int64_t y_prev = 0;
      float ty_prev = 0;
      bool zero_prev = false;
      for (int64_t n = b; n <= e; ++n) {  // row n of the logits; n == e only finishes row e−1
        const bool has = n < e;
        const void* row = has ? in + n * row_bytes : nullptr;
        void* orow = has ? out + n * row_bytes : nullptr;
        const int64_t y = has ? a.targets[n] : 0;
        const float z_y = has ? load_logit(row, dtype, y) : 0.0f;  // before e overwrites it
        float* ev = !has ? nullptr : e_in_out ? static_cast<float*>(orow) : pb.e[cur];
        RowStats st = k.pipe_step(dt, row, V, inv, y, ev, pb.bmax[cur], e_prev, fac_prev, y_prev, ty_prev, out_prev,
                                  nt, zero_prev);
        if (!has) break;
        RowResult r = finish_row(z_y, st.zmax, inv_d, st.sums);
        const float lp = static_cast<float>(r.logp);
        a.logp[n] = lp;
        a.entropy[n] = static_cast<float>(r.entropy);
        double c = 0, ty = 0;
        if (a.mask[n]) {
          // g_n = a_n·(∂P/∂ρ·ρ + ∂P/∂ℓ + β·∂D/∂ℓ), from the float32 ℓ grpo_loss_cpu will see.
          const int64_t i = n / T;
          const double l = lp, A = a.advantages[i];
          double g = token_loss_grad(l, a.old_logp ? static_cast<double>(a.old_logp[n]) : 0.0, a.old_logp != nullptr,
                                     a.ref_logp ? a.ref_logp + n : nullptr, A, o);
          g *= aggregation_weight(o, n_seq[i], n_batch, S, T);
          c = -g * inv_d / r.s;
          ty = g * inv_d * r.one_minus_py;
        }
        // e of block j was taken relative to that block's running max bmax[j]; rebase to zmax.
        float* fac = pb.fac[cur];
        for (int64_t j = 0; j < nblk; ++j)
          fac[j] = static_cast<float>(c * std::exp((static_cast<double>(pb.bmax[cur][j]) - st.zmax) * inv_d));
        if (!pipelined) {  // write this row's gradient now, from e still in cache
          k.pipe_step(dt, nullptr, V, inv, 0, nullptr, nullptr, ev, fac, y, static_cast<float>(ty), orow, nt,
                      !a.mask[n]);
          continue;
        }
        e_prev = ev;
        fac_prev = fac;
        out_prev = orow;
        y_prev = y;
        ty_prev = static_cast<float>(ty);
        zero_prev = !a.mask[n];
        cur ^= 1;
      }
      k.store_fence();
    }, min_rows);
    grpo_loss_cpu(la);
    a.metrics = la.metrics;
    return;
  }

  // Pass A: ℓ, H (and what pass B needs) with one read per row.
  std::vector<float> zmax;
  std::vector<double> s_tot, omp;
  if (grad) {
    zmax.resize(static_cast<size_t>(N));
    s_tot.resize(static_cast<size_t>(N));
    omp.resize(static_cast<size_t>(N));
  }
  for_rows(N, V, k, [&](int64_t n) {
    const void* row = in + n * row_bytes;
    const int64_t y = a.targets[n];
    RowStats st = k.stats(dt, row, V, inv, y);
    RowResult r = finish_row(load_logit(row, dtype, y), st.zmax, inv_d, st.sums);
    a.logp[n] = static_cast<float>(r.logp);
    a.entropy[n] = static_cast<float>(r.entropy);
    if (grad) {
      zmax[n] = st.zmax;
      s_tot[n] = r.s;
      omp[n] = r.one_minus_py;
    }
  });
  grpo_loss_cpu(la);
  a.metrics = la.metrics;
  if (!grad) return;
  // Pass B: exponentiate again and stream dL/dz out.
  for_rows(N, V, k, [&](int64_t n) {
    const void* row = in + n * row_bytes;
    void* orow = out + n * row_bytes;
    const double g = a.mask[n] ? static_cast<double>(grad_logp[n]) : 0.0;
    const double gh = a.mask[n] && !grad_h.empty() ? static_cast<double>(grad_h[n]) : 0.0;
    if (g == 0 && gh == 0) {  // masked, clipped or deselected: no need to read the row
      k.zero_row(dt, orow, V, true);
      return;
    }
    if (gh != 0) {
      // ∂H/∂z_v = −(p_v/τ)(log p_v + H), p_v = e_v/s, log p_v = d_v − log s: so
      // dL/dz_v = e_v·(c + cd·d_v) with c = −(g + gh·(H − log s))/(τ s), cd = −gh/(τ s); the target
      // entry adds gh·∂H/∂z_y to g·(1 − p_y)/τ.
      const double s = s_tot[n], H = a.entropy[n], lp = a.logp[n], py = 1.0 - omp[n];
      const float c = static_cast<float>(-(g + gh * (H - std::log(s))) * inv_d / s);
      const float cd = static_cast<float>(-gh * inv_d / s);
      const float ty = static_cast<float>(g * inv_d * omp[n] - gh * py * inv_d * (lp + H));
      k.exp_scale_store_h(dt, row, V, zmax[n], inv, c, cd, a.targets[n], ty, orow, true);
      return;
    }
    const float c = static_cast<float>(-g * inv_d / s_tot[n]);
    const float ty = static_cast<float>(g * inv_d * omp[n]);
    k.exp_scale_store(dt, row, V, zmax[n], inv, c, a.targets[n], ty, orow, true);
  });
}

}  // namespace grpo
