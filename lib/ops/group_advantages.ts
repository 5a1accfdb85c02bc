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
 * σ is torch.std's unbiased std by default (`std: 'population'` divides by the count); a group
 * of one has σ = 0. Computed in double, returned in float32.
 *
 * A sequence with no reward at all (every r_k NaN) gets r = NaN and advantage 0, is counted in
 * `numNoReward`, and is left out of its group's μ/σ and of σ_batch. A group none of whose
 * members has a reward reports μ = σ = NaN (and is not counted as zero-std).
 */
import { native } from '../native';
import * as v from '../validate';

/** Advantage estimator: group-normalised (GRPO) or leave-one-out baseline (RLOO). */
export type AdvantageEstimator = 'grpo' | 'rloo';
/** Every estimator, in native enum order (native/ops/group_advantages.h `AdvEstimator`). */
export const ADVANTAGE_ESTIMATORS: readonly AdvantageEstimator[] = ['grpo', 'rloo'];
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
  /** Weight of each reward function [K], finite. Default all 1. */
  weights?: number[] | Float32Array;
  /** G: contiguous groups of G sequences (G must divide S). */
  groupSize?: number;
  /** A group id per sequence [S] (any int32 values, any order, unequal group sizes). */
  groupIds?: Int32Array | number[];
  /** 'grpo' (default) or 'rloo' (leave-one-out baseline; every group needs ≥ 2 members). */
  estimator?: AdvantageEstimator;
  /** 'group' (default for grpo), 'batch' or 'none' (default for rloo). */
  scale?: AdvantageScale;
  /** Added to σ before dividing; default 1e-4 (TRL; verl uses 1e-6). */
  eps?: number;
  /** 'unbiased' (default, torch.std: divide by n − 1) or 'population' (divide by n). */
  std?: 'unbiased' | 'population';
  /** Preallocated outputs (length S). */
  out?: { advantages?: Float32Array; rewards?: Float32Array };
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

/** groupIds as Int32Array, or number[] of int32 integers (copied). */
function groupIdArray(ids: unknown, S: number): Int32Array {
  if (ids instanceof Int32Array) return v.int32Array(OP, 'groupIds', ids, S);
  if (!Array.isArray(ids)) throw v.typeError(OP, 'groupIds', `Int32Array or number[] of length ${S}`, ids);
  if (ids.length !== S) throw v.rangeError(OP, 'groupIds', `Int32Array or number[] of length ${S} (one id per sequence)`, ids);
  const out = new Int32Array(S);
  for (let i = 0; i < S; i++) {
    const x = ids[i];
    if (typeof x !== 'number') throw v.typeError(OP, 'groupIds', 'integer ids', `${String(x)} at index ${i}`);
    if (!Number.isInteger(x) || x < -(2 ** 31) || x > 2 ** 31 - 1) throw v.rangeError(OP, 'groupIds', 'int32 integer ids', `${x} at index ${i}`);
    out[i] = x;
  }
  return out;
}

/**
 * Index of the first ±Infinity in x, or −1. Σ x·0 is NaN iff some x is NaN or ±Inf: one
 * branch-free pass (a small function of its own, so V8 optimises the loop); only a NaN sum (NaN =
 * "no reward" is allowed) needs the exact scan.
 */
function infinityAt(x: Float32Array): number {
  let probe = 0;
  for (let i = 0; i < x.length; i++) probe += x[i] * 0;
  if (probe === 0) return -1;
  for (let i = 0; i < x.length; i++) if (x[i] === Infinity || x[i] === -Infinity) return i;
  return -1;
}

