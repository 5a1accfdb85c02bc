// logprobs: spec §1. Per row n of logits z [N, V] (f32, bf16 or f16), with u = z / temperature:
// logp[n] = u[y[n]] - logsumexp(u), entropy[n] = logsumexp(u) - sum_v p_v u_v.
#pragma once
#include "../tensor.h"

namespace grpo {

struct LogprobsArgs {
  TensorView logits;       // [N, V]
  const int32_t* targets;  // [N], 0 <= y < V (validated by the caller)
  int64_t N = 0, V = 0;
  float temperature = 1.f;
  float* logp = nullptr;     // [N] out
  float* entropy = nullptr;  // [N] out, optional
};

void logprobs_cpu(const LogprobsArgs& a);

}  // namespace grpo
