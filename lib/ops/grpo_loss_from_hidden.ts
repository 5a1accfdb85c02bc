/**
 * grpoLossFromHidden — spec §8: the fused linear GRPO loss. Shapes: S sequences
 * (= advantages.length) of T tokens, N = S·T rows of hidden states h [N, D] (D = hiddenSize),
 * output weight W [V, D] (V = vocabSize; the lm_head as Hugging Face stores it), row n = i·T + t.
 *
 * The logits z = h·Wᵀ (used as z/τ) never exist in full: `chunkSize` rows at a time are
 * projected, reduced to ℓ and H (spec §1), and — once g = ∂L/∂ℓ is known from the loss core of
 * {@link grpoLoss} (spec §4-§6, the same code as {@link grpoLossFromLogits}) — differentiated
 * and multiplied back: ∂L/∂h = ∂L/∂z · W and ∂L/∂W += (∂L/∂z)ᵀ · h. The loss, metrics, ℓ, H and
 * ∂L/∂ℓ are those of grpoLossFromLogits on the materialised logits, with every option.
 *
 * Memory: two chunk buffers of chunkSize·V floats (default: about 48 MiB in all), plus, for a
 * bfloat16/float16 weight, one float32 slab of it; never N·V. Cost: three matmuls of N·V·D
 * multiply-adds; `importanceSamplingLevel: 'sequence'`, `topEntropyQuantile` < 1, the rollout IS
 * correction (`rolloutImportanceSamplingMode` with `rolloutLogp`) and the per-sequence losses need
 * every row's ℓ/H before any gradient, so the logits are computed twice (four matmuls).
 * On the CPU every output is bit-identical for any chunkSize and thread count.
 */
import { native } from '../native';
import * as v from '../validate';
import type { FloatDType } from '../validate';
import { checkRolloutIs, GRPO_CONFIG_KEYS, grpoConfigToNative, GrpoLossConfig, GrpoMetrics } from './grpo_loss';

export interface GrpoLossFromHiddenOptions extends GrpoLossConfig {
  /** Hidden states h [N, D] (the final norm's output), row-major: Float32Array, or Uint16Array of bfloat16 / float16 bits. */
  hidden: Float32Array | Uint16Array;
  /** Element type of `hidden`; required for a Uint16Array, default 'float32'. */
  hiddenDtype?: FloatDType;
  /** Output weight W [V, D] (lm_head.weight; the embedding when tied): Float32Array or Uint16Array. */
  weight: Float32Array | Uint16Array;
  /** Element type of `weight`; required for a Uint16Array, default 'float32'. */
  weightDtype?: FloatDType;
  /** D, the hidden size (≥ 1); hidden.length = N·D and weight.length = V·D. */
  hiddenSize: number;
  /** V, the vocabulary size (≥ 1). */
  vocabSize: number;
  /** Sampled token id per row, in [0, V): Int32Array [N]. */
  targets: Int32Array;
  /** One advantage per sequence [S]; S is taken from its length and T = N / S. */
  advantages: Float32Array;
  /** 1 = real token, 0 = padding [N]: Uint8Array, Float32Array, Int32Array or boolean[]. Default all 1. */
  mask?: Uint8Array | Float32Array | Int32Array | boolean[] | number[];
  /** Log-probs under the rollout policy [N]; absent: ℓ detached (ρ = 1). */
  oldLogp?: Float32Array;
  /** Reference-model log-probs [N]; required when beta > 0. */
  refLogp?: Float32Array;
  /** The sampler's log-probs [N] (behaviour policy): required by rolloutImportanceSamplingMode, and only used by it. */
  rolloutLogp?: Float32Array;
  /** Softmax temperature τ > 0 (the logits are divided by it). Default 1. */
  temperature?: number;
  /** Compute ∂L/∂h (default true); written to `out.gradHidden` or a new buffer. */
  gradHidden?: boolean;
  /**
   * ∂L/∂W: a Float32Array [V·D] it is added to (+=: gradient accumulation across micro-batches),
   * `true` (default) for a new zeroed buffer, or `false` to skip it (frozen head, LoRA).
   */
  gradWeight?: Float32Array | boolean;
  /** Rows of logits per chunk (≥ 1). Default: about 48 MiB of chunk buffers (16 to 256 rows). */
  chunkSize?: number;
  /** Optional preallocated outputs: gradHidden [N·D], logp, entropy, gradLogp [N] (Float32Array). */
  out?: { gradHidden?: Float32Array; logp?: Float32Array; entropy?: Float32Array; gradLogp?: Float32Array };
}

