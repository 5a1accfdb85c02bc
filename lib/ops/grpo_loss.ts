/**
 * grpoLoss — spec §4-§6 (importance ratio, per-token loss, aggregation) from per-token
 * log-probs. Shapes: S sequences (= advantages.length), T tokens each (T = logp.length / S),
 * N = S·T rows, row n = i·T + t.
 *
 * Semantics (follow TRL's GRPOTrainer / verl where the spec is terse):
 * - ρ = exp(ℓ − ℓ_old) per token (`importanceSamplingLevel: 'token'`), or the GSPO sequence
 *   ratio s_i = exp(Σ_t m·(ℓ − ℓ_old) / max(n_i, 1)) for every token of sequence i
 *   (`'sequence'`), whose gradient reaches every masked token of i: ∂s_i/∂ℓ[i,t] = s_i·m/max(n_i, 1).
 * - Without `oldLogp`, ℓ_old = ℓ detached (one optimiser step per rollout batch): ρ = 1 with
 *   gradient ρ.
 * - Per token L[n] = emask[n]·P[n] + β·D[n], P the clipped surrogate (or dual-clip / CISPO
 *   variant), D the KL estimate against `refLogp`. emask is 1 unless `topEntropyQuantile` < 1.
 * - loss = Σ_n a[n]·m[n]·L[n] with the aggregation weight a of `lossType`; gradLogp = ∂loss/∂ℓ,
 *   exact (sequence-level coupling, CISPO's direct term, β·∂D/∂ℓ included).
 * - Masked-out tokens (mask 0) are skipped entirely: their inputs may hold anything (NaN
 *   padding), they get gradient 0, per-token loss 0, and contribute to nothing.
 */
import { native } from '../native';
import * as v from '../validate';
import { KL_ESTIMATORS, KlEstimator } from './kl_penalty';

/** Where the importance ratio is taken: per token (GRPO) or per sequence (GSPO). */
export type ImportanceSamplingLevel = 'token' | 'sequence';
/** The order here is the native enum order (native/common/formulas.h `Level`). */
export const IMPORTANCE_SAMPLING_LEVELS: readonly ImportanceSamplingLevel[] = ['token', 'sequence'];

/** Policy-term variant: PPO clip (TRL/GRPO), verl/OpenRLHF dual clip, CISPO, or SAPO's soft gate. */
export type PolicyLoss = 'clip' | 'dual_clip' | 'cispo' | 'sapo' | 'geo_mean' | 'vespo' | 'clip_cov' | 'kl_cov';
/** Native enum order (formulas.h `PolicyLoss`). */
export const POLICY_LOSSES: readonly PolicyLoss[] = ['clip', 'dual_clip', 'cispo', 'sapo', 'geo_mean', 'vespo', 'clip_cov', 'kl_cov'];

/** CISPO's weight: TRL's cap min(ρ, epsilonHigh) or verl's range clip(ρ, 1 − epsilon, 1 + epsilonHigh). */
export type CispoClip = 'cap' | 'range';
export const CISPO_CLIPS: readonly CispoClip[] = ['cap', 'range'];

/** Aggregation of per-token losses into one scalar (spec §6). */
export type LossType = 'grpo' | 'bnpo' | 'dapo' | 'dr_grpo' | 'seq_sum' | 'luspo';
/** Native enum order (formulas.h `LossType`). */
export const LOSS_TYPES: readonly LossType[] = ['grpo', 'bnpo', 'dapo', 'dr_grpo', 'seq_sum', 'luspo'];

/** verl's `loss_agg_mode` names (an alternative to `lossType`; 'token-mean' is `lossType: 'dapo'`). */
export type LossAggMode = 'token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-mean' | 'seq-mean-token-sum-norm';
export const LOSS_AGG_MODES: readonly LossAggMode[] = ['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'];
/** The native LossType code of each verl mode (formulas.h: Dapo = 2, SeqMeanTokenSum = 6, ...). */
const LOSS_AGG_MODE_CODES: Record<LossAggMode, number> = {
  'token-mean': 2, 'seq-mean-token-sum': 6, 'seq-mean-token-mean': 7, 'seq-mean-token-sum-norm': 8,
};

/**
 * Rollout importance-sampling correction (ms-swift `rollout_importance_sampling_mode`; TRL's vLLM
 * IS correction is 'token_truncate'): token or sequence level, truncate (TIS) or mask (MIS).
 * Native enum order (formulas.h `RolloutIs`, 0 = off).
 */
export type RolloutImportanceSamplingMode = 'token_truncate' | 'token_mask' | 'sequence_truncate' | 'sequence_mask';
export const ROLLOUT_IS_MODES: readonly RolloutImportanceSamplingMode[] = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'];

