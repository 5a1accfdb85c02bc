/**
 * The GRPO loop. Per step:
 *   1. take B prompts (a seeded permutation of the training split, epoch by epoch),
 *   2. generate G completions each (the policy's generate: KV cache + the `sample` op),
 *   3. score them with the reward functions (NaN = no reward, reported),
 *   4. advantages per group (`groupAdvantages`); with dynamicSampling, groups whose rewards all
 *      agree are dropped and more prompts drawn, up to maxDynamicSamplingRounds rounds,
 *   5. ℓ_ref from the frozen reference model (only when β > 0: with β = 0 there is no reference
 *      model at all),
 *   6. μ = numIterations optimiser updates on the fused loss from logits (`grpoLossFromLogits`,
 *      gradient written in place over the gathered logits), each over gradientAccumulationSteps
 *      micro-batches.
 *
 * Old log-probs (ℓ_old): with μ = 1 none are passed and the kernel uses ℓ detached (ρ = 1, as
 * TRL). With μ > 1 the sampler's log-probs are used: they are exactly log softmax(z/τ)[y] of the
 * policy that generated the batch (spec §9), which is what TRL recomputes with an extra forward
 * pass; they are computed once per batch and reused by all μ iterations.
 */
import { hasHiddenPath, type PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import { ADVANTAGE_ESTIMATORS, groupAdvantages, LENGTH_ESTIMATORS, SCALED_ESTIMATORS } from '../ops/group_advantages';
import type { AdvantageEstimator } from '../ops/group_advantages';
import type { ExampleMedia } from '../media/types';
import { grpoLossFromLogits } from '../ops/grpo_loss_from_logits';
import { grpoLossFromHidden } from '../ops/grpo_loss_from_hidden';
import { logprobs } from '../ops/logprobs';
import { ConstantRewardMonitor, ConstantRewardSnapshot, ConstantRewardState, RewardFailure, RewardFunction, scoreRewards } from '../rewards';
import { Example, Task } from '../tasks/types';
import { mixSeed, permutation } from '../tasks/rng';
import { completionLogits, packBatch, PackedBatch, scatterCompletionGrad, sliceBatch, slicePerToken } from './batch';
import { checkPromptLengths, Rollout } from './rollout';
import { InProcessEngine, type RolloutEngine } from '../rollout/engine';
import { SnapshotEngine } from '../rollout/async';
import { learningRateAt } from './schedule';
import type { DataParallel } from '../parallel/data_parallel';

export interface GrpoConfig {
  maxSteps: number;
  batchSize: number;
  numGenerations: number;
  numIterations: number;
  beta: number;
  /** 'full': the exact KL from both models' logits (the reference pass keeps its completion logits; trains through the logits path). */
  klEstimator: 'k1' | 'k2' | 'k3' | 'low_var_kl' | 'abs' | 'k1+' | 'k3+' | 'low_var_kl+' | 'abs+' | 'full';
  useBiasCorrectionKl?: boolean;
  epsilon: number;
  epsilonHigh?: number;
  delta?: number;
  policyLoss: 'clip' | 'dual_clip' | 'cispo' | 'sapo' | 'geo_mean' | 'vespo' | 'clip_cov' | 'kl_cov';
  clipCovRatio?: number;
  clipCovLb?: number;
  clipCovUb?: number;
  klCovRatio?: number;
  ppoKlCoef?: number;
  vespoKPos?: number;
  vespoLambdaPos?: number;
  vespoKNeg?: number;
  vespoLambdaNeg?: number;
  clampSequenceLogRatio?: boolean;
  entropyCoef?: number;
  /** verl loss_agg_mode; when set, lossType is not used. */
  lossAggMode?: 'token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-mean' | 'seq-mean-token-sum-norm';
  lossScaleFactor?: number;
  cispoClip?: 'cap' | 'range';
  sapoTemperaturePos?: number;
  sapoTemperatureNeg?: number;
  lossType: 'grpo' | 'bnpo' | 'dapo' | 'dr_grpo' | 'seq_sum' | 'luspo';
  scaleRewards: 'group' | 'batch' | 'none';
  advantageEstimator: AdvantageEstimator;
  /** TRL normalize_advantages: whiten the advantages over the batch. */
  normalizeAdvantages: boolean;
  importanceSamplingLevel: 'token' | 'sequence';
  topEntropyQuantile: number;
  maskTruncatedCompletions: boolean;
  dynamicSampling: boolean;
  maxDynamicSamplingRounds: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  maxCompletionLength: number;
  stop: string[];
  rewardWeights?: number[];
  /** Seconds a reward function may take per batch; past it the step fails (RewardError). */
  rewardTimeout: number;
  /** A reward function that throws or returns no array of S values: stop the run ('abort') or give no reward for the batch and report it ('no_reward'). */
  rewardErrors: 'abort' | 'no_reward';
  learningRate: number;
  warmupRatio: number;
  minLrRatio: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  maxGradNorm: number;
  gradientAccumulationSteps: number;
  seed: number;
  /** One-step-off: the next step's rollouts are generated while this step trains (from a weight snapshot). */
  asyncRollouts: boolean;
  /** Async: samples more than this many optimiser updates older than the policy being trained are dropped (and regenerated). */
  maxStaleness: number;
  /** Rollout IS correction (TIS/MIS) between the training policy and the sampler's log-probs; undefined = off. */
  rolloutImportanceSamplingMode?: 'token_truncate' | 'token_mask' | 'sequence_truncate' | 'sequence_mask';
  rolloutImportanceSamplingThreshold: number;
}

export const GRPO_DEFAULTS: GrpoConfig = {
  maxSteps: 60, batchSize: 16, numGenerations: 8, numIterations: 1, beta: 0, klEstimator: 'k3',
  epsilon: 0.2, policyLoss: 'clip', lossType: 'dapo', scaleRewards: 'group', advantageEstimator: 'grpo', normalizeAdvantages: false,
  importanceSamplingLevel: 'token', topEntropyQuantile: 1, maskTruncatedCompletions: false,
  dynamicSampling: false, maxDynamicSamplingRounds: 3, temperature: 1, topK: 0, topP: 1, minP: 0,
  maxCompletionLength: 8, stop: [], rewardTimeout: 120, rewardErrors: 'abort', learningRate: 1e-3, warmupRatio: 0.05, minLrRatio: 0.1,
  weightDecay: 0, adamBeta1: 0.9, adamBeta2: 0.99, maxGradNorm: 1, gradientAccumulationSteps: 1, seed: 42,
  asyncRollouts: false, maxStaleness: 1, rolloutImportanceSamplingThreshold: 2,
};

/** The options without a default: copied when given (a key missing here would be silently dropped). */
const OPTIONAL_KEYS: (keyof GrpoConfig)[] = [
  'epsilonHigh', 'delta', 'rewardWeights', 'useBiasCorrectionKl', 'clipCovRatio', 'clipCovLb', 'clipCovUb', 'klCovRatio', 'ppoKlCoef',
  'vespoKPos', 'vespoLambdaPos', 'vespoKNeg', 'vespoLambdaNeg', 'clampSequenceLogRatio', 'entropyCoef', 'lossAggMode', 'lossScaleFactor',
  'cispoClip', 'sapoTemperaturePos', 'sapoTemperatureNeg', 'rolloutImportanceSamplingMode',
];

function pick<T extends object>(o: Record<string, unknown>, base: T): T {
  const r = { ...base } as Record<string, unknown>;
  for (const k of Object.keys(base).concat(OPTIONAL_KEYS)) if (o[k] !== undefined) r[k] = o[k];
  return r as T;
}

/** Fills defaults and checks the combination (errors name the option). */
export function resolveGrpoConfig(o: Partial<GrpoConfig> | Record<string, unknown>): GrpoConfig {
  const c = pick(o as Record<string, unknown>, GRPO_DEFAULTS);
  const posInt = (k: keyof GrpoConfig, min = 1) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < min) throw new RangeError(`GRPO config: expected an integer >= ${min} for ${k} but received ${v}`);
  };
  posInt('maxSteps', 0); posInt('batchSize'); posInt('numGenerations'); posInt('numIterations');
  posInt('maxCompletionLength'); posInt('gradientAccumulationSteps'); posInt('maxDynamicSamplingRounds'); posInt('maxStaleness', 0);
  const ris = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'];
  if (c.rolloutImportanceSamplingMode !== undefined && !ris.includes(c.rolloutImportanceSamplingMode))
    throw new RangeError(`GRPO config: expected rolloutImportanceSamplingMode one of ${ris.join(', ')} but received ${JSON.stringify(c.rolloutImportanceSamplingMode)}`);
  if (!(c.rolloutImportanceSamplingThreshold > 0)) throw new RangeError(`GRPO config: expected rolloutImportanceSamplingThreshold > 0 but received ${c.rolloutImportanceSamplingThreshold}`);
  if (typeof c.asyncRollouts !== 'boolean') throw new RangeError(`GRPO config: expected true or false for asyncRollouts but received ${JSON.stringify(c.asyncRollouts)}`);
  if (!ADVANTAGE_ESTIMATORS.includes(c.advantageEstimator)) throw new RangeError(`GRPO config: expected advantageEstimator one of ${ADVANTAGE_ESTIMATORS.join(', ')} but received ${JSON.stringify(c.advantageEstimator)}`);
  if ((c.advantageEstimator === 'rloo' || c.advantageEstimator === 'grpo_passk') && c.numGenerations < 2) throw new RangeError(`GRPO config: advantageEstimator '${c.advantageEstimator}' needs numGenerations >= 2`);
  if (!(c.temperature > 0)) throw new RangeError(`GRPO config: expected temperature > 0 for training but received ${c.temperature}`);
  if (!(c.beta >= 0)) throw new RangeError(`GRPO config: expected beta >= 0 but received ${c.beta}`);
  if (!(c.rewardTimeout > 0)) throw new RangeError(`GRPO config: expected rewardTimeout > 0 (seconds) but received ${c.rewardTimeout}`);
  if (c.rewardErrors !== 'abort' && c.rewardErrors !== 'no_reward') throw new RangeError(`GRPO config: expected rewardErrors 'abort' or 'no_reward' but received ${JSON.stringify(c.rewardErrors)}`);
  if (!(c.learningRate > 0)) throw new RangeError(`GRPO config: expected learningRate > 0 but received ${c.learningRate}`);
  return c;
}

