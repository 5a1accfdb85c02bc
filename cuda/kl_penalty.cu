// klPenalty on the GPU: spec §3, element-wise through kl_penalty_value (native/common/formulas.h:
// the CPU kernel's scalar tail; its vector loop runs the same operations), in double as on the
// CPU. n = tokens. One launch, a grid-stride loop.
#include "../native/device/cuda_ops.h"
#include "common.cuh"

namespace grpo {

__global__ void __launch_bounds__(256) kl_penalty_kernel(const float* __restrict__ logp, const float* __restrict__ ref_logp, int64_t n,
                                                         int est, bool clamp, float* __restrict__ kl, float* __restrict__ grad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    KlValue v = kl_penalty_value(logp[i], ref_logp[i], static_cast<KlEstimator>(est), clamp);
    kl[i] = static_cast<float>(v.d);
    if (grad) grad[i] = static_cast<float>(v.grad);
  }
}

void kl_penalty_cuda(const KlPenaltyArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  const unsigned threads = 256;
  cuda::launch("kl_penalty_kernel", kl_penalty_kernel, dim3(cuda::blocks_for(a.n, threads, 4096)), dim3(threads), 0, stream,
               a.logp, a.ref_logp, a.n, static_cast<int>(a.estimator), a.clamp_log_ratio, a.kl, a.grad);
}

}  // namespace grpo
