// The per-sequence pass of grpoLoss (spec §4-§6), written once for the CPU kernel
// (native/ops/grpo_loss.cc: sequences spread over the pool) and the CUDA kernel
// (cuda/grpo_loss.cu: one thread per sequence). Both run these exact statements in double and in
// token order, and add the per-sequence sums serially in sequence order, so given the same
// inputs the two backends produce the same loss, metrics and dL/dℓ bits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
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
  const uint8_t* cov_sel = nullptr;  // clip_cov / kl_cov: 1 on the tokens the batch-wide selection picked
  float* grad_entropy = nullptr;     // out or null: dL/dH (the entropy bonus)
  const float* rollout_logp = nullptr;  // the sampler's log-probs, or null (no rollout IS correction)
};

// The rollout IS log-ratio of one token: log π_train − log π_sampler, π_train = ℓ_old when given
// (the old-policy pass) else ℓ detached, clamped to ±20 before exp (ms-swift's safety bound).
GRPO_HD double rollout_log_ratio(const float* lp, const float* old, const float* rl, int64_t t) {
  const double lr = static_cast<double>(old ? old[t] : lp[t]) - static_cast<double>(rl[t]);
  return lr < -kLogRatioClamp ? -kLogRatioClamp : (lr > kLogRatioClamp ? kLogRatioClamp : lr);
}

// The detached rollout IS weight of one token (ms-swift's four modes): r = exp(lr_t) of the token,
// R = exp(masked mean of lr_t) of its sequence, C the threshold. Token modes truncate min(r, C) or
// mask r·[r ≤ C]; sequence modes truncate min(R, C) on every token or mask r·[R ≤ C].
GRPO_HD double rollout_is_weight(RolloutIs mode, double r, double R, double C) {
  switch (mode) {
    case RolloutIs::TokenTruncate: return r > C ? C : r;
    case RolloutIs::TokenMask: return r <= C ? r : 0.0;
    case RolloutIs::SequenceTruncate: return R > C ? C : R;
    case RolloutIs::SequenceMask: return R <= C ? r : 0.0;
    default: return 1.0;
  }
}

