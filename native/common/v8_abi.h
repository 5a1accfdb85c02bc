// The few V8 entry points the addon uses beyond N-API (pin.cc, buffer_pool.cc), declared here
// because the addon is built against node-api-headers, which carry no V8 headers. Node exports
// them for addons and their signatures have not changed since V8 9 (Node 16). A napi_value is
// the address a v8::Local<T> holds (node's v8impl::JsValueFromV8LocalValue), which is exactly
// the `this` a V8 API method takes. pin_selftest() checks the whole contract when the addon
// loads, so a Node that broke it fails loudly at require() instead of misbehaving later.
// Include only from .cc files that do not include real V8 headers.
#pragma once
#include <cstddef>
#include <memory>

namespace v8 {
class Isolate {
 public:
  static Isolate* GetCurrent();
  Isolate() = delete;
};
template <class T>
class Local {  // layout of v8::Local: one pointer (a handle slot), trivially copyable
 public:
  T* val_;
};
class BackingStore {
 public:
  void* Data() const;
  size_t ByteLength() const;
  bool IsShared() const;
  bool IsResizableByUserJavaScript() const;
  BackingStore() = delete;
};
class ArrayBuffer {
 public:
  std::shared_ptr<BackingStore> GetBackingStore();
  static Local<ArrayBuffer> New(Isolate* isolate, std::shared_ptr<BackingStore> backing_store);
  ArrayBuffer() = delete;
};
}  // namespace v8

#include <node_api.h>

namespace grpo {
// A share of the memory of ArrayBuffer `array_buffer` (alive and in place while held).
std::shared_ptr<v8::BackingStore> backing_store(napi_value array_buffer);
// A new ArrayBuffer over `store` (in the current handle scope).
napi_value array_buffer_over(const std::shared_ptr<v8::BackingStore>& store);
}  // namespace grpo
