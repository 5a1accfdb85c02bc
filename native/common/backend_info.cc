// backend(): what was compiled in and what is present.
#include <napi.h>

#include "cpu.h"
#include "cuda_runtime_info.h"

namespace grpo {

#ifndef GRPO_HAVE_CUDA
CudaRuntimeInfo cuda_runtime_info() {
  CudaRuntimeInfo info;
  info.error = "built without the CUDA toolkit";
  return info;
}
#endif

Napi::Object cuda_info(Napi::Env env) {
  CudaRuntimeInfo info = cuda_runtime_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", info.compiled);
  o.Set("archList", info.arch_list);
  o.Set("runtimeVersion", info.runtime_version);
  o.Set("driverVersion", info.driver_version);
  o.Set("error", info.error);
  Napi::Array devs = Napi::Array::New(env, info.devices.size());
  for (size_t i = 0; i < info.devices.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", info.devices[i].index);
    d.Set("name", info.devices[i].name);
    d.Set("computeCapability", std::to_string(info.devices[i].major) + "." + std::to_string(info.devices[i].minor));
    d.Set("totalMemory", static_cast<double>(info.devices[i].total_memory));
    devs.Set(i, d);
  }
  o.Set("devices", devs);
  return o;
}

}  // namespace grpo