/** What one loss call is given (the arguments of grpoLossFromLogits); tests may observe it. */
export type LossFn = typeof grpoLossFromLogits;

export interface StepMetrics {
  [key: string]: number | string | boolean | undefined;
  step: number;
}

/** State that, with the weights and optimiser state, makes a resume bit-exact. */
export interface TrainerState {
  step: number;
  updates: number;
  /** Data order: epoch of the permutation and position in it. */
  epoch: number;
  cursor: number;
  numTokens: number;
  /** Per reward function: the value it has given every completion and for how many steps. */
  constantRewards?: ConstantRewardSnapshot;
}

export interface GrpoTrainerOptions {
  model: PolicyModel;
  tokenizer: Tokenizer;
  task: Task;
  rewardFunctions: RewardFunction[];
  config: Partial<GrpoConfig> | Record<string, unknown>;
  /** The frozen reference model; default `model.referenceCopy()` (else a clone) at construction when β > 0. */
  refModel?: PolicyModel | null;
  /** Where completions come from (default: in-process sampling with `model`). The trainer calls
   *  its syncWeights after every optimiser update; the caller closes it. */
  engine?: RolloutEngine;
  /** The loss (default grpoLossFromLogits); tests substitute a spy. Given, it forces the logits path. */
  lossFn?: LossFn;
  /**
   * Train through the model's hidden-state path (grpoLossFromHidden: no N×V logits) when it has
   * one (PolicyModel.forwardHidden ...). Default true unless `lossFn` is given; false: logits.
   */
  hiddenPath?: boolean;
  /** Reported reward failures (default: collected in `rewardFailures`). */
  onRewardFailure?: (f: RewardFailure, step: number) => void;
  /** Steps a reward function may give every completion one same value before it is reported. Default 20. */
  constantRewardSteps?: number;
  /** Called once when a reward function has been constant for constantRewardSteps steps (it carries no signal). */
  onRewardConstant?: (s: ConstantRewardState, step: number) => void;
  /** Data-parallel training (lib/parallel/data_parallel.ts): this rank trains on its share of each
   *  step's prompt groups; gradients, token counts and metrics are reduced over ranks. */
  dist?: DataParallel;
  /** After every step, check that every rank holds the same weights (a hash per rank; debug, tests). */
  distCheckWeights?: boolean;
}

