// Reading an op's argument object in the binding. The TS layer (lib/ops/*.ts) has already
// validated everything with user-facing messages; these checks are the last line of defence so
// that no call, however malformed, can make a kernel read or write out of bounds.
#pragma once
#include <napi.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <string>

#include "../tensor.h"
#include "async.h"

namespace grpo {

class ArgReader {
 public:
  ArgReader(const Napi::CallbackInfo& info, Job& job) : env_(info.Env()), job_(job) {
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env_, "grpo-kernels: expected an argument object");
    obj_ = info[0].As<Napi::Object>();
  }

  bool has(const char* name) const {
    Napi::Value v = obj_.Get(name);
    return !v.IsUndefined() && !v.IsNull();
  }

  double num(const char* name) const {
    Napi::Value v = obj_.Get(name);
    if (!v.IsNumber()) fail(name, "a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  double num_or(const char* name, double dflt) const { return has(name) ? num(name) : dflt; }

  int64_t integer(const char* name, int64_t lo, int64_t hi) const {
    double d = num(name);
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || std::floor(d) != d)
      fail(name, "an integer in range");
    return static_cast<int64_t>(d);
  }

  // a * b for two validated sizes, refusing products past 2^53 (no typed array is that long).
  int64_t product(const char* name, int64_t a, int64_t b) const {
    if (a != 0 && b > (int64_t(1) << 53) / a) fail(name, "a size whose product fits in memory");
    return a * b;
  }

  bool flag(const char* name, bool dflt) const {
    Napi::Value v = obj_.Get(name);
    if (v.IsUndefined() || v.IsNull()) return dflt;
    if (!v.IsBoolean()) fail(name, "a boolean");
    return v.As<Napi::Boolean>().Value();
  }

  // A typed array of the given kind and exact element count (-1: any), pinned by the job for its
  // lifetime (async.h): its memory stays put whatever JS does with the buffer meanwhile.
  template <class T>
  T* typed(const char* name, napi_typedarray_type kind, int64_t count, bool optional = false) {
    Napi::Value v = obj_.Get(name);
    if (v.IsUndefined() || v.IsNull()) {
      if (optional) return nullptr;
      fail(name, "a typed array");
    }
    if (!v.IsTypedArray()) fail(name, "a typed array");
    napi_typedarray_type type;
    size_t length;
    void* data = job_.pin(name, v, &type, &length);
    if (type != kind) fail(name, "a typed array of another element type");
    if (count >= 0 && static_cast<int64_t>(length) != count) fail(name, "a typed array of another length");
    return static_cast<T*>(data);
  }

  // An id array the kernel indexes memory with: copied into job-owned memory now and checked in
  // the copy (every id in [lo, hi)), so a caller who changes the array after the call cannot
  // change what the kernel reads. N int32 against the N*V (or N*K) elements the op reads: free.
  template <class T>
  const T* ids(const char* name, napi_typedarray_type kind, int64_t count, int64_t lo, int64_t hi, const char* expected,
               bool optional = false) {
    const T* src = typed<T>(name, kind, count, optional);
    if (!src) return nullptr;
    T* copy = job_.own<T>(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const T y = src[i];
      if (static_cast<int64_t>(y) < lo || static_cast<int64_t>(y) >= hi) fail(name, expected);
      copy[i] = y;
    }
    return copy;
  }
  // A job-owned copy of an int32 array without a range check here (the caller checks it).
  const int32_t* copied(const char* name, int64_t count) {
    const int32_t* src = typed<int32_t>(name, napi_int32_array, count);
    int32_t* copy = job_.own<int32_t>(static_cast<size_t>(count));
    std::copy(src, src + count, copy);
    return copy;
  }

  // A host tensor whose dtype is given by the string field `<name>Dtype` ("float32", "bfloat16",
  // "float16"): Float32Array for float32, Uint16Array for the 16-bit kinds.
  TensorView float_tensor(const char* name, int64_t count) {
    std::string dt_field = std::string(name) + "Dtype";
    std::string dt = obj_.Get(dt_field).IsString() ? obj_.Get(dt_field).As<Napi::String>().Utf8Value() : "float32";
    TensorView t;
    t.numel = count;
    if (dt == "float32") {
      t.dtype = DType::F32;
      t.data = typed<float>(name, napi_float32_array, count);
    } else if (dt == "bfloat16" || dt == "float16") {
      t.dtype = dt == "bfloat16" ? DType::BF16 : DType::F16;
      t.data = typed<uint16_t>(name, napi_uint16_array, count);
    } else {
      fail(dt_field.c_str(), "'float32', 'bfloat16' or 'float16'");
    }
    return t;
  }

  [[noreturn]] void fail(const char* name, const char* expected) const {
    throw Napi::TypeError::New(env_, std::string("grpo-kernels (native): argument ") + name + " must be " + expected);
  }

  Napi::Env env() const { return env_; }

 private:
  Napi::Env env_;
  Job& job_;
  Napi::Object obj_;
};

}  // namespace grpo
