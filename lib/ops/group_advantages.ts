/**
 * groupAdvantages — spec §2 (rewards and group advantages).
 *
 * r_i = Σ_k w_k·r_k[i] over the reward functions that rewarded sequence i (NaN = "no reward";
 * NaN-sum as TRL). Per group g (contiguous `groupSize`, or arbitrary `groupIds`):
 *   grpo, scale 'group' (default): A = (r − μ_g) / (σ_g + eps)
 *   grpo, scale 'batch':           A = (r − μ_g) / (σ_batch + eps)
 *   grpo, scale 'none' (Dr. GRPO): A = r − μ_g
 *   rloo:                          A = r_i − mean of the other members (scale default 'none';
 *                                  'group' / 'batch' divide it by σ + eps like grpo)
 *   reinforce_plus_plus (verl, γ = 1): A = r, whitened over the batch's tokens (needs `lengths`
 *                                  for verl's token weighting; without them every sequence weighs 1)
 *   reinforce_plus_plus_baseline:  A = r − μ_g, whitened the same way
 *   gpg (verl):                    A = α·(r − μ_g), α = #rewarded / #(r ≠ 0)
 *   grpo_passk (verl):             only a group's unique best gets (r_max − r_second) / (σ_g + eps)
 *   opo (verl):                    A = r − Σ_g n·r / Σ_g n  (n: `lengths`)
 *   remax (verl):                  A = r − b  (b: `baselines`, the greedy rollout's reward)
 * A lone rewarded member gets the baseline 0 (rpp_baseline, gpg, opo, as verl's groups of one).
 * `normalizeAdvantages` (TRL) then whitens A over the batch: (A − mean A) / (std A + eps).
 * σ is torch.std's unbiased std by default (`std: 'population'` divides by the count); a group
 * of one has σ = 0. Computed in double, returned in float32.
 *
 * A sequence with no reward at all (every r_k NaN) gets r = NaN and advantage 0, is counted in
 * `numNoReward`, and is left out of its group's μ/σ and of σ_batch. A group none of whose
 * members has a reward reports μ = σ = NaN (and is not counted as zero-std).
 */
import { native } from '../native';
import * as v from '../validate';

/** Advantage estimator, by TRL's / verl's name (README, Math: advantage estimators). */
export type AdvantageEstimator = 'grpo' | 'rloo' | 'reinforce_plus_plus' | 'reinforce_plus_plus_baseline' | 'gpg' | 'grpo_passk' | 'opo' | 'remax';
/** Every estimator, in native enum order (native/ops/group_advantages.h `AdvEstimator`). */
export const ADVANTAGE_ESTIMATORS: readonly AdvantageEstimator[] = ['grpo', 'rloo', 'reinforce_plus_plus', 'reinforce_plus_plus_baseline', 'gpg', 'grpo_passk', 'opo', 'remax'];
/** Estimators that divide by a σ (option `scale`); the others define their own scaling. */
export const SCALED_ESTIMATORS: readonly AdvantageEstimator[] = ['grpo', 'rloo', 'grpo_passk'];
/** Estimators that read completion lengths (`lengths`). */
export const LENGTH_ESTIMATORS: readonly AdvantageEstimator[] = ['opo', 'reinforce_plus_plus', 'reinforce_plus_plus_baseline'];
/** Which std divides the centred reward: the group's, the whole batch's, or none (Dr. GRPO). */
export type AdvantageScale = 'group' | 'batch' | 'none';
/** Every scale, in native enum order (`AdvScale`). */
export const ADVANTAGE_SCALES: readonly AdvantageScale[] = ['group', 'batch', 'none'];

