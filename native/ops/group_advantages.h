// groupAdvantages: spec §2. Rewards [S, K] (K reward functions, NaN = "no reward") are summed
// with weights into r[S]; advantages are computed per group. Groups arrive as a dense index
// 0..num_groups-1 per sequence (the TS layer maps group sizes or arbitrary ids to it).
#pragma once
#include <cmath>
#include <cstdint>

#include "../common/half.h"  // GRPO_HD

namespace grpo {

// Order = ADVANTAGE_ESTIMATORS in lib/ops/group_advantages.ts (verl's names in comments).
enum class AdvEstimator : int {
  Grpo = 0,
  Rloo = 1,
  ReinforcePP = 2,          // reinforce_plus_plus (gamma = 1): r, whitened over the batch's tokens
  ReinforcePPBaseline = 3,  // reinforce_plus_plus_baseline: r − group mean, whitened over the batch's tokens
  Gpg = 4,                  // gpg: alpha·(r − group mean), alpha = #rewarded / #(r ≠ 0)
  GrpoPassk = 5,            // grpo_passk: only a group's unique best gets (r_max − r_second) / scale
  Opo = 6,                  // opo: r − Σ len·r / Σ len over the group
  Remax = 7,                // remax: r − the caller's greedy-baseline reward
};
constexpr int kNumAdvEstimators = 8;
enum class AdvScale : int { Group = 0, Batch = 1, None = 2 };

struct GroupAdvantagesArgs {
  const float* rewards = nullptr;   // [S, K]
  const float* weights = nullptr;   // [K]
  const int32_t* group = nullptr;   // [S], 0 <= group < num_groups; null when group_size > 0
  int64_t group_size = 0;           // > 0: contiguous groups of this size (num_groups = S / group_size)
  int64_t S = 0, K = 1, num_groups = 0;
  AdvEstimator estimator = AdvEstimator::Grpo;
  AdvScale scale = AdvScale::Group;
  double eps = 1e-4;
  bool unbiased = true;  // std divides by (G - 1) (torch.std default) or by G
  const float* lengths = nullptr;    // [S] completion lengths (token counts) or null (1 each): opo, reinforce++ whitening
  const float* baselines = nullptr;  // [S] remax: the greedy rollout's reward per sequence (NaN: none, advantage 0)
  bool normalize = false;            // TRL normalize_advantages: A ← (A − mean A) / (std A + eps) over the batch
  float* advantages = nullptr;  // [S] out
  float* reward = nullptr;      // [S] out: weighted NaN-sum (NaN when no function rewarded)
  float* group_mean = nullptr;  // [num_groups] out
  float* group_std = nullptr;   // [num_groups] out
  // scalar outputs
  double zero_std_fraction = 0;  // fraction of groups with std == 0
  int64_t num_no_reward = 0;     // sequences with r = NaN (advantage set to 0)
  int64_t first_inf = -1;        // index into rewards of the first ±Infinity (the TS layer throws), or -1
};

void group_advantages_cpu(GroupAdvantagesArgs& a);

// ---- Formulas shared by the CPU kernel and cuda/group_advantages.cu (same statements, same bits) ----

// Per-group extras of OPO (length-weighted reward sums) and grpo_passk (the best reward's
// multiplicity and index, the best of the rest), accumulated in ascending sequence order.
struct AdvGroupExtra {
  double len_sum = 0, len_r_sum = 0;
  double second = -HUGE_VAL;
  int64_t n_hi = 0, arg_hi = -1;
};
// pass@k: hi is the group's max (known after the first pass).
GRPO_HD void adv_best_two(AdvGroupExtra& e, double hi, double x, int64_t i) {
  if (x == hi) {
    if (e.n_hi == 0) e.arg_hi = i;
    ++e.n_hi;
  } else if (x > e.second) {
    e.second = x;
  }
}
// The per-group value adv_sequence reads: OPO's baseline, pass@k's gap r_max − r_second.
// verl gives a lone sequence the baseline 0 (OPO, RF++-baseline, GPG: "len == 1"); here "lone"
// counts the rewarded members. A group whose lengths sum to 0 falls back to the plain mean.
GRPO_HD double adv_group_value(AdvEstimator e, int64_t c, double mean, double hi, const AdvGroupExtra& x) {
  if (e == AdvEstimator::Opo) return c <= 1 ? 0.0 : (x.len_sum > 0 ? x.len_r_sum / x.len_sum : mean);
  if (e == AdvEstimator::GrpoPassk) return hi - x.second;
  return 0.0;
}
// pass@k: the index of the group's unique best (−1: fewer than 2 rewarded members or a tied best,
// where r_max − r_second = 0 and every member gets 0).
GRPO_HD int64_t adv_group_arg(AdvEstimator e, int64_t c, const AdvGroupExtra& x) {
  return e == AdvEstimator::GrpoPassk && c >= 2 && x.n_hi == 1 ? x.arg_hi : -1;
}
// GPG's alpha = (sequences) / (sequences with a non-zero reward), counting rewarded ones only.
GRPO_HD double adv_gpg_alpha(int64_t rewarded, int64_t nonzero) {
  return static_cast<double>(rewarded) / static_cast<double>(nonzero > 1 ? nonzero : 1);
}
// Advantage of rewarded sequence i before the batch passes. c, mean, sd: its group's rewarded
// count and statistics; gv, arg: adv_group_value / adv_group_arg; bl: remax's baseline reward.
GRPO_HD double adv_sequence(AdvEstimator e, AdvScale scale, double r, int64_t i, int64_t c, double mean, double sd,
                                   double batch_sd, double eps, double gv, int64_t arg, double alpha, double bl) {
  double x;
  switch (e) {
    case AdvEstimator::Rloo:  // r_i − (Σ_g − r_i)/(c − 1) = c/(c − 1)·(r_i − mean): no difference of two large sums
      x = c < 2 ? 0.0 : static_cast<double>(c) / static_cast<double>(c - 1) * (r - mean);
      break;
    case AdvEstimator::GrpoPassk:
      if (i != arg) return 0.0;
      x = gv;
      break;
    case AdvEstimator::ReinforcePP: return r;
    case AdvEstimator::ReinforcePPBaseline: return r - (c <= 1 ? 0.0 : mean);
    case AdvEstimator::Gpg: return alpha * (r - (c <= 1 ? 0.0 : mean));
    case AdvEstimator::Opo: return r - gv;
    case AdvEstimator::Remax: return bl != bl ? 0.0 : r - bl;
    default: x = r - mean;
  }
  if (scale == AdvScale::Group) x /= sd + eps;
  else if (scale == AdvScale::Batch) x /= batch_sd + eps;
  return x;
}
// REINFORCE++ whitening, verl masked_whiten over the batch's response tokens: a sequence of
// length n_i carries its advantage on n_i tokens, so it weighs n_i (1 without lengths).
// mean = Σw·x / (Σw + 1e-8), var = Σw·(x − mean)² / (Σw + 1e-8) · Σw/(Σw − 1) (Bessel; skipped
// when Σw <= 1, where verl raises), x ← (x − mean) / sqrt(var + 1e-8).
struct AdvWhiten {
  double ws = 0, wx = 0, wq = 0, m = 0, inv = 0;
  GRPO_HD void add_mean(double x, double w) {
    ws += w;
    wx += w * x;
  }
  GRPO_HD void finish_mean() { m = wx / (ws + 1e-8); }
  GRPO_HD void add_var(double x, double w) {
    const double d = x - m;
    wq += w * d * d;
  }
  GRPO_HD void finish_var() {
    double v = wq / (ws + 1e-8);
    if (ws > 1) v *= ws / (ws - 1);
    inv = 1.0 / sqrt(v + 1e-8);
  }
  GRPO_HD double apply(double x) const { return (x - m) * inv; }
};
// TRL normalize_advantages: x ← (x − mean) / (std + eps) over the batch's rewarded sequences.
struct AdvNormalize {
  double s = 0, q = 0, m = 0, sd = 0;
  int64_t n = 0;
  GRPO_HD void add_mean(double x) {
    s += x;
    ++n;
  }
  GRPO_HD void finish_mean() { m = n > 0 ? s / static_cast<double>(n) : 0.0; }
  GRPO_HD void add_var(double x) {
    const double d = x - m;
    q += d * d;
  }
  GRPO_HD void finish_var(bool unbiased) { sd = n > 1 ? sqrt(q / static_cast<double>(unbiased ? n - 1 : n)) : 0.0; }
  GRPO_HD double apply(double x, double eps) const { return (x - m) / (sd + eps); }
};

}  // namespace grpo
