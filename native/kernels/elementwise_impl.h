// The kernels of elementwise.h, written once with GCC vector extensions (8 double lanes) and
// compiled per ISA (elementwise_avx512.cc: one zmm; _avx2.cc: two ymm; _generic.cc: four xmm).
// Include with GRPO_ELEM_NS set to the variant's namespace. Every lane runs the operations of
// the scalar formula in common/formulas.h (k3_parts_fma), in the same order, without contraction:
// the vector, scalar and CUDA results are the same bits.
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#pragma GCC diagnostic ignored "-Wpsabi"

#include "../common/formulas.h"
#include "../ops/group_advantages.h"
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

// a·b + c rounded once, per lane (k3_parts_fma): one vfmadd on avx512, two on avx2; the generic
// build has no fma instruction and calls the correctly rounded std::fma per lane (same bits).
struct VecFma {
  GRPO_AI vd operator()(vd a, vd b, vd c) const {
#if defined(__AVX512F__)
    return (vd)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
    union H { vd v; __m256d h[2]; };
    H x{a}, y{b}, z{c}, o;
    o.h[0] = _mm256_fmadd_pd(x.h[0], y.h[0], z.h[0]);
    o.h[1] = _mm256_fmadd_pd(x.h[1], y.h[1], z.h[1]);
    return o.v;
#else
    vd o;
    for (int l = 0; l < W; ++l) o[l] = std::fma(a[l], b[l], c[l]);
    return o;
#endif
  }
};

// One estimator over [0, n): W tokens at a time, the tail through scalar kl_penalty_value (the same
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
      auto to_bits = [](vd x) { return (vu)x; };
      auto from_bits = [](vu u) { return (vd)u; };
      if (clamp) k3_parts_fma<vd, vu, decltype(to_bits), decltype(from_bits), VecFma, false>(d, D, em1, to_bits, from_bits, VecFma());
      else k3_parts_fma<vd, vu>(d, D, em1, to_bits, from_bits, VecFma());
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
    KlValue v = kl_penalty_value(logp[i], ref_logp[i], est_in, clamp_log_ratio);
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

// W groups per step, lane l = group j + l (the last step repeats the last group in its spare
// lanes and stores only the real ones). Per lane, the statements of group_advantages_fixed_t
// (ops/group_advantages.cc) with K = 1: a NaN member is skipped by adding 0 (exact: no sum is
// −0) and not counting it; lo/hi start at ±Inf instead of the first member (the same min/max
// over the members: a ±Inf reward makes the call throw).
GroupAdvLanesCounts group_adv(const GroupAdvLanesArgs& a, int64_t j0, int64_t j1) {
  const int64_t G = a.G;
  const double nan = __builtin_nan("");
  const double inf = __builtin_inf();
  const vd w0 = splat(a.w0);
  GroupAdvLanesCounts c;
  vd x[kGroupAdvLanesMaxG];
  for (int64_t j = j0; j < j1; j += W) {
    const int64_t nl = j1 - j < W ? j1 - j : W;
    vd sum{}, cnt{}, lo = splat(inf), hi = splat(-inf), badv{};
    for (int64_t u = 0; u < G; ++u) {
      vd raw;
      for (int l = 0; l < W; ++l) raw[l] = a.rewards[(j + (l < nl ? l : nl - 1)) * G + u];
      badv += (raw - raw) * 0.0;  // NaN for ±Inf, and for NaN: told apart below
      const auto valid = raw == raw;
      const vd xv = valid ? 0.0 + w0 * raw : splat(nan);
      x[u] = xv;
      lo = valid && xv < lo ? xv : lo;
      hi = valid && xv > hi ? xv : hi;
      sum += valid ? xv : vd{};
      cnt += valid ? splat(1.0) : vd{};
    }
    const auto none = cnt == 0.0;
    const auto same = lo == hi;
    const vd mean = none ? splat(nan) : (same ? lo : sum / cnt);
    vd sq{};
    for (int64_t u = 0; u < G; ++u) {
      const vd d = x[u] - mean;
      sq += x[u] == x[u] ? d * d : vd{};
    }
    vd sdv = cnt <= 1.0 ? vd{} : sq / (a.unbiased ? cnt - 1.0 : cnt);
    for (int l = 0; l < W; ++l) sdv[l] = __builtin_sqrt(sdv[l]);
    const vd sd = none ? splat(nan) : (same ? vd{} : sdv);
    const vd rloo = cnt < 2.0 ? vd{} : cnt / (cnt - 1.0);
    const vd div = a.scale == static_cast<int>(AdvScale::Group) ? sd + a.eps : splat(a.batch_sd + a.eps);
    for (int64_t u = 0; u < G; ++u) {
      vd adv = x[u] - mean;
      if (a.rloo) adv = cnt < 2.0 ? vd{} : rloo * adv;
      if (a.scale != static_cast<int>(AdvScale::None)) adv /= div;
      adv = x[u] == x[u] ? adv : vd{};
      for (int l = 0; l < nl; ++l) {
        a.advantages[(j + l) * G + u] = static_cast<float>(adv[l]);
        a.reward[(j + l) * G + u] = static_cast<float>(x[u][l]);
      }
    }
    for (int l = 0; l < nl; ++l) {
      a.group_mean[j + l] = static_cast<float>(mean[l]);
      a.group_std[j + l] = static_cast<float>(sd[l]);
      c.zero_std += sd[l] == 0.0;
      c.no_reward += static_cast<int64_t>(G - static_cast<int64_t>(cnt[l]));
      // badv NaN: some member ±Inf or NaN; a lane whose members are all finite or NaN with
      // count + NaN count = G and no Inf: tell apart by rescanning only then (rare)
      if (badv[l] != badv[l] && !c.inf)
        for (int64_t u = 0; u < G; ++u) c.inf |= __builtin_isinf(a.rewards[(j + l) * G + u]);
    }
  }
  return c;
}

const ElementwiseKernels kTable = {GRPO_ELEM_ISA, kl, group_adv};

}  // namespace GRPO_ELEM_NS
}  // namespace grpo