/** Inputs of {@link groupAdvantages}. Give exactly one of `groupSize` and `groupIds`. */
export interface GroupAdvantagesOptions {
  /** Rewards [S] (one function) or [S·K] row-major (rewards[i·K + k]); NaN = no reward. */
  rewards: Float32Array;
  /** K, the number of reward functions (columns of `rewards`). Default 1. */
  numRewardFunctions?: number;
  /** Weight of each reward function [K], finite in float32 (|w| ≤ 3.4e38; 0 or ≥ 1.18e-38). Default all 1. */
  weights?: number[] | Float32Array;
  /** G: contiguous groups of G sequences (G must divide S). */
  groupSize?: number;
  /** A group id per sequence [S] (any int32 values, any order, unequal group sizes). */
  groupIds?: Int32Array | number[];
  /**
   * 'grpo' (default), 'rloo' and 'grpo_passk' (every group needs ≥ 2 members),
   * 'reinforce_plus_plus', 'reinforce_plus_plus_baseline', 'gpg', 'opo' (needs `lengths`),
   * 'remax' (needs `baselines`).
   */
  estimator?: AdvantageEstimator;
  /** 'group' (default for grpo, grpo_passk), 'batch' or 'none' (default, and the only one, for the rest). */
  scale?: AdvantageScale;
  /** Completion length (masked token count) per sequence [S], finite ≥ 0: opo's weights, reinforce++'s token weighting. */
  lengths?: Float32Array | Int32Array | number[];
  /** remax: the greedy rollout's reward per sequence [S] (NaN: none, advantage 0). */
  baselines?: Float32Array | number[];
  /** TRL `normalize_advantages`: whiten A over the batch's rewarded sequences, (A − mean) / (std + eps). Default false. */
  normalizeAdvantages?: boolean;
  /** Added to σ before dividing; default 1e-4 (TRL; verl uses 1e-6). 0 or in [1.18e-38, 3.4e38]. */
  eps?: number;
  /** 'unbiased' (default, torch.std: divide by n − 1) or 'population' (divide by n). */
  std?: 'unbiased' | 'population';
  /**
   * Preallocated outputs: advantages and rewards of length S, groupMean, groupStd and groupIds of
   * length numGroups (S / groupSize, or the number of distinct groupIds). A loop that passes all
   * of them allocates nothing per call.
   */
  out?: { advantages?: Float32Array; rewards?: Float32Array; groupMean?: Float32Array; groupStd?: Float32Array; groupIds?: Int32Array };
}

/** Result of {@link groupAdvantages}. Group arrays are indexed by dense group index. */
export interface GroupAdvantagesResult {
  /** A per sequence [S] (0 for sequences without reward). */
  advantages: Float32Array;
  /** The weighted reward sum r per sequence [S] (NaN: no reward). */
  rewards: Float32Array;
  /** μ_g per group (NaN for a group without any reward). */
  groupMean: Float32Array;
  /** σ_g per group (NaN for a group without any reward). */
  groupStd: Float32Array;
  /**
   * The caller's id of each dense group: with `groupIds`, the distinct ids in order of first
   * appearance; with `groupSize`, 0..S/G−1.
   */
  groupIds: Int32Array;
  /** Fraction of groups with σ_g exactly 0 (no learning signal; DAPO drops them). */
  zeroStdFraction: number;
  /** Number of sequences with no reward at all (r = NaN). */
  numNoReward: number;
}

const OP = 'groupAdvantages';

/** Option keys every form of groupAdvantages takes. */
export const GROUP_ADVANTAGES_KEYS = ['rewards', 'numRewardFunctions', 'weights', 'groupSize', 'groupIds', 'estimator', 'scale', 'eps', 'std', 'lengths', 'baselines', 'normalizeAdvantages'] as const;
/** The host form's keys (plus `out`), its `out` keys, and the CUDA form's (plus `numGroups`). */
export const GROUP_ADVANTAGES_HOST_KEYS = [...GROUP_ADVANTAGES_KEYS, 'out'] as const;
export const GROUP_ADVANTAGES_OUT_KEYS = ['advantages', 'rewards', 'groupMean', 'groupStd', 'groupIds'] as const;
export const GROUP_ADVANTAGES_DEVICE_KEYS = [...GROUP_ADVANTAGES_KEYS, 'numGroups'] as const;

/** K = numRewardFunctions and S = numel / K, shared by the host op and its CUDA form. */
export function rewardShape(op: string, s: Record<string, unknown>, numel: number, rewards: unknown): { K: number; S: number } {
  const K = v.integer(op, 'numRewardFunctions', s.numRewardFunctions, 1, 1 << 20, 1);
  if (numel % K !== 0) throw v.rangeError(op, 'rewards', `a length that is a multiple of numRewardFunctions = ${K}`, rewards);
  return { K, S: numel / K };
}

/**
 * The non-tensor options of groupAdvantages, validated the same way for the host op and its
 * CUDA form: weights (copied to a Float32Array, each element read once), estimator, scale, eps,
 * std, and groupSize (checked against S) when given instead of groupIds.
 */
