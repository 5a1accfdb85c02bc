// ℓ, H, s and 1 − p_y of one row from its softmax sums (spec §1), in double, written once for the
// CPU row kernels (native/kernels/row_kernels.h) and the CUDA ones (cuda/row_stats.cuh).
//
// With d_v = (z_v − zmax)/τ <= 0 the sums are taken over the whole row, the target included, so
// that H does not depend on which token was sampled:
//   s_r = Σ_{d_v < 0} exp(d_v),   w = Σ_v exp(d_v)·d_v (<= 0),   k = #{v : d_v = 0}.
// The max and its ties contribute exactly 1 each to s = k + s_r and 0 to w; keeping them out of
// the float partial sums (counted in k instead) keeps the digits of s − 1 when the row is peaked
// (a float lane holding 1.0 would absorb every term below 6e-8). Then
//   lse − zmax/τ = log(s) = log1p((k − 1) + s_r) >= 0   and   H = log(s) − w/s >= log(s) >= 0,
// with no cancellation: both terms are non-negative. (Sums that left the target out and added it
// back in double cancelled when the target was not the argmax: H came out target-dependent and
// could be negative.)
#pragma once
#include <cmath>

#include "half.h"  // GRPO_HD

namespace grpo {

struct RowResult {
  double logp, entropy, s, one_minus_py;  // s = Σ_v exp(d_v), one_minus_py = 1 − p_y
};

// dy = (z_y − zmax)/τ in double (<= 0).
GRPO_HD RowResult finish_row_sums(double dy, double s_r, double w, double k) {
  RowResult o;
  double rest = (k - 1.0) + s_r;  // s − 1, exact in its leading digits
  double lse = log1p(rest);
  o.s = k + s_r;
  o.logp = dy - lse;
  o.entropy = lse - w / o.s;
  // 1 − p_y: for the argmax (dy = 0) the sum of the others, else s − e_y (>= k − … >= s − 1
  // + (1 − e_y): no cancellation beyond float rounding of s_r).
  o.one_minus_py = dy == 0.0 ? rest / o.s : (o.s - exp(dy)) / o.s;
  return o;
}

}  // namespace grpo
