// The per-sequence pass of grpoLoss (spec §4-§6), written once for the CPU kernel
// (native/ops/grpo_loss.cc: sequences spread over the pool) and the CUDA kernel
// (cuda/grpo_loss.cu: one thread per sequence). Both run these exact statements in double and in
// token order, and add the per-sequence sums serially in sequence order, so given the same
// inputs the two backends produce the same loss, metrics and dL/dℓ bits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../common/formulas.h"
#include "grpo_loss.h"

namespace grpo {

// Metric partial sums of one sequence (the loss is already weighted by a[n]).
struct SeqSums {
  double loss, kl, entropy, ratio, clip_low, clip_high, clip_region;
};

// Inputs of one sequence i: pointers already offset to its first token (row i*T).
struct SeqInputs {
  const uint8_t* mask;
  const float* logp;
  const float* old_logp;  // or null: logp detached
  const float* ref_logp;  // or null
  const float* entropy;   // or null
  float* grad_logp;       // out or null
  float* per_token_loss;  // out or null
  int64_t T;
  double advantage;
  double n_i;      // masked tokens of this sequence
  double n_batch;  // masked tokens of the batch
  int64_t S;
  bool select;       // top-entropy selection active
  double threshold;  // its entropy threshold
};

// Decisions where the spec is terse (they follow TRL's GRPOTrainer):
// - masked-out tokens are skipped, never multiplied by 0: padding may hold NaN/Inf;
// - emask (top-entropy selection) multiplies the policy term only, not the KL term;
// - the kl metric is computed whenever ref_logp is given, also when beta = 0;
// - GSPO's sequence ratio is not clamped (TRL does not clamp it either).
GRPO_HD SeqSums grpo_sequence_pass(const SeqInputs& q, const GrpoOptions& o) {
  const uint8_t* m = q.mask;
  const float* lp = q.logp;
  const float* old = q.old_logp;
  const float* ref = q.ref_logp;
  const float* ent = q.entropy;
  float* g = q.grad_logp;
  float* ptl = q.per_token_loss;
  const int64_t T = q.T;
  const double A = q.advantage;
  const double w = aggregation_weight(o, q.n_i, q.n_batch, q.S, T);
  const double inv_n = 1.0 / (q.n_i > 1.0 ? q.n_i : 1.0);
  SeqSums s{0, 0, 0, 0, 0, 0, 0};

  // GSPO: s_i = exp(mean masked log-ratio); without old_logp the log-ratio is 0.
  double seq_ratio = 1.0;
  if (o.level == Level::Sequence && old) {
    double lr = 0;
    for (int64_t t = 0; t < T; ++t)
      if (m[t]) lr += static_cast<double>(lp[t]) - static_cast<double>(old[t]);
    seq_ratio = exp(lr * inv_n);
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
    if (o.level == Level::Token) rho = old ? exp(l - static_cast<double>(old[t])) : 1.0;
    const double emask = (q.select && !(static_cast<double>(ent[t]) >= q.threshold)) ? 0.0 : 1.0;
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
  return s;
}

// The metrics from the per-sequence sums, added serially in sequence order.
GRPO_HD void grpo_sum_metrics(const SeqSums* sums, int64_t S, double n_batch, GrpoMetrics* out) {
  SeqSums tot{0, 0, 0, 0, 0, 0, 0};
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
  out->loss = tot.loss;
  out->kl = tot.kl * inv_batch;
  out->entropy = tot.entropy * inv_batch;
  out->ratio = tot.ratio * inv_batch;
  out->clip_low = tot.clip_low * inv_batch;
  out->clip_high = tot.clip_high * inv_batch;
  out->clip_region = tot.clip_region * inv_batch;
  out->masked_tokens = n_batch;
}

// torch.quantile(x, q) with linear interpolation over the values x (reordered in place).
// Host only: both backends compute the top-entropy threshold on the host.
inline double quantile_linear(std::vector<float>& x, double q) {
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

}  // namespace grpo
