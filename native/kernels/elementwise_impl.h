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
#include "../ops/grpo_loss_core.h"
#include "elementwise.h"

namespace grpo {
namespace GRPO_ELEM_NS {

constexpr int W = 8;  // double lanes per vector
typedef double vd __attribute__((vector_size(64)));
typedef uint64_t vu __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf8_u __attribute__((vector_size(32), aligned(4), may_alias));

#define GRPO_AI inline __attribute__((always_inline))

// GCC turns __builtin_convertvector(vf8 -> vd) into two 4-lane converts plus extract/insert
// shuffles (5 instructions where avx512 has one vcvtps2pd ymm -> zmm): the intrinsics say it.
GRPO_AI vd cvt8(vf8 f) {
#if defined(__AVX512F__)
  // the maskz form with every lane set: the same instruction, without GCC 12's false
  // -Wmaybe-uninitialized on _mm512_cvtps_pd's undefined source
  return (vd)_mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xff), (__m256)f);
#elif defined(__AVX2__)
  union H { __m256d h[2]; vd v; } o;
  o.h[0] = _mm256_cvtps_pd(_mm256_castps256_ps128((__m256)f));
  o.h[1] = _mm256_cvtps_pd(_mm256_extractf128_ps((__m256)f, 1));
  return o.v;
#else
  return __builtin_convertvector(f, vd);
#endif
}
GRPO_AI vd load8(const float* p) { return cvt8(*reinterpret_cast<const vf8_u*>(p)); }
GRPO_AI void store8(float* p, vd v) { *reinterpret_cast<vf8_u*>(p) = __builtin_convertvector(v, vf8); }
GRPO_AI vd splat(double x) { return vd{} + x; }
// A non-temporal store of 8 floats (p 16-byte aligned, two 4-float stores: Node's large
// ArrayBuffers are 16-byte aligned, not always 32): for outputs larger than the cache, which the
// caller will not read back soon, it skips the read-for-ownership of each line (a plain store
// reads the line first: 1.5x the traffic of a read + write copy). The generic build (any CPU,
// maybe not x86) stores plainly.
GRPO_AI void store8_nt(float* p, vd v) {
#if defined(__AVX512F__) || defined(__AVX2__)
  const __m256 f = (__m256)__builtin_convertvector(v, vf8);
  _mm_stream_ps(p, _mm256_castps256_ps128(f));
  _mm_stream_ps(p + 4, _mm256_extractf128_ps(f, 1));
#else
  store8(p, v);
#endif
}

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

typedef int64_t vm __attribute__((vector_size(64)));  // a comparison of two vd

// The bit casts k3_parts / k3_parts_fma / ratio_exp take, for the vector type.
struct VecToBits {
  GRPO_AI vu operator()(vd x) const { return (vu)x; }
};
struct VecFromBits {
  GRPO_AI vd operator()(vu u) const { return (vd)u; }
};
// The ±kLogRatioClamp limit on d = ℓ_ref − ℓ before the exp (kl_estimate's clamp): d limited in
// place; returns where it was active (the gradient is 0 there).
GRPO_AI vm clamp_log_ratio_v(vd& d) {
  const vm active = (d > kLogRatioClamp) | (d < -kLogRatioClamp);
  d = d > kLogRatioClamp ? splat(kLogRatioClamp) : d;
  d = d < -kLogRatioClamp ? splat(-kLogRatioClamp) : d;
  return active;
}

// One estimator over [0, n): W tokens at a time, the tail through scalar kl_penalty_value (the same
// formula: the same bits).
// EST: the estimator whose value is taken (K1..Abs); PLUS: verl's straight-through form (k2's
// gradient, ℓ − ℓ_ref).
template <int EST, bool PLUS>
bool kl_t(const float* logp, const float* ref_logp, int64_t n, bool clamp_log_ratio, float* kl, float* grad, bool stream) {
  const KlEstimator est = static_cast<KlEstimator>(EST);
  const bool clamp = clamp_log_ratio || est == KlEstimator::LowVarKl;
  const KlEstimator est_in = PLUS ? (est == KlEstimator::K1 ? KlEstimator::K1Plus : est == KlEstimator::K3 ? KlEstimator::K3Plus
                                     : est == KlEstimator::LowVarKl ? KlEstimator::LowVarKlPlus : KlEstimator::AbsPlus)
                                  : est;
  int64_t i = 0;
  bool finite = true;
  // k3 / low_var_kl are bound by their ~40 vector operations per 8 tokens, not by memory: there
  // the streaming stores cost 5-19% CPU time (1 thread, in-process A/B, bench/results/small-ops.md)
  // for traffic the arithmetic hides anyway. The estimators without exp (memory-bound) stream.
  if (EST == static_cast<int>(KlEstimator::K3) || EST == static_cast<int>(KlEstimator::LowVarKl)) stream = false;
  // Streaming stores need kl (and grad) 16-byte aligned: the tokens before that go through the
  // scalar formula (the same bits); grad misaligned against kl, or floats not 4-byte aligned: no
  // streaming.
  const auto mis = [](const float* p) { return reinterpret_cast<uintptr_t>(p) & 15; };
  if (stream && (mis(kl) & 3) == 0 && (!grad || mis(grad) == mis(kl))) {
    for (; mis(kl + i) != 0 && i < n; ++i) {
      finite &= (static_cast<double>(ref_logp[i]) - static_cast<double>(logp[i])) * 0.0 == 0.0;
      KlValue v = kl_penalty_value(logp[i], ref_logp[i], est_in, clamp_log_ratio);
      kl[i] = static_cast<float>(v.d);
      if (grad) grad[i] = static_cast<float>(v.grad);
    }
  } else {
    stream = false;
  }
  // Σ d over the unclamped d = rp − lp: finite iff every input is (two finite floats give a
  // finite double difference, |d| <= 2·FLT_MAX, and a sum of 2^60 of those stays far below
  // DBL_MAX; any non-finite input gives ±Inf or NaN, and a sum with one stays non-finite). One
  // add per vector.
  vd probe{};
  for (; i + W <= n; i += W) {
    const vd lp = load8(logp + i), rp = load8(ref_logp + i);
    vd d = rp - lp;
    probe += d;
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
      vm active{};
      if (clamp) active = clamp_log_ratio_v(d);
      vd em1;
      if (clamp) k3_parts_fma<vd, vu, VecToBits, VecFromBits, VecFma, false>(d, D, em1, VecToBits(), VecFromBits(), VecFma());
      else k3_parts_fma<vd, vu>(d, D, em1, VecToBits(), VecFromBits(), VecFma());
      if (est == KlEstimator::LowVarKl) {
        active |= (D > kLowVarKlClamp) | (D < -kLowVarKlClamp);
        D = D > kLowVarKlClamp ? splat(kLowVarKlClamp) : D;
        D = D < -kLowVarKlClamp ? splat(-kLowVarKlClamp) : D;
      }
      g = active ? vd{} : -em1;
    }
    if (PLUS) g = minus_d;
    if (stream) {
      store8_nt(kl + i, D);
      if (grad) store8_nt(grad + i, g);
    } else {
      store8(kl + i, D);
      if (grad) store8(grad + i, g);
    }
  }
