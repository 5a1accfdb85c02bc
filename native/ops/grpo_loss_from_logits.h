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
  GrpoOptions opt;
  GradMode grad_mode = GradMode::None;
  TensorView grad_logits;  // [N, V], same dtype as logits; == logits for InPlace
  float* logp = nullptr;       // [N] out
  float* entropy = nullptr;    // [N] out
  float* grad_logp = nullptr;  // [N] out, optional
  GrpoMetrics metrics;         // out
};

void grpo_loss_from_logits_cpu(GrpoLossFromLogitsArgs& a);

}  // namespace grpo
