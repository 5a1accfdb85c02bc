// klFull on the GPU: native/ops/kl_full.h, the CPU kernel's formulas (u = z·(1/τ) in float,
// e^{u−m} and the sums in double). One block per row: block maxima of both rows, block sums
// s, s', t, then the gradient row. Reductions run in a different order than the CPU's, so the
// two agree to rounding (tested against float64), not bit for bit.
// With policy_grad (grpoLossFromLogits, klEstimator 'full', gradient 'inplace') the gradient row
// also carries the fused loss's policy term and `grad` is the policy logits themselves: every
// element is read and then written by the same thread in the last loop, after the block-wide
// reductions that read the whole row, so logits and grad are not __restrict__ (they may alias).
#include "../native/device/cuda_ops.h"
#include "common.cuh"

namespace grpo {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Max over the block; every thread gets it. `red` is __shared__ float[32].
__device__ __forceinline__ float block_max(float v, float* red) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31u) >> 5;
  v = warp_max(v);
  __syncthreads();  // `red` may still be read by a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = lane < nwarps ? red[lane] : -INFINITY;
  return warp_max(r);
}

template <int DT>
__global__ void __launch_bounds__(kThreads) kl_full_kernel(const void* logits, const void* __restrict__ ref_logits, int64_t V,
                                                           float inv_t, float temperature, const float* __restrict__ coef,
                                                           float* __restrict__ kl, void* grad, bool accumulate,
                                                           const float* __restrict__ policy_grad, const float* __restrict__ policy_grad_h,
                                                           const float* __restrict__ entropy, const int32_t* __restrict__ targets) {
  typedef typename cuda::Elem<DT>::T T;
  __shared__ float redf[32];
  __shared__ double redd[32];
  const int64_t n = blockIdx.x;
  const T* z = static_cast<const T*>(logits) + n * V;  // row n of both tensors
  const T* zr = static_cast<const T*>(ref_logits) + n * V;
  float m = -INFINITY, mr = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    m = fmaxf(m, cuda::to_f<DT>(z[v]) * inv_t);
    mr = fmaxf(mr, cuda::to_f<DT>(zr[v]) * inv_t);
  }
  m = block_max(m, redf);
  mr = block_max(mr, redf);
  double s = 0, sr = 0, t = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float u = cuda::to_f<DT>(z[v]) * inv_t, ur = cuda::to_f<DT>(zr[v]) * inv_t;
    const double e = exp(static_cast<double>(u - m));
    s += e;
    sr += exp(static_cast<double>(ur - mr));
    t += e * (static_cast<double>(u) - static_cast<double>(ur));
  }
  s = cuda::block_sum(s, redd);
  sr = cuda::block_sum(sr, redd);
  t = cuda::block_sum(t, redd);
  const double E = t / s;
  const double lse = static_cast<double>(m) + log(s), lse_r = static_cast<double>(mr) + log(sr);
  if (threadIdx.x == 0) kl[n] = static_cast<float>(E - (lse - lse_r));
  if (grad == nullptr) return;
  T* g = static_cast<T*>(grad) + n * V;
  const double inv_d = 1.0 / static_cast<double>(temperature);
  const double c = (coef != nullptr ? static_cast<double>(coef[n]) : 1.0) * inv_d;
  // the fused policy term (kl_full.h): g·(1[v=y] − p)/τ − gh·(p/τ)(log p + H), as the CPU kernel
  const double pg = policy_grad != nullptr ? static_cast<double>(policy_grad[n]) * inv_d : 0.0;
  const double pgh = policy_grad_h != nullptr ? static_cast<double>(policy_grad_h[n]) * inv_d : 0.0;
  const double H = policy_grad_h != nullptr ? static_cast<double>(entropy[n]) : 0.0;
  const int64_t y = policy_grad != nullptr ? static_cast<int64_t>(targets[n]) : -1;  // out of range: never matches
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float u = cuda::to_f<DT>(z[v]) * inv_t, ur = cuda::to_f<DT>(zr[v]) * inv_t;
    const double lp = static_cast<double>(u) - lse, p = exp(lp);
    double x = c * p * ((static_cast<double>(u) - static_cast<double>(ur)) - E);
    if (policy_grad != nullptr) x += pg * ((v == y ? 1.0 : 0.0) - p) - pgh * p * (lp + H);
    if (accumulate) x += static_cast<double>(cuda::to_f<DT>(g[v]));
    g[v] = cuda::from_f<DT>(static_cast<float>(x));
  }
}

}  // namespace

void kl_full_cuda(const KlFullArgs& a, cudaStream_t stream) {
  if (a.N == 0) return;
  const float inv_t = 1.0f / a.temperature;
  const dim3 grid(static_cast<unsigned>(a.N)), block(kThreads);
  switch (a.dtype) {
    case DType::BF16:
      cuda::launch("kl_full_kernel", kl_full_kernel<1>, grid, block, 0, stream, a.logits, a.ref_logits, a.V, inv_t, a.temperature, a.coef, a.kl, a.grad, a.accumulate,
                   a.policy_grad, a.policy_grad_h, a.entropy, a.targets);
      break;
    case DType::F16:
      cuda::launch("kl_full_kernel", kl_full_kernel<2>, grid, block, 0, stream, a.logits, a.ref_logits, a.V, inv_t, a.temperature, a.coef, a.kl, a.grad, a.accumulate,
                   a.policy_grad, a.policy_grad_h, a.entropy, a.targets);
      break;
    default:
      cuda::launch("kl_full_kernel", kl_full_kernel<0>, grid, block, 0, stream, a.logits, a.ref_logits, a.V, inv_t, a.temperature, a.coef, a.kl, a.grad, a.accumulate,
                   a.policy_grad, a.policy_grad_h, a.entropy, a.targets);
  }
}

}  // namespace grpo
