/**
 * Data-parallel GRPO on top of a ProcessGroup (what GrpoTrainer's `dist` option takes).
 *
 * Every rank draws the same global batch of B prompts (the same seeded order), keeps its own
 * contiguous share of B / worldSize prompt groups (a group never splits, so advantages stay
 * local), generates with Philox row ids offset to its share's place in the global batch (so the
 * completions are exactly those one rank would sample for the joined batch), and trains on it.
 * After the backward passes the gradients are flattened into one buffer and averaged over ranks
 * (one all-reduce per optimiser update); every rank then takes the same AdamW step, so the
 * weights stay identical (weightsHash checks it).
 *
 * Loss normalisation is global, as TRL does with its process count: for dapo each rank passes
 * numItemsInBatch = (completion tokens summed over ranks) / worldSize, so the average of the
 * ranks' gradients is the gradient of Σ loss / global token count. grpo and dr_grpo normalise per
 * sequence and per S·L, which the average over equal shares makes global too; bnpo normalises by
 * each rank's own tokens (as TRL). Advantages come from every rank's rewards (gathered each
 * round), so scaleRewards 'batch' and normalizeAdvantages see the global batch, and dynamic sampling
 * keeps the first groups with σ > 0 in global order on every rank alike (the same rounds; a rank may
 * keep fewer groups than another, or none, and the per-sequence losses are rescaled by its share).
 * The reward and completion metrics are computed over the gathered batch; the loss metrics are
 * averaged over ranks (as TRL), counts summed, min/max kept; rank 0 alone writes them, the
 * checkpoints and the report.
 */
import type { PolicyModel } from '../models/policy';
import type { ProcessGroup } from './process_group';

/** What data parallelism needs from a model beyond PolicyModel: its gradients and weights as one flat buffer. */
export interface FlatModel {
  flatGradients(): Float32Array;
  setFlatGradients(g: Float32Array): void;
  flatParameters(): Float32Array;
  setFlatParameters(p: Float32Array): void;
}

function flatModel(m: PolicyModel): FlatModel {
  const f = m as unknown as Partial<FlatModel>;
  if (typeof f.flatGradients !== 'function' || typeof f.setFlatGradients !== 'function' || typeof f.flatParameters !== 'function' || typeof f.setFlatParameters !== 'function')
    throw new TypeError('data-parallel training: the model must expose flatGradients/setFlatGradients/flatParameters/setFlatParameters (the built-in transformer does; see README "Data-parallel training")');
  return f as FlatModel;
}

/** 64-bit FNV-1a of a float buffer's bytes, as 2 uint32 (the weights check). */
export function hashFloats(a: Float32Array): Uint32Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let h1 = 0x811c9dc5, h2 = 0x01000193 ^ a.length;
  for (let i = 0; i < u.length; i++) {
    h1 = Math.imul(h1 ^ u[i], 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ (u[i] >>> 7) ^ i, 0x5bd1e995) >>> 0;
  }
  return Uint32Array.of(h1, h2);
}

/** How a metric is reduced over ranks. */
function rule(key: string): 'sum' | 'min' | 'max' | 'avg' | 'same' {
  if (key === 'step' || key === 'num_tokens') return 'same';
  // (tokens_per_second is already global tokens / this rank's step time: averaged like the rest)
  if (key === 'no_reward' || key.startsWith('no_reward/') || key === 'dynamic_sampling/kept_groups') return 'sum';
  if (key.includes('/min_')) return 'min';
  if (key.includes('/max_') || key.startsWith('time/') || key === 'step_time' || key === 'dynamic_sampling/rounds') return 'max';
  return 'avg';
}

export class DataParallel {
  constructor(readonly pg: ProcessGroup) {}

  get rank(): number {
    return this.pg.rank;
  }
  get worldSize(): number {
    return this.pg.worldSize;
  }
  get isMain(): boolean {
    return this.pg.rank === 0;
  }

