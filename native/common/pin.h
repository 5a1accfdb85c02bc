// Pinning a caller's typed array for the duration of an async op.
//
// N-API can keep a typed array object alive (a reference), but not its memory: JS can transfer
// the ArrayBuffer (structuredClone/postMessage with a transfer list, ArrayBuffer.prototype.
// transfer), after which the memory belongs to another ArrayBuffer that may be collected while a
// kernel still reads or writes it, or shrink a resizable ArrayBuffer under the kernel. pin_typed_
// array() takes a share of the ArrayBuffer's V8 backing store (the memory stays alive and in place
// whatever JS does with the ArrayBuffer) and refuses the buffers that no share can make stable:
// SharedArrayBuffers (other threads write them while the kernel reads) and resizable
// ArrayBuffers (a shrink unmaps pages under the kernel).
#pragma once
#include <node_api.h>

#include <cstddef>
#include <memory>
#include <string>

namespace grpo {

enum class PinStatus { Ok, NotTypedArray, Shared, Resizable, Detached };

struct Pinned {
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;         // elements
  void* data = nullptr;      // first element (byte offset applied)
  napi_value buffer = nullptr;  // the ArrayBuffer (a handle valid in the current scope)
  std::shared_ptr<void> store;  // owns a share of the memory while held
};

PinStatus pin_typed_array(napi_env env, napi_value value, Pinned* out);

// What the argument must be, for an error message after a failed pin.
const char* pin_expectation(PinStatus s);

// Checks once per process that the V8 entry points behave as declared (pin.cc declares them
// itself: the node-api headers the addon is built against carry no V8 headers). Empty on success.
std::string pin_selftest(napi_env env);

}  // namespace grpo