/** The first generation round of a step: what the reward metrics describe. */
interface ScoredRound {
  /** Completion lengths [S] and truncation flags [S]. */
  lens: number[];
  truncated: boolean[];
  /** [S·K] per-function rewards (NaN = no reward). */
  rewards: Float32Array;
  /** [S] weighted sums. */
  weighted: Float32Array;
  groupStd: Float32Array;
  zeroStd: number;
  noReward: number;
}

const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
const std = (a: number[]) => {
  if (a.length < 2) return 0;
  const m = mean(a);
  return Math.sqrt(a.reduce((s, x) => s + (x - m) * (x - m), 0) / (a.length - 1));
};

export class GrpoTrainer {
  readonly model: PolicyModel;
  readonly tokenizer: Tokenizer;
  readonly task: Task;
  readonly rewardFunctions: RewardFunction[];
  readonly config: GrpoConfig;
  /** null when β = 0: no reference model exists and no reference pass runs. */
  readonly refModel: PolicyModel | null;
  readonly weights: number[];
  state: TrainerState = { step: 0, updates: 0, epoch: 0, cursor: 0, numTokens: 0 };
  rewardFailures: (RewardFailure & { step: number })[] = [];
  readonly engine: RolloutEngine;
  private lossFn: LossFn;
  private useHidden: boolean;
  private fullKl: boolean;
  private perm: number[] | null = null;
  private permEpoch = -1;
  private onRewardFailure?: (f: RewardFailure, step: number) => void;
  private constantMonitor: ConstantRewardMonitor;
  private onRewardConstant?: (s: ConstantRewardState, step: number) => void;
  private dist?: DataParallel;
  /** Sequences this rank trained on in the last step (data parallel: its share, which dynamic sampling may make uneven). */
  lastStepSequences = 0;
  private distCheckWeights: boolean;
  /** asyncRollouts: the next step's first generation round, started before this step trained. */
  private prefetch: { step: number; ids: string[]; promise: Promise<Rollout> } | null = null;
  /** The engine the trainer made itself (closed by close()). */
  private ownEngine: RolloutEngine | null = null;
  /** asyncRollouts: prefetched samples dropped for being older than maxStaleness, over the run. */
  staleDropped = 0;
  private versionSynced = false;

  constructor(o: GrpoTrainerOptions) {
    this.model = o.model;
    this.tokenizer = o.tokenizer;
    this.task = o.task;
    this.rewardFunctions = o.rewardFunctions;
    this.config = resolveGrpoConfig(o.config);
    if (!this.rewardFunctions.length) throw new RangeError('GrpoTrainer: expected at least one reward function');
    this.weights = this.config.rewardWeights ?? new Array(this.rewardFunctions.length).fill(1);
    if (this.weights.length !== this.rewardFunctions.length)
      throw new RangeError(`GrpoTrainer: expected ${this.rewardFunctions.length} rewardWeights (one per reward function: ${this.rewardFunctions.map((f) => f.name).join(', ')}) but received ${this.weights.length}`);
    this.refModel = this.config.beta > 0 ? (o.refModel ?? o.model.referenceCopy?.() ?? o.model.clone()) : null;
    this.lossFn = o.lossFn ?? grpoLossFromLogits;
    // klEstimator 'full' needs the policy's logits next to the reference's: grpoLossFromHidden never
    // materialises them (an exact KL over chunks would need the reference's hidden states and head
    // in the same kernel), so the full KL trains through the logits path.
    this.fullKl = this.config.beta > 0 && this.config.klEstimator === 'full';
    // (the rollout IS correction stays on the hidden path: grpoLossFromHidden takes rolloutLogp too)
    this.useHidden = (o.hiddenPath ?? !o.lossFn) && hasHiddenPath(o.model) && !this.fullKl;
    if (this.config.asyncRollouts && o.engine instanceof InProcessEngine)
      throw new RangeError('GrpoTrainer: asyncRollouts samples while the model trains: give an engine that samples from its own copy of the weights (workers, remote) or none (a snapshot in-process), not an InProcessEngine');
    // async sampling must not read the weights the optimiser writes: by default a snapshot copy
    this.engine = o.engine ?? (this.ownEngine = this.config.asyncRollouts ? new SnapshotEngine(o.model, o.tokenizer) : new InProcessEngine(o.model, o.tokenizer));
    this.onRewardFailure = o.onRewardFailure;
    this.constantMonitor = new ConstantRewardMonitor(this.rewardFunctions.map((f) => f.name), o.constantRewardSteps ?? 20);
    this.onRewardConstant = o.onRewardConstant;
    this.dist = o.dist;
    this.distCheckWeights = o.distCheckWeights ?? false;
    this.dist?.checkConfig(this.config);
    if (!this.task.train.length) throw new RangeError(`GrpoTrainer: task '${this.task.name}' has no training examples`);
    // every prompt must leave room for a full completion: found now, not at the step that draws it
    checkPromptLengths(this.task.train, this.tokenizer, this.model.maxSeqLen, this.config.maxCompletionLength, this.task.name);
  }