function prepare(o: GroupAdvantagesOptions) {
  const opts = v.options(OP, o);
  const K = v.integer(OP, 'numRewardFunctions', opts.numRewardFunctions, 1, 1 << 20, 1);
  const rewards = v.float32Array(OP, 'rewards', opts.rewards);
  if (rewards.length % K !== 0)
    throw v.rangeError(OP, 'rewards', `a Float32Array whose length is a multiple of numRewardFunctions = ${K}`, rewards);
  const S = rewards.length / K;
  const bad = infinityAt(rewards);
  if (bad >= 0) throw v.rangeError(OP, 'rewards', 'finite values or NaN (no reward)', `${rewards[bad]} at index ${bad}`);
  let weights: Float32Array;
  if (opts.weights === undefined) {
    weights = new Float32Array(K).fill(1);
  } else {
    const w = opts.weights;
    if (!(w instanceof Float32Array) && !Array.isArray(w))
      throw v.typeError(OP, 'weights', `number[] or Float32Array of length ${K}`, w);
    if (w.length !== K) throw v.rangeError(OP, 'weights', `number[] or Float32Array of length ${K} (numRewardFunctions)`, w);
    weights = new Float32Array(K);
    for (let k = 0; k < K; k++) {
      const x = (w as ArrayLike<unknown>)[k];
      if (typeof x !== 'number') throw v.typeError(OP, 'weights', 'numbers', `${String(x)} at index ${k}`);
      if (!Number.isFinite(x)) throw v.rangeError(OP, 'weights', 'finite numbers', `${x} at index ${k}`);
      weights[k] = x;
    }
  }

  const hasSize = opts.groupSize !== undefined;
  const hasIds = opts.groupIds !== undefined;
  if (hasSize === hasIds)
    throw v.typeError(OP, 'groupSize/groupIds', 'exactly one of groupSize and groupIds', hasSize ? 'both' : 'neither');
  const estimator = v.oneOf(OP, 'estimator', opts.estimator, ADVANTAGE_ESTIMATORS, 'grpo');
  const minSize = estimator === 'rloo' ? 2 : 1;
  let group: Int32Array | undefined;  // dense group index per sequence; none for a fixed groupSize
  let groupSize: number | undefined;
  let groupIds: Int32Array;
  if (hasSize) {
    const G = v.integer(OP, 'groupSize', opts.groupSize, 1, 2 ** 31 - 1);
    if (G < minSize) throw v.rangeError(OP, 'groupSize', "a group size of at least 2 for estimator 'rloo' (a leave-one-out baseline needs another member)", G);
    if (S % G !== 0) throw v.rangeError(OP, 'groupSize', `a divisor of the number of sequences S = ${S}`, G);
    groupSize = G;
    groupIds = new Int32Array(S / G);
    for (let j = 0; j < groupIds.length; j++) groupIds[j] = j;
  } else {
    const idsIn = groupIdArray(opts.groupIds, S);
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
    groupIds = Int32Array.from(dense.keys());
    if (minSize > 1) {
      for (let j = 0; j < sizes.length; j++)
        if (sizes[j] < minSize) throw v.rangeError(OP, 'groupIds', "groups of at least 2 sequences for estimator 'rloo'", `a group of 1 (id ${groupIds[j]})`);
    }
  }
  const numGroups = groupIds.length;
  const scale = v.oneOf(OP, 'scale', opts.scale, ADVANTAGE_SCALES, estimator === 'rloo' ? 'none' : 'group');
  const eps = v.numberIn(OP, 'eps', opts.eps, 0, Infinity, 1e-4, { hiOpen: true });
  const std = v.oneOf(OP, 'std', opts.std, ['unbiased', 'population'] as const, 'unbiased');
  const out = opts.out === undefined ? {} : v.options(OP, opts.out);
  const advantages = v.outFloat32(OP, 'out.advantages', out.advantages, S);
  const reward = v.outFloat32(OP, 'out.rewards', out.rewards, S);
  const groupMean = new Float32Array(numGroups);
  const groupStd = new Float32Array(numGroups);
  const args = {
    S, K, numGroups, rewards, weights, group, groupSize,
    estimator: ADVANTAGE_ESTIMATORS.indexOf(estimator),
    scale: ADVANTAGE_SCALES.indexOf(scale),
    eps, unbiased: std === 'unbiased',
    advantages, reward, groupMean, groupStd,
  };
  const result = (r: { zeroStdFraction: number; numNoReward: number }): GroupAdvantagesResult => ({
    advantages, rewards: reward, groupMean, groupStd, groupIds,
    zeroStdFraction: r.zeroStdFraction, numNoReward: r.numNoReward,
  });
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
