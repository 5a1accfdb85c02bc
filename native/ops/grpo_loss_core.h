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
  double is_weight, is_clipped_tok, is_clipped_seq;  // rollout IS metrics
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
  const float* rollout_logp = nullptr;  // the sampler's log-probs, or null (no rollout IS correction)
};

// The rollout IS log-ratio of one token: log π_train − log π_sampler, π_train = ℓ_old when given
// (the old-policy pass) else ℓ detached, clamped to ±20 before exp (ms-swift's safety bound).
GRPO_HD double rollout_log_ratio(const float* lp, const float* old, const float* rl, int64_t t) {
  const double lr = static_cast<double>(old ? old[t] : lp[t]) - static_cast<double>(rl[t]);
  return lr < -kLogRatioClamp ? -kLogRatioClamp : (lr > kLogRatioClamp ? kLogRatioClamp : lr);
}

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
  SeqSums s{0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

  // Rollout IS correction: a detached weight w_t on the policy term. Token modes: r_t = exp(lr_t),
  // truncate min(r_t, C), mask r_t·[r_t ≤ C]. Sequence modes: R_i = exp(masked mean of lr_t),
  // truncate min(R_i, C) on every token, mask r_t·[R_i ≤ C] (ms-swift's four modes).
  const float* rl = q.rollout_logp;
  const bool ris = rl && o.rollout_is != RolloutIs::Off;
  const double C = o.rollout_is_threshold;
  double ris_seq = 1.0;
  if (ris && (o.rollout_is == RolloutIs::SequenceTruncate || o.rollout_is == RolloutIs::SequenceMask)) {
    double lr = 0;
    for (int64_t t = 0; t < T; ++t)
      if (m[t]) lr += rollout_log_ratio(lp, old, rl, t);
    ris_seq = exp(lr * inv_n);
    s.is_clipped_seq = ris_seq > C ? 1.0 : 0.0;
  }

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

  // verl geo_mean (GMPO): per token m_t = sgn(A)·min(sgn(A)·lr_t, sgn(A)·clamp(lr_t, −ε_low,
  // ε_high)), lr_t = ℓ − ℓ_old; r_i = exp(Σ_t m_t / (n_i + 1e-8)); the sequence's policy loss is
  // −A·n_i/(n_i + 1e-8)·r_i, averaged over the S sequences (verl's torch.mean; lossType weights
  // only the KL term). dm_t/dlr_t = 1 where the unclamped operand is selected (ties included),
  // else 0 (the clamp is active there). Each masked token's per-token loss carries pg_i / n_i.
  const bool geo = o.policy_loss == PolicyLoss::GeoMean;
  double geo_ratio = 1.0, geo_pg = 0.0, geo_g = 0.0;
  if (geo) {
    const double sg = A > 0 ? 1.0 : (A < 0 ? -1.0 : 0.0);
    double msum = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (!m[t]) continue;
      const double lr = old ? static_cast<double>(lp[t]) - static_cast<double>(old[t]) : 0.0;
      const double c = lr < -o.eps_low ? -o.eps_low : (lr > o.eps_high ? o.eps_high : lr);
      msum += sg * lr <= sg * c ? lr : c;
    }
    if (sg == 0.0) msum = 0.0;
    const double denom = q.n_i + 1e-8;
    geo_ratio = exp(msum / denom);
    const double a_eff = A * q.n_i / denom;
    geo_pg = -a_eff * geo_ratio / static_cast<double>(q.S);
    geo_g = -a_eff * geo_ratio / denom / static_cast<double>(q.S);  // dloss/dm_t
    s.loss += geo_pg;
  }

  for (int64_t t = 0; t < T; ++t) {
    if (!m[t]) {
      if (g) g[t] = 0.0f;
      if (ptl) ptl[t] = 0.0f;
      continue;
    }
    const double l = lp[t];
    double rho = seq_ratio;
    if (o.level == Level::Token) rho = old ? exp(l - static_cast<double>(old[t])) : 1.0;
    double emask = (q.select && !(static_cast<double>(ent[t]) >= q.threshold)) ? 0.0 : 1.0;
    if (ris) {
      double wis = 1.0;
      const double r = o.rollout_is == RolloutIs::SequenceTruncate ? 0.0 : exp(rollout_log_ratio(lp, old, rl, t));
      switch (o.rollout_is) {
        case RolloutIs::TokenTruncate: wis = r > C ? C : r; s.is_clipped_tok += r > C; break;
        case RolloutIs::TokenMask: wis = r <= C ? r : 0.0; s.is_clipped_tok += !(r <= C); break;
        case RolloutIs::SequenceTruncate: wis = ris_seq > C ? C : ris_seq; break;
        case RolloutIs::SequenceMask: wis = ris_seq <= C ? r : 0.0; break;
        default: break;
      }
      s.is_weight += wis;
      emask *= wis;  // the policy term only (as TRL: the KL term is added after the IS weight)
    } else {
      s.is_weight += 1.0;
    }
    if (geo) rho = geo_ratio;
    PolicyValue pv = policy_term(rho, A, l, o);
    KlValue kv{0.0, 0.0};
    if (ref) kv = kl_estimate(l, ref[t], o.kl_estimator, o.clamp_log_ratio);
    // TRL use_bias_correction_kl: the KL term (and its metric) is D·ρ, ρ not detached.
    const double kl_w = o.bias_correction_kl ? rho : 1.0;
    const double L = emask * pv.P + o.beta * kv.d * kl_w;
    if (ptl) ptl[t] = static_cast<float>(geo ? L + geo_pg * static_cast<double>(q.S) * inv_n : L);
    s.loss += w * L;
    s.kl += kv.d * kl_w;
    if (ent) s.entropy += ent[t];
    s.ratio += rho;
    bool low_c = pv.low_clipped, high_c = pv.high_clipped;
    double geo_dm = 0.0;
    if (geo) {  // verl: clipped = (lr != clamp(lr)), high where A > 0, low where A < 0
      const double lr = old ? l - static_cast<double>(old[t]) : 0.0;
      const double c = lr < -o.eps_low ? -o.eps_low : (lr > o.eps_high ? o.eps_high : lr);
      const double sg = A > 0 ? 1.0 : (A < 0 ? -1.0 : 0.0);
      geo_dm = sg != 0.0 && sg * lr <= sg * c ? 1.0 : 0.0;
      high_c = lr != c && A > 0;
      low_c = lr != c && A < 0;
    }
    s.clip_low += low_c;
    s.clip_high += high_c;
    s.clip_region += low_c || high_c;
    if (g) {
      double direct = w * (emask * pv.dP_dlogp + o.beta * kv.grad * kl_w);
      // dL/drho: the policy term's, plus beta·D with the bias-corrected KL term
      const double dL_drho = emask * pv.dP_drho + (o.bias_correction_kl ? o.beta * kv.d : 0.0);
      if (o.level == Level::Token) {
        direct += w * dL_drho * rho;  // d rho / d l = rho
      } else {
        seq_coupling += w * dL_drho;
      }
      if (geo) direct += geo_g * geo_dm;  // d lr / d l = 1 (ℓ_old fixed or ℓ detached)
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
  SeqSums tot{0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < S; ++i) {
    tot.is_weight += sums[i].is_weight;
    tot.is_clipped_tok += sums[i].is_clipped_tok;
    tot.is_clipped_seq += sums[i].is_clipped_seq;
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
  out->is_weight_mean = tot.is_weight * inv_batch;
  out->is_clipped_frac = tot.is_clipped_tok * inv_batch + (S > 0 ? tot.is_clipped_seq / static_cast<double>(S) : 0.0);
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