  /** Total optimiser updates of the run (for the schedule). */
  get totalUpdates(): number {
    return this.config.maxSteps * this.config.numIterations;
  }

  /** The next `n` training examples in the seeded epoch order. */
  private nextPrompts(n: number): Example[] {
    const train = this.task.train;
    const out: Example[] = [];
    while (out.length < n) {
      if (this.state.cursor >= train.length) {
        this.state.epoch++;
        this.state.cursor = 0;
      }
      if (!this.perm || this.permEpoch !== this.state.epoch) {
        this.perm = permutation(train.length, mixSeed(this.config.seed, 0xda7a, this.state.epoch));
        this.permEpoch = this.state.epoch;
      }
      out.push(train[this.perm[this.state.cursor++]]);
    }
    return out;
  }

  /**
   * ReMax's baseline: one greedy (temperature 0) completion per prompt, scored by the same reward
   * functions and weights, repeated over the prompt's G sequences (NaN where it got no reward).
   */
  private async greedyBaselines(exs: Example[], G: number, round: number): Promise<Float32Array> {
    const c = this.config;
    const K = this.rewardFunctions.length;
    const ro = await this.engine.generate(exs, 1, {
      temperature: 0, topK: 0, topP: 1, minP: 0, maxCompletionLength: c.maxCompletionLength, stop: c.stop,
      seed: mixSeed(c.seed, this.state.step, round),
    });
    const { rewards, failures } = await scoreRewards(this.rewardFunctions, {
      completions: ro.texts, prompts: exs.map((e) => e.prompt), examples: exs,
      completionLengths: ro.tokens.map((x) => x.length), truncated: ro.truncated, task: this.task, maxCompletionLength: c.maxCompletionLength,
    }, { timeout: c.rewardTimeout, onError: c.rewardErrors });
    for (const f of failures) {
      this.rewardFailures.push({ ...f, step: this.state.step });
      this.onRewardFailure?.(f, this.state.step);
    }
    const out = new Float32Array(exs.length * G);
    for (let p = 0; p < exs.length; p++) {
      let acc = 0, any = false;
      for (let k = 0; k < K; k++) {
        const x = rewards[p * K + k];
        if (Number.isNaN(x)) continue;
        acc += Math.fround(this.weights[k]) * x;  // the kernel holds weights in float32
        any = true;
      }
      out.fill(any ? acc : NaN, p * G, (p + 1) * G);
    }
    return out;
  }

  private samplingOptions(step: number, round: number) {
    const c = this.config;
    return {
      temperature: c.temperature, topK: c.topK, topP: c.topP, minP: c.minP,
      maxCompletionLength: c.maxCompletionLength, stop: c.stop,
      seed: mixSeed(c.seed, step, round),
    };
  }

  /** Starts the next step's first round: the prompts it will draw (the data order is not advanced). */
  private startPrefetch() {
    const { epoch, cursor } = this.state;
    const all = this.nextPrompts(this.config.batchSize);
    this.state.epoch = epoch;
    this.state.cursor = cursor;
    // data parallel: this rank's share of the groups, with their global row ids (as step() draws them)
    const G = this.config.numGenerations;
    const share = this.dist?.share(all.length) ?? { start: 0, end: all.length };
    const exs = all.slice(share.start, share.end);
    const so = { ...this.samplingOptions(this.state.step + 1, 0), ...(this.dist ? { rowOffset: share.start * G } : {}) };
    const promise = this.engine.generate(exs, G, so);
    promise.catch(() => {});  // awaited by the next step (or close()), which reports a failure
    this.prefetch = { step: this.state.step + 1, ids: exs.map((e) => e.id), promise };
  }

  private takePrefetch() {
    const p = this.prefetch;
    this.prefetch = null;
    return p;
  }

  /** Waits for a rollout still running ahead (its result is dropped) and closes the engine the trainer made. */
  async close(): Promise<void> {
    const p = this.takePrefetch();
    if (p) await p.promise.catch(() => {});
    await this.ownEngine?.close();
    this.ownEngine = null;
  }

