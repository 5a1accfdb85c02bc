// The loss ops' options and metrics across the N-API boundary, shared by the host binding
// (native/binding.cc) and the device one (native/device/device_binding.cc), so both read the
// same option fields the same way.
#pragma once
#include <napi.h>

#include "../ops/grpo_loss.h"
#include "napi_args.h"

namespace grpo {

inline Napi::Object metrics_to_js(Napi::Env env, const GrpoMetrics& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", m.loss);
  o.Set("kl", m.kl);
  o.Set("entropy", m.entropy);
  o.Set("clipLow", m.clip_low);
  o.Set("clipHigh", m.clip_high);
  o.Set("clipRegion", m.clip_region);
  o.Set("ratio", m.ratio);
  o.Set("maskedTokens", m.masked_tokens);
  o.Set("isWeightMean", m.is_weight_mean);
  o.Set("isClippedFrac", m.is_clipped_frac);
  return o;
}

inline void read_options(ArgReader& r, GrpoOptions& o) {
  o.level = static_cast<Level>(r.integer("level", 0, 1));
  o.policy_loss = static_cast<PolicyLoss>(r.integer("policyLoss", 0, 7));
  o.eps_low = r.num("epsilonLow");
  o.eps_high = r.num("epsilonHigh");
  o.use_delta = r.has("delta");
  o.delta = r.num_or("delta", 0);
  o.clip_ratio_c = r.num("clipRatioC");
  o.beta = r.num("beta");
  o.kl_estimator = static_cast<KlEstimator>(r.integer("klEstimator", 0, kNumKlEstimators - 1));
  o.clamp_log_ratio = r.flag("clampLogRatio", true);
  o.loss_type = static_cast<LossType>(r.integer("lossType", 0, 8));
  o.n_global = r.num_or("numItemsInBatch", 0);
  o.max_completion_length = r.num_or("maxCompletionLength", 0);
  o.top_entropy_quantile = r.num_or("topEntropyQuantile", 1);
  o.cispo_range = r.flag("cispoRange", false);
  o.sapo_tau_pos = r.num_or("sapoTemperaturePos", 1.0);
  o.sapo_tau_neg = r.num_or("sapoTemperatureNeg", 1.05);
  o.bias_correction_kl = r.flag("useBiasCorrectionKl", false);
  o.clamp_seq_log_ratio = r.flag("clampSequenceLogRatio", false);
  o.clip_cov_ratio = r.num_or("clipCovRatio", 2e-4);
  o.clip_cov_lb = r.num_or("clipCovLb", 1.0);
  o.clip_cov_ub = r.num_or("clipCovUb", 5.0);
  o.kl_cov_ratio = r.num_or("klCovRatio", 2e-4);
  o.ppo_kl_coef = r.num_or("ppoKlCoef", 0.1);
  o.vespo_k_pos = r.num_or("vespoKPos", 2.0);
  o.vespo_lambda_pos = r.num_or("vespoLambdaPos", 3.0);
  o.vespo_k_neg = r.num_or("vespoKNeg", 3.0);
  o.vespo_lambda_neg = r.num_or("vespoLambdaNeg", 2.0);
  o.global_batch_size = r.num_or("globalBatchSize", 0);
  o.loss_scale_factor = r.num_or("lossScaleFactor", 0);
  o.entropy_coef = r.num_or("entropyCoef", 0);
  o.rollout_is = static_cast<RolloutIs>(r.has("rolloutIsMode") ? r.integer("rolloutIsMode", 0, 4) : 0);
  o.rollout_is_threshold = r.num_or("rolloutIsThreshold", 2.0);
}

}  // namespace grpo
