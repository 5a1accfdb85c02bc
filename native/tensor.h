// A non-owning view of a tensor: pointer, dtype, shape, device. Kernels see these (or plain
// pointers and sizes), never N-API types.
#pragma once
#include <cstdint>

namespace grpo {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, U8 = 4, F64 = 5 };
enum class Device : int { CPU = 0, CUDA = 1 };

inline int dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::U8: return 1;
    case DType::F64: return 8;
  }
  return 0;
}

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int64_t numel = 0;  // element count (the binding checks it against the byte length)

  template <class T> T* as() const { return static_cast<T*>(data); }
  bool empty() const { return data == nullptr; }
};

}  // namespace grpo