  /** One GRPO step; returns its metrics (TRL's names). */
  async step(): Promise<StepMetrics> {
    const c = this.config;
    const G = c.numGenerations;
    const K = this.rewardFunctions.length;
    const tStart = performance.now();
    const time = { generate: 0, reward: 0, reference: 0, old_policy: 0, forward: 0, loss: 0, backward: 0, optimizer: 0 };

    // ---- rollouts (+ dynamic sampling) ----
    const kept: { seqs: number[]; ro: Rollout; adv: Float32Array }[] = [];
    let firstRound: ScoredRound | null = null;
    let rounds = 0;
    let generatedTokens = 0;
    const maxRounds = c.dynamicSampling ? c.maxDynamicSamplingRounds : 1;
    if (!this.versionSynced) {
      // a resumed run (state set after construction): engines start at version 0, tell them the real one
      this.versionSynced = true;
      if (this.state.updates > 0) await this.engine.syncWeights(this.model, this.state.updates);
    }
    const metrics: StepMetrics = { step: this.state.step + 1 };
    metrics['async/stale_dropped'] = 0;
    let offPolicy = false;
    // groups kept over all ranks: every rank knows it (the keep flags are gathered each round), so
    // all ranks run the same rounds and the selection is the one rank's on the joined batch
    let keptGlobal = 0;
    while (rounds < maxRounds && keptGlobal < c.batchSize) {
      // data parallel: every rank draws the global batch, keeps its share of the groups, and
      // samples them with the row ids they have in the global batch
      const all = this.nextPrompts(c.batchSize);
      const share = this.dist?.share(all.length) ?? { start: 0, end: all.length };
      const exs = all.slice(share.start, share.end);
      let t = performance.now();
      const so = { ...this.samplingOptions(this.state.step, rounds), ...(this.dist ? { rowOffset: share.start * G } : {}) };
      let ro: Rollout | null = null;
      const pf = rounds === 0 ? this.takePrefetch() : null;
      // a prefetch for another step or other prompts (the state was set between steps) is not used
      if (pf && pf.step === this.state.step && pf.ids.join('\u0000') === exs.map((e) => e.id).join('\u0000')) {
        ro = await pf.promise;
        const pv = ro.policyVersion ?? new Array(ro.tokens.length).fill(this.state.updates);
        const stale = pv.filter((v) => this.state.updates - v > c.maxStaleness).length;
        metrics['async/prefetched'] = 1;
        if (stale > 0) {
          // past the bound: drop the batch and sample it again (same prompts and seed) with the current weights
          metrics['async/stale_dropped'] = ro.tokens.length;
          this.staleDropped += ro.tokens.length;
          ro = null;
        }
      }
      ro ??= await this.engine.generate(exs, G, so);
      if (rounds === 0) {
        const st = (ro.policyVersion ?? []).map((v) => this.state.updates - v);
        metrics['async/staleness_mean'] = st.length ? mean(st) : 0;
        metrics['async/staleness_max'] = st.length ? Math.max(...st) : 0;
        offPolicy = st.some((x) => x > 0);
      }
      time.generate += performance.now() - t;
      for (const tk of ro.tokens) generatedTokens += tk.length;
      t = performance.now();
      const { rewards, failures } = await scoreRewards(this.rewardFunctions, {
        completions: ro.texts,
        prompts: exs.flatMap((e) => new Array(G).fill(e.prompt)),
        examples: exs.flatMap((e) => new Array(G).fill(e)),
        completionLengths: ro.tokens.map((x) => x.length),
        truncated: ro.truncated,
        task: this.task,
        maxCompletionLength: c.maxCompletionLength,
      }, { timeout: c.rewardTimeout, onError: c.rewardErrors });
      for (const f of failures) {
        this.rewardFailures.push({ ...f, step: this.state.step });
        this.onRewardFailure?.(f, this.state.step);
      }
      const est = c.advantageEstimator;
      // remax: the baseline is the reward of one greedy completion of the same prompt
      const baselines = est === 'remax' ? await this.greedyBaselines(exs, G, rounds) : undefined;
      const lens = ro.tokens.map((x) => x.length);
      // data parallel: the advantages of the whole round's batch, from every rank's rewards (what
      // scaleRewards 'batch' and normalizeAdvantages need: σ and whitening over the global batch, as
      // TRL gathers the rewards before computing them); this rank reads its share
      const d = this.dist;
      const ga = await groupAdvantages({
        rewards: d ? await d.gather(rewards) : rewards, numRewardFunctions: K, weights: this.weights, groupSize: G, estimator: est,
        // scaleRewards is the σ choice of the estimators that divide by one; the others scale themselves
        scale: SCALED_ESTIMATORS.includes(est) ? c.scaleRewards : 'none',
        lengths: LENGTH_ESTIMATORS.includes(est) ? (d ? await d.gather(Float32Array.from(lens)) : lens) : undefined,
        baselines: baselines && d ? await d.gather(baselines) : baselines, normalizeAdvantages: c.normalizeAdvantages,
      });
      time.reward += performance.now() - t;
      const advantages = d ? ga.advantages.subarray(share.start * G, share.end * G) : ga.advantages;
      if (!firstRound) {
        // the metrics describe the whole batch: every rank holds it
        firstRound = d
          ? {
            lens: Array.from(await d.gather(Float32Array.from(lens))),
            truncated: Array.from(await d.pg.allGather(Uint8Array.from(ro.truncated, Number)), Boolean),
            rewards: await d.gather(rewards), weighted: ga.rewards, groupStd: ga.groupStd, zeroStd: ga.zeroStdFraction, noReward: ga.numNoReward,
          }
          : { lens, truncated: ro.truncated, rewards, weighted: ga.rewards, groupStd: ga.groupStd, zeroStd: ga.zeroStdFraction, noReward: ga.numNoReward };
      }
      // dynamic sampling: a group whose rewards all agree (σ = 0, or no reward) carries no signal.
      // The first groups in global order that carry one are kept, up to batchSize over all ranks.
      // (groupStd is the global batch's on every rank, so they all agree without a collective.)
      for (let g = 0; g < all.length && keptGlobal < c.batchSize; g++) {
        if (c.dynamicSampling && !(ga.groupStd[g] > 0)) continue;
        keptGlobal++;
        if (g < share.start || g >= share.end) continue;
        const l = g - share.start;
        kept.push({ seqs: Array.from({ length: G }, (_, j) => l * G + j), ro, adv: advantages.subarray(l * G, (l + 1) * G) });
      }
      rounds++;
    }

    // ---- the training batch ----
    const prompts: Int32Array[] = [], comps: Int32Array[] = [], oldLp: Float32Array[] = [], maskOut: boolean[] = [];
    const media: (ExampleMedia | undefined)[] = [];
    const advList: number[] = [];
    for (const k of kept) for (let j = 0; j < k.seqs.length; j++) {
      const s = k.seqs[j];
      prompts.push(k.ro.promptIds[s]);
      comps.push(k.ro.tokens[s]);
      oldLp.push(k.ro.logprobs[s]);
      maskOut.push(c.maskTruncatedCompletions && k.ro.truncated[s]);
      media.push(k.ro.media?.[s]);
      advList.push(k.adv[j]);
    }
    const S = comps.length;
    metrics['async/stale_dropped_total'] = this.staleDropped;
    this.lastStepSequences = S;
    const fr = firstRound!;
    // data parallel: the constant-reward monitor sees the whole batch's rewards (the same state on every rank)
    this.rewardMetrics(metrics, fr, fr.rewards);
    metrics['dynamic_sampling/rounds'] = rounds;
    metrics['dynamic_sampling/kept_groups'] = keptGlobal;
    // data parallel: these describe the whole batch already (the same on every rank): not reduced
    const globalKeys = new Set(Object.keys(metrics));

    let lossStats: Record<string, number[]> = {};
    if (S > 0) {
      const batch = packBatch(prompts, comps, this.tokenizer.padId, maskOut, media);
      const advantages = Float32Array.from(advList);
      let oldLogp: Float32Array | undefined;
      const behaviour = new Float32Array(S * batch.T);
      oldLp.forEach((lp, i) => behaviour.set(lp, i * batch.T));
      let rolloutLogp: Float32Array | undefined;
      if (c.rolloutImportanceSamplingMode) {
        // TIS/MIS: ℓ_old is the training policy's (an old-policy pass for μ > 1, else ℓ detached),
        // and the loss weighs each token by its (truncated or masked) ratio to the sampler's
        rolloutLogp = behaviour;
        if (c.numIterations > 1) {
          const t = performance.now();
          oldLogp = await this.policyLogprobs(this.model, batch);
          time.old_policy += performance.now() - t;
        }
      } else if (c.numIterations > 1 || offPolicy) {
        // the behaviour log-probs serve as ℓ_old (no extra forward): ρ = π_θ / π_behaviour
        oldLogp = behaviour;
      }
      // one-step-off: the next step's rollouts are sampled (from a snapshot) while this batch trains
      if (c.asyncRollouts && this.state.step + 1 < c.maxSteps) this.startPrefetch();
      let refLogp: Float32Array | undefined;
      if (this.refModel) {
        const t = performance.now();
        refLogp = await this.referenceLogprobs(batch);
        time.reference += performance.now() - t;
      }
      lossStats = await this.optimise(batch, advantages, oldLogp, refLogp, time, keptGlobal * G, rolloutLogp);
    } else if (keptGlobal > 0) {
      // data parallel with dynamic sampling: this rank kept no group but the others did; it still
      // takes part in every collective of the updates (its gradient is zero)
      lossStats = await this.optimise(null, new Float32Array(0), undefined, undefined, time, keptGlobal * G);
    } else {
      metrics.skipped = true;
    }
    this.state.step++;
    if (this.dist) generatedTokens = await this.dist.sum(generatedTokens);
    this.state.numTokens += generatedTokens;
    const stepTime = (performance.now() - tStart) / 1000;
    for (const [k, v] of Object.entries(lossStats)) metrics[k] = mean(v);
    metrics.num_tokens = this.state.numTokens;
    metrics.step_time = stepTime;
    metrics.tokens_per_second = generatedTokens / stepTime;
    for (const [k, v] of Object.entries(time)) metrics[`time/${k}`] = v / 1000;
    if (this.dist) {
      if (this.distCheckWeights) await this.dist.checkSameWeights(this.model, this.state.step);
      return this.dist.reduceMetrics(metrics, globalKeys);
    }
    return metrics;
  }

