// Device detection for backend(). The CUDA runtime is linked statically, so this binary loads on
// machines without a driver; every call's status is checked and a missing driver or device is
// reported, never fatal.
#include <cuda_runtime.h>

#include "../native/common/cuda_runtime_info.h"

#ifndef GRPO_CUDA_ARCH_LIST
#define GRPO_CUDA_ARCH_LIST ""
#endif

namespace grpo {

CudaRuntimeInfo cuda_runtime_info() {
  CudaRuntimeInfo info;
  info.compiled = true;
  info.arch_list = GRPO_CUDA_ARCH_LIST;
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  int count = 0;
  cudaError_t st = cudaGetDeviceCount(&count);
  if (st != cudaSuccess) {
    info.error = cudaGetErrorString(st);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    info.devices.push_back({i, p.name, p.major, p.minor, p.totalGlobalMem});
  }
  if (count == 0) info.error = "no CUDA device present";
  return info;
}

}  // namespace grpo

// ---- the scratch buffer of cuda/common.cuh -------------------------------------------------------
#include <mutex>

#include "common.cuh"

namespace grpo {
namespace cuda {

void* workspace(size_t bytes, cudaStream_t s, int slot) {
  static std::mutex mu;
  static void* buf[kWorkspaceSlots] = {};
  static size_t cap[kWorkspaceSlots] = {};
  std::lock_guard<std::mutex> g(mu);
  if (bytes > cap[slot]) {
    if (buf[slot]) {
      check(cudaStreamSynchronize(s), "cudaStreamSynchronize (workspace)");  // earlier work may still read it
      check(cudaFree(buf[slot]), "cudaFree (workspace)");
      buf[slot] = nullptr;
      cap[slot] = 0;
    }
    size_t want = bytes < (1u << 20) ? (1u << 20) : bytes + bytes / 4;
    check(cudaMalloc(&buf[slot], want), "cudaMalloc (workspace)");
    cap[slot] = want;
  }
  return buf[slot];
}

}  // namespace cuda
}  // namespace grpo