// Decisions where the spec is terse (they follow TRL's GRPOTrainer):
// - masked-out tokens are skipped, never multiplied by 0: padding may hold NaN/Inf;
// - emask (top-entropy selection) multiplies the policy term only, not the KL term;
// - the kl metric is computed whenever ref_logp is given, also when beta = 0;
// - GSPO's sequence ratio is not clamped (TRL does not clamp it either) unless
//   clamp_seq_log_ratio (verl: log s_i clamped above at 10, no gradient through s_i there).
//
// kPlain: the common configuration (grpo_plain_config: token level, a policy term of
// policy_term(), no rollout IS, no top-entropy selection, no bias-corrected KL, no entropy bonus).
// The same statements with the options that are off there compiled out, so the loop is free of
// their branches: the same bits as the general form for such a configuration.
GRPO_HD bool grpo_plain_config(const GrpoOptions& o, bool select, bool ris) {
  return o.level == Level::Token && !ris && !select && !o.bias_correction_kl && o.entropy_coef == 0 &&
         (o.policy_loss == PolicyLoss::Clip || o.policy_loss == PolicyLoss::DualClip || o.policy_loss == PolicyLoss::Cispo ||
          o.policy_loss == PolicyLoss::Sapo);
}
template <bool kPlain>
GRPO_HD SeqSums grpo_sequence_pass_t(const SeqInputs& q, const GrpoOptions& o) {
  const uint8_t* m = q.mask;
  const float* lp = q.logp;
  const float* old = q.old_logp;
  const float* ref = q.ref_logp;
  const float* ent = q.entropy;
  float* g = q.grad_logp;
  float* ptl = q.per_token_loss;
  float* gH = q.grad_entropy;
  const int64_t T = q.T;
  const double A = q.advantage;
  const double w = aggregation_weight(o, q.n_i, q.n_batch, q.S, T);
  const double w_kl = kl_aggregation_weight(o, q.n_i, q.n_batch, q.S, T);
  const bool split_kl = w_kl != w;  // luspo at sequence level: the KL term has a weight of its own
  const double inv_n = 1.0 / (q.n_i > 1.0 ? q.n_i : 1.0);
  SeqSums s{0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

  // Rollout IS correction: a detached weight w_t on the policy term. Token modes: r_t = exp(lr_t),
  // truncate min(r_t, C), mask r_t·[r_t ≤ C]. Sequence modes: R_i = exp(masked mean of lr_t),
  // truncate min(R_i, C) on every token, mask r_t·[R_i ≤ C] (ms-swift's four modes).
  const float* rl = q.rollout_logp;
  const bool ris = !kPlain && rl && o.rollout_is != RolloutIs::Off;
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
  bool seq_clamped = false;
  if (!kPlain && o.level == Level::Sequence && old) {
    double lr = 0;
    for (int64_t t = 0; t < T; ++t)
      if (m[t]) lr += static_cast<double>(lp[t]) - static_cast<double>(old[t]);
    double mlr = lr * inv_n;
    if (o.clamp_seq_log_ratio && mlr > kSeqLogRatioClamp) {
      mlr = kSeqLogRatioClamp;
      seq_clamped = true;
    }
    seq_ratio = exp(mlr);
  }

  // TRL vespo: a detached gamma weight per sequence, φ = exp(λ + k·log w − λ·w), log w =
  // clamp(Σ_t m·clamp(ℓ − ℓ_old, −20, 20), ln 1e-8, 20), (k, λ) by A ≥ 0, λ ≥ 1e-4, non-finite φ -> 0;
  // per token P = −φ·A·ℓ (gradient −φ·A).
  double vespo_phi = 0.0;
  if (!kPlain && o.policy_loss == PolicyLoss::Vespo) {
    double lr_sum = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (!m[t]) continue;
      double lr = old ? static_cast<double>(lp[t]) - static_cast<double>(old[t]) : 0.0;
      lr = lr < -20.0 ? -20.0 : (lr > 20.0 ? 20.0 : lr);
      lr_sum += lr;
    }
    const double kLog1e8 = -18.420680743952367;  // math.log(1e-8), as TRL takes it
    const double lw = lr_sum < kLog1e8 ? kLog1e8 : (lr_sum > 20.0 ? 20.0 : lr_sum);
    const bool pos = A >= 0;
    const double k = pos ? o.vespo_k_pos : o.vespo_k_neg;
    double lam = pos ? o.vespo_lambda_pos : o.vespo_lambda_neg;
    if (lam < 1e-4) lam = 1e-4;
    vespo_phi = exp(lam + k * lw - lam * exp(lw));
    if (!(vespo_phi <= 1.7976931348623157e308)) vespo_phi = 0.0;  // torch.nan_to_num(nan=0, posinf=0)
  }
  // Sequence level: sum over tokens of w*emask*dP/drho, pushed back through s_i below.
  double seq_coupling = 0;

  // verl geo_mean (GMPO): per token m_t = sgn(A)·min(sgn(A)·lr_t, sgn(A)·clamp(lr_t, −ε_low,
  // ε_high)), lr_t = ℓ − ℓ_old; r_i = exp(Σ_t m_t / (n_i + 1e-8)); the sequence's policy loss is
  // −A·n_i/(n_i + 1e-8)·r_i, averaged over the S sequences (verl's torch.mean; lossType weights
  // only the KL term). dm_t/dlr_t = 1 where the unclamped operand is selected (ties included),
  // else 0 (the clamp is active there). Each masked token's per-token loss carries pg_i / n_i.
  const bool geo = !kPlain && o.policy_loss == PolicyLoss::GeoMean;
  double geo_ratio = 1.0, geo_pg = 0.0, geo_g = 0.0, geo_is = 1.0;
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
    // Rollout IS with geo_mean (verl compute_policy_loss_geo_mean): the per-token weights w_t of
    // the mode are folded into one detached weight per sequence, their geometric mean
    // W_i = exp(Σ_t m·log(w_t + 1e-10) / (n_i + 1e-8)), that multiplies the sequence's policy loss
    // (a masked token, w_t = 0, pulls W_i down by (1e-10)^(1/n_i), as upstream).
    if (ris) {
      double lw = 0;
      for (int64_t t = 0; t < T; ++t) {
        if (!m[t]) continue;
        const double r = o.rollout_is == RolloutIs::SequenceTruncate ? 0.0 : exp(rollout_log_ratio(lp, old, rl, t));
        lw += log(rollout_is_weight(o.rollout_is, r, ris_seq, C) + 1e-10);
      }
      geo_is = exp(lw / denom);
    }
    const double a_eff = A * q.n_i / denom;
    geo_pg = -a_eff * geo_ratio * geo_is / static_cast<double>(q.S);
    geo_g = -a_eff * geo_ratio * geo_is / denom / static_cast<double>(q.S);  // dloss/dm_t
    s.loss += geo_pg;
  }

  for (int64_t t = 0; t < T; ++t) {
    if (!m[t]) {
      if (g) g[t] = 0.0f;
      if (ptl) ptl[t] = 0.0f;
      if (gH) gH[t] = 0.0f;
      continue;
    }
    const double l = lp[t];
    double rho = seq_ratio;
    if (kPlain || o.level == Level::Token) rho = old ? ratio_exp_scalar(l - static_cast<double>(old[t])) : 1.0;
    const double emask = (!kPlain && q.select && !(static_cast<double>(ent[t]) >= q.threshold)) ? 0.0 : 1.0;
    // pmask: what the policy term is multiplied by, the selection times the rollout IS weight.
    // The weight reaches the policy term only: not the KL term (TRL adds it after the IS weight)
    // nor the entropy bonus (verl's entropy loss is aggregated apart from the weighted pg_losses).
    double pmask = emask;
    if (ris) {
      const double r = o.rollout_is == RolloutIs::SequenceTruncate ? 0.0 : exp(rollout_log_ratio(lp, old, rl, t));
      const double wis = rollout_is_weight(o.rollout_is, r, ris_seq, C);
      if (o.rollout_is == RolloutIs::TokenTruncate || o.rollout_is == RolloutIs::TokenMask) s.is_clipped_tok += !(r <= C);
      // geo_mean: the weight applied is the sequence's W_i (geo_pg above), reported per token
      s.is_weight += geo ? geo_is : wis;
      if (!geo) pmask *= wis;
    } else {
      s.is_weight += 1.0;
    }
    if (geo) rho = geo_ratio;
    PolicyValue pv = policy_term(rho, A, l, o);
    const bool cov_picked = q.cov_sel && q.cov_sel[t];
    if (kPlain) {
      // policy_term()'s value as it is: the per-sequence objectives below are not plain
    } else if (o.policy_loss == PolicyLoss::Vespo) {
      pv.P = -vespo_phi * A * l;
      pv.dP_dlogp = -vespo_phi * A;
    } else if (o.policy_loss == PolicyLoss::ClipCov && cov_picked) {
      pv.P = pv.dP_drho = 0.0;  // verl: corr = 0 on the selected tokens
    } else if (o.policy_loss == PolicyLoss::KlCov) {
      // verl: −A·ρ, plus ppo_kl_coef·|ℓ − ℓ_old| on the selected tokens (torch.abs: gradient sign, 0 at 0)
      pv.P = -A * rho;
      pv.dP_drho = -A;
      if (cov_picked) {
        const double lr = old ? l - static_cast<double>(old[t]) : 0.0;
        pv.P += o.ppo_kl_coef * (lr < 0 ? -lr : lr);
        pv.dP_dlogp = o.ppo_kl_coef * (lr > 0 ? 1.0 : (lr < 0 ? -1.0 : 0.0));
      }
    }
    KlValue kv{0.0, 0.0};
    if (ref) kv = kl_estimate(l, ref[t], o.kl_estimator, o.clamp_log_ratio);
    // TRL use_bias_correction_kl: the KL term (and its metric) is D·ρ, ρ not detached.
    const double kl_w = !kPlain && o.bias_correction_kl ? rho : 1.0;
    // Entropy bonus −coef·H on the tokens the policy term keeps (TRL: the top-entropy mask too),
    // weighted like the KL term (verl: agg_loss of the entropy with the loss_agg_mode).
    const double ent_term = !kPlain && o.entropy_coef != 0 && ent ? -o.entropy_coef * emask * static_cast<double>(ent[t]) : 0.0;
    const double L = pmask * pv.P + o.beta * kv.d * kl_w + ent_term;
    if (ptl) ptl[t] = static_cast<float>(geo ? L + geo_pg * static_cast<double>(q.S) * inv_n : L);
    s.loss += split_kl ? w * (pmask * pv.P) + w_kl * (o.beta * kv.d * kl_w + ent_term) : w * L;
    if (!kPlain && gH) gH[t] = static_cast<float>(w_kl * -o.entropy_coef * emask);
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
      double direct = split_kl ? w * (pmask * pv.dP_dlogp) + w_kl * (o.beta * kv.grad * kl_w)
                               : w * (pmask * pv.dP_dlogp + o.beta * kv.grad * kl_w);
      // dL/drho: the policy term's, plus beta·D with the bias-corrected KL term
      const double kl_drho = !kPlain && o.bias_correction_kl ? o.beta * kv.d : 0.0;
      const double dL_drho = pmask * pv.dP_drho + kl_drho;
      const double wdL_drho = split_kl ? w * (pmask * pv.dP_drho) + w_kl * kl_drho : w * dL_drho;
      if (kPlain || o.level == Level::Token) {
        direct += wdL_drho * rho;  // d rho / d l = rho
      } else {
        seq_coupling += wdL_drho;
      }
      if (geo) direct += geo_g * geo_dm;  // d lr / d l = 1 (ℓ_old fixed or ℓ detached)
      g[t] = static_cast<float>(direct);
    }
  }
  // d s_i / d l[i,t] = s_i * m / max(n_i, 1): the same extra gradient for every masked token.
  if (!kPlain && g && o.level == Level::Sequence && seq_coupling != 0.0 && !seq_clamped) {
    const double extra = seq_coupling * seq_ratio * inv_n;
    for (int64_t t = 0; t < T; ++t)
      if (m[t]) g[t] = static_cast<float>(static_cast<double>(g[t]) + extra);
  }
  return s;
}

