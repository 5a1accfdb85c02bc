// Shared pieces of the CUDA kernels: the launch helper (the one place that spells <<< >>>, so
// the emulator in cuda/emu can stand in for it), status checks that throw the CUDA error text,
// warp/block reductions, and vector loads of f32 / bf16 / f16 rows.
//
// Kernels stay in the subset cuda/emu supports: blocks of a multiple of 32 threads, __shared__
// arrays, __syncthreads, __shfl_*_sync with a full mask, atomics; no inline PTX.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../native/common/half.h"
#include "check.h"

#ifndef GRPO_CUDA_EMU
#define GRPO_DYN_SHARED(T, name) extern __shared__ __align__(16) unsigned char grpo_dyn_smem_[]; T* name = reinterpret_cast<T*>(grpo_dyn_smem_)
#endif

namespace grpo {
namespace cuda {

// kernel<<<grid, block, shmem, stream>>>(args...) plus the launch status check.
template <class... P, class... A>
inline void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem, cudaStream_t s, A... args) {
#ifdef GRPO_CUDA_EMU
  cudaError_t st = grpo_emu::launch(grid, block, shmem, s, [=]() { kernel(args...); });
#else
  kernel<<<grid, block, shmem, s>>>(args...);
  cudaError_t st = cudaGetLastError();
#endif
  check(st, name);
}

inline unsigned blocks_for(int64_t n, unsigned threads, unsigned cap = 65535u * 8u) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < cap ? b : cap);
}

// Scratch buffers on the device reused across calls (grow, never shrink): kernels never
// allocate per call. Ops on the addon's stream run in order, so one buffer per slot serves them
// all; slot 1 is the loss core's (cuda/grpo_loss.cu), which runs inside the fused op.
constexpr int kWorkspaceSlots = 2;
void* workspace(size_t bytes, cudaStream_t s, int slot = 0);

// ---- reductions (blockDim.x a multiple of 32, at most 1024) ----------------------------------

template <class T> __device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block; every thread gets the result. `red` is __shared__ T[32].
template <class T> __device__ __forceinline__ T block_sum(T v, T* red) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31u) >> 5;
  v = warp_sum(v);
  __syncthreads();  // `red` may still be read by a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? red[lane] : T(0);
  return warp_sum(r);
}

// Online softmax state of a set of values u: m = max u, s = sum exp(u - m), t = sum exp(u - m) u.
struct Lse {
  float m, s, t;
};
__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
  float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.f, 0.f};
  float ea = expf(a.m - m), eb = expf(b.m - m);
  return {m, a.s * ea + b.s * eb, a.t * ea + b.t * eb};
}
__device__ __forceinline__ Lse warp_lse(Lse v) {
  for (int o = 16; o > 0; o >>= 1) {
    Lse w;
    w.m = __shfl_xor_sync(0xffffffffu, v.m, o);
    w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
    w.t = __shfl_xor_sync(0xffffffffu, v.t, o);
    v = lse_merge(v, w);
  }
  return v;
}
// Merge over the block; every thread gets the result. `red` is __shared__ Lse[32].
__device__ __forceinline__ Lse block_lse(Lse v, Lse* red) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31u) >> 5;
  v = warp_lse(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  Lse r = lane < nwarps ? red[lane] : Lse{-INFINITY, 0.f, 0.f};
  return warp_lse(r);
}

// ---- loads of one row as float, 16 bytes at a time --------------------------------------------
// DT: 0 float32, 1 bfloat16, 2 float16 (grpo::DType order). A row of V elements starting at
// `row` need not be 16-byte aligned (V % 8 != 0): a scalar head reaches alignment, the body is
// 16-byte vector loads, a scalar tail finishes. f(v, x) is called for every element once.
template <int DT> struct Elem;
template <> struct Elem<0> { typedef float T; static constexpr int kVec = 4; };
template <> struct Elem<1> { typedef uint16_t T; static constexpr int kVec = 8; };
template <> struct Elem<2> { typedef uint16_t T; static constexpr int kVec = 8; };

