// klPenalty CPU kernel: spec §3, element-wise through kl_estimate (common/formulas.h).
#include "kl_penalty.h"

#include "../common/threadpool.h"

namespace grpo {

void kl_penalty_cpu(const KlPenaltyArgs& a) {
  // Element-wise and cheap (a few ns per token): only split across threads for long inputs.
  parallel_for(a.n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      KlValue v = kl_estimate(a.logp[i], a.ref_logp[i], a.estimator, a.clamp_log_ratio);
      a.kl[i] = static_cast<float>(v.d);
      if (a.grad) a.grad[i] = static_cast<float>(v.grad);
    }
  }, 1 << 16);
}

}  // namespace grpo