GRPO_HD SeqSums grpo_sequence_pass(const SeqInputs& q, const GrpoOptions& o) { return grpo_sequence_pass_t<false>(q, o); }

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

// verl clip_cov / kl_cov: the batch-wide token selection, on the host (both backends), into sel
// [S·T] (1 = picked). cov_n = (A_i − mean A)·(ℓ_n − mean ℓ) over the masked tokens (A broadcast per
// token). kl_cov: the top max(1, ⌊kl_cov_ratio·n⌋) by cov (torch.topk; verl's means are plain
// means). clip_cov (verl masked_mean: Σ/(n + 1e-8)): the candidates are the masked tokens whose
// clipped term was not selected by the max (−A·clip(ρ) > −A·ρ strictly) with lb < cov < ub, and
// max(1, ⌊clip_cov_ratio·n⌋) of them are picked. Upstream picks those at random (torch.randperm)
// and breaks topk ties arbitrarily; here the pick is deterministic: largest cov first, equal cov
// by lower row index. Returns the number picked.
inline int64_t cov_select(const float* logp, const float* old_logp, const float* adv, const uint8_t* mask, int64_t S, int64_t T,
                          const GrpoOptions& o, std::vector<uint8_t>& sel) {
  const int64_t N = S * T;
  sel.assign(static_cast<size_t>(N), 0);
  double n = 0, sa = 0, sl = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (!mask[r]) continue;
    n += 1;
    sa += adv[r / T];
    sl += logp[r];
  }
  if (n == 0) return 0;
  const bool clip = o.policy_loss == PolicyLoss::ClipCov;
  const double den = clip ? n + 1e-8 : n;
  const double ma = sa / den, ml = sl / den;
  std::vector<std::pair<double, int64_t>> cand;
  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high;
  for (int64_t r = 0; r < N; ++r) {
    if (!mask[r]) continue;
    const double A = adv[r / T];
    const double cov = (A - ma) * (static_cast<double>(logp[r]) - ml);
    if (clip) {
      const double rho = old_logp ? ratio_exp_scalar(static_cast<double>(logp[r]) - static_cast<double>(old_logp[r])) : 1.0;
      const double c = rho < lo ? lo : (rho > hi ? hi : rho);
      if (-A * c > -A * rho) continue;  // clip_by_origin
      if (!(cov > o.clip_cov_lb && cov < o.clip_cov_ub)) continue;
    }
    cand.emplace_back(cov, r);
  }
  const double ratio = clip ? o.clip_cov_ratio : o.kl_cov_ratio;
  int64_t k = static_cast<int64_t>(std::floor(ratio * n));
  if (k < 1) k = 1;
  if (k > static_cast<int64_t>(cand.size())) k = static_cast<int64_t>(cand.size());
  auto before = [](const std::pair<double, int64_t>& x, const std::pair<double, int64_t>& y) {
    return x.first > y.first || (x.first == y.first && x.second < y.second);
  };
  if (k < static_cast<int64_t>(cand.size())) std::nth_element(cand.begin(), cand.begin() + k, cand.end(), before);
  for (int64_t j = 0; j < k; ++j) sel[static_cast<size_t>(cand[j].second)] = 1;
  return k;
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
