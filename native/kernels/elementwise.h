// Vectorised per-token kernels (the small ops of spec §3), compiled once per ISA like the row
// kernels (elementwise_avx512.cc, _avx2.cc, _generic.cc from elementwise_impl.h);
// elementwise_kernels() returns the table cpu_isa_level() allows (GRPO_CPU_ISA forces a lower one).
// These files are compiled with -ffp-contract=off (CMakeLists.txt): their results are the bits of
// the scalar formulas in common/formulas.h, which the CUDA kernels also run.
#pragma once
#include <cstdint>

namespace grpo {

// groupAdvantages, contiguous groups of G <= kGroupAdvLanesMaxG members, one reward function
// (grpo / rloo, no whitening): the fixed-size path of ops/group_advantages.cc with W groups in
// lockstep, one per vector lane. Each lane runs that path's statements for its group in member
// order (the same sums, in the same order: the same bits as the scalar and CUDA code), so the
// per-group dependent add chains of W groups overlap.
constexpr int64_t kGroupAdvLanesMaxG = 64;
struct GroupAdvLanesArgs {
  const float* rewards;  // [S]
  double w0;             // the reward function's weight
  int64_t G;             // group size
  bool rloo, unbiased;
  int scale;             // AdvScale
  double eps, batch_sd;
  float *advantages, *reward, *group_mean, *group_std;  // outs
};
struct GroupAdvLanesCounts {
  int64_t zero_std = 0, no_reward = 0;
  bool inf = false;  // some reward ±Infinity (the caller finds the first)
};

// grpoLoss's plain per-sequence pass (ops/grpo_loss_core.h grpo_sequence_pass_t<true>) for
// kGrpoPlainLanes sequences in lockstep, one per vector lane, each lane running that pass's
// statements for its sequence in token order: the same sums in the same order, so the same bits
// as the scalar pass (and the CUDA kernel, one thread per sequence). Policy losses clip,
// dual_clip and cispo (sapo stays scalar: its gate needs an exp per token the ratio already takes).
constexpr int64_t kGrpoPlainLanes = 8;
struct SeqInputs;
struct SeqSums;
struct GrpoOptions;

struct ElementwiseKernels {
  const char* isa;
  // klPenalty over [0, n): kl[i] = D, grad[i] = dD/dlogp (grad may be null). est: KlEstimator.
  // Returns whether every logp and ref_logp was finite (checked in the same pass: a separate
  // scan, in JS or native, would read both inputs once more).
  // stream: non-temporal stores of kl and grad (outputs larger than the cache).
  bool (*kl)(const float* logp, const float* ref_logp, int64_t n, int est, bool clamp_log_ratio, float* kl, float* grad,
             bool stream);
  // groups [j0, j1) of GroupAdvLanesArgs
  GroupAdvLanesCounts (*group_adv)(const GroupAdvLanesArgs& a, int64_t j0, int64_t j1);
  // q[kGrpoPlainLanes]: sequences with the same T and the same inputs/outputs given; out[kGrpoPlainLanes]
  void (*grpo_plain)(const SeqInputs* q, const GrpoOptions& o, SeqSums* out);
  // grpoLoss's first pass over one sequence of T tokens: the number of masked-in tokens (m != 0);
  // with check, *bad gets a non-zero bit when a mask byte is > 1 or one of the nx arrays xs[k]
  // holds ±Inf or NaN on a masked-in token (padding may hold anything).
  int64_t (*mask_count)(const uint8_t* m, const float* const* xs, int nx, int64_t T, bool check, uint32_t* bad);
};

const ElementwiseKernels& elementwise_kernels();

}  // namespace grpo
