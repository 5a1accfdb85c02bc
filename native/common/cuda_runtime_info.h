// What the CUDA side reports about itself, in plain C++ (no N-API, no CUDA headers), so the
// binding can describe the backend whether or not CUDA was compiled in.
#pragma once
#include <string>
#include <vector>

namespace grpo {

struct CudaDeviceInfo {
  int index;
  std::string name;
  int major, minor;
  size_t total_memory;
};

struct CudaRuntimeInfo {
  bool compiled = false;           // cuda/ was built into this binary
  std::string arch_list;           // e.g. "75;80;86;90"
  int runtime_version = 0;         // cudart version linked in
  int driver_version = 0;          // 0 when no driver is present
  std::string error;               // why no device is usable, when none is
  std::vector<CudaDeviceInfo> devices;
};

// Defined in cuda/device.cu when built with CUDA, else in native/common/backend_info.cc.
CudaRuntimeInfo cuda_runtime_info();

}  // namespace grpo