/** Default CISPO cap on ρ when `epsilonHigh` is not given (the value TRL recommends). */
export const CISPO_DEFAULT_EPSILON_HIGH = 5.0;

/**
 * The loss options, named as TRL's GRPOConfig names them (camelCase). Shared by grpoLoss and
 * grpoLossFromLogits; {@link grpoConfigToNative} validates them and fills in the defaults.
 */
export interface GrpoLossConfig {
  /** 'token' (GRPO, default) or 'sequence' (GSPO: one geometric-mean ratio per sequence). */
  importanceSamplingLevel?: ImportanceSamplingLevel;
  /**
   * 'clip' (default), 'dual_clip' (bound −clipRatioC·A for A < 0), 'cispo', or 'sapo' (TRL /
   * verl SAPO: P = −σ(τ(ρ − 1))·(4/τ)·A, τ = sapoTemperaturePos if A > 0 else
   * sapoTemperatureNeg; TRL's `loss_type="sapo"` is this with `lossType: 'grpo'`), or
   * 'geo_mean' (verl GMPO: per sequence −A·exp(mean_t of the log-ratio clamped to
   * [−epsilon, epsilonHigh] on the side A's sign selects), averaged over the S sequences whatever
   * `lossType` (which then weights only the KL term); token level only, no delta, no top-entropy
   * selection, no bias-corrected KL).
   */
  policyLoss?: PolicyLoss;
  /**
   * cispo only: 'cap' (default, TRL: weight sg(min(ρ, epsilonHigh)), epsilonHigh absolute, default
   * 5) or 'range' (verl: sg(clip(ρ, 1 − epsilon, 1 + epsilonHigh)), a lower clip too; epsilonHigh
   * relative, default `epsilon`; clip metrics count ρ outside the range whatever A's sign).
   */
  cispoClip?: CispoClip;
  /** sapo: gate temperature for A > 0 (TRL `sapo_temperature_pos`, verl `tau_pos`). Default 1, > 0. */
  sapoTemperaturePos?: number;
  /** sapo: gate temperature for A ≤ 0 (TRL `sapo_temperature_neg`, verl `tau_neg`). Default 1.05, > 0. */
  sapoTemperatureNeg?: number;
  /**
   * TRL `use_bias_correction_kl`: the KL term is D·ρ (importance-weighted, ρ not detached: its
   * gradient flows through ρ too), and the kl metric is its masked mean. Default false.
   */
  useBiasCorrectionKl?: boolean;
  /** ε_low: the ratio is clipped below at 1 − epsilon. Default 0.2, in [0, 1]. */
  epsilon?: number;
  /**
   * ε_high (clip-higher, DAPO): clipped above at 1 + epsilonHigh. Default: `epsilon`.
   * For `policyLoss: 'cispo'` it is instead the absolute cap on ρ and defaults to 5.0
   * ({@link CISPO_DEFAULT_EPSILON_HIGH}, TRL's recommendation): a cap of 0.2 would make no sense.
   */
  epsilonHigh?: number;
  /**
   * TRL `delta` (two-sided GRPO): ρ is replaced by min(ρ, delta) in the unclipped term.
   * Off by default; must exceed 1 + epsilonHigh (below that it has no effect on the loss).
   * Not applicable to 'cispo'.
   */
  delta?: number;
  /** dual_clip bound c (verl `clip_ratio_c`): P ≤ −c·A for A < 0. Default 3, must be > 1. */
  clipRatioC?: number;
  /** KL weight β ≥ 0. Default 0 (no KL term; refLogp then optional and only feeds the metric). */
  beta?: number;
  /** KL estimator (spec §3). Default 'k3'. */
  klEstimator?: KlEstimator;
  /** Clamp d = ℓ_ref − ℓ to [−20, 20] before exp in k3 (default true; false = TRL exactly). */
  clampLogRatio?: boolean;
  /**
   * Aggregation (spec §6). Default 'dapo' (TRL's current default). 'luspo' (TRL): the mean over
   * the per-token-loss tensor of loss·n_i — at sequence level Σ_i n_i·P_i / S plus the KL term
   * weighted n_i/(S·T) per token; at token level n_i/(S·T) per token (masked tokens only, where
   * TRL's mean also takes the padding positions).
   */
  lossType?: LossType;
  /**
   * verl `loss_agg_mode`, instead of `lossType`: 'token-mean' (= 'dapo': Σ/numItemsInBatch),
   * 'seq-mean-token-sum' (Σ_i token sum / G), 'seq-mean-token-mean' (Σ_i token sum/(n_i + 1e-8) / G),
   * G = `globalBatchSize` or this batch's sequences with a masked token, or
   * 'seq-mean-token-sum-norm' (Σ of token sums / `lossScaleFactor`, default T).
   */
  lossAggMode?: LossAggMode;
  /**
   * verl `global_batch_size`: the seq-mean-* denominator G, the sequences of one optimiser step over
   * every micro-batch and rank. Default: this batch's non-empty sequences. Must be > 0.
   */
  globalBatchSize?: number;
  /** verl `loss_scale_factor` of 'seq-mean-token-sum-norm'. Default T. Must be > 0. */
  lossScaleFactor?: number;
  /**
   * verl GSPO: clamp the sequence log-ratio at 10 (log s_i ≤ 10; no gradient through s_i where
   * it binds). Default false (TRL: unclamped). Sequence level only.
   */
  clampSequenceLogRatio?: boolean;
  /** clip_cov (verl `clip_cov_ratio`): fraction of masked tokens whose policy term is zeroed. Default 0.0002, > 0. */
  clipCovRatio?: number;
  /** clip_cov (verl `clip_cov_lb`): candidates have covariance > clipCovLb. Default 1. */
  clipCovLb?: number;
  /** clip_cov (verl `clip_cov_ub`): candidates have covariance < clipCovUb. Default 5. */
  clipCovUb?: number;
  /** kl_cov (verl `kl_cov_ratio`): fraction of masked tokens given the |log-ratio| penalty. Default 0.0002, > 0. */
  klCovRatio?: number;
  /** kl_cov (verl `ppo_kl_coef`): weight of |ℓ − ℓ_old| on the selected tokens. Default 0.1, ≥ 0. */
  ppoKlCoef?: number;
  /** vespo (TRL `vespo_k_pos`): power k of the gamma weight for A ≥ 0. Default 2. */
  vespoKPos?: number;
  /** vespo (TRL `vespo_lambda_pos`): decay λ for A ≥ 0. Default 3 (values below 1e-4 act as 1e-4). */
  vespoLambdaPos?: number;
  /** vespo (TRL `vespo_k_neg`): power k for A < 0. Default 3. */
  vespoKNeg?: number;
  /** vespo (TRL `vespo_lambda_neg`): decay λ for A < 0. Default 2. */
  vespoLambdaNeg?: number;
  /**
   * Entropy bonus (verl `entropy_coeff`, TRL `entropy_coef`): L[n] −= entropyCoef·H[n] on the
   * tokens the policy term keeps, aggregated like the KL term; its gradient reaches the entropy
   * (grpoLoss: `gradEntropy`; grpoLossFromLogits: into ∂L/∂z; grpoLossFromHidden: through ∂L/∂z
   * into ∂L/∂h and ∂L/∂W). Default 0.
   */
  entropyCoef?: number;
  /**
   * dapo: N_global, the masked-token count over every micro-batch and process of one optimiser
   * step (TRL `num_items_in_batch`). Default: this batch's masked-token count. Must be > 0.
   */
  numItemsInBatch?: number;
  /** dr_grpo: T_max, the maximum completion length (TRL `max_completion_length`). Default T. */
  maxCompletionLength?: number;
  /**
   * TRL `top_entropy_quantile` q in [0, 1]: keep the policy term only for the top-q fraction of
   * masked tokens by entropy (entropy ≥ torch.quantile(masked entropies, 1 − q), linear
   * interpolation). Default 1 (off). Needs `entropy`. The KL term is never masked by it.
   */
  topEntropyQuantile?: number;
  /**
   * Rollout IS correction against the sampler's log-probs `rolloutLogp` (required with it):
   * per token lr_t = ℓ_train − rolloutLogp, ℓ_train = oldLogp when given (the old-policy pass) else ℓ
   * detached, clamped to ±20; r_t = exp(lr_t), R_i = exp(masked mean of lr_t). The policy term of
   * every token is multiplied by a detached weight: 'token_truncate' min(r_t, C), 'token_mask'
   * r_t·[r_t ≤ C], 'sequence_truncate' min(R_i, C), 'sequence_mask' r_t·[R_i ≤ C] (C =
   * rolloutImportanceSamplingThreshold). The KL term and the entropy bonus are not weighted (TRL,
   * verl). With policyLoss 'geo_mean' the sequence's policy loss is multiplied by the geometric mean
   * of its tokens' weights, exp(Σ_t m·log(w_t + 1e-10) / (n_i + 1e-8)) (verl GMPO). Default off.
   */
  rolloutImportanceSamplingMode?: RolloutImportanceSamplingMode;
  /** C > 0 of the rollout IS correction (ms-swift `rollout_importance_sampling_threshold`, TRL `vllm_importance_sampling_cap`). Default 2. */
  rolloutImportanceSamplingThreshold?: number;
}

