// grpoLoss CPU kernel: spec §4-§6 from per-token log-probs. S sequences of T tokens, N = S*T,
// row n = i*T + t. Also the back end of the fused-from-logits op, which hands it per-token
// logp/entropy and takes dL/dlogp and the metrics back.
//
// Three passes, all O(N) and reading each per-token array once or twice:
//   1. per sequence: n_i = sum_t m (parallel over sequences), then n_batch serially;
//   2. only when top_entropy_quantile < 1: the entropy threshold (copy of the masked entropies,
//      nth_element; the one O(N) allocation, and only for this option);
//   3. per sequence (parallel): ratio, policy term, KL, loss, gradient, metric partial sums.
// Per-sequence partial sums go to an [S] buffer and are added up serially in sequence order,
// so the loss and metrics are bitwise independent of the thread count.
//
// Decisions where the spec is terse (they follow TRL's GRPOTrainer):
// - masked-out tokens are skipped, never multiplied by 0: padding may hold NaN/Inf;
// - top-entropy selection keeps the top-q fraction, as TRL does: threshold =
//   torch.quantile(masked entropies, 1 - q) (linear interpolation), emask = entropy >= threshold
//   (the spec words it "the q-quantile"); emask multiplies the policy term only, not the KL term;
// - the kl metric is computed whenever ref_logp is given, also when beta = 0;
// - GSPO's sequence ratio is not clamped (TRL does not clamp it either); ratios run in double.
// - every metric is a mean over masked tokens, also at sequence level (TRL averages its clip
//   ratios over sequences there: a sequence's indicator then counts once, not n_i times).
#include "grpo_loss.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "../common/threadpool.h"
#include "../kernels/elementwise.h"
#include "grpo_loss_core.h"

namespace grpo {

void grpo_loss_cpu(GrpoLossArgs& a) {
  const int64_t S = a.S, T = a.T;
  GrpoOptions o = a.opt;
  a.metrics = GrpoMetrics{};
  if (S <= 0 || T <= 0) {
    // No tokens: zero loss; any outputs are empty.
    return;
  }
  // Rows are cheap (tens of ns): give each thread at least ~16k tokens.
  const int64_t min_seqs = std::max<int64_t>(1, (int64_t(1) << 14) / T);

  // Pass 1: masked-token count per sequence; with check_inputs, also the mask's values (0 or 1)
  // and the finiteness of every per-token input where the mask is set, in the same read of the
  // mask (a JS scan per array cost more than the loss itself at 1M tokens). A bad input stops
  // the call here, before any output is written; the caller then names it.
  std::vector<double> n_seq(static_cast<size_t>(S));
  std::atomic<bool> inputs_ok{true};
  const float* checked[5];
  int nchecked = 0;
  for (const float* x : {a.logp, a.old_logp, a.ref_logp, a.entropy, a.rollout_logp})
    if (x != nullptr) checked[nchecked++] = x;
  const ElementwiseKernels& ek = elementwise_kernels();
  parallel_for(S, [&](int64_t b, int64_t e, int) {
    uint32_t bad = 0;
    const float* xs[5];
    for (int64_t i = b; i < e; ++i) {
      for (int k = 0; k < nchecked; ++k) xs[k] = checked[k] + i * T;
      n_seq[i] = static_cast<double>(ek.mask_count(a.mask + i * T, xs, nchecked, T, a.check_inputs, &bad));
    }
    if (bad) inputs_ok.store(false, std::memory_order_relaxed);
  }, min_seqs);
  a.inputs_ok = inputs_ok.load();
  if (!a.inputs_ok) return;
  double n_batch = 0, n_active = 0;
  for (int64_t i = 0; i < S; ++i) {
    n_batch += n_seq[i];
    n_active += n_seq[i] > 0;
  }
  o.n_seq_active = n_active;

  // verl clip_cov / kl_cov: the batch-wide token selection (grpo_loss_core.h cov_select).
  std::vector<uint8_t> cov_sel;
  if (o.policy_loss == PolicyLoss::ClipCov || o.policy_loss == PolicyLoss::KlCov)
    cov_select(a.logp, a.old_logp, a.advantages, a.mask, S, T, o, cov_sel);

  // Pass 2: the top-entropy threshold (TRL: keep tokens at or above the (1 - q)-quantile).
  const bool select = o.top_entropy_quantile < 1.0 && a.entropy != nullptr && n_batch > 0;
  double threshold = 0;
  if (select) {
    std::vector<float> ent;
    ent.reserve(static_cast<size_t>(n_batch));
    for (int64_t n = 0; n < S * T; ++n)
      if (a.mask[n]) ent.push_back(a.entropy[n]);
    threshold = quantile_linear(ent, 1.0 - o.top_entropy_quantile);
  }

  // Pass 3: per sequence (grpo_loss_core.h, shared with the CUDA kernel). The plain
  // configuration with clip / dual_clip / cispo runs kGrpoPlainLanes sequences at a time in vector
  // lanes (elementwise.h grpo_plain: each lane the scalar pass's statements, the same bits); the
  // rest of a thread's range, and every other configuration, one sequence at a time.
  const bool plain = grpo_plain_config(o, select, a.rollout_logp != nullptr && o.rollout_is != RolloutIs::Off);
  const bool lanes = plain && o.policy_loss != PolicyLoss::Sapo;
  std::vector<SeqSums> sums(static_cast<size_t>(S));
  auto seq_inputs = [&](int64_t i) {
    const int64_t base = i * T;
    SeqInputs q;
    q.mask = a.mask + base;
    q.logp = a.logp + base;
    q.old_logp = a.old_logp ? a.old_logp + base : nullptr;
    q.ref_logp = a.ref_logp ? a.ref_logp + base : nullptr;
    q.entropy = a.entropy ? a.entropy + base : nullptr;
    q.rollout_logp = a.rollout_logp ? a.rollout_logp + base : nullptr;
    q.grad_logp = a.grad_logp ? a.grad_logp + base : nullptr;
    q.per_token_loss = a.per_token_loss ? a.per_token_loss + base : nullptr;
    q.T = T;
    q.advantage = a.advantages[i];
    q.n_i = n_seq[i];
    q.n_batch = n_batch;
    q.S = S;
    q.select = select;
    q.threshold = threshold;
    q.cov_sel = cov_sel.empty() ? nullptr : cov_sel.data() + base;
    q.grad_entropy = a.grad_entropy ? a.grad_entropy + base : nullptr;
    return q;
  };
  // With lanes, the threads split whole groups of kGrpoPlainLanes sequences (only the last group
  // of the batch can be short), so no thread's range leaves sequences to the scalar pass mid-batch.
  const int64_t unit = lanes ? kGrpoPlainLanes : 1;
  parallel_for((S + unit - 1) / unit, [&](int64_t ub, int64_t ue, int) {
    int64_t i = ub * unit;
    const int64_t e = std::min(ue * unit, S);
    if (lanes) {
      SeqInputs q[kGrpoPlainLanes];
      for (; i + kGrpoPlainLanes <= e; i += kGrpoPlainLanes) {
        for (int64_t l = 0; l < kGrpoPlainLanes; ++l) q[l] = seq_inputs(i + l);
        ek.grpo_plain(q, o, sums.data() + i);
      }
    }
    for (; i < e; ++i) {
      const SeqInputs q = seq_inputs(i);
      sums[i] = plain ? grpo_sequence_pass_t<true>(q, o) : grpo_sequence_pass_t<false>(q, o);
    }
  }, std::max<int64_t>(1, min_seqs / unit));
  grpo_sum_metrics(sums.data(), S, n_batch, &a.metrics);
}

}  // namespace grpo
