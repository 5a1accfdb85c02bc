// Vectorised per-token kernels (the small ops of spec §3), compiled once per ISA like the row
// kernels (elementwise_avx512.cc, _avx2.cc, _generic.cc from elementwise_impl.h);
// elementwise_kernels() returns the table cpu_isa_level() allows (GRPO_CPU_ISA forces a lower one).
// These files are compiled with -ffp-contract=off (CMakeLists.txt): their results are the bits of
// the scalar formulas in common/formulas.h, which the CUDA kernels also run.
#pragma once
#include <cstdint>

namespace grpo {

struct ElementwiseKernels {
  const char* isa;
  // klPenalty over [0, n): kl[i] = D, grad[i] = dD/dlogp (grad may be null). est: KlEstimator.
  // Returns whether every logp and ref_logp was finite (checked in the same pass: a separate
  // scan, in JS or native, would read both inputs once more).
  bool (*kl)(const float* logp, const float* ref_logp, int64_t n, int est, bool clamp_log_ratio, float* kl, float* grad);
};

const ElementwiseKernels& elementwise_kernels();

}  // namespace grpo