/**
 * Scalar results of a loss call (TRL's logged metrics), each a mean over masked tokens, also
 * with `importanceSamplingLevel: 'sequence'` (TRL averages its clip ratios over sequences there).
 */
export interface GrpoMetrics {
  /** The aggregated loss (same as the result's `loss`). */
  loss: number;
  /** Masked mean of the KL estimate D (0 when no refLogp was given). */
  kl: number;
  /** Masked mean of the token entropy (0 when no entropy was given). */
  entropy: number;
  /** Fraction of masked tokens with ρ < 1 − ε_low and A < 0. */
  clipLow: number;
  /** Fraction with ρ > 1 + ε_high and A > 0 (cispo: ρ > cap and A > 0). */
  clipHigh: number;
  /** Fraction with either of the two above. */
  clipRegion: number;
  /** Masked mean of the importance ratio ρ. */
  ratio: number;
  /** Σ mask: the number of masked (real) tokens. */
  maskedTokens: number;
  /** Rollout IS: masked mean of the weight on the policy term (1 when off). */
  isWeightMean: number;
  /** Rollout IS: fraction truncated or masked (ratio > C): of masked tokens at token level, of sequences at sequence level. */
  isClippedFrac: number;
}

/** The native option fields (native/binding.cc read_options) produced by grpoConfigToNative. */
export interface GrpoNativeOptions {
  [key: string]: number | boolean | undefined;
  level: number;
  policyLoss: number;
  epsilonLow: number;
  epsilonHigh: number;
  delta: number | undefined;
  clipRatioC: number;
  beta: number;
  klEstimator: number;
  clampLogRatio: boolean;
  lossType: number;
  numItemsInBatch: number | undefined;
  maxCompletionLength: number | undefined;
  topEntropyQuantile: number;
  cispoRange: boolean;
  sapoTemperaturePos: number;
  sapoTemperatureNeg: number;
  useBiasCorrectionKl: boolean;
  clampSequenceLogRatio: boolean;
  clipCovRatio: number;
  clipCovLb: number;
  clipCovUb: number;
  klCovRatio: number;
  ppoKlCoef: number;
  vespoKPos: number;
  vespoLambdaPos: number;
  vespoKNeg: number;
  vespoLambdaNeg: number;
  globalBatchSize: number | undefined;
  lossScaleFactor: number | undefined;
  entropyCoef: number;
  rolloutIsMode: number;
  rolloutIsThreshold: number;
}

