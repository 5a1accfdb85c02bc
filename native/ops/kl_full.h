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
  // The policy term fused in (grpoLossFromLogits, klEstimator 'full', gradient in place): with
  // policy_grad set, grad = coef·∇KL + g_n·(1[v=y_n] − p_v)/τ − gh_n·(p_v/τ)(log p_v + H_n), the
  // fused loss's own gradient (g = dL/dℓ, gh = dL/dH from the loss core). Each element is read
  // and then written by the same iteration, so grad may be the policy logits (not accumulate).
  const float* policy_grad = nullptr;    // [N] g_n, or null: no policy term
  const float* policy_grad_h = nullptr;  // [N] gh_n, or null (no entropy bonus)
  const float* entropy = nullptr;        // [N] H_n (with policy_grad_h)
  const int32_t* targets = nullptr;      // [N] y_n (with policy_grad)
};

void kl_full_cpu(const KlFullArgs& a);

}  // namespace grpo
