// Self-test of the CUDA emulator (built only into the emulator addon): small kernels that use
// each emulated feature, each checked against a host computation, and deliberately broken
// kernels (a missing barrier, an off-by-one bound) that the emulator must catch.
// test/cuda_emu.test.ts runs them under every thread order.
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "../common.cuh"

namespace grpo {
namespace emu_selftest {

constexpr int kThreads = 128;

// Tree reduction in shared memory. `broken`: the barrier between filling the shared array and
// the first reduction step is missing (the classic race).
__global__ void reduce_shared(const float* x, int n, float* out, bool broken) {
  __shared__ float s[kThreads];
  const int tid = threadIdx.x;
  float v = 0.f;
  for (int i = blockIdx.x * blockDim.x + tid; i < n; i += gridDim.x * blockDim.x) v += x[i];
  s[tid] = v;
  if (!broken) __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (tid < stride) s[tid] += s[tid + stride];
    __syncthreads();
  }
  if (tid == 0) atomicAdd(out, s[0]);
}

// Sum of x[0..n): `broken` reads one element past the end (i <= n), the red zone (NaN).
__global__ void sum_bounds(const float* x, int n, float* out, bool broken) {
  __shared__ float red[32];
  float v = 0.f;
  const int end = broken ? n + 1 : n;
  for (int i = threadIdx.x; i < end; i += blockDim.x) v += x[i];
  v = cuda::block_sum(v, red);
  if (threadIdx.x == 0) *out = v;
}

// y = 2x: `broken` writes one element past the end.
__global__ void scale_bounds(const float* x, int n, float* y, bool broken) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (broken ? i <= n : i < n) y[i] = 2.f * (i < n ? x[i] : 0.f);
}

// Per thread: warp sums by xor and by down-shuffles, a broadcast, up-shuffle, ballot / any / all.
__global__ void warp_ops(int* out) {
  const unsigned lane = threadIdx.x & 31u;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  int x = static_cast<int>(lane) + 1;
  int xs = cuda::warp_sum(x);
  int ds = x;
  for (int o = 16; o > 0; o >>= 1) ds += __shfl_down_sync(0xffffffffu, ds, o);
  int bc = __shfl_sync(0xffffffffu, x * 10, 5);
  int up = __shfl_up_sync(0xffffffffu, x, 1);
  unsigned bal = __ballot_sync(0xffffffffu, lane & 1u);
  int any = __any_sync(0xffffffffu, lane == 7);
  int all = __all_sync(0xffffffffu, lane < 31);
  int seg = __shfl_xor_sync(0xffffffffu, x, 1, 8);
  out[t * 8 + 0] = xs;
  out[t * 8 + 1] = __shfl_sync(0xffffffffu, ds, 0);
  out[t * 8 + 2] = bc;
  out[t * 8 + 3] = up;
  out[t * 8 + 4] = static_cast<int>(bal);
  out[t * 8 + 5] = any;
  out[t * 8 + 6] = all;
  out[t * 8 + 7] = seg;
}

// Histogram with integer atomics, a float atomic sum and an atomic max; dynamic shared memory
// holds the block's private histogram.
__global__ void atomics(const int* x, int n, int bins, int* hist, float* sum, int* mx) {
  GRPO_DYN_SHARED(int, local);
  for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    atomicAdd(&local[x[i] % bins], 1);
    atomicAdd(sum, static_cast<float>(x[i]));
    atomicMax(mx, x[i]);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += blockDim.x) atomicAdd(&hist[b], local[b]);
}

// Half of warp 0 waits at __syncthreads while the other half does a warp shuffle: undefined on
// hardware (a hang or garbage); the emulator must report it, never hang.
__global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 16)
    __syncthreads();
  else
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

