// klFull: the exact KL(π‖π_ref) of one token position from both models' logits rows (README
// Math §3, "full"). Shapes: N rows of V logits, policy z and reference z' in the same dtype
// (f32 / bf16 / f16), row-major; τ > 0, u = z/τ, u' = z'/τ, p = softmax(u), q = softmax(u'),
// δ = u − u'.
//   KL_n = Σ_v p_v·(log p_v − log q_v) = E_p[δ] − (lse(u) − lse(u'))
//   ∂KL_n/∂z_v = p_v·(δ_v − E_p[δ]) / τ          (the reference is frozen: no gradient to z')
// The gradient row is coef_n·∂KL_n/∂z (coef null: 1), written to grad or added to what grad
// holds (accumulate: how the fused loss adds β·a_n·m_n·∇KL_n to its own gradient).
#pragma once
#include <cstdint>

#include "../tensor.h"

namespace grpo {

struct KlFullArgs {
  const void* logits = nullptr;      // [N, V] policy
  const void* ref_logits = nullptr;  // [N, V] reference, the same dtype
  DType dtype = DType::F32;
  int64_t N = 0, V = 0;
  float temperature = 1.0f;
  const float* coef = nullptr;  // [N] gradient scale per row, or null (1)
  float* kl = nullptr;          // [N] out
  void* grad = nullptr;         // [N, V] out (the logits' dtype), or null: no gradient
  bool accumulate = false;      // grad += coef·∇KL instead of grad = coef·∇KL
};

void kl_full_cpu(const KlFullArgs& a);

}  // namespace grpo
