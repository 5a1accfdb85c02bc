// Export table of device tensors and the CUDA forms of the ops (lib/device.ts). Filled in by
// the CUDA backend.
#include <napi.h>

namespace grpo {
void register_device_ops(Napi::Env, Napi::Object) {}
}  // namespace grpo
