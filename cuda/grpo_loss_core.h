// The per-token loss core shared by cuda/grpo_loss.cu and cuda/grpo_loss_from_logits.cu.
#pragma once
#include <cuda_runtime.h>

#include "../native/ops/grpo_loss.h"

namespace grpo {

// Enqueues the loss core over a's per-token inputs (device pointers): dL/dℓ into grad_logp
// (may be null), L per token into a.per_token_loss (may be null), and the metrics copied into
// *metrics (host memory; valid once the stream is synchronised).
void grpo_loss_core_cuda(const GrpoLossArgs& a, float* grad_logp, GrpoMetrics* metrics, cudaStream_t stream);

// Only the masked-token counts: n_seq[i] = Σ_t mask[i, t] ([S] doubles) and *n_batch = Σ_i n_seq[i]
// (summed in sequence order), both device memory.
void grpo_loss_counts_cuda(const uint8_t* mask, int64_t S, int64_t T, double* n_seq, double* n_batch, cudaStream_t stream);

}  // namespace grpo
