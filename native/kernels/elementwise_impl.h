// The kernels of elementwise.h, written once with GCC vector extensions (8 double lanes) and
// compiled per ISA (elementwise_avx512.cc: one zmm; _avx2.cc: two ymm; _generic.cc: four xmm).
// Include with GRPO_ELEM_NS set to the variant's namespace. Every lane runs the operations of
// the scalar formula in common/formulas.h (k3_parts), in the same order, without contraction:
// the vector, scalar and CUDA results are the same bits.
#include <cstdint>
#include <cstring>

#pragma GCC diagnostic ignored "-Wpsabi"

#include "../common/formulas.h"
#include "elementwise.h"

namespace grpo {
namespace GRPO_ELEM_NS {

constexpr int W = 8;  // double lanes per vector
typedef double vd __attribute__((vector_size(64)));
typedef uint64_t vu __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf8_u __attribute__((vector_size(32), aligned(4), may_alias));

#define GRPO_AI inline __attribute__((always_inline))

GRPO_AI vd load8(const float* p) { return __builtin_convertvector(*reinterpret_cast<const vf8_u*>(p), vd); }
GRPO_AI void store8(float* p, vd v) { *reinterpret_cast<vf8_u*>(p) = __builtin_convertvector(v, vf8); }
GRPO_AI vd splat(double x) { return vd{} + x; }

// One estimator over [0, n): W tokens at a time, the tail through scalar kl_estimate (the same
// formula: the same bits).
// EST: the estimator whose value is taken (K1..Abs); PLUS: verl's straight-through form (k2's
// gradient, ℓ − ℓ_ref).
template <int EST, bool PLUS>
bool kl_t(const float* logp, const float* ref_logp, int64_t n, bool clamp_log_ratio, float* kl, float* grad) {
  const KlEstimator est = static_cast<KlEstimator>(EST);
  const bool clamp = clamp_log_ratio || est == KlEstimator::LowVarKl;
  const KlEstimator est_in = PLUS ? (est == KlEstimator::K1 ? KlEstimator::K1Plus : est == KlEstimator::K3 ? KlEstimator::K3Plus
                                     : est == KlEstimator::LowVarKl ? KlEstimator::LowVarKlPlus : KlEstimator::AbsPlus)
                                  : est;
  int64_t i = 0;
  // Σ d·0 over the unclamped d = rp − lp: NaN iff some input is NaN or ±Inf (two finite floats
  // give a finite double difference; any non-finite one gives ±Inf or NaN). One multiply-add
  // per vector instead of the three of Σ (lp·0 + rp·0).
  vd probe{};
  for (; i + W <= n; i += W) {
    const vd lp = load8(logp + i), rp = load8(ref_logp + i);
    vd d = rp - lp;
    probe += d * 0.0;
    const vd minus_d = -d;
    vd D, g;
    if (est == KlEstimator::Abs) {
      D = d < 0.0 ? -d : d;
      g = d < 0.0 ? splat(1.0) : (d > 0.0 ? splat(-1.0) : vd{});
    } else if (est == KlEstimator::K1) {
      D = -d;
      g = splat(1.0);
    } else if (est == KlEstimator::K2) {
      D = splat(0.5) * d * d;
      g = -d;
    } else {
      auto active = d != d;  // all false, of the comparison type
      if (clamp) {
        active = (d > kLogRatioClamp) | (d < -kLogRatioClamp);
        d = d > kLogRatioClamp ? splat(kLogRatioClamp) : d;
        d = d < -kLogRatioClamp ? splat(-kLogRatioClamp) : d;
      }
      vd em1;
      k3_parts<vd, vu>(d, D, em1, [](vd x) { return (vu)x; }, [](vu u) { return (vd)u; });
      if (est == KlEstimator::LowVarKl) {
        active |= (D > kLowVarKlClamp) | (D < -kLowVarKlClamp);
        D = D > kLowVarKlClamp ? splat(kLowVarKlClamp) : D;
        D = D < -kLowVarKlClamp ? splat(-kLowVarKlClamp) : D;
      }
      g = active ? vd{} : -em1;
    }
    if (PLUS) g = minus_d;
    store8(kl + i, D);
    if (grad) store8(grad + i, g);
  }
  bool finite = true;
  for (int l = 0; l < W; ++l) finite &= probe[l] == 0.0;
  for (; i < n; ++i) {
    finite &= (static_cast<double>(ref_logp[i]) - static_cast<double>(logp[i])) * 0.0 == 0.0;
    KlValue v = kl_estimate(logp[i], ref_logp[i], est_in, clamp_log_ratio);
    kl[i] = static_cast<float>(v.d);
    if (grad) grad[i] = static_cast<float>(v.grad);
  }
  return finite;
}

bool kl(const float* logp, const float* ref_logp, int64_t n, int est, bool clamp_log_ratio, float* klo, float* grad) {
  switch (static_cast<KlEstimator>(est)) {
    case KlEstimator::K1: return kl_t<0, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::K2: return kl_t<1, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::K3: return kl_t<2, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::LowVarKl: return kl_t<3, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::Abs: return kl_t<4, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::K1Plus: return kl_t<0, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::K3Plus: return kl_t<2, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::LowVarKlPlus: return kl_t<3, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
    case KlEstimator::AbsPlus: return kl_t<4, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad);
  }
  return true;
}

const ElementwiseKernels kTable = {GRPO_ELEM_ISA, kl};

}  // namespace GRPO_ELEM_NS
}  // namespace grpo
