// grpoLossFromLogits: spec §7. One call from logits [N, V] (f32, bf16, f16) to the loss, the
// metrics and dL/dlogits, written to a separate buffer or in place over the logits.
#pragma once
#include "../tensor.h"
#include "grpo_loss.h"

namespace grpo {

enum class GradMode : int { None = 0, Separate = 1, InPlace = 2 };

struct GrpoLossFromLogitsArgs {
  TensorView logits;              // [N, V]
  const int32_t* targets = nullptr;  // [N]
  int64_t S = 0, T = 0, V = 0;
  float temperature = 1.f;
  const float* old_logp = nullptr;    // [N] or null
  const float* ref_logp = nullptr;    // [N] or null
  const float* advantages = nullptr;  // [S]
  const uint8_t* mask = nullptr;      // [N]
  const float* rollout_logp = nullptr;  // [N] or null: the sampler's log-probs (rollout IS correction)
  GrpoOptions opt;
  GradMode grad_mode = GradMode::None;
  TensorView grad_logits;  // [N, V], same dtype as logits; == logits for InPlace
  float* logp = nullptr;       // [N] out
  float* entropy = nullptr;    // [N] out
  float* grad_logp = nullptr;  // [N] out, optional
  GrpoMetrics metrics;         // out
};

// The per-token half of a fused call, as the loss core takes it (grpo_loss_cpu on the CPU,
// grpo_loss_core_cuda on the GPU): the logits pass fills logp/entropy, the core does the rest.
inline GrpoLossArgs per_token_loss_args(const GrpoLossFromLogitsArgs& a) {
  GrpoLossArgs la;
  la.logp = a.logp;
  la.old_logp = a.old_logp;
  la.ref_logp = a.ref_logp;
  la.advantages = a.advantages;
  la.mask = a.mask;
  la.entropy = a.entropy;
  la.rollout_logp = a.rollout_logp;
  la.S = a.S;
  la.T = a.T;
  la.opt = a.opt;
  return la;
}

void grpo_loss_from_logits_cpu(GrpoLossFromLogitsArgs& a);

}  // namespace grpo
