// Per-row softmax statistics of one row of logits, one block per row, one read of the row with
// 16-byte vector loads and an online max (spec §1). The same quantities as the CPU row kernels
// (native/kernels/row_kernels.h): with d_v = max((z_v − zmax)·inv_tau, −88),
//   s_r = Σ_{d_v<0} exp(d_v),  w = Σ_v exp(d_v)·d_v,  k = #{v : d_v = 0},
// over the whole row (the target included: H does not depend on it), the max's exact 1 counted in
// k so that s − 1 keeps its digits; finish_row() turns them into ℓ and H in double with the CPU's
// formula (native/common/row_finish.h).
#pragma once
#include "../native/common/row_finish.h"
#include "common.cuh"

namespace grpo {
namespace cuda {

// Online state: m the running max of the raw logits, s, w, k relative to m (float per thread,
// double once merged across threads).
struct RowAcc {
  float m;
  double s, w, k;
};

// One side of a merge rebased to the merged max m: unchanged if it had m, else every term gets
// d' = d + δ < 0 (its k ones join s).
__device__ __forceinline__ void row_merge_into(RowAcc& r, const RowAcc& a, float m, float inv) {
  if (a.m == m) {
    r.s += a.s;
    r.w += a.w;
    r.k += a.k;
  } else if (a.s > 0 || a.k > 0) {
    double d = static_cast<double>((a.m - m) * inv), e = exp(d), t = a.s + a.k;
    r.s += t * e;
    r.w += e * (a.w + t * d);
  }
}

__device__ __forceinline__ RowAcc row_merge(RowAcc a, RowAcc b, float inv) {
  float m = fmaxf(a.m, b.m);
  RowAcc r{m, 0.0, 0.0, 0.0};
  row_merge_into(r, a, m, inv);
  row_merge_into(r, b, m, inv);
  return r;
}

__device__ __forceinline__ RowAcc warp_row(RowAcc v, float inv) {
  for (int o = 16; o > 0; o >>= 1) {
    RowAcc x;
    x.m = __shfl_xor_sync(0xffffffffu, v.m, o);
    x.s = __shfl_xor_sync(0xffffffffu, v.s, o);
    x.w = __shfl_xor_sync(0xffffffffu, v.w, o);
    x.k = __shfl_xor_sync(0xffffffffu, v.k, o);
    v = row_merge(v, x, inv);
  }
  return v;
}

// The row's (zmax, s_r, w, k), every thread of the block gets it. `red` is __shared__ RowAcc[32].
// y is not used (the sums cover the whole row).
template <int DT> __device__ __forceinline__ RowAcc row_stats(const void* row, int64_t V, int64_t y, float inv, RowAcc* red) {
  (void)y;
  float m = -INFINITY, s = 0.f, w = 0.f, k = 0.f;
  for_row<DT>(row, V, [&](int64_t, float z) {
    if (z > m) {  // new running max: rescale what this thread has so far (d' = d + δ < 0)
      if (s > 0.f || k > 0.f) {
        float d = (m - z) * inv, e = expf(d), t = s + k;
        w = e * (w + t * d);
        s = t * e;
        k = 0.f;
      }
      m = z;
    }
    if (m == -INFINITY) return;  // only −inf so far: exp(−inf) adds nothing
    float d = fmaxf((z - m) * inv, -88.f);
    if (d == 0.f) {
      k += 1.f;
    } else {
      float e = expf(d);
      s += e;
      w += e * d;
    }
  });
  RowAcc a{m, s, w, k};
  a = warp_row(a, inv);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31u) >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = a;
  __syncthreads();
  RowAcc r = lane < nwarps ? red[lane] : RowAcc{-INFINITY, 0.0, 0.0, 0.0};
  return warp_row(r, inv);
}

struct RowOut {
  double logp, entropy, s, one_minus_py;
  float zmax;
};

// ℓ, H, s and 1 − p_y from the sums (row_finish.h, the CPU's formula).
__device__ __forceinline__ RowOut finish_row(float z_y, RowAcc a, float inv, double inv_d) {
  (void)inv;
  double dy = (static_cast<double>(z_y) - static_cast<double>(a.m)) * inv_d;
  RowResult f = finish_row_sums(dy, a.s, a.w, a.k);
  RowOut o;
  o.logp = f.logp;
  o.entropy = f.entropy;
  o.s = f.s;
  o.one_minus_py = f.one_minus_py;
  o.zmax = a.m;
  return o;
}

}  // namespace cuda
}  // namespace grpo