export function groupAdvantagesConfig(op: string, s: Record<string, unknown>, K: number, S: number) {
  let weights: Float32Array;
  if (s.weights === undefined) {
    weights = new Float32Array(K).fill(1);
  } else {
    const expected = `number[] or Float32Array of length ${K} (numRewardFunctions)`;
    const w = Array.isArray(s.weights) ? v.plainArray(op, 'weights', s.weights, expected, K) : v.typedArray(op, 'weights', s.weights, 'Float32Array', K, expected);
    weights = new Float32Array(K);
    for (let k = 0; k < K; k++) {
      const x = (w as ArrayLike<unknown>)[k];
      if (typeof x !== 'number') throw v.typeError(op, 'weights', 'numbers', `${String(x)} at index ${k}`);
      // stored as float32: 1e39 would be Infinity there
      if (!v.floatOk(x, -Infinity, Infinity)) throw v.rangeError(op, 'weights', 'finite numbers float32 represents (0 or |x| in [1.18e-38, 3.4e38])', `${x} at index ${k}`);
      weights[k] = x;
    }
  }
  const hasSize = s.groupSize !== undefined;
  const hasIds = s.groupIds !== undefined;
  if (hasSize === hasIds)
    throw v.typeError(op, 'groupSize/groupIds', 'exactly one of groupSize and groupIds', hasSize ? 'both' : 'neither');
  const estimator = v.oneOf(op, 'estimator', s.estimator, ADVANTAGE_ESTIMATORS, 'grpo');
  let groupSize: number | undefined;
  if (hasSize) {
    groupSize = v.integer(op, 'groupSize', s.groupSize, 1, 2 ** 31 - 1);
    if ((estimator === 'rloo' || estimator === 'grpo_passk') && groupSize < 2)
      throw v.rangeError(op, 'groupSize', `a group size of at least 2 for estimator '${estimator}' (its baseline needs another member)`, groupSize);
    if (S % groupSize !== 0) throw v.rangeError(op, 'groupSize', `a divisor of the number of sequences S = ${S}`, groupSize);
  }
  const scaled = SCALED_ESTIMATORS.includes(estimator);
  const scale = v.oneOf(op, 'scale', s.scale, ADVANTAGE_SCALES, estimator === 'grpo' || estimator === 'grpo_passk' ? 'group' : 'none');
  if (!scaled && scale !== 'none') throw v.rangeError(op, 'scale', `'none' (or unset) for estimator '${estimator}', which defines its own scaling`, scale);
  if (s.lengths !== undefined && !LENGTH_ESTIMATORS.includes(estimator))
    throw v.typeError(op, 'lengths', `undefined for estimator '${estimator}' (only ${LENGTH_ESTIMATORS.join(', ')} read lengths)`, s.lengths);
  if (s.lengths === undefined && estimator === 'opo') throw v.typeError(op, 'lengths', "completion lengths [S] for estimator 'opo' (its baseline is length-weighted)", s.lengths);
  if (s.baselines !== undefined && estimator !== 'remax') throw v.typeError(op, 'baselines', `undefined for estimator '${estimator}' (only remax reads baselines)`, s.baselines);
  if (s.baselines === undefined && estimator === 'remax') throw v.typeError(op, 'baselines', "the greedy rollout's reward per sequence [S] for estimator 'remax'", s.baselines);
  const normalize = v.boolean(op, 'normalizeAdvantages', s.normalizeAdvantages, false);
  // eps is added to σ (a divisor): >= 0, and a float32-representable magnitude like every float option
  const eps = v.float(op, 'eps', s.eps, 0, Infinity, 1e-4);
  const std = v.oneOf(op, 'std', s.std, ['unbiased', 'population'] as const, 'unbiased');
  return { weights, estimator, groupSize, scale, eps, std, normalize };
}

/**
 * A host array of S numbers copied into a Float32Array, each element read once: lengths (finite,
 * >= 0) or remax baselines (finite or NaN). The copy is what the kernel reads, so a caller that
 * changes the array during an async call cannot change the result.
 */
export function hostSequenceValues(op: string, name: 'lengths' | 'baselines', x: unknown, S: number): Float32Array {
  const expected = `Float32Array${name === 'lengths' ? ', Int32Array' : ''} or number[] of length ${S} (one per sequence)`;
  const src = Array.isArray(x)
    ? v.plainArray(op, name, x, expected, S)
    : v.typedArray(op, name, x, name === 'lengths' ? ['Float32Array', 'Int32Array'] : 'Float32Array', S, expected);
  const out = new Float32Array(S);
  for (let i = 0; i < S; i++) {
    const e = (src as ArrayLike<unknown>)[i];
    if (typeof e !== 'number') throw v.typeError(op, name, 'numbers', `${String(e)} at index ${i}`);
    if (name === 'lengths' ? !(v.floatOk(e, 0, Infinity)) : !Number.isNaN(e) && !v.floatOk(e, -Infinity, Infinity))
      throw v.rangeError(op, name, name === 'lengths' ? 'finite lengths >= 0' : 'finite rewards float32 represents, or NaN (no baseline)', `${e} at index ${i}`);
    out[i] = e;
  }
  return out;
}

