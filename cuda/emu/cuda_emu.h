// Test-only CUDA emulation: the CUDA vocabulary the kernels in cuda/*.cu use, defined for the
// host compiler, so the real kernel sources run on the CPU in `npm test` (no GPU in CI).
//
// Force-included (-include cuda_emu.h) when a .cu file is compiled as C++ for the emulator
// addon (CMake option GRPO_CUDA_EMU). The model:
//   - a launch runs the grid's blocks one after another; each block runs blockDim threads, each
//     thread a fiber (its own stack and registers) on the launching OS thread, scheduled
//     cooperatively: a thread runs until it reaches a barrier or returns;
//   - __syncthreads() is a real barrier: no thread of the block passes it until every live
//     thread reached it (threads that returned count as arrived, as on hardware); a thread
//     waiting at __syncthreads while another waits at a warp operation is reported as a
//     barrier divergence (an error, not a hang);
//   - warp shuffles and votes exchange values through a per-warp slot array between two
//     warp-wide barriers; reading a lane that did not write (exited) gives NaN bits;
//   - __shared__ is `static` (safe: one block runs at a time, launches are serialised), in a
//     section poisoned before every block, as is dynamic shared memory;
//   - atomics are __atomic builtins on the same memory;
//   - cudaMalloc returns poisoned memory (0xFF bytes: NaN floats, -1 ints) between poisoned red
//     zones; a launch that wrote into a red zone fails with cudaErrorIllegalAddress.
// Between two barriers the block's threads run in a configurable order (forward, reverse, or a
// seeded shuffle: grpo_emu::set_order), so a missing barrier changes the result
// deterministically instead of occasionally.
#pragma once
#ifndef GRPO_CUDA_EMU
#define GRPO_CUDA_EMU 1
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>

// ---- qualifiers ------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
// Static shared arrays live in one ELF section, which the launch fills with poison (NaN bytes)
// before every block: a read of shared memory no thread of this block wrote shows up as NaN.
#define __shared__ static __attribute__((section("grpo_emu_shared")))
#define __constant__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __CUDA_EMU__ 1

// ---- vector types ----------------------------------------------------------------------------
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) double2 { double x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// ---- the cudart subset -------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorLaunchFailure = 4,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorIllegalAddress = 700,
  cudaErrorAssert = 710,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
struct CUstream_st { int id; };
struct CUevent_st { double t; };
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;
typedef void (*cudaHostFn_t)(void*);
#define cudaStreamNonBlocking 0x01
#define cudaStreamDefault 0x00
#define cudaEventDefault 0x00

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int major, minor;
  int multiProcessorCount;
  int maxThreadsPerBlock;
  int warpSize;
  int memoryBusWidth;
  int memoryClockRate;
};

#define CUDART_VERSION 13000

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int* dev);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T> inline cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* data);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);

// ---- the thread model ------------------------------------------------------------------------
namespace grpo_emu {

enum Order : int { kForward = 0, kReverse = 1, kShuffle = 2 };
void set_order(int order, uint32_t seed = 0);  // how threads are interleaved between barriers
int order();
// Makes the next launch fail with `err` without running (tests of the error paths).
void fail_next_launch(cudaError_t err);

// Runs `body` as the kernel of a <<<grid, block, shmem>>> launch; returns the launch status
// (also recorded for cudaGetLastError).
cudaError_t launch(dim3 grid, dim3 block, size_t shmem, cudaStream_t s, const std::function<void()>& body);

// Per-thread state of the running launch (set by the scheduler on every switch).
struct Ctx {
  uint3 tid, bid;
  dim3 bdim, gdim;
  unsigned lane, warp;
  unsigned char* dyn_shared;
};
extern thread_local Ctx ctx;

void syncthreads();
void syncwarp();
// One exchange round among the warp's live lanes: every lane publishes `v` (8 bytes) and reads
// lane `src`'s value; returns false when `src` did not publish (exited / outside the block).
bool warp_exchange(uint64_t v, unsigned src, uint64_t* out);
unsigned warp_ballot(bool pred);
unsigned active_mask();
void threadfence();

// Live device bytes and allocations (emulated cudaMalloc), for leak tests.
int64_t live_bytes();
int64_t live_allocs();
int64_t launches();

}  // namespace grpo_emu

#define threadIdx (grpo_emu::ctx.tid)
#define blockIdx (grpo_emu::ctx.bid)
#define blockDim (grpo_emu::ctx.bdim)
#define gridDim (grpo_emu::ctx.gdim)
#define warpSize 32