/** The option keys of {@link GrpoLossConfig}, in every op that takes the loss options. */
export const GRPO_CONFIG_KEYS = [
  'importanceSamplingLevel', 'policyLoss', 'epsilon', 'epsilonHigh', 'delta', 'clipRatioC', 'beta', 'klEstimator',
  'clampLogRatio', 'lossType', 'numItemsInBatch', 'maxCompletionLength', 'topEntropyQuantile',
  'cispoClip', 'sapoTemperaturePos', 'sapoTemperatureNeg', 'useBiasCorrectionKl',
  'lossAggMode', 'globalBatchSize', 'lossScaleFactor', 'clampSequenceLogRatio', 'clipCovRatio', 'clipCovLb', 'clipCovUb',
  'klCovRatio', 'ppoKlCoef', 'vespoKPos', 'vespoLambdaPos', 'vespoKNeg', 'vespoLambdaNeg', 'entropyCoef',
  'rolloutImportanceSamplingMode', 'rolloutImportanceSamplingThreshold',
] as const;

/**
 * Validates the {@link GrpoLossConfig} fields of `cfg` (other fields are ignored, so the whole
 * call options object can be passed; the ops pass their {@link v.snapshot}) and returns the native option fields with defaults
 * applied and enums as their native integer codes. Errors name `op` and the option.
 * `numItemsInBatch` / `maxCompletionLength` are undefined when not given (the kernel then
 * uses this batch's masked-token count / T); `delta` is undefined when off.
 */
