// Reading an op's argument object in the binding. The TS layer (lib/ops/*.ts) has already
// validated everything with user-facing messages; these checks are the last line of defence so
// that no call, however malformed, can make a kernel read or write out of bounds.
#pragma once
#include <napi.h>

#include <cmath>
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

  // A typed array of the given kind and exact element count (-1: any). Kept alive by the job.
  template <class T>
  T* typed(const char* name, napi_typedarray_type kind, int64_t count, bool optional = false) {
    Napi::Value v = obj_.Get(name);
    if (v.IsUndefined() || v.IsNull()) {
      if (optional) return nullptr;
      fail(name, "a typed array");
    }
    if (!v.IsTypedArray()) fail(name, "a typed array");
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != kind) fail(name, "a typed array of another element type");
    if (count >= 0 && static_cast<int64_t>(ta.ElementLength()) != count) fail(name, "a typed array of another length");
    job_.hold(v);
    auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data());
    return reinterpret_cast<T*>(base + ta.ByteOffset());
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
