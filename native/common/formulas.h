// The scalar GRPO formulas (spec §3-§6), written once for the CPU kernels (g++) and the CUDA
// kernels (nvcc: __host__ __device__), so the two backends cannot drift. Per-token math runs in
// double: exp(d) - d - 1 and the clipped surrogate lose most of their digits in float32 when
// d or log-ratio is small, and these loops are O(tokens), not O(tokens x vocab).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "half.h"  // GRPO_HD

namespace grpo {

// Abs: verl `abs`, |ℓ − ℓ_ref|. The `Plus` forms are verl's straight-through estimators (`k1+`,
// `k3+`, `low_var_kl+`, `abs+`): the value of the named estimator, the gradient of k2.
enum class KlEstimator : int { K1 = 0, K2 = 1, K3 = 2, LowVarKl = 3, Abs = 4, K1Plus = 5, K3Plus = 6, LowVarKlPlus = 7, AbsPlus = 8 };
constexpr int kNumKlEstimators = 9;
// The estimator whose value a straight-through form takes.
GRPO_HD KlEstimator kl_value_estimator(KlEstimator e) {
  switch (e) {
    case KlEstimator::K1Plus: return KlEstimator::K1;
    case KlEstimator::K3Plus: return KlEstimator::K3;
    case KlEstimator::LowVarKlPlus: return KlEstimator::LowVarKl;
    case KlEstimator::AbsPlus: return KlEstimator::Abs;
    default: return e;
  }
}
GRPO_HD bool kl_straight_through(KlEstimator e) { return kl_value_estimator(e) != e; }
enum class Level : int { Token = 0, Sequence = 1 };
// GeoMean: verl `geo_mean` (GMPO), a per-sequence objective handled by grpo_sequence_pass
// (native/ops/grpo_loss_core.h); policy_term() gives it nothing. Vespo (TRL `vespo`, a detached
// per-sequence gamma weight) and KlCov (verl `kl_cov`) are handled there too; ClipCov (verl
// `clip_cov`) is the clip term here, zeroed there on the tokens its covariance selection picks.
enum class PolicyLoss : int { Clip = 0, DualClip = 1, Cispo = 2, Sapo = 3, GeoMean = 4, Vespo = 5, ClipCov = 6, KlCov = 7 };
// Luspo: TRL `luspo`. SeqMeanTokenSum / SeqMeanTokenMean / SeqMeanTokenSumNorm: verl's
// loss_agg_mode of those names (verl `token-mean` is Dapo).
enum class LossType : int { Grpo = 0, Bnpo = 1, Dapo = 2, DrGrpo = 3, SeqSum = 4, Luspo = 5, SeqMeanTokenSum = 6, SeqMeanTokenMean = 7, SeqMeanTokenSumNorm = 8 };
// Rollout importance-sampling correction (ms-swift rollout_importance_sampling_mode, TRL's vLLM
// IS correction): a detached weight on the policy term between the training policy and the sampler.
enum class RolloutIs : int { Off = 0, TokenTruncate = 1, TokenMask = 2, SequenceTruncate = 3, SequenceMask = 4 };

struct GrpoOptions {
  Level level = Level::Token;
  PolicyLoss policy_loss = PolicyLoss::Clip;
  double eps_low = 0.2, eps_high = 0.2;  // cispo: eps_high is the absolute cap on rho (unless cispo_range)
  bool use_delta = false;                // TRL `delta`: rho -> min(rho, delta) in the unclipped term
  double delta = 0;
  double clip_ratio_c = 3.0;  // dual_clip bound for A < 0
  double beta = 0;            // KL weight; 0 disables the KL term
  KlEstimator kl_estimator = KlEstimator::K3;
  bool clamp_log_ratio = true;
  LossType loss_type = LossType::Dapo;
  double n_global = 0;               // dapo: masked tokens over the global batch; <= 0: this batch
  double max_completion_length = 0;  // dr_grpo: T_max; <= 0: T
  double top_entropy_quantile = 1;   // < 1: keep the policy term of the top-q entropy tokens
  // Added options (issue 8); defaults keep the behaviour above.
  bool cispo_range = false;      // cispo weight sg(clip(rho, 1 - eps_low, 1 + eps_high)) (verl), not min(rho, eps_high) (TRL)
  double sapo_tau_pos = 1.0;     // SAPO gate temperature for A > 0 (TRL sapo_temperature_pos, verl tau_pos)
  double sapo_tau_neg = 1.05;    // ... for A <= 0
  bool bias_correction_kl = false;  // TRL use_bias_correction_kl: the KL term is D·rho (rho not detached)
  // Added options (issue 8, second part); defaults keep the behaviour above.
  bool clamp_seq_log_ratio = false;  // verl GSPO: the sequence log-ratio clamped above at kSeqLogRatioClamp
  double clip_cov_ratio = 2e-4, clip_cov_lb = 1.0, clip_cov_ub = 5.0;  // verl clip_cov (its defaults)
  double kl_cov_ratio = 2e-4, ppo_kl_coef = 0.1;                     // verl kl_cov (its defaults)
  double vespo_k_pos = 2.0, vespo_lambda_pos = 3.0, vespo_k_neg = 3.0, vespo_lambda_neg = 2.0;  // TRL vespo
  double global_batch_size = 0;  // verl seq-mean-*: sequences over the global batch; <= 0: this batch's non-empty ones
  double loss_scale_factor = 0;  // verl seq-mean-token-sum-norm divisor; <= 0: T
  double entropy_coef = 0;       // entropy bonus (verl entropy_coeff, TRL entropy_coef): L −= coef·H per token
  // Not an option: the batch's sequences with at least one masked token, filled in by the kernels
  // (the seq-mean-* default denominator) before the per-sequence pass.
  double n_seq_active = 0;
  // Added options (issue 9): rollout IS correction, needs the sampler's log-probs; off by default.
  RolloutIs rollout_is = RolloutIs::Off;
  double rollout_is_threshold = 2.0;  // C: truncate the weight at C, or mask where the ratio > C
};

constexpr double kSeqLogRatioClamp = 10.0;  // verl GSPO: clamp(log s_i, max=10)

// True where the loss needs whole sequences or the whole batch before any token's gradient
// (per-sequence weights, batch-wide token selection, the seq-mean-* denominators): the fused
// kernels then take their path that runs the loss core over all ℓ, not the one-pass paths.
GRPO_HD bool loss_needs_core_pass(const GrpoOptions& o) {
  return o.policy_loss == PolicyLoss::GeoMean || o.policy_loss == PolicyLoss::Vespo || o.policy_loss == PolicyLoss::ClipCov ||
         o.policy_loss == PolicyLoss::KlCov || o.loss_type == LossType::Luspo || o.loss_type == LossType::SeqMeanTokenSum ||
         o.loss_type == LossType::SeqMeanTokenMean || o.loss_type == LossType::SeqMeanTokenSumNorm || o.entropy_coef != 0 ||
         o.rollout_is != RolloutIs::Off;  // the IS weight comes from the loss core
}

constexpr double kLogRatioClamp = 20.0;  // |d| bound before exp: exp(20) is finite in float32
constexpr double kLowVarKlClamp = 10.0;  // verl low_var_kl bound on D

struct KlValue {
  double d;     // the estimate D
  double grad;  // dD/dlogp
};

// k3's pieces for d (ref_logp − logp), branch-free so that the CPU's vectorised loop
// (native/kernels/elementwise_impl.h, V = a vector of doubles) and the scalar code here and on the
// GPU (V = double) run the same operations in the same order: identical bits on both backends.
// Contraction into FMA would change the rounding: the CPU files are compiled with
// -ffp-contract=off and the GPU's mul/add are __dmul_rn/__dadd_rn.
//   d = k·ln2 + r (|r| <= ln2/2), t = 2^k, q = expm1(r) − r (a degree-10 Taylor polynomial:
//   relative error < 4e-12 on |r| <= ln2/2), so
//   D = exp(d) − d − 1 = t·q + (t·r − d) + (t − 1)   and   expm1(d) = t·(r + q) + (t − 1).
// For |d| < ln2/2, k = 0 and D = q exactly: the digits of D near d = 0 are kept without expm1.
// The exponent is taken of d limited to [−60, 100] (exp(−60) is below double rounding of 1;
// exp(100) overflows float32 as D itself then does), so t = 2^k never leaves the normal range.
#ifdef __CUDA_ARCH__
#define GRPO_DMUL(a, b) __dmul_rn((a), (b))
#define GRPO_DADD(a, b) __dadd_rn((a), (b))
#else
#define GRPO_DMUL(a, b) ((a) * (b))
#define GRPO_DADD(a, b) ((a) + (b))
#endif
struct KlDoubleToBits {
  GRPO_HD uint64_t operator()(double x) const {
#ifdef __CUDA_ARCH__
    return static_cast<uint64_t>(__double_as_longlong(x));
#else
    uint64_t u;
    std::memcpy(&u, &x, 8);
    return u;
#endif
  }
};
struct KlBitsToDouble {
  GRPO_HD double operator()(uint64_t u) const {
#ifdef __CUDA_ARCH__
    return __longlong_as_double(static_cast<long long>(u));
#else
    double x;
    std::memcpy(&x, &u, 8);
    return x;
#endif
  }
};
// 1/K! as one correctly rounded division of the exact K! (K <= 18): the same double as the
// literal 1.0 / 3628800.0 and its kind, on the host and (a scalar constexpr) in device code.
template <int K>
struct Fact {
  static constexpr double v = K * Fact<K - 1>::v;
};
template <>
struct Fact<0> {
  static constexpr double v = 1.0;
};
template <int K>
struct InvFact {
  static constexpr double v = 1.0 / Fact<K>::v;
};
// Horner steps p = p·r + 1/K! for K = Hi down to Lo, unfused (GRPO_DMUL / GRPO_DADD); p in place
// (a vector returned by value draws -Wpsabi in the builds without AVX-512).
template <int Hi, int Lo, class V>
GRPO_HD void taylor_horner(V& p, V r) {
  p = GRPO_DADD(GRPO_DMUL(p, r), InvFact<Hi>::v);
  if constexpr (Hi > Lo) taylor_horner<Hi - 1, Lo>(p, r);
}

// Cody-Waite: de = k·ln2 + r, |r| <= ln2/2; kb holds k in its low mantissa bits (kb = k + 1.5·2^52,
// so bits(kb) − 0x4338000000000000 is k). Shared by k3_parts and ratio_exp (same operations).
template <class V>
GRPO_HD void cw_reduce(V de, V& kb, V& r) {
  const double kMagic = 6755399441055744.0;  // 1.5·2^52: adding it rounds to an integer (nearest even)
  kb = GRPO_DADD(GRPO_DMUL(de, 1.4426950408889634), kMagic);
  const V kd = GRPO_DADD(kb, -kMagic);
  r = GRPO_DADD(de, GRPO_DMUL(kd, -6.93147180369123816490e-01));  // ln2_hi: k·ln2_hi exact
  r = GRPO_DADD(r, GRPO_DMUL(kd, -1.90821492927058770002e-10));      // ln2_lo
}
// V: double or a GCC vector of doubles; U: uint64_t or the matching vector; the bit casts are
// passed in (memcpy / vector casts). Returns D and expm1(d) through the out-parameters.
template <class V, class U, class ToBits, class FromBits>
GRPO_HD void k3_parts(V d, V& D, V& em1, ToBits to_bits, FromBits from_bits) {
  V de = d < -60.0 ? V{} - 60.0 : d;
  de = de > 100.0 ? V{} + 100.0 : de;
  V kb, r;
  cw_reduce(de, kb, r);
  // t = 2^k from the bits of kb: (k + 1023) << 52
  U kbits = to_bits(kb) - static_cast<uint64_t>(0x4338000000000000ull);
  V t = from_bits((kbits + static_cast<uint64_t>(1023)) << 52);
  V p = GRPO_DADD(GRPO_DMUL(r, InvFact<10>::v), InvFact<9>::v);
  taylor_horner<8, 2>(p, r);  // 1/8!, ..., 1/2!
  V q = GRPO_DMUL(GRPO_DMUL(p, r), r);
  V tm1 = GRPO_DADD(t, -1.0);
  D = GRPO_DADD(GRPO_DADD(GRPO_DMUL(t, q), GRPO_DADD(GRPO_DMUL(t, r), -d)), tm1);
  em1 = GRPO_DADD(GRPO_DMUL(t, GRPO_DADD(r, q)), tm1);
}

GRPO_HD void k3_parts_scalar(double d, double& D, double& em1) {
  k3_parts<double, uint64_t>(d, D, em1, KlDoubleToBits(), KlBitsToDouble());
}

// klPenalty's own k3 (issue 8, speed): the same reduction with fused multiply-adds and a
// degree-8 series (q relative error < 3.4e-9 on |r| <= ln2/2, far below float32's 6e-8), about
// 14 fewer operations per token than k3_parts. Fused multiply-adds round once, so every backend
// gets the same bits from them: the vector CPU loops (vfmadd, or a correctly rounded per-lane fma
// on the generic build), the scalar tail (std::fma) and the GPU (__fma_rn). grpoLoss's KL term
// and metric keep k3_parts (kl_estimate): its float64 metrics.kl is checked at 1e-9 relative.
//   D = fma(t, q, fma(t, r, −d)) + (t − 1),  expm1(d) = fma(t, r + q, t − 1);
// for |d| < ln2/2 (k = 0, t = 1) D = q + 0 exactly as above.
// kLimit false: d is known to lie in [−20, 20] (the ±20 clamp was applied), where the [−60, 100]
// limit is the identity: skipping it gives the same bits (the CPU vector loop uses this).
template <class V, class U, class ToBits, class FromBits, class Fma, bool kLimit = true>
GRPO_HD void k3_parts_fma(V d, V& D, V& em1, ToBits to_bits, FromBits from_bits, Fma fma) {
  const double kMagic = 6755399441055744.0;
  V de = d;
  if (kLimit) {
    de = d < -60.0 ? V{} - 60.0 : d;
    de = de > 100.0 ? V{} + 100.0 : de;
  }
  V kb = fma(de, V{} + 1.4426950408889634, V{} + kMagic);
  V kd = GRPO_DADD(kb, -kMagic);
  V r = fma(kd, V{} - 6.93147180369123816490e-01, de);
  r = fma(kd, V{} - 1.90821492927058770002e-10, r);
  U kbits = to_bits(kb) - static_cast<uint64_t>(0x4338000000000000ull);
  V t = from_bits((kbits + static_cast<uint64_t>(1023)) << 52);
  V p = fma(r, V{} + 1.0 / 40320.0, V{} + 1.0 / 5040.0);
  p = fma(p, r, V{} + 1.0 / 720.0);
  p = fma(p, r, V{} + 1.0 / 120.0);
  p = fma(p, r, V{} + 1.0 / 24.0);
  p = fma(p, r, V{} + 1.0 / 6.0);
  p = fma(p, r, V{} + 0.5);
  V q = GRPO_DMUL(GRPO_DMUL(p, r), r);
  V tm1 = GRPO_DADD(t, -1.0);
  D = GRPO_DADD(fma(t, q, fma(t, r, -d)), tm1);
  em1 = fma(t, GRPO_DADD(r, q), tm1);
}

// ρ = exp(d) of a token's log-ratio d = ℓ − ℓ_old, the same bits on every backend (the CPU's
// vector lanes and scalar passes, the GPU): libm's exp and CUDA's may differ in the last bit, and a
// libm call per token was ~3/4 of the CPU time of grpoLoss's vector pass with oldLogp. Cody-Waite
// reduction d = k·ln2 + r (|r| ≤ ln2/2, as k3_parts), e^r as its degree-13 Taylor polynomial
// (truncation < 5e-18 relative; within a few ulp of e^d after rounding: checked against the
// correctly rounded value in test/), then 2^k as two power-of-two factors 2^k1·2^k2 (each normal,
// the first product exact) so that overflow gives +Inf and underflow rounds once, as exp does.
// d is limited to [−800, 800] first (exp is already 0 / +Inf there). NaN in, NaN out. The
// result comes back through `out` (as k3_parts does): GCC warns on each vector returned by value
// in the builds without AVX-512 (-Wpsabi), which no pragma silences for a template.
template <class V, class U, class ToBits, class FromBits>
GRPO_HD void ratio_exp(V d, V& out, ToBits to_bits, FromBits from_bits) {
  V de = d < -800.0 ? V{} - 800.0 : d;
  de = de > 800.0 ? V{} + 800.0 : de;
  V kb, r;
  cw_reduce(de, kb, r);
  V p = GRPO_DADD(GRPO_DMUL(r, InvFact<13>::v), InvFact<12>::v);
  taylor_horner<11, 0>(p, r);  // 1/11!, ..., 1/1!, 1/0!: p = e^r
  // k + 2048 (k in [−1155, 1155]: positive), split k = k1 + k2 with k1 = floor(k/2); the biased
  // exponents (k1 + 1023, k2 + 1023) are then (kp/2 − 1) and (kp − kp/2 − 1), kp = k + 2048
  const U kp = to_bits(kb) - static_cast<uint64_t>(0x4338000000000000ull) + static_cast<uint64_t>(2048);
  const U h = kp >> 1;
  const V t1 = from_bits((h - static_cast<uint64_t>(1)) << 52);
  const V t2 = from_bits((kp - h - static_cast<uint64_t>(1)) << 52);
  out = GRPO_DMUL(GRPO_DMUL(p, t1), t2);
}
GRPO_HD double ratio_exp_scalar(double d) {
  double e;
  ratio_exp<double, uint64_t>(d, e, KlDoubleToBits(), KlBitsToDouble());
  return e;
}

struct KlScalarFma {
  GRPO_HD double operator()(double a, double b, double c) const {
#ifdef __CUDA_ARCH__
    return __fma_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
  }
};

// spec §3, d = ref_logp - logp. k1 and k2 never exponentiate, so the log-ratio clamp (which only
// exists to keep exp finite) does not touch them. Where a clamp is active the gradient is zero,
// as autograd gives through torch.clamp. The vectorised CPU loop (elementwise_impl.h) computes
// the same operations on vectors: keep the two in step.
// kFma: klPenalty's k3 (k3_parts_fma); false: k3_parts (grpoLoss's KL term and metric).
template <bool kFma>
GRPO_HD KlValue kl_estimate_t(double logp, double ref_logp, KlEstimator est_in, bool clamp_log_ratio) {
  double d = ref_logp - logp;
  const KlEstimator est = kl_value_estimator(est_in);
  KlValue r{0.0, 0.0};
  switch (est) {
    case KlEstimator::K1: r = {-d, 1.0}; break;
    case KlEstimator::K2: r = {0.5 * d * d, -d}; break;
    case KlEstimator::Abs: r = {d < 0 ? -d : d, d < 0 ? 1.0 : (d > 0 ? -1.0 : 0.0)}; break;  // torch.abs: 0 at 0
    case KlEstimator::K3:
    case KlEstimator::LowVarKl: {
      bool clamp = clamp_log_ratio || est == KlEstimator::LowVarKl;
      bool active = false;
      if (clamp && d > kLogRatioClamp) { d = kLogRatioClamp; active = true; }
      if (clamp && d < -kLogRatioClamp) { d = -kLogRatioClamp; active = true; }
      double D, em1;
      if (kFma) k3_parts_fma<double, uint64_t>(d, D, em1, KlDoubleToBits(), KlBitsToDouble(), KlScalarFma());
      else k3_parts_scalar(d, D, em1);
      if (est == KlEstimator::LowVarKl) {
        if (D > kLowVarKlClamp) { D = kLowVarKlClamp; active = true; }
        if (D < -kLowVarKlClamp) { D = -kLowVarKlClamp; active = true; }
      }
      r = {D, active ? 0.0 : -em1};
      break;
    }
    default: break;
  }
  if (est != est_in) r.grad = logp - ref_logp;  // straight through: k2's gradient, ℓ − ℓ_ref
  return r;
}
GRPO_HD KlValue kl_estimate(double logp, double ref_logp, KlEstimator est_in, bool clamp_log_ratio) {
  return kl_estimate_t<false>(logp, ref_logp, est_in, clamp_log_ratio);
}
// klPenalty's per-token value (CPU scalar tail and CUDA kernel): k3 through k3_parts_fma.
GRPO_HD KlValue kl_penalty_value(double logp, double ref_logp, KlEstimator est_in, bool clamp_log_ratio) {
  return kl_estimate_t<true>(logp, ref_logp, est_in, clamp_log_ratio);
}

struct PolicyValue {
  double P;         // policy term of the per-token loss
  double dP_drho;   // through the importance ratio
  double dP_dlogp;  // direct (cispo only: P = -sg(min(rho, cap)) * A * logp)
  bool low_clipped, high_clipped;  // for the clip-ratio metrics
};

// spec §5. rho the importance ratio, A the advantage, logp the token's log-prob (cispo only).
// Gradients follow autograd through TRL/verl's expressions: torch.min/max pass the gradient to
// the selected operand (ties: the unclipped one, both carry the same gradient there) and
// torch.clamp passes it where its input is within the bounds (inclusive).
GRPO_HD PolicyValue policy_term(double rho, double A, double logp, const GrpoOptions& o) {
  PolicyValue r;
  if (o.policy_loss == PolicyLoss::GeoMean || o.policy_loss == PolicyLoss::Vespo || o.policy_loss == PolicyLoss::KlCov) {  // grpo_sequence_pass
    r.P = r.dP_drho = r.dP_dlogp = 0.0;
    r.low_clipped = r.high_clipped = false;
    return r;
  }
  if (o.policy_loss == PolicyLoss::Cispo) {
    double capped;
    if (o.cispo_range) {  // verl: clip(rho, 1 - eps_low, 1 + eps_high); clipped counted whatever A's sign
      double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high;
      capped = rho < lo ? lo : (rho > hi ? hi : rho);
      r.low_clipped = rho < lo;
      r.high_clipped = rho > hi;
    } else {
      capped = rho < o.eps_high ? rho : o.eps_high;
      r.low_clipped = false;
      r.high_clipped = rho > o.eps_high && A > 0;
    }
    r.P = -capped * A * logp;
    r.dP_drho = 0.0;
    r.dP_dlogp = -capped * A;
    return r;
  }
  if (o.policy_loss == PolicyLoss::Sapo) {
    // SAPO soft gate (TRL / verl sapo): f = sigmoid(tau·(rho − 1))·4/tau, tau = tau_pos if A > 0
    // else tau_neg; P = −f·A, dP/drho = −A·4·sigmoid·(1 − sigmoid). The sigmoid is formed from
    // exp(−|x|) so a huge rho gives 1, not inf/inf.
    const double tau = A > 0 ? o.sapo_tau_pos : o.sapo_tau_neg;
    const double x = tau * (rho - 1.0);
    const double e = exp(x < 0 ? x : -x);
    const double sig = x < 0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
    const double one_m = x < 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    r.P = -sig * (4.0 / tau) * A;
    r.dP_drho = -A * 4.0 * sig * one_m;
    r.dP_dlogp = 0.0;
    r.low_clipped = false;
    r.high_clipped = false;
    return r;
  }
  double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high;
  bool delta_active = o.use_delta && rho > o.delta;
  double rho_u = delta_active ? o.delta : rho;
  bool in_range = rho >= lo && rho <= hi;
  double c = rho < lo ? lo : (rho > hi ? hi : rho);
  double t1 = rho_u * A, t2 = c * A;
  double P, g;
  if (t1 <= t2) {  // unclipped term selected
    P = -t1;
    g = delta_active ? 0.0 : -A;
  } else {
    P = -t2;
    g = in_range ? -A : 0.0;
  }
  if (o.policy_loss == PolicyLoss::DualClip && A < 0) {
    double bound = -o.clip_ratio_c * A;
    if (bound < P) {
      P = bound;
      g = 0.0;
    }
  }
  r.P = P;
  r.dP_drho = g;
  r.dP_dlogp = 0.0;
  r.low_clipped = rho < lo && A < 0;
  r.high_clipped = rho > hi && A > 0;
  return r;
}

// dL[n]/dℓ of one token at token level without top-entropy selection (the fused one-pass paths,
// CPU and CUDA; the loss core computes the same in grpo_loss_core.h): the policy term through ρ
// and directly, plus β times the KL term's (D·ρ with use_bias_correction_kl: ρ not detached).
GRPO_HD double token_loss_grad(double logp, double old_logp, bool has_old, const float* ref_logp_row, double A,
                               const GrpoOptions& o) {
  const double rho = has_old ? ratio_exp_scalar(logp - old_logp) : 1.0;
  PolicyValue pv = policy_term(rho, A, logp, o);
  double g = pv.dP_drho * rho + pv.dP_dlogp;
  if (o.beta != 0) {
    KlValue kv = kl_estimate(logp, *ref_logp_row, o.kl_estimator, o.clamp_log_ratio);
    g += o.bias_correction_kl ? o.beta * (kv.grad * rho + kv.d * rho) : o.beta * kv.grad;
  }
  return g;
}

// spec §6: the aggregation weight a of one token of sequence i, given n_i (its masked-token
// count), the batch's masked-token count, S and T.
GRPO_HD double aggregation_weight(const GrpoOptions& o, double n_i, double n_batch, int64_t S, int64_t T) {
  switch (o.loss_type) {
    case LossType::Grpo: return 1.0 / (static_cast<double>(S) * (n_i > 1.0 ? n_i : 1.0));
    case LossType::Bnpo: return 1.0 / (n_batch > 1.0 ? n_batch : 1.0);
    case LossType::Dapo: {
      double n = o.n_global > 0 ? o.n_global : n_batch;
      return 1.0 / (n > 1.0 ? n : 1.0);
    }
    case LossType::DrGrpo: {
      double tmax = o.max_completion_length > 0 ? o.max_completion_length : static_cast<double>(T);
      return 1.0 / (static_cast<double>(S) * tmax);
    }
    case LossType::SeqSum: return 1.0 / static_cast<double>(S);
    // TRL luspo: mean over the (S, ·) per-token-loss tensor of loss·n_i. At sequence level the
    // policy term is one value per sequence: Σ_i n_i·P_i / S, so 1/S per masked token (the KL
    // term: kl_aggregation_weight). At token level: n_i / (S·T) per masked token.
    case LossType::Luspo:
      return o.level == Level::Sequence ? 1.0 / static_cast<double>(S) : n_i / (static_cast<double>(S) * static_cast<double>(T));
    // verl agg_loss: Σ over sequences of the token sum (or token mean, n_i + 1e-8) over G, G =
    // global_batch_size or this batch's non-empty sequences; -norm: Σ of token sums / loss_scale_factor.
    case LossType::SeqMeanTokenSum:
    case LossType::SeqMeanTokenMean: {
      double G = o.global_batch_size > 0 ? o.global_batch_size : o.n_seq_active;
      if (!(G > 0)) G = 1.0;
      return o.loss_type == LossType::SeqMeanTokenSum ? 1.0 / G : 1.0 / ((n_i + 1e-8) * G);
    }
    case LossType::SeqMeanTokenSumNorm: return 1.0 / (o.loss_scale_factor > 0 ? o.loss_scale_factor : static_cast<double>(T));
  }
  return 0.0;
}

// The weight of the KL term: the policy term's, except luspo at sequence level, where TRL's
// per-token KL tensor broadcasts against the per-sequence policy loss and each KL token is
// weighted n_i / (S·T) (upstream also sums the padding tokens' KL there; here masked tokens only).
GRPO_HD double kl_aggregation_weight(const GrpoOptions& o, double n_i, double n_batch, int64_t S, int64_t T) {
  if (o.loss_type == LossType::Luspo) return n_i / (static_cast<double>(S) * static_cast<double>(T));
  return aggregation_weight(o, n_i, n_batch, S, T);
}

}  // namespace grpo