export function grpoConfigToNative(op: string, cfg: unknown): GrpoNativeOptions {
  const c = v.options(op, cfg);
  const level = v.oneOf(op, 'importanceSamplingLevel', c.importanceSamplingLevel, IMPORTANCE_SAMPLING_LEVELS, 'token');
  const policyLoss = v.oneOf(op, 'policyLoss', c.policyLoss, POLICY_LOSSES, 'clip');
  const epsilonLow = v.float(op, 'epsilon', c.epsilon, 0, 1, 0.2);
  const cispoClip = v.oneOf(op, 'cispoClip', c.cispoClip, CISPO_CLIPS, 'cap');
  if (cispoClip === 'range' && policyLoss !== 'cispo') throw v.rangeError(op, 'cispoClip', "'cap' (the default) unless policyLoss is 'cispo'", c.cispoClip);
  let epsilonHigh: number;
  if (policyLoss === 'cispo' && cispoClip === 'cap') {
    epsilonHigh = v.float(op, 'epsilonHigh', c.epsilonHigh, 0, Infinity, CISPO_DEFAULT_EPSILON_HIGH, { loOpen: true });
  } else {
    epsilonHigh = v.float(op, 'epsilonHigh', c.epsilonHigh, 0, Infinity, epsilonLow);
  }
  let delta: number | undefined;
  if (c.delta !== undefined && c.delta !== null) {
    if (policyLoss !== 'clip' && policyLoss !== 'dual_clip') throw v.rangeError(op, 'delta', `no delta with policyLoss '${policyLoss}' (delta bounds the clipped surrogate only)`, c.delta);
    delta = v.float(op, 'delta', c.delta, -Infinity, Infinity);
    if (!(delta > 1 + epsilonHigh)) throw v.rangeError(op, 'delta', `a number > 1 + epsilonHigh = ${1 + epsilonHigh}`, delta);
  }
  const clipRatioC = v.float(op, 'clipRatioC', c.clipRatioC, -Infinity, Infinity, 3);
  if (!(clipRatioC > 1)) throw v.rangeError(op, 'clipRatioC', 'a number > 1', clipRatioC);
  const beta = v.float(op, 'beta', c.beta, 0, Infinity, 0);
  const klEstimator = v.oneOf(op, 'klEstimator', c.klEstimator, KL_ESTIMATORS, 'k3');
  const clampLogRatio = v.boolean(op, 'clampLogRatio', c.clampLogRatio, true);
  const lossType = v.oneOf(op, 'lossType', c.lossType, LOSS_TYPES, 'dapo');
  let lossAggMode: LossAggMode | undefined;
  if (c.lossAggMode !== undefined) {
    if (c.lossType !== undefined) throw v.rangeError(op, 'lossAggMode', 'absent when lossType is given (one aggregation)', c.lossAggMode);
    lossAggMode = v.oneOf(op, 'lossAggMode', c.lossAggMode, LOSS_AGG_MODES, 'token-mean');
  }
  const positive = (name: string, x: unknown): number | undefined => {
    if (x === undefined) return undefined;
    const y = v.float(op, name, x, -Infinity, Infinity);
    if (!(y > 0)) throw v.rangeError(op, name, 'a number > 0', y);
    return y;
  };
  const globalBatchSize = positive('globalBatchSize', c.globalBatchSize);
  const lossScaleFactor = positive('lossScaleFactor', c.lossScaleFactor);
  if (globalBatchSize !== undefined && lossAggMode !== 'seq-mean-token-sum' && lossAggMode !== 'seq-mean-token-mean')
    throw v.rangeError(op, 'globalBatchSize', "absent unless lossAggMode is 'seq-mean-token-sum' or 'seq-mean-token-mean'", c.globalBatchSize);
  if (lossScaleFactor !== undefined && lossAggMode !== 'seq-mean-token-sum-norm')
    throw v.rangeError(op, 'lossScaleFactor', "absent unless lossAggMode is 'seq-mean-token-sum-norm'", c.lossScaleFactor);
  const clampSequenceLogRatio = v.boolean(op, 'clampSequenceLogRatio', c.clampSequenceLogRatio, false);
  if (clampSequenceLogRatio && level !== 'sequence') throw v.rangeError(op, 'clampSequenceLogRatio', "false unless importanceSamplingLevel is 'sequence'", c.clampSequenceLogRatio);
  const clipCovRatio = positive('clipCovRatio', c.clipCovRatio) ?? 2e-4;
  const clipCovLb = v.float(op, 'clipCovLb', c.clipCovLb, -Infinity, Infinity, 1);
  const clipCovUb = v.float(op, 'clipCovUb', c.clipCovUb, -Infinity, Infinity, 5);
  if (!(clipCovUb > clipCovLb)) throw v.rangeError(op, 'clipCovUb', `a number > clipCovLb = ${clipCovLb}`, clipCovUb);
  const klCovRatio = positive('klCovRatio', c.klCovRatio) ?? 2e-4;
  const ppoKlCoef = v.float(op, 'ppoKlCoef', c.ppoKlCoef, 0, Infinity, 0.1);
  const vespoKPos = v.float(op, 'vespoKPos', c.vespoKPos, -Infinity, Infinity, 2);
  const vespoLambdaPos = v.float(op, 'vespoLambdaPos', c.vespoLambdaPos, -Infinity, Infinity, 3);
  const vespoKNeg = v.float(op, 'vespoKNeg', c.vespoKNeg, -Infinity, Infinity, 3);
  const vespoLambdaNeg = v.float(op, 'vespoLambdaNeg', c.vespoLambdaNeg, -Infinity, Infinity, 2);
  const entropyCoef = v.float(op, 'entropyCoef', c.entropyCoef, -Infinity, Infinity, 0);
  let numItemsInBatch: number | undefined;
  if (c.numItemsInBatch !== undefined) {
    numItemsInBatch = v.float(op, 'numItemsInBatch', c.numItemsInBatch, -Infinity, Infinity);
    if (!(numItemsInBatch > 0)) throw v.rangeError(op, 'numItemsInBatch', 'a number > 0', numItemsInBatch);
  }
  let maxCompletionLength: number | undefined;
  if (c.maxCompletionLength !== undefined) {
    maxCompletionLength = v.integer(op, 'maxCompletionLength', c.maxCompletionLength, 1, 2 ** 40);
  }
  const topEntropyQuantile = v.float(op, 'topEntropyQuantile', c.topEntropyQuantile, 0, 1, 1);
  if (policyLoss === 'vespo' || policyLoss === 'clip_cov' || policyLoss === 'kl_cov') {
    // token-level objectives upstream (TRL warns for vespo at sequence level; verl's are token-level)
    if (level !== 'token') throw v.rangeError(op, 'importanceSamplingLevel', `'token' with policyLoss '${policyLoss}'`, c.importanceSamplingLevel);
  }
  if (policyLoss === 'geo_mean') {
    const bad = level !== 'token' ? ['importanceSamplingLevel', c.importanceSamplingLevel]
      : topEntropyQuantile < 1 ? ['topEntropyQuantile', c.topEntropyQuantile]
      : c.useBiasCorrectionKl === true ? ['useBiasCorrectionKl', c.useBiasCorrectionKl] : null;
    if (bad) throw v.rangeError(op, bad[0] as string, "its default with policyLoss 'geo_mean' (a per-sequence objective of its own)", bad[1]);
  }
  const sapoTemperaturePos = v.float(op, 'sapoTemperaturePos', c.sapoTemperaturePos, 0, Infinity, 1, { loOpen: true });
  const sapoTemperatureNeg = v.float(op, 'sapoTemperatureNeg', c.sapoTemperatureNeg, 0, Infinity, 1.05, { loOpen: true });
  const useBiasCorrectionKl = v.boolean(op, 'useBiasCorrectionKl', c.useBiasCorrectionKl, false);
  const ris = c.rolloutImportanceSamplingMode === undefined || c.rolloutImportanceSamplingMode === null ? null
    : v.oneOf(op, 'rolloutImportanceSamplingMode', c.rolloutImportanceSamplingMode, ROLLOUT_IS_MODES, 'token_truncate');
  const rolloutIsThreshold = v.float(op, 'rolloutImportanceSamplingThreshold', c.rolloutImportanceSamplingThreshold, 0, Infinity, 2, { loOpen: true });
  return {
    level: IMPORTANCE_SAMPLING_LEVELS.indexOf(level),
    policyLoss: POLICY_LOSSES.indexOf(policyLoss),
    epsilonLow,
    epsilonHigh,
    delta,
    clipRatioC,
    beta,
    klEstimator: KL_ESTIMATORS.indexOf(klEstimator),
    clampLogRatio,
    lossType: lossAggMode !== undefined ? LOSS_AGG_MODE_CODES[lossAggMode] : LOSS_TYPES.indexOf(lossType),
    numItemsInBatch,
    maxCompletionLength,
    topEntropyQuantile,
    cispoRange: policyLoss === 'cispo' && cispoClip === 'range',
    sapoTemperaturePos,
    sapoTemperatureNeg,
    useBiasCorrectionKl,
    clampSequenceLogRatio,
    clipCovRatio,
    clipCovLb,
    clipCovUb,
    klCovRatio,
    ppoKlCoef,
    vespoKPos,
    vespoLambdaPos,
    vespoKNeg,
    vespoLambdaNeg,
    globalBatchSize,
    lossScaleFactor,
    entropyCoef,
    rolloutIsMode: ris ? ROLLOUT_IS_MODES.indexOf(ris) + 1 : 0,
    rolloutIsThreshold,
  };
}

