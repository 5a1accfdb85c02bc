// klPenalty: spec §3. Per token, with d = ref_logp - logp: the KL estimate D and dD/dlogp.
#pragma once
#include <cstdint>

#include "../common/formulas.h"

namespace grpo {

struct KlPenaltyArgs {
  const float* logp = nullptr;      // [n]
  const float* ref_logp = nullptr;  // [n]
  int64_t n = 0;
  KlEstimator estimator = KlEstimator::K3;
  bool clamp_log_ratio = true;
  float* kl = nullptr;    // [n] out
  float* grad = nullptr;  // [n] out, optional: dD/dlogp
  bool all_finite = true;  // out: every logp and ref_logp finite (the TS layer names the first bad one)
};

void kl_penalty_cpu(KlPenaltyArgs& a);

}  // namespace grpo
