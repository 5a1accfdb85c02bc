// Export table of the built-in transformer (lib/models/). Filled in by the model.
#include <napi.h>

namespace grpo {
void register_model_ops(Napi::Env, Napi::Object) {}
}  // namespace grpo