/** Inputs of {@link grpoLoss}: per-token arrays of length N = S·T, S = advantages.length. */
export interface GrpoLossOptions extends GrpoLossConfig {
  /** Policy log-probs ℓ [S·T] (the differentiated input). */
  logp: Float32Array;
  /** Log-probs under the rollout policy [S·T]; absent: ℓ detached (ρ = 1, gradient ρ). */
  oldLogp?: Float32Array;
  /** Reference-model log-probs [S·T]; required when beta > 0, else only feeds the kl metric. */
  refLogp?: Float32Array;
  /** One advantage per sequence [S]; S is taken from its length. */
  advantages: Float32Array;
  /** 1 = real token, 0 = padding [S·T]: Uint8Array, Float32Array, Int32Array or boolean[]. Default all 1. */
  mask?: Uint8Array | Float32Array | Int32Array | boolean[] | number[];
  /** Token entropies [S·T]: the entropy metric, and required for topEntropyQuantile < 1. */
  entropy?: Float32Array;
  /** The sampler's log-probs [S·T] (behaviour policy): required by rolloutImportanceSamplingMode, and only used by it. */
  rolloutLogp?: Float32Array;
  /** Compute gradLogp (default true). */
  grad?: boolean;
  /** Return the per-token loss L[n] (before aggregation weights; 0 where mask is 0). Default false. */
  perTokenLoss?: boolean;
  /** Preallocated outputs of length S·T (written in place and returned). */
  out?: { gradLogp?: Float32Array; perTokenLoss?: Float32Array; gradEntropy?: Float32Array };
}