#if defined(__AVX512F__) || defined(__AVX2__)
  if (stream) _mm_sfence();  // the streamed lines are visible before the pool reports this chunk done
#endif
  for (int l = 0; l < W; ++l) finite &= probe[l] - probe[l] == 0.0;
  for (; i < n; ++i) {
    finite &= (static_cast<double>(ref_logp[i]) - static_cast<double>(logp[i])) * 0.0 == 0.0;
    KlValue v = kl_penalty_value(logp[i], ref_logp[i], est_in, clamp_log_ratio);
    kl[i] = static_cast<float>(v.d);
    if (grad) grad[i] = static_cast<float>(v.grad);
  }
  return finite;
}

bool kl(const float* logp, const float* ref_logp, int64_t n, int est, bool clamp_log_ratio, float* klo, float* grad, bool stream) {
  switch (static_cast<KlEstimator>(est)) {
    case KlEstimator::K1: return kl_t<0, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::K2: return kl_t<1, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::K3: return kl_t<2, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::LowVarKl: return kl_t<3, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::Abs: return kl_t<4, false>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::K1Plus: return kl_t<0, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::K3Plus: return kl_t<2, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::LowVarKlPlus: return kl_t<3, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
    case KlEstimator::AbsPlus: return kl_t<4, true>(logp, ref_logp, n, clamp_log_ratio, klo, grad, stream);
  }
  return true;
}

