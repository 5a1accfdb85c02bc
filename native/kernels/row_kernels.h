// Vectorised per-row kernels over one row of logits z [V] (spec §1, §7): the row max, the
// softmax sums, exp into a float row, and the gradient row g·(1[v=y] − p_v)/τ stored as float32,
// bfloat16 or float16 (optionally with streaming stores). One source (row_kernels_impl.h) is
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
// at −88, where exp is 0 in float32), s_o = Σ_{v≠y} exp(d_v), w_o = Σ_{v≠y} exp(d_v)·d_v.
struct RowSums {
  double s_o = 0, w_o = 0;
};
struct RowStats {
  float zmax = 0;
  RowSums sums;
};

struct RowKernels {
  const char* isa;
  // max_v z_v (raw logits; −inf entries allowed).
  float (*row_max)(int dt, const void* row, int64_t V);
  // zmax and the sums in one read of the row (blocked online max: each block of the row is
  // read from memory once, then again from L1).
  RowStats (*stats)(int dt, const void* row, int64_t V, float inv_tau, int64_t y);
  // e_v = exp(d_v) written to dst (float32, may alias the row when dt is float32); the sums.
  RowSums (*exp_store)(int dt, const void* row, int64_t V, float zmax, float inv_tau, int64_t y, float* dst);
  // out_v = e_v·c (v ≠ y), out_y = ty (zero: out_v = 0), out of type dt (the rows' type); nt:
  // streaming stores. In the same loop it takes the max of `next`, the next row of logits
  // (type dt, length V; null: none), and returns it (−inf without `next`): that row streams in
  // from memory while this one streams out.
  float (*scale_store)(int dt, const float* e, int64_t V, float c, int64_t y, float ty, void* out, bool nt, bool zero,
                       const void* next);
  // out_v = exp(d_v)·c (v ≠ y), out_y = ty from the row (may alias out); nt: streaming stores.
  void (*exp_scale_store)(int dt, const void* row, int64_t V, float zmax, float inv_tau, float c, int64_t y,
                          float ty, void* out, bool nt);
  // out_v = 0.
  void (*zero_row)(int dt, void* out, int64_t V, bool nt);
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
