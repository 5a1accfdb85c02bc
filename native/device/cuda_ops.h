// Host launchers of the CUDA kernels (cuda/<op>.cu), one per op, taking the op's args struct
// with device pointers. Each enqueues its kernels on `stream` and returns; scalar outputs in
// the args struct (metrics, counts) are filled after the launcher synchronised the stream.
// Failures throw std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime.h>

#include "../ops/group_advantages.h"
#include "../ops/grpo_loss.h"
#include "../ops/grpo_loss_from_hidden.h"
#include "../ops/grpo_loss_from_logits.h"
#include "../ops/kl_full.h"
#include "../ops/kl_penalty.h"
#include "../ops/logprobs.h"
#include "../ops/sample.h"

namespace grpo {

void kl_penalty_cuda(const KlPenaltyArgs& a, cudaStream_t stream);
void kl_full_cuda(const KlFullArgs& a, cudaStream_t stream);
void group_advantages_cuda(GroupAdvantagesArgs& a, cudaStream_t stream);
void logprobs_cuda(const LogprobsArgs& a, cudaStream_t stream);
void grpo_loss_cuda(GrpoLossArgs& a, cudaStream_t stream);
void grpo_loss_from_logits_cuda(GrpoLossFromLogitsArgs& a, cudaStream_t stream);
void grpo_loss_from_hidden_cuda(GrpoLossFromHiddenArgs& a, cudaStream_t stream);
void sample_cuda(const SampleArgs& a, cudaStream_t stream);

}  // namespace grpo
