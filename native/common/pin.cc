#include "pin.h"

#include <cstdint>
#include <cstring>

#include "v8_abi.h"

namespace grpo {
namespace {

size_t element_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

}  // namespace

std::shared_ptr<v8::BackingStore> backing_store(napi_value array_buffer) {
  return reinterpret_cast<v8::ArrayBuffer*>(array_buffer)->GetBackingStore();
}

napi_value array_buffer_over(const std::shared_ptr<v8::BackingStore>& store) {
  v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(v8::Isolate::GetCurrent(), store);
  napi_value v;
  static_assert(sizeof(v) == sizeof(ab), "a napi_value is a v8::Local");
  std::memcpy(&v, &ab, sizeof(v));
  return v;
}

PinStatus pin_typed_array(napi_env env, napi_value value, Pinned* out) {
  bool is_ta = false;
  if (napi_is_typedarray(env, value, &is_ta) != napi_ok || !is_ta) return PinStatus::NotTypedArray;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, value, &out->type, &out->length, &out->data, &out->buffer, &offset) != napi_ok)
    return PinStatus::NotTypedArray;
  bool is_ab = false;
  if (napi_is_arraybuffer(env, out->buffer, &is_ab) != napi_ok) return PinStatus::NotTypedArray;
  if (!is_ab) return PinStatus::Shared;  // a typed array's buffer is an ArrayBuffer or a SharedArrayBuffer
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, out->buffer, &detached) != napi_ok || detached) return PinStatus::Detached;
  std::shared_ptr<v8::BackingStore> bs = backing_store(out->buffer);
  if (!bs) return PinStatus::Detached;
  if (bs->IsShared()) return PinStatus::Shared;
  if (bs->IsResizableByUserJavaScript()) return PinStatus::Resizable;
  const size_t bytes = out->length * element_size(out->type);
  if (bytes > 0) {
    const auto* lo = static_cast<const uint8_t*>(bs->Data());
    const auto* p = static_cast<const uint8_t*>(out->data);
    if (!lo || p < lo || offset > bs->ByteLength() || bytes > bs->ByteLength() - offset || p != lo + offset) return PinStatus::Detached;
  }
  out->store = std::move(bs);
  return PinStatus::Ok;
}

const char* pin_expectation(PinStatus s) {
  switch (s) {
    case PinStatus::NotTypedArray:
      return "a typed array";
    case PinStatus::Shared:
      return "a typed array over an ArrayBuffer, not a SharedArrayBuffer (other threads could change it while the kernel reads it; copy it into an ArrayBuffer)";
    case PinStatus::Resizable:
      return "a typed array over a fixed-length ArrayBuffer, not a resizable one (a resize while the op runs would unmap its memory; copy it or use new ArrayBuffer(n))";
    case PinStatus::Detached:
      return "a typed array whose ArrayBuffer is not detached (it was transferred or detached)";
    default:
      return "a typed array";
  }
}

std::string pin_selftest(napi_env env) {
  void* data = nullptr;
  napi_value ab;
  if (napi_create_arraybuffer(env, 64, &data, &ab) != napi_ok) return "napi_create_arraybuffer failed";
  std::memset(data, 0x5a, 64);
  std::shared_ptr<v8::BackingStore> bs = backing_store(ab);
  if (!bs || bs->Data() != data || bs->ByteLength() != 64 || bs->IsShared() || bs->IsResizableByUserJavaScript())
    return "v8::ArrayBuffer::GetBackingStore does not describe an ArrayBuffer's memory";
  // A second ArrayBuffer over the same memory (buffer_pool.cc) must see it.
  napi_value ab2 = array_buffer_over(bs);
  void* data2 = nullptr;
  size_t len2 = 0;
  bool is_ab2 = false;
  if (!ab2 || napi_is_arraybuffer(env, ab2, &is_ab2) != napi_ok || !is_ab2 || napi_get_arraybuffer_info(env, ab2, &data2, &len2) != napi_ok ||
      data2 != data || len2 != 64)
    return "v8::ArrayBuffer::New(isolate, backing store) does not give an ArrayBuffer over that memory";
  if (napi_detach_arraybuffer(env, ab) != napi_ok) return "napi_detach_arraybuffer failed";
  const auto* p = static_cast<const uint8_t*>(bs->Data());
  if (p != data || p[0] != 0x5a || p[63] != 0x5a) return "a backing store share does not keep a detached ArrayBuffer's memory";
  // A resizable ArrayBuffer must be recognised (refused by pin_typed_array).
  napi_value src, rab;
  const char* js = "(() => { try { return new ArrayBuffer(8, { maxByteLength: 16 }); } catch (e) { return null; } })()";
  bool is_ab = false;
  if (napi_create_string_utf8(env, js, NAPI_AUTO_LENGTH, &src) == napi_ok && napi_run_script(env, src, &rab) == napi_ok)
    napi_is_arraybuffer(env, rab, &is_ab);
  else {  // no script here (an embedder's policy): this part of the check is skipped
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  if (is_ab) {
    napi_value key, resizable;
    bool flag = false;
    napi_create_string_utf8(env, "resizable", NAPI_AUTO_LENGTH, &key);
    if (napi_get_property(env, rab, key, &resizable) == napi_ok) napi_get_value_bool(env, resizable, &flag);
    std::shared_ptr<v8::BackingStore> rbs = backing_store(rab);
    if (flag && (!rbs || !rbs->IsResizableByUserJavaScript()))
      return "v8::BackingStore::IsResizableByUserJavaScript does not recognise a resizable ArrayBuffer";
  }
  return "";
}

}  // namespace grpo
