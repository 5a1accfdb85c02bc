// grpoLoss: spec §4-§6 from per-token log-probs. Shapes: S sequences, T tokens each,
// N = S*T rows, row n = i*T + t.
#pragma once
#include <cstdint>

#include "../common/formulas.h"

namespace grpo {

struct GrpoMetrics {
  double loss = 0;
  double kl = 0;           // masked mean of D (0 when beta = 0 and no ref given)
  double entropy = 0;      // masked mean of entropy (0 when not given)
  double clip_low = 0;     // masked fraction: rho < 1 - eps_low and A < 0
  double clip_high = 0;    // masked fraction: rho > 1 + eps_high and A > 0 (cispo: rho > eps_high, A > 0)
  double clip_region = 0;  // low or high
  double ratio = 0;        // masked mean of rho
  double masked_tokens = 0;
  double is_weight_mean = 0;   // rollout IS: masked mean of the weight applied (1 when off)
  double is_clipped_frac = 0;  // rollout IS: fraction truncated/masked (of tokens; of sequences at sequence level)
};

struct GrpoLossArgs {
  const float* logp = nullptr;        // [N]
  const float* old_logp = nullptr;    // [N] or null: logp detached (one step per rollout batch)
  const float* ref_logp = nullptr;    // [N] or null (required when beta != 0)
  const float* advantages = nullptr;  // [S]
  const uint8_t* mask = nullptr;      // [N], 0 or 1
  const float* entropy = nullptr;     // [N] or null (metrics, top-entropy selection)
  const float* rollout_logp = nullptr;  // [N] or null: the sampler's log-probs (rollout IS correction)
  int64_t S = 0, T = 0;
  GrpoOptions opt;
  float* grad_logp = nullptr;       // [N] out, optional: dL/dlogp
  float* per_token_loss = nullptr;  // [N] out, optional: L[n] (before aggregation weights)
  float* grad_entropy = nullptr;    // [N] out, optional: dL/dH (entropy_coef != 0)
  GrpoMetrics metrics;              // out
  // grpoLoss's own call: check the mask's values and the inputs' finiteness where the mask is set
  // (grpo_loss_cpu's first pass) and stop before writing any output if one is bad.
  bool check_inputs = false;
  bool inputs_ok = true;  // out
};

void grpo_loss_cpu(GrpoLossArgs& a);

}  // namespace grpo
