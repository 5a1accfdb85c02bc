// Vectorised per-row kernels over one row of logits z [V] (spec §1, §7): the softmax sums of a
// row (online max over L1-sized blocks), and the gradient row g·(1[v=y] − p_v)/τ stored as
// float32, bfloat16 or float16 (optionally with streaming stores), either recomputed from the
// logits or pipelined with the next row's sums (pipe_step). One source (row_kernels_impl.h) is
// compiled per ISA (row_kernels_avx512.cc, _avx2.cc, _generic.cc); row_kernels() returns the
// best table cpu_isa_level() allows (GRPO_CPU_ISA forces a lower one).
//
// Shapes: V = vocabulary size (row length), y = the row's target id (0 <= y < V), dt = the
// element type of a row (0 float32, 1 bfloat16, 2 float16: DType's codes). inv_tau = 1/τ.
// The sums cover the whole row (the target included, so entropy does not depend on it); the max
// and its ties are counted apart (native/common/row_finish.h says why).
#pragma once
#include <cmath>
#include <cstdint>

#include "../common/row_finish.h"

namespace grpo {

// Softmax sums of one row relative to its max: with d_v = (z_v − zmax)·inv_tau (clamped below
// where exp is 0 in float32: −88 or −110 by ISA, so −inf logits give exactly 0),
// s_r = Σ_{d_v<0} exp(d_v), w = Σ_v exp(d_v)·d_v, k = #{v : d_v = 0}.
struct RowSums {
  double s_r = 0, w = 0, k = 0;
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
  // read from memory once, then again from L1). y is not used by the sums (kept so callers'
  // code does not change).
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
  // exp_scale_store with the entropy bonus: out_v = exp(d_v)·(c + cd·d_v) (v ≠ y), d_v the
  // exponent exp_scale_store forms (clamped below where exp is), out_y = ty.
  void (*exp_scale_store_h)(int dt, const void* row, int64_t V, float zmax, float inv_tau, float c, float cd, int64_t y,
                            float ty, void* out, bool nt);
};

const RowKernels& row_kernels();
// The table of one ISA level (0 generic, 1 avx2, 2 avx512), or null if not compiled; tests and
// benchmarks use GRPO_CPU_ISA instead.
const RowKernels* row_kernels_for(int level);

// ℓ, H, s and 1 − p_y of a row from its sums, in double (row_finish.h).
inline RowResult finish_row(float z_y, float zmax, double inv_tau, const RowSums& r) {
  double dy = (static_cast<double>(z_y) - static_cast<double>(zmax)) * inv_tau;
  return finish_row_sums(dy, r.s_r, r.w, r.k);
}

}  // namespace grpo