namespace {

template <class T> T* dev_upload(const std::vector<T>& h) {
  T* d = nullptr;
  cuda::check(cudaMalloc(&d, h.size() * sizeof(T)), "cudaMalloc");
  cuda::check(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  return d;
}
template <class T> std::vector<T> dev_download(const T* d, size_t n) {
  std::vector<T> h(n);
  cuda::check(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return h;
}
bool close(double a, double b) { return std::fabs(a - b) <= 1e-4 * std::fmax(1.0, std::fabs(b)); }

std::string run_reduce(bool broken) {
  const int n = 1000;  // partial last block
  std::vector<float> x(n);
  double want = 0;
  for (int i = 0; i < n; ++i) want += (x[i] = static_cast<float>((i * 37) % 101) - 50.f);
  float* dx = dev_upload(x);
  float* dout = dev_upload(std::vector<float>{0.f});
  std::string r;
  try {
    cuda::launch("reduce_shared", reduce_shared, dim3(3), dim3(kThreads), 0, nullptr, static_cast<const float*>(dx), n, dout, broken);
    float got = dev_download(dout, 1)[0];
    if (!close(got, want)) r = "sum " + std::to_string(got) + " != " + std::to_string(want);
  } catch (const std::exception& e) {
    r = e.what();
  }
  cudaFree(dx);
  cudaFree(dout);
  return r;
}

std::string run_sum_bounds(bool broken) {
  const int n = 77;
  std::vector<float> x(n);
  double want = 0;
  for (int i = 0; i < n; ++i) want += (x[i] = 0.5f * static_cast<float>(i % 9));
  float* dx = dev_upload(x);
  float* dout = dev_upload(std::vector<float>{0.f});
  std::string r;
  try {
    cuda::launch("sum_bounds", sum_bounds, dim3(1), dim3(64), 0, nullptr, static_cast<const float*>(dx), n, dout, broken);
    float got = dev_download(dout, 1)[0];
    if (!close(got, want)) r = "sum " + std::to_string(got) + " != " + std::to_string(want);
  } catch (const std::exception& e) {
    r = e.what();
  }
  cudaFree(dx);
  cudaFree(dout);
  return r;
}

std::string run_scale_bounds(bool broken) {
  const int n = 100;
  std::vector<float> x(n, 1.5f);
  float* dx = dev_upload(x);
  float* dy = dev_upload(std::vector<float>(n, 0.f));
  std::string r;
  try {
    cuda::launch("scale_bounds", scale_bounds, dim3(2), dim3(64), 0, nullptr, static_cast<const float*>(dx), n, dy, broken);
    auto y = dev_download(dy, n);
    for (int i = 0; i < n; ++i)
      if (y[i] != 3.f) r = "y[" + std::to_string(i) + "] = " + std::to_string(y[i]);
  } catch (const std::exception& e) {
    r = e.what();
  }
  cudaFree(dx);
  cudaFree(dy);
  return r;
}

std::string run_warp_ops() {
  const int blocks = 2, threads = 96;
  int* dout = nullptr;
  cuda::check(cudaMalloc(&dout, blocks * threads * 8 * sizeof(int)), "cudaMalloc");
  std::string r;
  try {
    cuda::launch("warp_ops", warp_ops, dim3(blocks), dim3(threads), 0, nullptr, dout);
    auto out = dev_download(dout, blocks * threads * 8);
    for (int t = 0; t < blocks * threads && r.empty(); ++t) {
      int lane = t % 32, x = lane + 1;
      int want[8] = {528, 528, 60, lane == 0 ? x : x - 1, static_cast<int>(0xaaaaaaaau), 1, 0, (lane ^ 1) + 1};
      for (int k = 0; k < 8; ++k)
        if (out[t * 8 + k] != want[k]) {
          r = "thread " + std::to_string(t) + " result " + std::to_string(k) + ": " + std::to_string(out[t * 8 + k]) +
              " != " + std::to_string(want[k]);
          break;
        }
    }
  } catch (const std::exception& e) {
    r = e.what();
  }
  cudaFree(dout);
  return r;
}

std::string run_atomics() {
  const int n = 5000, bins = 37;
  std::vector<int> x(n);
  std::vector<int> want(bins, 0);
  double want_sum = 0;
  int want_max = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = (i * 7919) % 1013;
    want[x[i] % bins]++;
    want_sum += x[i];
    want_max = x[i] > want_max ? x[i] : want_max;
  }
  int* dx = dev_upload(x);
  int* dh = dev_upload(std::vector<int>(bins, 0));
  float* ds = dev_upload(std::vector<float>{0.f});
  int* dm = dev_upload(std::vector<int>{0});
  std::string r;
  try {
    cuda::launch("atomics", atomics, dim3(3), dim3(64), bins * sizeof(int), nullptr, static_cast<const int*>(dx), n, bins, dh, ds, dm);
    auto h = dev_download(dh, bins);
    for (int b = 0; b < bins; ++b)
      if (h[b] != want[b]) r = "bin " + std::to_string(b);
    if (!close(dev_download(ds, 1)[0], want_sum)) r = "float atomic sum";
    if (dev_download(dm, 1)[0] != want_max) r = "atomic max";
  } catch (const std::exception& e) {
    r = e.what();
  }
  cudaFree(dx);
  cudaFree(dh);
  cudaFree(ds);
  cudaFree(dm);
  return r;
}

std::string run_divergent() {
  int* dout = nullptr;
  cuda::check(cudaMalloc(&dout, 64 * sizeof(int)), "cudaMalloc");
  std::string r;
  try {
    cuda::launch("divergent_barrier", divergent_barrier, dim3(1), dim3(64), 0, nullptr, dout);
  } catch (const std::exception& e) {
    r = e.what();
  }
  cudaFree(dout);
  return r;
}

}  // namespace

// "" when the named test passed, else what went wrong. Unknown names throw.
std::string run(const std::string& name) {
  if (name == "reduce") return run_reduce(false);
  if (name == "reduce-missing-barrier") return run_reduce(true);
  if (name == "sum") return run_sum_bounds(false);
  if (name == "sum-read-past-end") return run_sum_bounds(true);
  if (name == "scale") return run_scale_bounds(false);
  if (name == "scale-write-past-end") return run_scale_bounds(true);
  if (name == "warp") return run_warp_ops();
  if (name == "atomics") return run_atomics();
  if (name == "divergent-barrier") return run_divergent();
  throw std::runtime_error("unknown emulator self-test " + name);
}

}  // namespace emu_selftest
}  // namespace grpo