  private rewardMetrics(m: StepMetrics, fr: ScoredRound, allRewards: Float32Array) {
    const K = this.rewardFunctions.length;
    const S = fr.lens.length;
    this.rewardFunctions.forEach((f, k) => {
      const vals: number[] = [];
      for (let i = 0; i < S; i++) if (!Number.isNaN(fr.rewards[i * K + k])) vals.push(fr.rewards[i * K + k]);
      m[`rewards/${f.name}/mean`] = mean(vals);
      m[`rewards/${f.name}/std`] = std(vals);
      // samples this function gave no reward (failures, NaN, out-of-range values): reported per step
      m[`no_reward/${f.name}`] = S - vals.length;
    });
    // a function that gives every completion the same value, step after step, carries no signal
    this.constantMonitor.restore(this.state.constantRewards);
    const constant = this.constantMonitor.update(allRewards);
    this.state.constantRewards = this.constantMonitor.snapshot();
    for (const c of constant) {
      m[`rewards/${c.name}/constant_steps`] = c.steps;
      m[`rewards/${c.name}/stuck`] = c.stuck;
      if (c.newlyStuck) this.onRewardConstant?.(c, m.step);
    }
    const w = [...fr.weighted].filter((x) => !Number.isNaN(x));
    m.reward = mean(w);
    m.reward_std = mean([...fr.groupStd].filter((x) => !Number.isNaN(x)));
    m.frac_reward_zero_std = fr.zeroStd;
    m.no_reward = fr.noReward;
    const lens = fr.lens;
    const term = lens.filter((_, i) => !fr.truncated[i]);
    m['completions/mean_length'] = mean(lens);
    m['completions/min_length'] = Math.min(...lens);
    m['completions/max_length'] = Math.max(...lens);
    m['completions/clipped_ratio'] = fr.truncated.filter(Boolean).length / Math.max(1, S);
    m['completions/mean_terminated_length'] = term.length ? mean(term) : 0;
    m['completions/min_terminated_length'] = term.length ? Math.min(...term) : 0;
    m['completions/max_terminated_length'] = term.length ? Math.max(...term) : 0;
  }

