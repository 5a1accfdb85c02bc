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
#include <cmath>
#include <vector>

#include "../common/threadpool.h"

namespace grpo {

namespace {

// Metric partial sums of one sequence (the loss is already weighted by a[n]).
struct SeqSums {
  double loss, kl, entropy, ratio, clip_low, clip_high, clip_region;
};

// torch.quantile(x, q) with linear interpolation over the values x (reordered in place).
double quantile_linear(std::vector<float>& x, double q) {
  const size_t n = x.size();
  double pos = q * static_cast<double>(n - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  if (lo > n - 1) lo = n - 1;
  size_t hi = lo + 1 < n ? lo + 1 : lo;
  std::nth_element(x.begin(), x.begin() + lo, x.end());
  double vlo = x[lo];
  double frac = pos - static_cast<double>(lo);
  if (hi == lo || frac == 0.0) return vlo;
  // x[hi] is the smallest element of the upper part left by nth_element.
  double vhi = *std::min_element(x.begin() + lo + 1, x.end());
  return vlo + (vhi - vlo) * frac;
}

}  // namespace

void grpo_loss_cpu(GrpoLossArgs& a) {
  const int64_t S = a.S, T = a.T;
  const GrpoOptions& o = a.opt;
  a.metrics = GrpoMetrics{};
  if (S <= 0 || T <= 0) {
    // No tokens: zero loss; any outputs are empty.
    return;
  }
  // Rows are cheap (tens of ns): give each thread at least ~16k tokens.
  const int64_t min_seqs = std::max<int64_t>(1, (int64_t(1) << 14) / T);

  // Pass 1: masked-token count per sequence.
  std::vector<double> n_seq(static_cast<size_t>(S));
  parallel_for(S, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const uint8_t* m = a.mask + i * T;
      int64_t c = 0;
      for (int64_t t = 0; t < T; ++t) c += m[t] != 0;
      n_seq[i] = static_cast<double>(c);
    }
  }, min_seqs);
  double n_batch = 0;
  for (int64_t i = 0; i < S; ++i) n_batch += n_seq[i];

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

  // Pass 3: per sequence.
  std::vector<SeqSums> sums(static_cast<size_t>(S));
  parallel_for(S, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t base = i * T;
      const uint8_t* m = a.mask + base;
      const float* lp = a.logp + base;
      const float* old = a.old_logp ? a.old_logp + base : nullptr;
      const float* ref = a.ref_logp ? a.ref_logp + base : nullptr;
      const float* ent = a.entropy ? a.entropy + base : nullptr;
      float* g = a.grad_logp ? a.grad_logp + base : nullptr;
      float* ptl = a.per_token_loss ? a.per_token_loss + base : nullptr;
      const double A = a.advantages[i];
      const double n_i = n_seq[i];
      const double w = aggregation_weight(o, n_i, n_batch, S, T);
      const double inv_n = 1.0 / (n_i > 1.0 ? n_i : 1.0);
      SeqSums s{};

      // GSPO: s_i = exp(mean masked log-ratio); without old_logp the log-ratio is 0.
      double seq_ratio = 1.0;
      if (o.level == Level::Sequence && old) {
        double lr = 0;
        for (int64_t t = 0; t < T; ++t)
          if (m[t]) lr += static_cast<double>(lp[t]) - static_cast<double>(old[t]);
        seq_ratio = std::exp(lr * inv_n);
      }
      // Sequence level: sum over tokens of w*emask*dP/drho, pushed back through s_i below.
      double seq_coupling = 0;

      for (int64_t t = 0; t < T; ++t) {
        if (!m[t]) {
          if (g) g[t] = 0.0f;
          if (ptl) ptl[t] = 0.0f;
          continue;
        }
        const double l = lp[t];
        double rho = seq_ratio;
        if (o.level == Level::Token) rho = old ? std::exp(l - static_cast<double>(old[t])) : 1.0;
        const double emask = (select && !(static_cast<double>(ent[t]) >= threshold)) ? 0.0 : 1.0;
        PolicyValue pv = policy_term(rho, A, l, o);
        KlValue kv{0.0, 0.0};
        if (ref) kv = kl_estimate(l, ref[t], o.kl_estimator, o.clamp_log_ratio);
        const double L = emask * pv.P + o.beta * kv.d;
        if (ptl) ptl[t] = static_cast<float>(L);
        s.loss += w * L;
        s.kl += kv.d;
        if (ent) s.entropy += ent[t];
        s.ratio += rho;
        s.clip_low += pv.low_clipped;
        s.clip_high += pv.high_clipped;
        s.clip_region += pv.low_clipped || pv.high_clipped;
        if (g) {
          double direct = w * (emask * pv.dP_dlogp + o.beta * kv.grad);
          if (o.level == Level::Token) {
            direct += w * emask * pv.dP_drho * rho;  // d rho / d l = rho
          } else {
            seq_coupling += w * emask * pv.dP_drho;
          }
          g[t] = static_cast<float>(direct);
        }
      }
      // d s_i / d l[i,t] = s_i * m / max(n_i, 1): the same extra gradient for every masked token.
      if (g && o.level == Level::Sequence && seq_coupling != 0.0) {
        const double extra = seq_coupling * seq_ratio * inv_n;
        for (int64_t t = 0; t < T; ++t)
          if (m[t]) g[t] = static_cast<float>(static_cast<double>(g[t]) + extra);
      }
      sums[i] = s;
    }
  }, min_seqs);

  SeqSums tot{};
  for (int64_t i = 0; i < S; ++i) {
    tot.loss += sums[i].loss;
    tot.kl += sums[i].kl;
    tot.entropy += sums[i].entropy;
    tot.ratio += sums[i].ratio;
    tot.clip_low += sums[i].clip_low;
    tot.clip_high += sums[i].clip_high;
    tot.clip_region += sums[i].clip_region;
  }
  const double inv_batch = n_batch > 0 ? 1.0 / n_batch : 0.0;
  a.metrics.loss = tot.loss;
  a.metrics.kl = tot.kl * inv_batch;
  a.metrics.entropy = tot.entropy * inv_batch;
  a.metrics.ratio = tot.ratio * inv_batch;
  a.metrics.clip_low = tot.clip_low * inv_batch;
  a.metrics.clip_high = tot.clip_high * inv_batch;
  a.metrics.clip_region = tot.clip_region * inv_batch;
  a.metrics.masked_tokens = n_batch;
}

}  // namespace grpo
