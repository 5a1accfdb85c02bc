// Vectorised per-row kernels over one row of logits z [V] (spec §1, §7): the softmax sums of a
// row (online max over L1-sized blocks), and the gradient row g·(1[v=y] − p_v)/τ stored as
// float32, bfloat16 or float16 (optionally with streaming stores), either recomputed from the
// logits or pipelined with the next row's sums (pipe_step). One source (row_kernels_impl.h) is
// compiled per ISA (row_kernels_avx512.cc, _avx2.cc, _generic.cc); row_kernels() returns the
// best table cpu_isa_level() allows (GRPO_CPU_ISA forces a lower one).
//
// Shapes: V = vocabulary size (row length), y = the row's target id (0 <= y < V), dt = the
// element type of a row (0 float32, 1 bfloat16, 2 float16: DType's codes). inv_tau = 1/τ.
// Sums exclude the target element y, so that 1 − p_y = s_o / s keeps its digits when p_y ≈ 1.
#pragma once
#include <cmath>
#include <cstdint>

namespace grpo {

// Softmax sums of one row relative to its max: with d_v = (z_v − zmax)·inv_tau (clamped below
// where exp is 0 in float32: −88 or −110 by ISA, so −inf logits give exactly 0), s_o = Σ_{v≠y} exp(d_v), w_o = Σ_{v≠y} exp(d_v)·d_v.
struct RowSums {
  double s_o = 0, w_o = 0;
};
struct RowStats {
  float zmax = 0;
  RowSums sums;
};

// Block length of the online passes (8 KB of float32: a block stays in L1 between its max and
// its exp); pipe_step keeps one max per block.
constexpr int64_t kRowBlock = 2048;

struct RowKernels {
  const char* isa;
  // zmax and the sums in one read of the row (blocked online max: each block of the row is
  // read from memory once, then again from L1).
  RowStats (*stats)(int dt, const void* row, int64_t V, float inv_tau, int64_t y);
  // out_v = exp(d_v)·c (v ≠ y), out_y = ty from the row (may alias out); nt: streaming stores.
  void (*exp_scale_store)(int dt, const void* row, int64_t V, float zmax, float inv_tau, float c, int64_t y,
                          float ty, void* out, bool nt);
  // out_v = 0.
  void (*zero_row)(int dt, void* out, int64_t V, bool nt);
  // One step of the pipelined one-pass gradient (see pipe_t in row_kernels_impl.h): the online
  // stats of row `cur` (null: none) with e_v stored into e_cur (float, may alias cur for float32)
  // relative to the running max of its block of kRowBlock entries, recorded in bmax; and, in the
  // same block loop, the previous row's gradient out_prev = e_prev·fac[block], entry y_prev =
  // ty_prev (zero_prev: all 0), of type dt, streamed when nt (and out_prev is aligned).
  RowStats (*pipe_step)(int dt, const void* cur, int64_t V, float inv_tau, int64_t y, float* e_cur, float* bmax,
                        const float* e_prev, const float* fac, int64_t y_prev, float ty_prev, void* out_prev, bool nt,
                        bool zero_prev);
  // Orders this thread's streaming stores before what follows (sfence on x86).
  void (*store_fence)();
};

const RowKernels& row_kernels();
// The table of one ISA level (0 generic, 1 avx2, 2 avx512), or null if not compiled; tests and
// benchmarks use GRPO_CPU_ISA instead.
const RowKernels* row_kernels_for(int level);

// ℓ and H of a row from its sums, in double: with d_y = (z_y − zmax)/τ and
// e_y = exp(d_y), lse − zmax/τ = log(e_y + s_o) and H = log(e_y + s_o) − (w_o + e_y·d_y)/(e_y + s_o).
struct RowResult {
  double logp, entropy, s, one_minus_py;  // s = e_y + s_o, one_minus_py = s_o / s
};
inline RowResult finish_row(float z_y, float zmax, double inv_tau, const RowSums& r) {
  RowResult o;
  double dy = (static_cast<double>(z_y) - static_cast<double>(zmax)) * inv_tau;
  double ey_m1 = std::expm1(dy);
  double ey = ey_m1 + 1.0;
  double lse = std::log1p(ey_m1 + r.s_o);  // log(e_y + s_o) with its digits when it is near 0
  o.s = ey + r.s_o;
  o.logp = dy - lse;
  double wy = ey > 0 ? ey * dy : 0.0;  // a −inf target contributes 0·(−inf) := 0
  o.entropy = lse - (r.w_o + wy) / o.s;
  o.one_minus_py = r.s_o / o.s;
  return o;
}

}  // namespace grpo
