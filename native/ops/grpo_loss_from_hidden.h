// grpoLossFromHidden: spec §8, the fused linear GRPO loss. Hidden states h [N, D] times the
// output projection W [V, D] (logits z = h·Wᵀ, used as z/τ) to ℓ, H, the loss and metrics of
// grpoLossFromLogits (spec §7, the same options and the same loss core), and the gradients
// dL/dh [N, D] and dL/dW [V, D], without ever holding more than one chunk of rows' logits.
// Shapes: S sequences × T tokens = N rows, row n = i·T + t; D = hidden size; V = vocabulary.
#pragma once
#include "../tensor.h"
#include "grpo_loss.h"

namespace grpo {

struct GrpoLossFromHiddenArgs {
  TensorView hidden;  // [N, D]: f32, bf16 or f16
  TensorView weight;  // [V, D]: f32, bf16 or f16
  const int32_t* targets = nullptr;  // [N]
  int64_t S = 0, T = 0, V = 0, D = 0;
  int64_t chunk = 0;  // rows of logits per chunk (> 0; the default is lib/ops/grpo_loss_from_hidden.ts defaultHiddenChunk)
  float temperature = 1.f;
  const float* old_logp = nullptr;    // [N] or null
  const float* ref_logp = nullptr;    // [N] or null
  const float* advantages = nullptr;  // [S]
  const uint8_t* mask = nullptr;      // [N]
  const float* rollout_logp = nullptr;  // [N] or null: the sampler's log-probs (rollout IS correction)
  GrpoOptions opt;
  float* grad_hidden = nullptr;  // [N, D] out (overwritten) or null: not computed
  float* grad_weight = nullptr;  // [V, D] accumulated (+=) or null: not computed
  float* logp = nullptr;         // [N] out
  float* entropy = nullptr;      // [N] out
  float* grad_logp = nullptr;    // [N] out, optional
  GrpoMetrics metrics;           // out
};

// The per-token half of a fused call as the loss core takes it (grpo_loss_cpu on the CPU,
// grpo_loss_core_cuda on the GPU): the chunk passes fill logp/entropy, the core does the rest.
inline GrpoLossArgs per_token_loss_args(const GrpoLossFromHiddenArgs& a) {
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

void grpo_loss_from_hidden_cpu(GrpoLossFromHiddenArgs& a);

}  // namespace grpo