template <int DT> __device__ __forceinline__ float to_f(typename Elem<DT>::T x);
template <> __device__ __forceinline__ float to_f<0>(float x) { return x; }
template <> __device__ __forceinline__ float to_f<1>(uint16_t x) { return bf16_to_float(x); }
template <> __device__ __forceinline__ float to_f<2>(uint16_t x) { return f16_to_float(x); }

template <int DT> __device__ __forceinline__ typename Elem<DT>::T from_f(float x);
template <> __device__ __forceinline__ float from_f<0>(float x) { return x; }
template <> __device__ __forceinline__ uint16_t from_f<1>(float x) { return float_to_bf16(x); }
template <> __device__ __forceinline__ uint16_t from_f<2>(float x) { return float_to_f16(x); }

// Number of leading elements before the first 16-byte boundary (capped at V).
template <int DT> __device__ __forceinline__ int64_t head_len(const void* row, int64_t V) {
  const int64_t esz = sizeof(typename Elem<DT>::T);
  int64_t mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) & 15u);
  int64_t h = mis == 0 ? 0 : (16 - mis) / esz;
  return h < V ? h : V;
}

// Calls f(v, value) for the elements of the row this thread owns (block-strided 16-byte chunks).
template <int DT, class F> __device__ __forceinline__ void for_row(const void* rowp, int64_t V, F&& f) {
  typedef typename Elem<DT>::T T;
  constexpr int K = Elem<DT>::kVec;
  const T* row = static_cast<const T*>(rowp);
  const int64_t head = head_len<DT>(row, V);
  for (int64_t v = threadIdx.x; v < head; v += blockDim.x) f(v, to_f<DT>(row[v]));
  const int64_t nvec = (V - head) / K;
  const uint4* body = reinterpret_cast<const uint4*>(row + head);
  for (int64_t c = threadIdx.x; c < nvec; c += blockDim.x) {
    uint4 q = body[c];
    T x[K];
    memcpy(x, &q, 16);
    const int64_t v0 = head + c * K;
#pragma unroll
    for (int k = 0; k < K; ++k) f(v0 + k, to_f<DT>(x[k]));
  }
  for (int64_t v = head + nvec * K + threadIdx.x; v < V; v += blockDim.x) f(v, to_f<DT>(row[v]));
}

// out[v] = f(v, row[v]) over the row this block owns, with the same head / 16-byte body / tail
// split as for_row (out and row have the same dtype and alignment: they are the same buffer or
// two [N, V] buffers). Each element is read and written by one thread: out may alias row.
template <int DT, class F> __device__ __forceinline__ void map_row(const void* rowp, void* outp, int64_t V, F&& f) {
  typedef typename Elem<DT>::T T;
  constexpr int K = Elem<DT>::kVec;
  const T* row = static_cast<const T*>(rowp);
  T* out = static_cast<T*>(outp);
  const int64_t head = head_len<DT>(row, V);
  for (int64_t v = threadIdx.x; v < head; v += blockDim.x) out[v] = from_f<DT>(f(v, to_f<DT>(row[v])));
  const int64_t nvec = (V - head) / K;
  const uint4* body = reinterpret_cast<const uint4*>(row + head);
  uint4* obody = reinterpret_cast<uint4*>(out + head);
  for (int64_t c = threadIdx.x; c < nvec; c += blockDim.x) {
    uint4 q = body[c];
    T x[K];
    memcpy(x, &q, 16);
    const int64_t v0 = head + c * K;
#pragma unroll
    for (int k = 0; k < K; ++k) x[k] = from_f<DT>(f(v0 + k, to_f<DT>(x[k])));
    memcpy(&q, x, 16);
    obody[c] = q;
  }
  for (int64_t v = head + nvec * K + threadIdx.x; v < V; v += blockDim.x) out[v] = from_f<DT>(f(v, to_f<DT>(row[v])));
}

}  // namespace cuda
}  // namespace grpo