  /** Refuses what data parallelism does not support yet; errors name the option. */
  checkConfig(c: { batchSize: number }): void {
    const W = this.worldSize;
    if (W === 1) return;
    if (c.batchSize % W !== 0) throw new RangeError(`data-parallel training: batchSize (${c.batchSize} prompts per step, over all ranks) must be a multiple of the number of ranks (${W})`);
  }

  /** This rank's share [start, end) of n prompt groups (contiguous; n is a multiple of worldSize). */
  share(n: number): { start: number; end: number } {
    const per = n / this.worldSize;
    return { start: this.rank * per, end: (this.rank + 1) * per };
  }

  /** A count summed over ranks (float64: exact for counts below 2^53). */
  async sum(n: number): Promise<number> {
    if (this.worldSize === 1) return n;
    const b = Float64Array.of(n);
    await this.pg.allReduce(b, 'sum');
    return b[0];
  }

  /** Every rank's `a` (the same length on each), concatenated in rank order: the global batch's rows. */
  gather(a: Float32Array): Promise<Float32Array> {
    return this.pg.allGather(a);
  }

  /** Averages the model's gradients over ranks, in one all-reduce of the flattened buffer. */
  async averageGradients(model: PolicyModel): Promise<void> {
    if (this.worldSize === 1) return;
    const m = flatModel(model);
    const g = m.flatGradients();
    await this.pg.allReduce(g, 'avg');
    m.setFlatGradients(g);
  }

  /** Rank 0's weights into every rank (at the start: identical from step 0 whatever each rank loaded). */
  async broadcastParameters(model: PolicyModel): Promise<void> {
    if (this.worldSize === 1) return;
    const m = flatModel(model);
    const p = m.flatParameters();
    await this.pg.broadcast(p, 0);
    m.setFlatParameters(p);
  }

  /** Every rank's weights hash; throws when they differ (a debug and test check, one all-gather of 8 bytes). */
  async checkSameWeights(model: PolicyModel, step: number): Promise<void> {
    if (this.worldSize === 1) return;
    const all = await this.pg.allGather(hashFloats(flatModel(model).flatParameters()));
    for (let r = 1; r < this.worldSize; r++)
      if (all[2 * r] !== all[0] || all[2 * r + 1] !== all[1])
        throw new Error(`data-parallel training: the weights of rank ${r} differ from rank 0's after step ${step} (hash ${all[2 * r].toString(16)}${all[2 * r + 1].toString(16)} vs ${all[0].toString(16)}${all[1].toString(16)})`);
  }

  /**
   * The step's metrics reduced over ranks (the same keys on every rank; numbers only). `global`:
   * keys that already describe the whole batch on every rank (the trainer computes the reward and
   * completion metrics from the gathered batch), left as they are. A NaN is left out of an average
   * (a rank that had no sequence to measure).
   */
  async reduceMetrics<M extends Record<string, unknown>>(m: M, global: ReadonlySet<string> = new Set()): Promise<M> {
    if (this.worldSize === 1) return m;
    const keys = Object.keys(m).filter((k) => typeof m[k] === 'number' && !global.has(k)).sort();
    const n = keys.length;
    // [sums, counts of the averaged values]
    const sum = new Float64Array(2 * n), max = new Float64Array(n);
    keys.forEach((k, i) => {
      const x = m[k] as number, r = rule(k);
      const nan = r === 'avg' && Number.isNaN(x);
      sum[i] = (r === 'sum' || r === 'avg') && !nan ? x : 0;
      sum[n + i] = nan ? 0 : 1;
      max[i] = r === 'max' ? x : r === 'min' ? -x : -Infinity;
    });
    await this.pg.allReduce(sum, 'sum');
    await this.pg.allReduce(max, 'max');
    const out: Record<string, unknown> = { ...m };
    keys.forEach((k, i) => {
      const r = rule(k);
      if (r === 'sum') out[k] = sum[i];
      else if (r === 'avg') out[k] = sum[n + i] > 0 ? sum[i] / sum[n + i] : NaN;
      else if (r === 'max') out[k] = max[i];
      else if (r === 'min') out[k] = -max[i];
    });
    return out as M;
  }
}