export interface GrpoLossFromHiddenResult {
  /** The aggregated scalar loss. */
  loss: number;
  /** TRL-style metrics (masked means), as {@link grpoLoss} returns them. */
  metrics: GrpoMetrics;
  /** ℓ per row [N]. */
  logp: Float32Array;
  /** Entropy per row [N] (nats). */
  entropy: Float32Array;
  /** ∂L/∂ℓ per row [N] (0 where mask is 0). */
  gradLogp: Float32Array;
  /** ∂L/∂h [N·D], or null with `gradHidden: false`. */
  gradHidden: Float32Array | null;
  /** The ∂L/∂W buffer [V·D] (the caller's, accumulated into), or null with `gradWeight: false`. */
  gradWeight: Float32Array | null;
}

const OP = 'grpoLossFromHidden';

/**
 * Default rows per chunk for a vocabulary of V: the two chunk buffers (logits and their
 * transpose, 2·chunk·V floats) near 48 MiB, 16 to 256 rows, a multiple of 16 (the matmul's column
 * tile). Chunks of 16 to 64 rows measured alike at V = 151936 (bench/results/grpo_loss_from_hidden.md).
 */
export function defaultHiddenChunk(V: number): number {
  const c = Math.floor(Math.floor((48 * 2 ** 20) / (8 * Math.max(V, 1))) / 16) * 16;
  return Math.min(256, Math.max(16, c));
}

/** The option keys of both forms (host and CUDA), and the host form's `out` keys. */
export const GRPO_LOSS_FROM_HIDDEN_KEYS = [
  'hidden', 'hiddenDtype', 'weight', 'weightDtype', 'hiddenSize', 'vocabSize', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp',
  'rolloutLogp', 'temperature', 'gradHidden', 'gradWeight', 'chunkSize', ...GRPO_CONFIG_KEYS,
] as const;
export const GRPO_LOSS_FROM_HIDDEN_HOST_KEYS = [...GRPO_LOSS_FROM_HIDDEN_KEYS, 'out'] as const;
export const GRPO_LOSS_FROM_HIDDEN_OUT_KEYS = ['gradHidden', 'logp', 'entropy', 'gradLogp'] as const;

