// A device tensor as another feature's native code sees it (native/parallel/nccl.cc): shares of
// its memory and of this env's stream, kept by the job for the op's lifetime (so dispose() or
// worker teardown cannot free either under it), the raw pointer, dtype and length.
// device_binding.cc defines device_tensor_ref (builds with the CUDA backend only).
#pragma once
#include <napi.h>

#include <memory>

#include "../tensor.h"

namespace grpo {

struct DeviceTensorRef {
  std::shared_ptr<void> mem;
  void* ptr = nullptr;
  DType dtype = DType::F32;
  int64_t numel = 0;
  std::shared_ptr<void> stream_keep;
  void* stream = nullptr;  // cudaStream_t of this env (the stream every op of the addon runs on)
};

// Throws a TypeError naming `name` when v is not a live device tensor.
DeviceTensorRef device_tensor_ref(Napi::Env env, const Napi::Value& v, const char* name);

}  // namespace grpo