  /**
   * ℓ_ref [S·T] under the frozen reference model (temperature-scaled like the policy's); with
   * klEstimator 'full', the reference's completion logits [S·T, V] instead.
   */
  private async referenceLogprobs(batch: PackedBatch): Promise<Float32Array> {
    if (this.fullKl) return completionLogits(this.refModel!, batch, false);
    return this.policyLogprobs(this.refModel!, batch);
  }

  /** ℓ [S·T] of `model` over the batch (temperature-scaled), no gradient. */
  private async policyLogprobs(model: PolicyModel, batch: PackedBatch): Promise<Float32Array> {
    if (this.useHidden && hasHiddenPath(model)) {
      // ℓ chunk by chunk: the fused loss with no gradients gives ℓ = log softmax(z/τ)[y]
      // without the N×V logits (its loss value is unused)
      const head = model.outputHead();
      const hidden = await model.forwardHidden(batch.tokens, batch.n, batch.L, batch.rowIndex);
      const r = await grpoLossFromHidden({
        hidden, weight: head.weight, weightDtype: head.weightDtype, hiddenSize: model.hiddenSize, vocabSize: model.vocabSize,
        targets: batch.targets, advantages: new Float32Array(batch.n), mask: batch.mask, temperature: this.config.temperature,
        gradHidden: false, gradWeight: false,
      });
      return r.logp;
    }
    const logits = await completionLogits(model, batch, false);
    const r = await logprobs({ logits, vocabSize: model.vocabSize, targets: batch.targets, temperature: this.config.temperature });
    return r.logp;
  }