/** Result of {@link grpoLoss}. */
export interface GrpoLossResult {
  /** The aggregated scalar loss. */
  loss: number;
  /** ∂loss/∂ℓ per token [S·T] (0 where mask is 0), or null with `grad: false`. */
  gradLogp: Float32Array | null;
  /** L[n] = emask·P + β·D per token, or null unless `perTokenLoss: true`. */
  perTokenLoss: Float32Array | null;
  /** ∂loss/∂H per token [S·T] with `entropyCoef` ≠ 0 (and `grad` on), else null. */
  gradEntropy: Float32Array | null;
  /** TRL-style metrics (masked means). */
  metrics: GrpoMetrics;
}

const OP = 'grpoLoss';

/** Option keys every form of grpoLoss takes (the CUDA form: these and no others). */
export const GRPO_LOSS_KEYS = [
  'logp', 'oldLogp', 'refLogp', 'advantages', 'mask', 'entropy', 'rolloutLogp', 'grad', 'perTokenLoss', ...GRPO_CONFIG_KEYS,
] as const;
/** The host form's keys, and its `out` keys. */
export const GRPO_LOSS_HOST_KEYS = [...GRPO_LOSS_KEYS, 'out'] as const;
export const GRPO_LOSS_OUT_KEYS = ['gradLogp', 'perTokenLoss', 'gradEntropy'] as const;

/** rolloutImportanceSamplingMode and rolloutLogp come together (errors name the missing one). */
export function checkRolloutIs(op: string, cfg: GrpoNativeOptions, s: Record<string, unknown>, N: number, hasRolloutLogp: boolean): void {
  if (cfg.rolloutIsMode && !hasRolloutLogp)
    throw v.typeError(op, 'rolloutLogp', `a tensor of length ${N} (the sampler's log-probs) when rolloutImportanceSamplingMode is set`, s.rolloutLogp);
  if (!cfg.rolloutIsMode && hasRolloutLogp)
    throw v.typeError(op, 'rolloutImportanceSamplingMode', `one of ${ROLLOUT_IS_MODES.join(', ')} when rolloutLogp is given (it is only used by the correction)`, s.rolloutImportanceSamplingMode);
}

/** S, T from the element counts of advantages and logp: shared by the host op and its CUDA form. */
export function lossShape(op: string, S: number, N: number, advantages: unknown, logp: unknown): { S: number; T: number; N: number } {
  if (S === 0) throw v.rangeError(op, 'advantages', 'a non-empty array (one advantage per sequence)', advantages);
  if (N === 0 || N % S !== 0)
    throw v.rangeError(op, 'logp', `a length that is a positive multiple of S = advantages.length = ${S}`, logp);
  return { S, T: N / S, N };
}

/**
 * The non-tensor options of grpoLoss (the loss config, grad, perTokenLoss) and the checks that
 * tie them to optional tensors, validated the same way for the host op and its CUDA form.
 * `has` says which optional tensors were given.
 */