/** groupIds as Int32Array (used as is), or number[] of int32 integers (copied, each read once). */
/** The caller's typed arrays among these options (plain arrays and absent ones skipped). */
function callerArrays(o: Record<string, unknown>): Record<string, ArrayBufferView> {
  const r: Record<string, ArrayBufferView> = {};
  for (const k in o) if (v.typedArrayKind(o[k]) !== undefined) r[k] = o[k] as ArrayBufferView;
  return r;
}

function groupIdArray(ids: unknown, S: number): Int32Array {
  const expected = `Int32Array or number[] of length ${S} (one id per sequence)`;
  if (!Array.isArray(ids)) return v.typedArray(OP, 'groupIds', ids, 'Int32Array', S, expected);
  v.plainArray(OP, 'groupIds', ids, expected, S);
  const out = new Int32Array(S);
  for (let i = 0; i < S; i++) {
    const x = ids[i];
    if (typeof x !== 'number') throw v.typeError(OP, 'groupIds', 'integer ids', `${String(x)} at index ${i}`);
    if (!Number.isInteger(x) || x < -(2 ** 31) || x > 2 ** 31 - 1) throw v.rangeError(OP, 'groupIds', 'int32 integer ids', `${x} at index ${i}`);
    out[i] = x;
  }
  return out;
}

let iotaCache = new Int32Array(0);
/** 0, 1, ..., n − 1 (a view of one cached array, grown as needed; never handed to the caller). */
function iota(n: number): Int32Array {
  if (n > 1 << 22) return Int32Array.from({ length: n }, (_, j) => j);  // too large to keep
  if (iotaCache.length < n) {
    iotaCache = new Int32Array(Math.min(Math.max(n, 2 * iotaCache.length), 1 << 22));
    for (let j = 0; j < iotaCache.length; j++) iotaCache[j] = j;
  }
  return iotaCache.subarray(0, n);
}

/**
 * A default output of S floats (per sequence, or per group). From 2^16 elements on, reused memory from the native pool
 * (a buffer handed out again only once every earlier view of it was collected): a fresh 1 MB+
 * buffer per call costs its page faults, at S = 1M more than the op itself. The kernel writes
 * every element (the caller fills groupIds), so reused memory needs no zeroing.
 */
function pooledOutput(S: number): Float32Array {
  if (S < 1 << 16) return new Float32Array(S);
  return new Float32Array(native().pooledArrayBuffer(S * 4), 0, S);
}