function prepare(o: GrpoLossFromHiddenOptions) {
  // every option read once (no getter runs twice; unknown keys are errors with a did-you-mean)
  const opts = v.snapshot(OP, o, GRPO_LOSS_FROM_HIDDEN_HOST_KEYS, { out: GRPO_LOSS_FROM_HIDDEN_OUT_KEYS });
  const D = v.integer(OP, 'hiddenSize', opts.hiddenSize, 1, 2 ** 31 - 1);
  const V = v.integer(OP, 'vocabSize', opts.vocabSize, 1, 2 ** 31 - 1);
  if (!(opts.hidden instanceof Float32Array) && !(opts.hidden instanceof Uint16Array))
    throw v.typeError(OP, 'hidden', 'Float32Array or Uint16Array (bfloat16 / float16 bits)', opts.hidden);
  if (opts.hidden.length % D !== 0) throw v.rangeError(OP, 'hidden', `a length that is a multiple of hiddenSize = ${D}`, opts.hidden);
  const N = opts.hidden.length / D;
  const ht = v.floatTensor(OP, 'hidden', opts.hidden, opts.hiddenDtype, N * D);
  const wt = v.floatTensor(OP, 'weight', opts.weight, opts.weightDtype, V * D);
  const advantages = v.float32Array(OP, 'advantages', opts.advantages);
  const S = advantages.length;
  if (S === 0) throw v.rangeError(OP, 'advantages', 'a non-empty Float32Array (one advantage per sequence)', advantages);
  if (N === 0 || N % S !== 0)
    throw v.rangeError(OP, 'hidden', `${N} rows (hidden.length / hiddenSize), a positive multiple of S = advantages.length = ${S}`, opts.hidden);
  const T = N / S;
  const targets = v.ids(OP, 'targets', opts.targets, N, V);
  const mask = v.mask(OP, 'mask', opts.mask, N);
  const oldLogp = v.optionalFloat32Array(OP, 'oldLogp', opts.oldLogp, N);
  const refLogp = v.optionalFloat32Array(OP, 'refLogp', opts.refLogp, N);
  const rolloutLogp = v.optionalFloat32Array(OP, 'rolloutLogp', opts.rolloutLogp, N);
  const temperature = v.float(OP, 'temperature', opts.temperature, 0, Infinity, 1, { loOpen: true });
  const cfg = grpoConfigToNative(OP, opts);
  checkRolloutIs(OP, cfg, opts, N, !!rolloutLogp);
  v.allFinite(OP, 'advantages', advantages);
  if (oldLogp) v.allFiniteWhere(OP, 'oldLogp', oldLogp, mask);
  if (refLogp) v.allFiniteWhere(OP, 'refLogp', refLogp, mask);
  if (rolloutLogp) v.allFiniteWhere(OP, 'rolloutLogp', rolloutLogp, mask);
  if (cfg.beta > 0 && !refLogp) throw v.typeError(OP, 'refLogp', `a Float32Array of length ${N} when beta > 0`, opts.refLogp);
  const chunk = v.integer(OP, 'chunkSize', opts.chunkSize, 1, 2 ** 31 - 1, defaultHiddenChunk(V));
  const wantDh = v.boolean(OP, 'gradHidden', opts.gradHidden, true);
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  let gradHidden: Float32Array | null = null;
  if (wantDh) gradHidden = v.outFloat32(OP, 'out.gradHidden', out.gradHidden, N * D);
  else if (out.gradHidden !== undefined) throw v.typeError(OP, 'out.gradHidden', 'undefined with gradHidden: false', out.gradHidden);
  let gradWeight: Float32Array | null;
  const gw = opts.gradWeight;
  if (gw === undefined || gw === true) gradWeight = new Float32Array(V * D);
  else if (gw === false) gradWeight = null;
  else if (gw instanceof Float32Array) {
    if (gw.length !== V * D) throw v.rangeError(OP, 'gradWeight', `Float32Array of length ${V * D} (vocabSize × hiddenSize)`, gw);
    gradWeight = gw;
  } else throw v.typeError(OP, 'gradWeight', `a Float32Array of length ${V * D} to accumulate into, or a boolean`, gw);
  // The kernel writes the gradients while it still reads h and W.
  if (gradHidden && (v.sharesMemory(gradHidden, ht.data) || v.sharesMemory(gradHidden, wt.data) || (gradWeight && v.sharesMemory(gradHidden, gradWeight))))
    throw v.rangeError(OP, 'out.gradHidden', 'a buffer apart from hidden, weight and gradWeight', gradHidden);
  if (gradWeight && (v.sharesMemory(gradWeight, ht.data) || v.sharesMemory(gradWeight, wt.data)))
    throw v.rangeError(OP, 'gradWeight', 'a buffer apart from hidden and weight', gradWeight);
  const logp = v.outFloat32(OP, 'out.logp', out.logp, N);
  const entropy = v.outFloat32(OP, 'out.entropy', out.entropy, N);
  const gradLogp = v.outFloat32(OP, 'out.gradLogp', out.gradLogp, N);
  // every other pair: the kernel writes ℓ, H, ∂L/∂ℓ and the gradients while it reads the inputs
  // (gradWeight is the caller's array even without `out`, so this always runs: a few compares)
  v.noAliases(
    OP,
    { 'out.gradHidden': gradHidden, gradWeight: gw instanceof Float32Array ? gradWeight : null, 'out.logp': logp, 'out.entropy': entropy, 'out.gradLogp': gradLogp },
    { hidden: ht.data, weight: wt.data, targets, advantages, mask, oldLogp, refLogp, rolloutLogp },
  );
  const args = {
    S, T, V, D, chunk, hidden: ht.data, hiddenDtype: ht.dtype, weight: wt.data, weightDtype: wt.dtype, targets, temperature,
    oldLogp, refLogp, rolloutLogp, advantages, mask, ...cfg, gradHidden: gradHidden ?? undefined, gradWeight: gradWeight ?? undefined,
    logp, entropy, gradLogp,
  };
  const result = (m: GrpoMetrics): GrpoLossFromHiddenResult => ({ loss: m.loss, metrics: { ...m }, logp, entropy, gradLogp, gradHidden, gradWeight });
  return { args, result };
}

/** The fused linear GRPO loss from hidden states and the output weight (async: runs on the native thread pool). */
export async function grpoLossFromHidden(o: GrpoLossFromHiddenOptions): Promise<GrpoLossFromHiddenResult> {
  const p = prepare(o);
  return p.result(await native().grpoLossFromHidden(p.args, true));
}

/** Synchronous twin of {@link grpoLossFromHidden}. */
export function grpoLossFromHiddenSync(o: GrpoLossFromHiddenOptions): GrpoLossFromHiddenResult {
  const p = prepare(o);
  return p.result(native().grpoLossFromHidden(p.args, false));
}
