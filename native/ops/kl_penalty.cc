// klPenalty CPU kernel: spec §3, element-wise through the vectorised loop of
// kernels/elementwise_impl.h (the bits of kl_estimate in common/formulas.h, as on CUDA).
#include "kl_penalty.h"

#include "../common/threadpool.h"
#include "../kernels/elementwise.h"

namespace grpo {

void kl_penalty_cpu(const KlPenaltyArgs& a) {
  const ElementwiseKernels& k = elementwise_kernels();
  // About 1 ns per token: only split across threads for long inputs.
  parallel_for(a.n, [&](int64_t b, int64_t e, int) {
    k.kl(a.logp + b, a.ref_logp + b, e - b, static_cast<int>(a.estimator), a.clamp_log_ratio, a.kl + b,
         a.grad ? a.grad + b : nullptr);
  }, 1 << 16);
}

}  // namespace grpo