function prepare(o: GroupAdvantagesOptions) {
  const opts = v.snapshot(OP, o, GROUP_ADVANTAGES_HOST_KEYS, { out: GROUP_ADVANTAGES_OUT_KEYS });
  v.integer(OP, 'numRewardFunctions', opts.numRewardFunctions, 1, 1 << 20, 1);
  const rewards = v.float32Array(OP, 'rewards', opts.rewards);
  const { K, S } = rewardShape(OP, opts, rewards.length, rewards);
  const { weights, estimator, groupSize, scale, eps, std, normalize } = groupAdvantagesConfig(OP, opts, K, S);
  const lengths = opts.lengths === undefined ? undefined : hostSequenceValues(OP, 'lengths', opts.lengths, S);
  const baselines = opts.baselines === undefined ? undefined : hostSequenceValues(OP, 'baselines', opts.baselines, S);
  const idsIn = groupSize === undefined ? groupIdArray(opts.groupIds, S) : undefined;
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  // default outputs: reused pool memory from 2^16 elements on (pooledOutput)
  const advantages = out.advantages === undefined ? pooledOutput(S) : v.outFloat32(OP, 'out.advantages', out.advantages, S);
  const reward = out.rewards === undefined ? pooledOutput(S) : v.outFloat32(OP, 'out.rewards', out.rewards, S);
  // The rewards' contents (finite or NaN) are checked by the kernel in its own pass (a scan here
  // cost as much as the op at S = 1M); it reports the first ±Infinity and the call throws.
  let group: Int32Array | undefined; // dense group index per sequence; none for a fixed groupSize
  let groupIds: Int32Array;
  let fillIds: () => void;  // written once every output is known not to alias an input
  if (idsIn === undefined) {
    const G = groupSize!;
    groupIds = out.groupIds === undefined ? new Int32Array(pooledOutput(S / G).buffer, 0, S / G)
      : v.typedArray(OP, 'out.groupIds', out.groupIds, 'Int32Array', S / G, `Int32Array of length ${S / G} (numGroups)`);
    // copied from a cached 0, 1, 2, ... (a memcpy): a JS loop writing them cost 1.4-2.6 ns per
    // group, 100-170 µs at 65536 groups, more than the kernel's share of the call
    fillIds = () => groupIds.set(iota(S / G));
  } else {
    const dense = new Map<number, number>();
    group = new Int32Array(S);
    const sizes: number[] = [];
    for (let i = 0; i < S; i++) {
      let j = dense.get(idsIn[i]);
      if (j === undefined) {
        j = dense.size;
        dense.set(idsIn[i], j);
        sizes.push(0);
      }
      group[i] = j;
      sizes[j]++;
    }
    const ng = dense.size;
    groupIds = out.groupIds === undefined ? new Int32Array(ng)
      : v.typedArray(OP, 'out.groupIds', out.groupIds, 'Int32Array', ng, `Int32Array of length ${ng} (the number of distinct groupIds)`);
    fillIds = () => {
      let j = 0;
      for (const id of dense.keys()) groupIds[j++] = id;
    };
    if (estimator === 'rloo' || estimator === 'grpo_passk') {
      for (let j = 0; j < sizes.length; j++)
        if (sizes[j] < 2) throw v.rangeError(OP, 'groupIds', `groups of at least 2 sequences for estimator '${estimator}'`, `a group of 1 (id ${[...dense.keys()][j]})`);
    }
  }
  const numGroups = groupIds.length;
  const groupMean = out.groupMean === undefined ? pooledOutput(numGroups) : v.outFloat32(OP, 'out.groupMean', out.groupMean, numGroups);
  const groupStd = out.groupStd === undefined ? pooledOutput(numGroups) : v.outFloat32(OP, 'out.groupStd', out.groupStd, numGroups);
  if (opts.out !== undefined)
    v.noAliases(OP, { 'out.advantages': advantages, 'out.rewards': reward, 'out.groupMean': groupMean, 'out.groupStd': groupStd, 'out.groupIds': groupIds },
      // the caller's lengths / baselines / groupIds are copied before any output is written, so an
      // overlap there would still compute right; refused all the same (one rule: an output never
      // overlaps an input), the kernel's copies checked too
      { rewards, weights, lengths, baselines, group, ...callerArrays({ lengths: opts.lengths, baselines: opts.baselines, groupIds: opts.groupIds }) });
  fillIds();
  const args = {
    S, K, numGroups, rewards, weights, group, groupSize,
    estimator: ADVANTAGE_ESTIMATORS.indexOf(estimator),
    scale: ADVANTAGE_SCALES.indexOf(scale),
    eps, unbiased: std === 'unbiased', normalize, lengths, baselines,
    advantages, reward, groupMean, groupStd,
  };
  const result = (r: { zeroStdFraction: number; numNoReward: number; firstInf: number }): GroupAdvantagesResult => {
    // the outputs have been written; the call still fails, naming the element
    if (r.firstInf >= 0) throw v.rangeError(OP, 'rewards', 'finite values or NaN (no reward)', `${rewards[r.firstInf]} at index ${r.firstInf}`);
    return {
      advantages, rewards: reward, groupMean, groupStd, groupIds,
      zeroStdFraction: r.zeroStdFraction, numNoReward: r.numNoReward,
    };
  };
  return { args, result };
}

/** Group-normalised advantages (spec §2). Async: runs off the JS thread. */
export async function groupAdvantages(o: GroupAdvantagesOptions): Promise<GroupAdvantagesResult> {
  const p = prepare(o);
  return p.result(await native().groupAdvantages(p.args, true));
}

/** Synchronous twin of {@link groupAdvantages}. */
export function groupAdvantagesSync(o: GroupAdvantagesOptions): GroupAdvantagesResult {
  const p = prepare(o);
  return p.result(native().groupAdvantages(p.args, false));
}
