// logprobs on the GPU: spec §1, the selective log-softmax. N rows of V logits (f32 / bf16 / f16).
// One block per row, one read of the row (16-byte vector loads, online max; cuda/row_stats.cuh),
// ℓ and H finished in double as on the CPU.
#include "../native/device/cuda_ops.h"
#include "row_stats.cuh"

namespace grpo {

namespace {
constexpr int kThreads = 256;

template <int DT>
__global__ void __launch_bounds__(kThreads) logprobs_kernel(const void* __restrict__ logits, const int32_t* __restrict__ targets, int64_t V,
                                                             float inv, double inv_d, float* __restrict__ logp, float* __restrict__ entropy) {
  __shared__ cuda::RowAcc red[32];
  const int64_t n = blockIdx.x;  // row n of the logits
  const typename cuda::Elem<DT>::T* row = static_cast<const typename cuda::Elem<DT>::T*>(logits) + n * V;
  const int64_t y = targets[n];
  const bool ok = y >= 0 && y < V;  // device ids cannot be checked by the caller: out of range gives NaN
  cuda::RowAcc acc = cuda::row_stats<DT>(row, V, ok ? y : -1, inv, red);
  if (threadIdx.x == 0) {
    if (!ok) {
      const float nan = __int_as_float(0x7fc00000);
      logp[n] = nan;
      if (entropy) entropy[n] = nan;
      return;
    }
    cuda::RowOut r = cuda::finish_row(cuda::to_f<DT>(row[y]), acc, inv, inv_d);
    logp[n] = static_cast<float>(r.logp);
    if (entropy) entropy[n] = static_cast<float>(r.entropy);
  }
}
}  // namespace

void logprobs_cuda(const LogprobsArgs& a, cudaStream_t stream) {
  if (a.N == 0) return;
  const float inv = 1.0f / a.temperature;
  const double inv_d = 1.0 / static_cast<double>(a.temperature);
  const void* z = a.logits.data;
  dim3 grid(static_cast<unsigned>(a.N)), block(kThreads);
  switch (a.logits.dtype) {
    case DType::BF16: cuda::launch("logprobs_kernel<bf16>", logprobs_kernel<1>, grid, block, 0, stream, z, a.targets, a.V, inv, inv_d, a.logp, a.entropy); break;
    case DType::F16: cuda::launch("logprobs_kernel<f16>", logprobs_kernel<2>, grid, block, 0, stream, z, a.targets, a.V, inv, inv_d, a.logp, a.entropy); break;
    default: cuda::launch("logprobs_kernel<f32>", logprobs_kernel<0>, grid, block, 0, stream, z, a.targets, a.V, inv, inv_d, a.logp, a.entropy); break;
  }
}

}  // namespace grpo