// Dynamic shared memory: `GRPO_DYN_SHARED(float, smem);` declares a pointer to the launch's
// dynamic shared buffer (cuda/common.cuh gives the nvcc spelling).
#define GRPO_DYN_SHARED(T, name) T* name = reinterpret_cast<T*>(grpo_emu::ctx.dyn_shared)

inline void __syncthreads() { grpo_emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { grpo_emu::syncwarp(); }
inline void __threadfence() { grpo_emu::threadfence(); }
inline void __threadfence_block() { grpo_emu::threadfence(); }
inline unsigned __activemask() { return grpo_emu::active_mask(); }

namespace grpo_emu {
template <class T> inline T shfl_from(T v, unsigned src) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  uint64_t in = 0, out = 0;
  std::memcpy(&in, &v, sizeof(T));
  if (!warp_exchange(in, src, &out)) out = ~uint64_t(0);  // NaN / -1: an exited lane's value is garbage
  T r;
  std::memcpy(&r, &out, sizeof(T));
  return r;
}
}  // namespace grpo_emu

template <class T> inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  unsigned lane = grpo_emu::ctx.lane, seg = lane & ~unsigned(width - 1);
  return grpo_emu::shfl_from(v, seg + (unsigned(src) & unsigned(width - 1)));
}
template <class T> inline T __shfl_xor_sync(unsigned, T v, int m, int width = 32) {
  unsigned lane = grpo_emu::ctx.lane, seg = lane & ~unsigned(width - 1), src = lane ^ unsigned(m);
  return grpo_emu::shfl_from(v, (src >= seg && src < seg + width) ? src : lane);
}
template <class T> inline T __shfl_down_sync(unsigned, T v, unsigned d, int width = 32) {
  unsigned lane = grpo_emu::ctx.lane, seg = lane & ~unsigned(width - 1), src = lane + d;
  return grpo_emu::shfl_from(v, src < seg + width ? src : lane);
}
template <class T> inline T __shfl_up_sync(unsigned, T v, unsigned d, int width = 32) {
  unsigned lane = grpo_emu::ctx.lane, seg = lane & ~unsigned(width - 1);
  return grpo_emu::shfl_from(v, lane >= seg + d ? lane - d : lane);
}
inline unsigned __ballot_sync(unsigned, int p) { return grpo_emu::warp_ballot(p != 0); }
inline int __any_sync(unsigned, int p) { return grpo_emu::warp_ballot(p != 0) != 0; }
inline int __all_sync(unsigned, int p) {
  unsigned live = grpo_emu::active_mask();
  return (grpo_emu::warp_ballot(p != 0) & live) == live;
}

// ---- atomics (on the same memory; return the old value) ----------------------------------------
template <class T> inline T grpo_emu_atomic_add_int(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int atomicAdd(int* p, int v) { return grpo_emu_atomic_add_int(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return grpo_emu_atomic_add_int(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return grpo_emu_atomic_add_int(p, v); }
template <class F, class U> inline F grpo_emu_atomic_add_fp(F* p, F v) {
  U* q = reinterpret_cast<U*>(p);
  U old = __atomic_load_n(q, __ATOMIC_SEQ_CST), nw;
  F f;
  do {
    std::memcpy(&f, &old, sizeof(F));
    F s = f + v;
    std::memcpy(&nw, &s, sizeof(F));
  } while (!__atomic_compare_exchange_n(q, &old, nw, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
  return f;
}
inline float atomicAdd(float* p, float v) { return grpo_emu_atomic_add_fp<float, uint32_t>(p, v); }
inline double atomicAdd(double* p, double v) { return grpo_emu_atomic_add_fp<double, uint64_t>(p, v); }
template <class T> inline T grpo_emu_atomic_max(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}
template <class T> inline T grpo_emu_atomic_min(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}
inline int atomicMax(int* p, int v) { return grpo_emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return grpo_emu_atomic_max(p, v); }
inline int atomicMin(int* p, int v) { return grpo_emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return grpo_emu_atomic_min(p, v); }
inline int atomicCAS(int* p, int cmp, int v) { __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return cmp; }
inline unsigned atomicCAS(unsigned* p, unsigned cmp, unsigned v) { __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return cmp; }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long cmp, unsigned long long v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return cmp;
}
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }

// ---- intrinsics --------------------------------------------------------------------------------
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline long long __double_as_longlong(double d) { long long u; std::memcpy(&u, &d, 8); return u; }
inline double __longlong_as_double(long long u) { double d; std::memcpy(&d, &u, 8); return d; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32); }
template <class T> inline T __ldg(const T* p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
using std::expm1;
using std::log1p;
