// Per-row softmax statistics of one row of logits, one block per row, one read of the row with
// 16-byte vector loads and an online max (spec §1). The same quantities as the CPU row kernels
// (native/kernels/row_kernels.h): with d_v = max((z_v − zmax)·inv_tau, −88),
//   s_o = Σ_{v≠y} exp(d_v),  w_o = Σ_{v≠y} exp(d_v)·d_v,
// the target excluded so that 1 − p_y = s_o / s keeps its digits when p_y ≈ 1; and finish_row()
// turns them into ℓ and H in double exactly as the CPU's finish_row does.
#pragma once
#include "common.cuh"

namespace grpo {
namespace cuda {

// Online state: m the running max of the raw logits, s and w relative to m (float per thread,
// double once merged across threads).
struct RowAcc {
  float m;
  double s, w;
};

__device__ __forceinline__ RowAcc row_merge(RowAcc a, RowAcc b, float inv) {
  float m = fmaxf(a.m, b.m);
  RowAcc r{m, 0.0, 0.0};
  if (a.s > 0) {
    double d = static_cast<double>((a.m - m) * inv), e = exp(d);
    r.s += a.s * e;
    r.w += e * (a.w + a.s * d);
  }
  if (b.s > 0) {
    double d = static_cast<double>((b.m - m) * inv), e = exp(d);
    r.s += b.s * e;
    r.w += e * (b.w + b.s * d);
  }
  return r;
}

__device__ __forceinline__ RowAcc warp_row(RowAcc v, float inv) {
  for (int o = 16; o > 0; o >>= 1) {
    RowAcc x;
    x.m = __shfl_xor_sync(0xffffffffu, v.m, o);
    x.s = __shfl_xor_sync(0xffffffffu, v.s, o);
    x.w = __shfl_xor_sync(0xffffffffu, v.w, o);
    v = row_merge(v, x, inv);
  }
  return v;
}

// The row's (zmax, s_o, w_o), every thread of the block gets it. `red` is __shared__ RowAcc[32].
template <int DT> __device__ __forceinline__ RowAcc row_stats(const void* row, int64_t V, int64_t y, float inv, RowAcc* red) {
  float m = -INFINITY, s = 0.f, w = 0.f;
  for_row<DT>(row, V, [&](int64_t v, float z) {
    if (v == y) return;
    if (z > m) {  // new running max: rescale what this thread has so far
      if (s > 0.f) {
        float d = (m - z) * inv, e = expf(d);
        w = e * (w + s * d);
        s *= e;
      }
      m = z;
    }
    if (m == -INFINITY) return;  // only −inf so far: exp(−inf) adds nothing
    float d = fmaxf((z - m) * inv, -88.f);
    float e = expf(d);
    s += e;
    w += e * d;
  });
  RowAcc a{m, s, w};
  a = warp_row(a, inv);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31u) >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = a;
  __syncthreads();
  RowAcc r = lane < nwarps ? red[lane] : RowAcc{-INFINITY, 0.0, 0.0};
  return warp_row(r, inv);
}

struct RowOut {
  double logp, entropy, s, one_minus_py;
  float zmax;
};

// ℓ and H from the sums, the CPU's finish_row (native/kernels/row_kernels.h) in double. The
// sums are relative to a max over v ≠ y; the target joins here: zmax = max(m, z_y), sums
// rescaled to it.
__device__ __forceinline__ RowOut finish_row(float z_y, RowAcc a, float inv, double inv_d) {
  RowOut o;
  float zmax = fmaxf(a.m, z_y);
  double s_o = 0, w_o = 0;
  if (a.s > 0) {
    double d = static_cast<double>((a.m - zmax) * inv), e = exp(d);
    s_o = a.s * e;
    w_o = e * (a.w + a.s * d);
  }
  double dy = (static_cast<double>(z_y) - static_cast<double>(zmax)) * inv_d;
  double ey_m1 = expm1(dy);
  double ey = ey_m1 + 1.0;
  double lse = log1p(ey_m1 + s_o);
  o.s = ey + s_o;
  o.logp = dy - lse;
  double wy = ey > 0 ? ey * dy : 0.0;
  o.entropy = lse - (w_o + wy) / o.s;
  o.one_minus_py = s_o / o.s;
  o.zmax = zmax;
  return o;
}

}  // namespace cuda
}  // namespace grpo