  /** μ optimiser updates over the batch; returns the loss metrics of every loss call. */
  private async optimise(batch: PackedBatch | null, advantages: Float32Array, oldLogp: Float32Array | undefined, refLogp: Float32Array | undefined, time: Record<string, number>, globalSeqCount: number, rolloutLogp?: Float32Array) {
    const c = this.config;
    // (batch null: a data-parallel rank with no sequence this step, see step())
    const S = batch?.n ?? 0;
    const V = this.model.vocabSize;
    const gas = Math.min(c.gradientAccumulationSteps, S);
    const chunk = Math.ceil(S / gas);
    const micro: number[][] = [];
    for (let s0 = 0; s0 < S; s0 += chunk) micro.push(Array.from({ length: Math.min(chunk, S - s0) }, (_, i) => s0 + i));
    let numItems = 0;
    if (batch) for (let i = 0; i < batch.mask.length; i++) numItems += batch.mask[i];
    // TRL: dapo normalises by the step's global token count; the others average over micro-batches.
    // verl's loss_agg_mode is normalised over the step's batch: its global token count
    // (token-mean), its non-empty sequences (seq-mean-*: globalBatchSize), or T (-norm).
    let activeSeqs = 0;
    for (let i = 0; i < S; i++) {
      let any = 0;
      for (let t = 0; t < batch!.T && !any; t++) any = batch!.mask[i * batch!.T + t];
      activeSeqs += any ? 1 : 0;
    }
    const agg = c.lossAggMode;
    // data parallel: the step's counts over all ranks, divided by their number because the ranks'
    // gradients are averaged (TRL's num_items_in_batch / num_processes; verl's dp_size factor)
    const dpCount = async (x: number) => (this.dist ? Math.max(1, await this.dist.sum(x)) / this.dist.worldSize : Math.max(1, x));
    const itemsInBatch = (agg === undefined ? c.lossType === 'dapo' : agg === 'token-mean') ? await dpCount(numItems) : undefined;
    const globalSeqs = agg === 'seq-mean-token-sum' || agg === 'seq-mean-token-mean' ? await dpCount(activeSeqs) : undefined;
    // data parallel with shares of unequal size (dynamic sampling): the losses that average over
    // this batch's sequences (grpo, dr_grpo, seq_sum: a = 1/S·…) are rescaled by S·W/S_global so that
    // the average of the ranks' gradients is the gradient over the global batch (1 with equal shares)
    const perSeq = agg === undefined && (c.lossType === 'grpo' || c.lossType === 'dr_grpo' || c.lossType === 'seq_sum');
    const shareScale = this.dist && perSeq && S > 0 ? (S * this.dist.worldSize) / globalSeqCount : 1;
    const gradScale = (c.lossType === 'dapo' || agg !== undefined ? 1 : 1 / micro.length) * shareScale;
    const stats: Record<string, number[]> = {};
    const push = (k: string, v: number) => (stats[k] ??= []).push(v);
    const mbs = micro.map((idx) => ({
      idx,
      b: micro.length === 1 ? batch! : sliceBatch(batch!, idx),
      adv: micro.length === 1 ? advantages : Float32Array.from(idx.map((i) => advantages[i])),
      old: oldLogp && (micro.length === 1 ? oldLogp : slicePerToken(oldLogp, batch!.T, idx)),
      // (klEstimator 'full': the reference logits, V per token)
      ref: refLogp && (micro.length === 1 ? refLogp : slicePerToken(refLogp, this.fullKl ? batch!.T * V : batch!.T, idx)),
      rollout: rolloutLogp && (micro.length === 1 ? rolloutLogp : slicePerToken(rolloutLogp, batch!.T, idx)),
    }));
    for (let it = 0; it < c.numIterations; it++) {
      this.model.zeroGrad();
      let loss = 0;
      for (const mb of mbs) {
        let t = performance.now();
        const hid = this.useHidden ? await this.model.forwardHidden!(mb.b.tokens, mb.b.n, mb.b.L, mb.b.rowIndex, { train: true }) : null;
        const logits = hid ? null : await completionLogits(this.model, mb.b, true);
        time.forward += performance.now() - t;
        t = performance.now();
        const lossOpts = {
          vocabSize: V, targets: mb.b.targets, advantages: mb.adv, mask: mb.b.mask,
          oldLogp: mb.old, ...(this.fullKl ? { refLogits: mb.ref } : { refLogp: mb.ref }), temperature: c.temperature,
          importanceSamplingLevel: c.importanceSamplingLevel, policyLoss: c.policyLoss,
          epsilon: c.epsilon, epsilonHigh: c.epsilonHigh, delta: c.delta, beta: c.beta, klEstimator: c.klEstimator,
          lossType: agg === undefined ? c.lossType : undefined, lossAggMode: agg,
          numItemsInBatch: itemsInBatch,
          globalBatchSize: globalSeqs,
          lossScaleFactor: agg === 'seq-mean-token-sum-norm' ? c.lossScaleFactor : undefined,
          clampSequenceLogRatio: c.clampSequenceLogRatio, clipCovRatio: c.clipCovRatio, clipCovLb: c.clipCovLb, clipCovUb: c.clipCovUb,
          klCovRatio: c.klCovRatio, ppoKlCoef: c.ppoKlCoef, vespoKPos: c.vespoKPos, vespoLambdaPos: c.vespoLambdaPos,
          vespoKNeg: c.vespoKNeg, vespoLambdaNeg: c.vespoLambdaNeg, entropyCoef: c.entropyCoef,
          maxCompletionLength: c.maxCompletionLength, topEntropyQuantile: c.topEntropyQuantile,
          cispoClip: c.cispoClip, sapoTemperaturePos: c.sapoTemperaturePos, sapoTemperatureNeg: c.sapoTemperatureNeg,
          useBiasCorrectionKl: c.useBiasCorrectionKl,
          ...(c.rolloutImportanceSamplingMode ? { rolloutLogp: mb.rollout, rolloutImportanceSamplingMode: c.rolloutImportanceSamplingMode, rolloutImportanceSamplingThreshold: c.rolloutImportanceSamplingThreshold } : {}),
        };
        const r = hid ? await this.hiddenLoss(hid, lossOpts, gradScale) : await this.lossFn({ logits, ...lossOpts, gradient: 'inplace' } as Parameters<LossFn>[0]);
        time.loss += performance.now() - t;
        loss += r.loss * gradScale;
        const m = r.metrics;
        if (c.beta > 0) push('kl', m.kl);
        push('entropy', m.entropy);
        push('clip_ratio/low_mean', m.clipLow);
        push('clip_ratio/high_mean', m.clipHigh);
        push('clip_ratio/region_mean', m.clipRegion);
        push('ratio', m.ratio);
        if (c.rolloutImportanceSamplingMode) {
          push('rollout_is/weight_mean', m.isWeightMean);
          push('rollout_is/clipped_frac', m.isClippedFrac);
        }
        t = performance.now();
        if (hid) {
          const gh = (r as { gradHidden: Float32Array }).gradHidden;
          if (gradScale !== 1) for (let i = 0; i < gh.length; i++) gh[i] *= gradScale;
          await this.model.backwardHidden!(gh);
        } else await this.model.backward(scatterCompletionGrad((r as { gradLogits: Float32Array }).gradLogits, mb.b, V, gradScale));
        time.backward += performance.now() - t;
      }
      if (this.dist) {
        const t = performance.now();
        await this.dist.averageGradients(this.model);
        time.allreduce = (time.allreduce ?? 0) + performance.now() - t;
      }
      const t = performance.now();
      const lr = learningRateAt(this.state.updates, { learningRate: c.learningRate, totalUpdates: this.totalUpdates, warmupRatio: c.warmupRatio, minLrRatio: c.minLrRatio });
      const norm = this.model.step({ lr, maxGradNorm: c.maxGradNorm > 0 ? c.maxGradNorm : undefined, weightDecay: c.weightDecay, beta1: c.adamBeta1, beta2: c.adamBeta2 });
      this.state.updates++;
      time.optimizer += performance.now() - t;
      await this.engine.syncWeights(this.model, this.state.updates);
      if (!mbs.length) {
        // no sequence on this rank: the same keys as the others (NaN: left out of the averages over ranks)
        if (c.beta > 0) push('kl', NaN);
        for (const k of ['entropy', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'ratio']) push(k, NaN);
      }
      push('loss', loss);
      push('grad_norm', norm);
      push('learning_rate', lr);
    }
    return stats;
  }

  /** The fused linear loss on the policy's hidden states; ∂L/∂W (times gradScale) lands in the head's gradient. */
  private async hiddenLoss(hidden: Float32Array, lossOpts: object, gradScale: number) {
    const m = this.model;
    const head = m.outputHead!();
    // the kernel accumulates unscaled; with a scale (micro-batches averaged) it goes through a temporary
    const scaled = head.grad && gradScale !== 1 ? new Float32Array(head.grad.length) : null;
    const r = await grpoLossFromHidden({
      ...(lossOpts as Omit<Parameters<typeof grpoLossFromHidden>[0], 'hidden' | 'weight' | 'hiddenSize'>),
      hidden, weight: head.weight, weightDtype: head.weightDtype, hiddenSize: m.hiddenSize!,
      gradHidden: true, gradWeight: scaled ?? head.grad ?? false,
    });
    if (scaled) for (let i = 0; i < scaled.length; i++) head.grad![i] += gradScale * scaled[i];
    return r;
  }
}
