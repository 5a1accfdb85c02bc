// Status checks of CUDA runtime calls, for host code compiled by nvcc or by the C++ compiler
// (native/device). A failure throws std::runtime_error("grpo-kernels (cuda): <what>: <CUDA
// error text> (<error name>)"): the async driver turns it into a rejected Promise, the sync path
// into a JS Error. Nothing here aborts the process.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace grpo {
namespace cuda {

inline void check(cudaError_t st, const char* what) {
  if (st != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    throw std::runtime_error(std::string("grpo-kernels (cuda): ") + what + ": " + cudaGetErrorString(st) + " (" +
                             cudaGetErrorName(st) + ")");
  }
}

}  // namespace cuda
}  // namespace grpo

#define GRPO_CUDA_CHECK(expr) ::grpo::cuda::check((expr), #expr)