// 8×8 transpose in registers of vectors of 8 lanes (floats or doubles): in r[l] = row l, out
// r[k] = column k; three rounds of two-source shuffles (exact moves, no arithmetic). Its own
// inverse. groupAdvantages turns 8 contiguous groups (rows) into member vectors (lane l = group l)
// and back with it, grpoLoss's plain pass 8 sequences into token vectors: instead of 8 scalar
// loads, or extract + store, per element.
template <class V>
GRPO_AI void transpose8(V* r) {
  V x[8], y[8];
  for (int i = 0; i < 8; i += 2) {
    x[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 2, 10, 4, 12, 6, 14);
    x[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 1, 9, 3, 11, 5, 13, 7, 15);
  }
  for (int h = 0; h < 8; h += 4)
    for (int j = 0; j < 2; ++j) {
      y[h + j] = __builtin_shufflevector(x[h + j], x[h + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      y[h + j + 2] = __builtin_shufflevector(x[h + j], x[h + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  for (int j = 0; j < 4; ++j) {
    r[j] = __builtin_shufflevector(y[j], y[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[j + 4] = __builtin_shufflevector(y[j], y[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// groupAdvantages for contiguous groups, K = 1 (elementwise.h group_adv): lane l of a vector =
// group j + l. Per lane, the values of group_advantages_fixed_t (ops/group_advantages.cc), in
// fewer operations with the same bits:
// - x = 0 + w0·r (ONE, w0 = 1: r + 0, the same value: −0 becomes +0); a NaN reward stays NaN in
//   x and is left out of the sums by the lane's mask (no sum is ever −0, so adding +0 instead of
//   skipping would give the same bits; the mask is cheaper than a select of 0);
// - "all rewarded members equal" is sq == 0 instead of min == max (LOHI keeps min/max): x has at
//   most 24 (ONE) or 48 significant bits (a float times a float), so for G ≤ 32 (any G ≤ 64 with
//   ONE) every partial sum of equal members is exact, mean = sum/count is that member exactly,
//   and sq = 0; conversely sq = 0 means every d² is 0 (a squared difference of these values never
//   underflows), so every member equals the mean. min == max and sq == 0 then agree, and the
//   mean is min either way;
// - a ±Inf reward makes its lane's sum ±Inf or NaN (finite members cannot overflow it): the
//   lane is rescanned only then, instead of testing every member.
//
// A partial step: nl ≤ 8 groups (the last one repeated in the spare lanes, only the real ones
// stored), member by member; for the end of a thread's range and for G not a multiple of 8.
template <bool ONE, bool LOHI>
GRPO_AI void group_adv_partial(const GroupAdvLanesArgs& a, int64_t j, int64_t nl, GroupAdvLanesCounts& c) {
  const int64_t G = a.G;
  const double nan = __builtin_nan("");
  const vd w0 = splat(a.w0);
  const bool scaled = a.scale != static_cast<int>(AdvScale::None);
  vd x[kGroupAdvLanesMaxG];
  vd sum{}, cnt{}, lo = splat(__builtin_inf()), hi = -lo;
  for (int64_t u = 0; u < G; ++u) {
    vd raw;
    for (int l = 0; l < W; ++l) raw[l] = a.rewards[(j + (l < nl ? l : nl - 1)) * G + u];
    const vd xv = ONE ? raw + 0.0 : 0.0 + w0 * raw;
    x[u] = xv;
    const auto valid = xv == xv;
    sum = valid ? sum + xv : sum;
    cnt = valid ? cnt + 1.0 : cnt;
    if (LOHI) {  // NaN compares false: no mask needed
      lo = xv < lo ? xv : lo;
      hi = xv > hi ? xv : hi;
    }
  }
  vd mean = cnt == 0.0 ? splat(nan) : sum / cnt;
  if (LOHI) mean = lo == hi ? lo : mean;
  vd sq{};
  for (int64_t u = 0; u < G; ++u) {
    const vd d = x[u] - mean;
    sq = x[u] == x[u] ? sq + d * d : sq;
  }
  const auto same = LOHI ? lo == hi : sq == 0.0;
  vd sdv = cnt <= 1.0 ? vd{} : sq / (a.unbiased ? cnt - 1.0 : cnt);
  for (int l = 0; l < W; ++l) sdv[l] = __builtin_sqrt(sdv[l]);
  const vd sd = cnt == 0.0 ? splat(nan) : (same ? vd{} : sdv);
  const vd rloo = cnt < 2.0 ? vd{} : cnt / (cnt - 1.0);
  const vd div = a.scale == static_cast<int>(AdvScale::Group) ? sd + a.eps : splat(a.batch_sd + a.eps);
  for (int64_t u = 0; u < G; ++u) {
    vd adv = x[u] - mean;
    if (a.rloo) adv = cnt < 2.0 ? vd{} : rloo * adv;
    if (scaled) adv /= div;
    adv = x[u] == x[u] ? adv : vd{};
    for (int l = 0; l < nl; ++l) {
      a.advantages[(j + l) * G + u] = static_cast<float>(adv[l]);
      a.reward[(j + l) * G + u] = static_cast<float>(x[u][l] == x[u][l] ? x[u][l] : nan);
    }
  }
  for (int l = 0; l < nl; ++l) {
    a.group_mean[j + l] = static_cast<float>(mean[l]);
    a.group_std[j + l] = static_cast<float>(sd[l]);
    c.zero_std += sd[l] == 0.0;
    c.no_reward += static_cast<int64_t>(G - static_cast<int64_t>(cnt[l]));
    if (sum[l] - sum[l] != 0.0 && !c.inf)  // ±Inf among the members (rare): find it
      for (int64_t u = 0; u < G; ++u) c.inf |= __builtin_isinf(a.rewards[(j + l) * G + u]);
  }
}

// A full step: NS·8 whole groups of G (a multiple of 8) members. The sums run on member
// vectors (lane = group: each lane adds its members in order), from rows transposed in registers;
// the outputs are written row by row with each group's mean and divisor broadcast, which needs
// no transpose back. NANS: some reward in the step is NaN (checked on the rows): only then do the
// sums and the advantages need the per-member masks.
template <int NS, bool ONE, bool LOHI, bool NANS, int GC>
GRPO_AI void group_adv_full(const GroupAdvLanesArgs& a, int64_t j, GroupAdvLanesCounts& c) {
  const int64_t G = GC ? GC : a.G;
  const double nan = __builtin_nan("");
  const vd w0 = splat(a.w0);
  const vf8 nanf = vf8{} + __builtin_nanf("");
  const bool scaled = a.scale != static_cast<int>(AdvScale::None);
  vd x[kGroupAdvLanesMaxG][NS];
  vf8 rt[NS][kGroupAdvLanesMaxG];
  for (int k = 0; k < NS; ++k)
    for (int64_t h = 0; h < G; h += 8) {
      for (int l = 0; l < 8; ++l) rt[k][h + l] = *reinterpret_cast<const vf8_u*>(a.rewards + (j + 8 * k + l) * G + h);
      transpose8(rt[k] + h);
    }
  vd sum[NS], cnt[NS], lo[NS], hi[NS];
  for (int k = 0; k < NS; ++k) {
    sum[k] = cnt[k] = vd{};
    lo[k] = splat(__builtin_inf());
    hi[k] = -lo[k];
  }
  for (int64_t u = 0; u < G; ++u)
    for (int k = 0; k < NS; ++k) {
      const vd raw = cvt8(rt[k][u]);
      // ONE: r itself; its −0 (instead of r + 0 = +0) changes no sum and no d² (min/max are not
      // kept with ONE); the outputs below add the 0
      const vd xv = ONE ? raw : 0.0 + w0 * raw;
      x[u][k] = xv;
      if (NANS) {
        const auto valid = xv == xv;
        sum[k] = valid ? sum[k] + xv : sum[k];
        cnt[k] = valid ? cnt[k] + 1.0 : cnt[k];
      } else {
        sum[k] += xv;
      }
      if (LOHI) {
        lo[k] = xv < lo[k] ? xv : lo[k];
        hi[k] = xv > hi[k] ? xv : hi[k];
      }
    }
  if (!NANS)
    for (int k = 0; k < NS; ++k) cnt[k] = splat(static_cast<double>(G));
  vd mean[NS], sq[NS];
  for (int k = 0; k < NS; ++k) {
    mean[k] = cnt[k] == 0.0 ? splat(nan) : sum[k] / cnt[k];
    if (LOHI) mean[k] = lo[k] == hi[k] ? lo[k] : mean[k];
    sq[k] = vd{};
  }
  for (int64_t u = 0; u < G; ++u)
    for (int k = 0; k < NS; ++k) {
      const vd d = x[u][k] - mean[k];
      if (NANS) sq[k] = x[u][k] == x[u][k] ? sq[k] + d * d : sq[k];
      else sq[k] += d * d;
    }
  alignas(64) double mb[NS][8], fb[NS][8], db[NS][8];  // per group: mean, rloo factor, divisor (broadcast below)
  for (int k = 0; k < NS; ++k) {
    const auto same = LOHI ? lo[k] == hi[k] : sq[k] == 0.0;
    vd sdv = cnt[k] <= 1.0 ? vd{} : sq[k] / (a.unbiased ? cnt[k] - 1.0 : cnt[k]);
    for (int l = 0; l < W; ++l) sdv[l] = __builtin_sqrt(sdv[l]);
    const vd sd = cnt[k] == 0.0 ? splat(nan) : (same ? vd{} : sdv);
    *reinterpret_cast<vd*>(mb[k]) = mean[k];
    *reinterpret_cast<vd*>(fb[k]) = cnt[k] < 2.0 ? vd{} : cnt[k] / (cnt[k] - 1.0);
    *reinterpret_cast<vd*>(db[k]) = a.scale == static_cast<int>(AdvScale::Group) ? sd + a.eps : splat(a.batch_sd + a.eps);
    *reinterpret_cast<vf8_u*>(a.group_mean + j + 8 * k) = __builtin_convertvector(mean[k], vf8);
    *reinterpret_cast<vf8_u*>(a.group_std + j + 8 * k) = __builtin_convertvector(sd, vf8);
    const vu zs = (vu)(sd == 0.0) & 1, bad = (vu)(sum[k] - sum[k] != 0.0);
    const vd nr = splat(static_cast<double>(G)) - cnt[k];  // members without a reward
    uint64_t z = 0, anybad = 0;
    double n = 0;
    for (int l = 0; l < 8; ++l) {
      z += zs[l];
      anybad |= bad[l];
      n += nr[l];  // small integers: exact
    }
    c.zero_std += static_cast<int64_t>(z);
    if (NANS) c.no_reward += static_cast<int64_t>(n);
    if (anybad && !c.inf)  // ±Inf among the members (rare): find it
      for (int64_t i = j * G; i < (j + 8 * NS) * G; ++i) c.inf |= __builtin_isinf(a.rewards[i]);
  }
  // Outputs row by row: per member the same statements as the lane form (x − mean, the rloo
  // factor, the divisor), with the group's values broadcast to the row's lanes.
  for (int k = 0; k < NS; ++k)
    for (int l = 0; l < 8; ++l) {
      const int64_t g = j + 8 * k + l;
      const vd m = splat(mb[k][l]), f = splat(fb[k][l]), dv = splat(db[k][l]);
      const bool few = !(fb[k][l] != 0.0);  // fewer than 2 rewarded members: rloo gives 0
      for (int64_t h = 0; h < G; h += 8) {
        const vf8 row = *reinterpret_cast<const vf8_u*>(a.rewards + g * G + h);
        const vd raw = cvt8(row);
        const vd xv = ONE ? raw + 0.0 : 0.0 + w0 * raw;
        vd adv = xv - m;
        if (a.rloo) adv = few ? vd{} : f * adv;
        if (scaled) adv /= dv;
        vf8 af = __builtin_convertvector(adv, vf8);
        vf8 rr = ONE ? row + 0.0f : __builtin_convertvector(xv, vf8);
        if (NANS) {
          af = row == row ? af : vf8{};
          rr = row == row ? rr : nanf;
        }
        *reinterpret_cast<vf8_u*>(a.advantages + g * G + h) = af;
        *reinterpret_cast<vf8_u*>(a.reward + g * G + h) = rr;
      }
    }
}

template <bool ONE, bool LOHI, int GC>
GRPO_AI void group_adv_fulls(const GroupAdvLanesArgs& a, int64_t& j, int64_t j1, GroupAdvLanesCounts& c) {
  const int64_t G = GC ? GC : a.G;
  auto has_nan = [&](int64_t j, int64_t ng) {
    typedef int32_t vi8 __attribute__((vector_size(32)));
    vi8 any{};
    for (int64_t i = j * G; i < (j + ng) * G; i += 8) {
      const vf8 row = *reinterpret_cast<const vf8_u*>(a.rewards + i);
      any |= row != row;
    }
    typedef int64_t vl4 __attribute__((vector_size(32)));
    const vl4 q = (vl4)any;
    return (q[0] | q[1] | q[2] | q[3]) != 0;
  };
  for (; j + 16 <= j1; j += 16) {
    if (has_nan(j, 16)) group_adv_full<2, ONE, LOHI, true, GC>(a, j, c);
    else group_adv_full<2, ONE, LOHI, false, GC>(a, j, c);
  }
  for (; j + 8 <= j1; j += 8) {
    if (has_nan(j, 8)) group_adv_full<1, ONE, LOHI, true, GC>(a, j, c);
    else group_adv_full<1, ONE, LOHI, false, GC>(a, j, c);
  }
}

template <bool ONE, bool LOHI>
GroupAdvLanesCounts group_adv_t(const GroupAdvLanesArgs& a, int64_t j0, int64_t j1) {
  GroupAdvLanesCounts c;
  int64_t j = j0;
  if (a.G == 16) group_adv_fulls<ONE, LOHI, 16>(a, j, j1, c);
  else if (a.G == 8) group_adv_fulls<ONE, LOHI, 8>(a, j, j1, c);
  else if (a.G % 8 == 0) group_adv_fulls<ONE, LOHI, 0>(a, j, j1, c);
  for (; j < j1; j += W) group_adv_partial<ONE, LOHI>(a, j, j1 - j < W ? j1 - j : W, c);
  return c;
}

GroupAdvLanesCounts group_adv(const GroupAdvLanesArgs& a, int64_t j0, int64_t j1) {
  // sq == 0 stands for min == max only where every partial sum of equal members is exact
  if (a.w0 == 1.0) return group_adv_t<true, false>(a, j0, j1);
  GroupAdvLanesCounts c = a.G <= 32 ? group_adv_t<false, false>(a, j0, j1) : group_adv_t<false, true>(a, j0, j1);
  if (a.w0 == 0.0)  // 0·±Inf is NaN, which the sums skip: look for the ±Inf itself
    for (int64_t i = j0 * a.G; i < j1 * a.G && !c.inf; ++i) c.inf = __builtin_isinf(a.rewards[i]);
  return c;
}

typedef uint8_t vu8_u __attribute__((vector_size(8), aligned(1), may_alias));
// Whether c added n times (from 0) rounds nowhere: c normal, its significand's b bits and n's
// bits fit in 53, and n·c far from overflow. Then the sum is n·c exactly.
GRPO_AI bool exact_multiple(double c, double n) {
  uint64_t u;
  std::memcpy(&u, &c, 8);
  const uint64_t e = (u >> 52) & 0x7ff;
  if (e == 0 || e >= 0x7ff - 64 || !(n >= 1.0 && n < 4294967296.0)) return c == 0.0;
  const uint64_t sig = (u & ((uint64_t{1} << 52) - 1)) | (uint64_t{1} << 52);
  const int free_bits = __builtin_ctzll(sig);  // low zero bits of the 53-bit significand
  const uint64_t ni = static_cast<uint64_t>(n);
  const int nbits = 64 - __builtin_clzll(ni);
  return nbits <= free_bits;
}
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef uint32_t vw16 __attribute__((vector_size(64)));
// Mask bytes widened to 32-bit lanes: GCC 12 turns __builtin_convertvector(u8 -> i32) into a
// scalar load and insert per byte; the intrinsics are one vpmovzxbd.
GRPO_AI vi8 widen8(const uint8_t* p) {
#if defined(__AVX512F__) || defined(__AVX2__)
  return (vi8)_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
#else
  return __builtin_convertvector(*reinterpret_cast<const vu8_u*>(p), vi8);
#endif
}
GRPO_AI vw16 widen16(const uint8_t* p) {
#if defined(__AVX512F__)
  return (vw16)_mm512_maskz_cvtepu8_epi32(static_cast<__mmask16>(0xffff), _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));  // maskz, all lanes: see cvt8
#else
  const vi8 lo = widen8(p), hi = widen8(p + 8);
  return (vw16)__builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
}
// 8 mask bytes as doubles (0..255)
GRPO_AI vd widen8_d(const uint8_t* p) {
#if defined(__AVX512F__)
  return (vd)_mm512_maskz_cvtepi32_pd(static_cast<__mmask8>(0xff), (__m256i)widen8(p));
#else
  return __builtin_convertvector(widen8(p), vd);
#endif
}

// grpoLoss's plain pass, W sequences in lockstep (lane l = sequence q[l]). Per lane, the
// statements of grpo_sequence_pass_t<true> (ops/grpo_loss_core.h) in token order, with the
// options that are off there written as their constants (pmask = kl_w = 1, ent_term = 0,
// kl_drho = 0) so every lane rounds as the scalar pass does. A masked-out token leaves the lane's
// sums as they are and writes 0 (select, never multiply: padding may hold NaN/Inf). The ratio is
// ratio_exp on the vector (common/formulas.h: the scalar pass and the GPU run the same operations);
// the KL estimators other than k3 / low_var_kl run per lane through the scalar formulas.
static_assert(W == kGrpoPlainLanes, "one sequence per double lane");
// OLD / REF: oldLogp / refLogp given, compiled in or out (the per-lane exp and scalar-estimator
// calls, when present, make the compiler keep fewer vectors in registers).
template <bool has_old, bool has_ref>
void grpo_plain_t(const SeqInputs* q, const GrpoOptions& o, SeqSums* out) {
  const int64_t T = q[0].T;
  const bool has_ent = q[0].entropy != nullptr;
  const bool has_g = q[0].grad_logp != nullptr, has_ptl = q[0].per_token_loss != nullptr, has_gH = q[0].grad_entropy != nullptr;
  const KlEstimator est = kl_value_estimator(o.kl_estimator);
  const bool kl_vec = est == KlEstimator::K3 || est == KlEstimator::LowVarKl;
  const bool kl_plus = est != o.kl_estimator;
  const bool kl_clamp = o.clamp_log_ratio || est == KlEstimator::LowVarKl;
  const PolicyLoss pol = o.policy_loss;
  vd A, w, w_kl;
  for (int l = 0; l < W; ++l) {
    A[l] = q[l].advantage;
    w[l] = aggregation_weight(o, q[l].n_i, q[l].n_batch, q[l].S, T);
    w_kl[l] = kl_aggregation_weight(o, q[l].n_i, q[l].n_batch, q[l].S, T);
  }
  const vm split_kl = w_kl != w;
  // some lane weights its KL term apart (luspo): only then are both forms computed and selected
  bool any_split = false;
  for (int l = 0; l < W; ++l) any_split |= split_kl[l] != 0;
  const vd zero{}, one = splat(1.0);
  const vd pmask = one, kl_w = one, ent_term = zero, kl_drho = zero;
  const vm none{};
  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high;
  vd s_loss{}, s_kl{}, s_ent{}, s_ratio{}, s_low{}, s_high{}, s_region{}, s_isw{};
  // One token of every lane: mv the mask, lv ℓ, ov ℓ_old, rv ℓ_ref, ev H (as doubles); returns
  // the per-token loss and dL/dℓ to store (0 on masked-out tokens).
  auto token = [&](vd mv, vd lv, vd ov, vd rv, vd ev, vd& L_out, vd& g_out) __attribute__((always_inline)) {
    const vm valid = mv != 0.0;
    vd rho = one;
    if (has_old) ratio_exp<vd, vu>(lv - ov, rho, VecToBits(), VecFromBits());
    // policy_term (common/formulas.h)
    vd P, dP_drho, dP_dlogp = zero;
    vm low_c = none, high_c = none;
    if (pol == PolicyLoss::Cispo) {
      vd capped;
      if (o.cispo_range) {
        capped = rho < lo ? splat(lo) : (rho > hi ? splat(hi) : rho);
        low_c = rho < lo;
        high_c = rho > hi;
      } else {
        capped = rho < o.eps_high ? rho : splat(o.eps_high);
        high_c = (rho > o.eps_high) & (A > 0.0);
      }
      P = -capped * A * lv;
      dP_drho = zero;
      dP_dlogp = -capped * A;
    } else {  // Clip, DualClip
      const vm delta_active = o.use_delta ? vm(rho > o.delta) : none;
      const vd rho_u = delta_active ? splat(o.delta) : rho;
      const vm in_range = (rho >= lo) & (rho <= hi);
      const vd c = rho < lo ? splat(lo) : (rho > hi ? splat(hi) : rho);
      const vd t1 = rho_u * A, t2 = c * A;
      const vm unclipped = t1 <= t2;
      P = unclipped ? -t1 : -t2;
      dP_drho = unclipped ? (delta_active ? zero : -A) : (in_range ? -A : zero);
      if (pol == PolicyLoss::DualClip) {
        const vd bound = -o.clip_ratio_c * A;
        const vm dual = (A < 0.0) & (bound < P);
        P = dual ? bound : P;
        dP_drho = dual ? zero : dP_drho;
      }
      low_c = (rho < lo) & (A < 0.0);
      high_c = (rho > hi) & (A > 0.0);
    }
    // kl_estimate (common/formulas.h)
    vd kd = zero, kg = zero;
    if (has_ref) {
      if (kl_vec) {
        vd d = rv - lv;
        vm active = none;
        if (kl_clamp) active = clamp_log_ratio_v(d);
        vd em1;
        k3_parts<vd, vu>(d, kd, em1, VecToBits(), VecFromBits());
        if (est == KlEstimator::LowVarKl) {
          active |= (kd > kLowVarKlClamp) | (kd < -kLowVarKlClamp);
          kd = kd > kLowVarKlClamp ? splat(kLowVarKlClamp) : kd;
          kd = kd < -kLowVarKlClamp ? splat(-kLowVarKlClamp) : kd;
        }
        kg = active ? zero : -em1;
        if (kl_plus) kg = lv - rv;
      } else {
        for (int l = 0; l < W; ++l) {
          const KlValue kv = kl_estimate(lv[l], rv[l], o.kl_estimator, o.clamp_log_ratio);
          kd[l] = kv.d;
          kg[l] = kv.grad;
        }
      }
    }
    const vd L = pmask * P + o.beta * kd * kl_w + ent_term;
    const vd loss_t = any_split ? (split_kl ? w * (pmask * P) + w_kl * (o.beta * kd * kl_w + ent_term) : w * L) : w * L;
    s_loss = valid ? s_loss + loss_t : s_loss;
    s_kl = valid ? s_kl + kd * kl_w : s_kl;
    if (has_ent) s_ent = valid ? s_ent + ev : s_ent;
    s_ratio = valid ? s_ratio + rho : s_ratio;
    s_low = valid ? s_low + (low_c ? one : zero) : s_low;
    s_high = valid ? s_high + (high_c ? one : zero) : s_high;
    s_region = valid ? s_region + ((low_c | high_c) ? one : zero) : s_region;
    s_isw = valid ? s_isw + 1.0 : s_isw;
    L_out = valid ? L : zero;
    if (has_g) {
      vd direct = any_split ? (split_kl ? w * (pmask * dP_dlogp) + w_kl * (o.beta * kg * kl_w) : w * (pmask * dP_dlogp + o.beta * kg * kl_w))
                            : w * (pmask * dP_dlogp + o.beta * kg * kl_w);
      const vd dL_drho = pmask * dP_drho + kl_drho;
      const vd wdL_drho = any_split ? (split_kl ? w * (pmask * dP_drho) + w_kl * kl_drho : w * dL_drho) : w * dL_drho;
      direct += wdL_drho * rho;
      g_out = valid ? direct : zero;
    }
  };
  // each lane's sums into its SeqSums (the rollout-IS fields stay 0: the plain pass has no IS)
  auto store_sums = [&]() {
    for (int l = 0; l < W; ++l) {
      SeqSums r{0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      r.loss = s_loss[l];
      r.kl = s_kl[l];
      r.entropy = s_ent[l];
      r.ratio = s_ratio[l];
      r.clip_low = s_low[l];
      r.clip_high = s_high[l];
      r.clip_region = s_region[l];
      r.is_weight = s_isw[l];
      out[l] = r;
    }
  };
  // On-policy (no oldLogp: ρ = 1) without refLogp, clip / dual_clip: a masked-in token's loss,
  // dL/dℓ and metric increments are the same for every token of a lane (they depend on A, the
  // weights and ρ = 1 only, not on ℓ). So: one token() per lane gives them, each metric sum is
  // that increment added n_i times in order (+0 or 1: 0 or n_i exactly; otherwise the adds
  // themselves, n_i of them, with no per-token work), and the outputs are written row by row from
  // the mask. The same bits as the token loop below (which the CUDA kernel runs); only the
  // entropy metric needs the tokens in order.
  if constexpr (!has_old && !has_ref) {
    if (pol != PolicyLoss::Cispo) {
      vd Lc{}, gc{};
      token(one, zero, zero, zero, zero, Lc, gc);  // from zero sums: the sums are now 0 + increment
      vd n;
      for (int l = 0; l < W; ++l) n[l] = q[l].n_i;
      vd* const sums[] = {&s_loss, &s_kl, &s_ratio, &s_low, &s_high, &s_region, &s_isw};
      for (vd* sp : sums) {
        const vd inc = *sp;
        bool simple = true;
        for (int l = 0; l < W; ++l) simple &= inc[l] == 0.0 || inc[l] == 1.0;
        if (simple) {
          *sp = inc == 1.0 ? n : vd{};
          continue;
        }
        // n·inc is exact (and so is every partial sum k·inc, k ≤ n: the adds round nowhere) when
        // inc's significand has few enough bits: b significant bits and n < 2^(53 − b). E.g. a
        // power-of-two token count (w = 2^-m) and float advantages (24 bits). Else the adds.
        bool exact = true;
        for (int l = 0; l < W; ++l) exact &= n[l] == 0.0 || exact_multiple(inc[l], n[l]);
        if (exact) {
          *sp = n == 0.0 ? vd{} : inc * n;
          continue;
        }
        double nmax = 0;
        for (int l = 0; l < W; ++l) nmax = n[l] > nmax ? n[l] : nmax;
        vd acc{};
        vd k{};
        for (double c = 0; c < nmax; c += 1.0, k += 1.0) acc = k < n ? acc + inc : acc;
        *sp = acc;
      }
      if (has_ent) {  // the entropy metric: the masked-in entropies, in token order
        s_ent = vd{};
        vd mv[W], ev[W];
        int64_t t = 0;
        for (; t + W <= T; t += W) {
          for (int l = 0; l < W; ++l) {
            mv[l] = widen8_d(q[l].mask + t);
            ev[l] = load8(q[l].entropy + t);
          }
          transpose8(mv);
          transpose8(ev);
          for (int u = 0; u < W; ++u) s_ent = mv[u] != 0.0 ? s_ent + ev[u] : s_ent;
        }
        for (; t < T; ++t)
          for (int l = 0; l < W; ++l)
            if (q[l].mask[t]) s_ent[l] += static_cast<double>(q[l].entropy[t]);
      }
      for (int l = 0; l < W; ++l) {
        const uint8_t* m = q[l].mask;
        const vf8 gf = vf8{} + static_cast<float>(gc[l]), Lf = vf8{} + static_cast<float>(Lc[l]);
        int64_t t = 0;
        for (; t + 8 <= T; t += 8) {
          const vi8 on = widen8(m + t) != 0;
          if (has_g) *reinterpret_cast<vf8_u*>(q[l].grad_logp + t) = on ? gf : vf8{};
          if (has_ptl) *reinterpret_cast<vf8_u*>(q[l].per_token_loss + t) = on ? Lf : vf8{};
          if (has_gH)  // the plain pass writes dL/dH only on masked-out tokens (no entropy bonus)
            for (int k = 0; k < 8; ++k)
              if (!m[t + k]) q[l].grad_entropy[t + k] = 0.0f;
        }
        for (; t < T; ++t) {
          if (has_g) q[l].grad_logp[t] = m[t] ? gf[0] : 0.0f;
          if (has_ptl) q[l].per_token_loss[t] = m[t] ? Lf[0] : 0.0f;
          if (has_gH && !m[t]) q[l].grad_entropy[t] = 0.0f;
        }
      }
      store_sums();
      return;
    }
  }
  // Blocks of W tokens: W contiguous values of each lane's row, transposed into W vectors of one
  // token each (and back for the outputs), instead of W scalar inserts per token and input.
  const vd z{};
  vd in[5][W], outL[W], outG[W];
  int64_t t = 0;
  for (; t + W <= T; t += W) {
    for (int l = 0; l < W; ++l) {
      in[0][l] = widen8_d(q[l].mask + t);
      in[1][l] = load8(q[l].logp + t);
      if (has_old) in[2][l] = load8(q[l].old_logp + t);
      if (has_ref) in[3][l] = load8(q[l].ref_logp + t);
      if (has_ent) in[4][l] = load8(q[l].entropy + t);
    }
    transpose8(in[0]);
    transpose8(in[1]);
    if (has_old) transpose8(in[2]);
    if (has_ref) transpose8(in[3]);
    if (has_ent) transpose8(in[4]);
    for (int k = 0; k < W; ++k)
      token(in[0][k], in[1][k], has_old ? in[2][k] : z, has_ref ? in[3][k] : z, has_ent ? in[4][k] : z, outL[k], outG[k]);
    if (has_ptl) {
      transpose8(outL);
      for (int l = 0; l < W; ++l) store8(q[l].per_token_loss + t, outL[l]);
    }
    if (has_g) {
      transpose8(outG);
      for (int l = 0; l < W; ++l) store8(q[l].grad_logp + t, outG[l]);
    }
    if (has_gH)  // the plain pass writes dL/dH only on masked-out tokens (no entropy bonus)
      for (int l = 0; l < W; ++l)
        for (int k = 0; k < W; ++k)
          if (!q[l].mask[t + k]) q[l].grad_entropy[t + k] = 0.0f;
  }
  for (; t < T; ++t) {
    vd mv, lv, ov{}, rv{}, ev{}, Lv, gv{};
    for (int l = 0; l < W; ++l) {
      mv[l] = q[l].mask[t];
      lv[l] = q[l].logp[t];
      if (has_old) ov[l] = q[l].old_logp[t];
      if (has_ref) rv[l] = q[l].ref_logp[t];
      if (has_ent) ev[l] = q[l].entropy[t];
    }
    token(mv, lv, ov, rv, ev, Lv, gv);
    if (has_ptl)
      for (int l = 0; l < W; ++l) q[l].per_token_loss[t] = static_cast<float>(Lv[l]);
    if (has_g)
      for (int l = 0; l < W; ++l) q[l].grad_logp[t] = static_cast<float>(gv[l]);
    if (has_gH)
      for (int l = 0; l < W; ++l)
        if (!q[l].mask[t]) q[l].grad_entropy[t] = 0.0f;
  }
  store_sums();
}

void grpo_plain(const SeqInputs* q, const GrpoOptions& o, SeqSums* out) {
  if (q[0].old_logp) {
    if (q[0].ref_logp) grpo_plain_t<true, true>(q, o, out);
    else grpo_plain_t<true, false>(q, o, out);
  } else {
    if (q[0].ref_logp) grpo_plain_t<false, true>(q, o, out);
    else grpo_plain_t<false, false>(q, o, out);
  }
}

// 16 tokens per step: the mask bytes widened to 32-bit lanes, each array's exponent bits tested
// where the lane is masked in; the count and the flags stay in vector lanes until the end.
int64_t mask_count(const uint8_t* m, const float* const* xs, int nx, int64_t T, bool check, uint32_t* bad) {
  typedef uint32_t vw16_u __attribute__((vector_size(64), aligned(4), may_alias));
  vw16 cnt{}, flag{};
  int64_t t = 0;
  for (; t + 16 <= T; t += 16) {
    const vw16 mw = widen16(m + t);
    const vw16 on = (vw16)(mw != 0u);  // all ones where masked in
    cnt -= on;
    if (check) {
      flag |= (vw16)(mw > 1u);
      for (int k = 0; k < nx; ++k) {
        const vw16 u = *reinterpret_cast<const vw16_u*>(reinterpret_cast<const uint32_t*>(xs[k]) + t);
        flag |= on & (vw16)((u & 0x7f800000u) == 0x7f800000u);
      }
    }
  }
  int64_t c = 0;
  uint32_t f = 0;
  for (int l = 0; l < 16; ++l) {
    c += cnt[l];
    f |= flag[l];
  }
  for (; t < T; ++t) {
    c += m[t] != 0;
    if (!check) continue;
    f |= m[t] > 1;
    for (int k = 0; k < nx; ++k) {
      uint32_t u;
      std::memcpy(&u, xs[k] + t, 4);
      f |= static_cast<uint32_t>(m[t] != 0) & static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
    }
  }
  *bad |= f;
  return c;
}

const ElementwiseKernels kTable = {GRPO_ELEM_ISA, kl, group_adv, grpo_plain, mask_count};

}  // namespace GRPO_ELEM_NS
}  // namespace grpo
