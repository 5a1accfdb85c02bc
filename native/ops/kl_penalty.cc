// klPenalty CPU kernel: spec §3, element-wise through the vectorised loop of
// kernels/elementwise_impl.h (the bits of kl_estimate in common/formulas.h, as on CUDA).
#include "kl_penalty.h"

#include <atomic>

#include "../common/threadpool.h"
#include "../kernels/elementwise.h"

namespace grpo {

// The finiteness of the inputs is checked in the kernel's own pass (the outputs are written
// either way; the caller throws on a non-finite input): one read of each input instead of two.
void kl_penalty_cpu(KlPenaltyArgs& a) {
  const ElementwiseKernels& k = elementwise_kernels();
  std::atomic<bool> finite{true};
  // From 2^21 tokens (16 MB of outputs, 32 MB moved: beyond a typical L3 slice) the outputs go
  // around the cache: plain stores would first read every output line (1.5x the traffic). Below
  // that they stay cached for the op that reads them next.
  const bool stream = a.n >= (int64_t{1} << 21);
  // About 1 ns per token: only split across threads for long inputs.
  parallel_for(a.n, [&](int64_t b, int64_t e, int) {
    if (!k.kl(a.logp + b, a.ref_logp + b, e - b, static_cast<int>(a.estimator), a.clamp_log_ratio, a.kl + b,
              a.grad ? a.grad + b : nullptr, stream))
      finite.store(false, std::memory_order_relaxed);
  }, 1 << 16);
  a.all_finite = finite.load();
}

}  // namespace grpo