export function grpoLossConfig(op: string, s: Record<string, unknown>, N: number, has: { refLogp: boolean; entropy: boolean; rolloutLogp?: boolean }) {
  const cfg = grpoConfigToNative(op, s);
  checkRolloutIs(op, cfg, s, N, !!has.rolloutLogp);
  if (cfg.beta > 0 && !has.refLogp) throw v.typeError(op, 'refLogp', `a tensor of length ${N} when beta > 0`, s.refLogp);
  if (cfg.topEntropyQuantile < 1 && !has.entropy)
    throw v.typeError(op, 'entropy', `a tensor of length ${N} when topEntropyQuantile < 1`, s.entropy);
  if (cfg.entropyCoef !== 0 && !has.entropy)
    throw v.typeError(op, 'entropy', `a tensor of length ${N} when entropyCoef != 0`, s.entropy);
  return {
    cfg,
    wantGrad: v.boolean(op, 'grad', s.grad, true),
    wantPtl: v.boolean(op, 'perTokenLoss', s.perTokenLoss, false),
  };
}

function prepare(o: GrpoLossOptions) {
  const opts = v.snapshot(OP, o, GRPO_LOSS_HOST_KEYS, { out: GRPO_LOSS_OUT_KEYS });
  const advantages = v.float32Array(OP, 'advantages', opts.advantages);
  const logp = v.float32Array(OP, 'logp', opts.logp);
  const { S, T, N } = lossShape(OP, advantages.length, logp.length, advantages, logp);
  // A Uint8Array mask's values are checked by the kernel (below)
  const mask = v.mask(OP, 'mask', opts.mask, N, false);
  const oldLogp = v.optionalFloat32Array(OP, 'oldLogp', opts.oldLogp, N);
  const refLogp = v.optionalFloat32Array(OP, 'refLogp', opts.refLogp, N);
  const entropy = v.optionalFloat32Array(OP, 'entropy', opts.entropy, N);
  const rolloutLogp = v.optionalFloat32Array(OP, 'rolloutLogp', opts.rolloutLogp, N);
  const { cfg, wantGrad, wantPtl } = grpoLossConfig(OP, opts, N, { refLogp: !!refLogp, entropy: !!entropy, rolloutLogp: !!rolloutLogp });
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  const gradLogp = wantGrad ? v.outFloat32(OP, 'out.gradLogp', out.gradLogp, N) : null;
  const perTokenLoss = wantPtl ? v.outFloat32(OP, 'out.perTokenLoss', out.perTokenLoss, N) : null;
  const gradEntropy = wantGrad && cfg.entropyCoef !== 0 ? v.outFloat32(OP, 'out.gradEntropy', out.gradEntropy, N) : null;
  if (opts.out !== undefined) v.noAliases(OP, { 'out.gradLogp': gradLogp, 'out.perTokenLoss': perTokenLoss, 'out.gradEntropy': gradEntropy }, { logp, oldLogp, refLogp, advantages, mask, entropy, rolloutLogp });
  v.allFinite(OP, 'advantages', advantages);
  const args = { S, T, logp, oldLogp, refLogp, advantages, mask, entropy, rolloutLogp, ...cfg, gradLogp, perTokenLoss, gradEntropy };
  // The mask's values (0/1) and the per-token inputs' finiteness where the mask is set are
  // checked by the kernel's first pass, which reads the mask anyway (JS scans here were a third
  // of the op's time at 1M tokens); on a bad input it returns before writing any output and the
  // scans below name the argument and the index.
  const result = (m: GrpoMetrics & { inputsOk: boolean }): GrpoLossResult => {
    const { inputsOk, ...metrics } = m;
    if (!inputsOk) {
      v.mask(OP, 'mask', mask, N);
      v.allFiniteWhere(OP, 'logp', logp, mask);
      if (oldLogp) v.allFiniteWhere(OP, 'oldLogp', oldLogp, mask);
      if (refLogp) v.allFiniteWhere(OP, 'refLogp', refLogp, mask);
      if (entropy) v.allFiniteWhere(OP, 'entropy', entropy, mask);
      if (rolloutLogp) v.allFiniteWhere(OP, 'rolloutLogp', rolloutLogp, mask);
      // the kernel saw a bad value, the scans do not: the caller changed the arrays during an async call
      throw v.rangeError(OP, 'logp/mask', 'finite inputs and a 0/1 mask (unchanged during the call)', 'a bad value the kernel read');
    }
    return { loss: metrics.loss, gradLogp, perTokenLoss, gradEntropy, metrics };
  };
  return { args, result };
}

/**
 * The GRPO loss (spec §4-§6) and its gradient with respect to the per-token log-probs, from
 * per-token inputs. Async: runs on the native thread pool.
 */
export async function grpoLoss(o: GrpoLossOptions): Promise<GrpoLossResult> {
  const p = prepare(o);
  return p.result(await native().grpoLoss(p.args, true));
}

/** Synchronous twin of {@link grpoLoss}. */
export function grpoLossSync(o: GrpoLossOptions): GrpoLossResult {
  const p = prepare(o);
  return p.result(native().grpoLoss(p.args, false));
}
