// The scalar GRPO formulas (spec §3-§6), written once for the CPU kernels (g++) and the CUDA
// kernels (nvcc: __host__ __device__), so the two backends cannot drift. Per-token math runs in
// double: exp(d) - d - 1 and the clipped surrogate lose most of their digits in float32 when
// d or log-ratio is small, and these loops are O(tokens), not O(tokens x vocab).
#pragma once
#include <cmath>
#include <cstdint>

#include "half.h"  // GRPO_HD

namespace grpo {

enum class KlEstimator : int { K1 = 0, K2 = 1, K3 = 2, LowVarKl = 3 };
enum class Level : int { Token = 0, Sequence = 1 };
enum class PolicyLoss : int { Clip = 0, DualClip = 1, Cispo = 2 };
enum class LossType : int { Grpo = 0, Bnpo = 1, Dapo = 2, DrGrpo = 3, SeqSum = 4 };

struct GrpoOptions {
  Level level = Level::Token;
  PolicyLoss policy_loss = PolicyLoss::Clip;
  double eps_low = 0.2, eps_high = 0.2;  // cispo: eps_high is the absolute cap on rho
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
};

constexpr double kLogRatioClamp = 20.0;  // |d| bound before exp: exp(20) is finite in float32
constexpr double kLowVarKlClamp = 10.0;  // verl low_var_kl bound on D

struct KlValue {
  double d;     // the estimate D
  double grad;  // dD/dlogp
};

// spec §3, d = ref_logp - logp. k1 and k2 never exponentiate, so the log-ratio clamp (which only
// exists to keep exp finite) does not touch them. Where a clamp is active the gradient is zero,
// as autograd gives through torch.clamp.
GRPO_HD KlValue kl_estimate(double logp, double ref_logp, KlEstimator est, bool clamp_log_ratio) {
  double d = ref_logp - logp;
  switch (est) {
    case KlEstimator::K1: return {-d, 1.0};
    case KlEstimator::K2: return {0.5 * d * d, -d};
    case KlEstimator::K3:
    case KlEstimator::LowVarKl: {
      bool clamp = clamp_log_ratio || est == KlEstimator::LowVarKl;
      bool active = false;
      if (clamp && d > kLogRatioClamp) { d = kLogRatioClamp; active = true; }
      if (clamp && d < -kLogRatioClamp) { d = -kLogRatioClamp; active = true; }
      double em1 = expm1(d);  // exp(d) - 1 without cancellation near d = 0
      double D = em1 - d;
      if (est == KlEstimator::LowVarKl) {
        if (D > kLowVarKlClamp) { D = kLowVarKlClamp; active = true; }
        if (D < -kLowVarKlClamp) { D = -kLowVarKlClamp; active = true; }
      }
      return {D, active ? 0.0 : -em1};
    }
  }
  return {0.0, 0.0};
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
  if (o.policy_loss == PolicyLoss::Cispo) {
    double capped = rho < o.eps_high ? rho : o.eps_high;
    r.P = -capped * A * logp;
    r.dP_drho = 0.0;
    r.dP_dlogp = -capped * A;
    r.low_clipped = false;
    r.high_clipped = rho > o.eps_high && A > 0;
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
  }
  return 0.0;
}

}  // namespace grpo
