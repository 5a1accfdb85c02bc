/**
 * grpoLossFromLogits — spec §7: the fused GRPO loss from logits. Shapes: S sequences
 * (= advantages.length) of T tokens, N = S·T rows of V = vocabSize logits, row n = i·T + t.
 *
 * One call computes, per row, ℓ = log softmax(z/τ)[y] and the entropy H (spec §1), then the loss,
 * metrics and g = ∂L/∂ℓ of spec §4-§6 (exactly {@link grpoLoss} on those ℓ and H), and the
 * gradient ∂L/∂z_v = g·(1[v = y] − p_v)/τ, written to a separate buffer (`gradient: 'separate'`,
 * the default), over the logits themselves (`'inplace'`: no extra N×V memory, the logits are
 * lost), or not at all (`'none'`). The gradient has the logits' dtype. Rows with mask 0 get an
 * all-zero gradient row.
 *
 * Cost: with a token-level ratio and no top-entropy selection, in place or with 16-bit logits,
 * each row is read from memory once and the gradient written once. `importanceSamplingLevel:
 * 'sequence'` or `topEntropyQuantile` < 1 need every row's ℓ/H before any gradient, so the logits
 * are read twice; float32 logits with a separate gradient are read twice too (it measured faster
 * than holding float rows in cache). Fastest: float32 with `gradient: 'inplace'`.
 */
import { native } from '../native';
import * as v from '../validate';
import type { FloatDType } from '../validate';
import { checkRolloutIs, GRPO_CONFIG_KEYS, grpoConfigToNative, GrpoLossConfig, GrpoMetrics } from './grpo_loss';
import { logitsTensor, rowsOf, temperatureOption } from './logprobs';
import { fullKlLossFromLogits, fullKlLossFromLogitsSync, wantsFullKl } from './grpo_loss_full_kl';

export type GradientMode = 'none' | 'separate' | 'inplace';
/** Native order (grpo_loss_from_logits.h GradMode). */
export const GRADIENT_MODES: readonly GradientMode[] = ['none', 'separate', 'inplace'];

/** Float32Array (float32) or Uint16Array (bfloat16 / float16 bits): the logits' and the gradient's array type. */
export type LogitsArray = Float32Array | Uint16Array;

export interface GrpoLossFromLogitsOptions<L extends LogitsArray = LogitsArray> extends Omit<GrpoLossConfig, 'klEstimator'> {
  /** The KL estimator of GrpoLossConfig, or 'full': the exact per-row KL from `refLogits` (host form). */
  klEstimator?: GrpoLossConfig['klEstimator'] | 'full';
  /** Logits [N, V], row-major: Float32Array, or Uint16Array of bfloat16 / float16 bits. */
  logits: L;
  /** Element type of `logits` (and of the gradient); required for a Uint16Array, default 'float32'. */
  dtype?: FloatDType;
  /** V, the row length (≥ 1); logits.length must be a multiple of it. */
  vocabSize: number;
  /** Sampled token id per row, in [0, V): Int32Array [N]. */
  targets: Int32Array;
  /** One advantage per sequence [S]; S is taken from its length and T = N / S. */
  advantages: Float32Array;
  /** 1 = real token, 0 = padding [N]: Uint8Array, Float32Array, Int32Array or boolean[]. Default all 1. */
  mask?: Uint8Array | Float32Array | Int32Array | boolean[] | number[];
  /** Log-probs under the rollout policy [N]; absent: ℓ detached (ρ = 1). */
  oldLogp?: Float32Array;
  /** Reference-model log-probs [N]; required when beta > 0 (except with klEstimator 'full'). */
  refLogp?: Float32Array;
  /**
   * Reference-model logits [N, V] (the logits' type and dtype): with `klEstimator: 'full'`, the KL
   * term is the exact KL(π‖π_ref) of each row (lib/ops/grpo_loss_full_kl.ts) instead of refLogp's estimate.
   */
  refLogits?: L;
  /** The sampler's log-probs [N] (behaviour policy): required by rolloutImportanceSamplingMode, and only used by it. */
  rolloutLogp?: Float32Array;
  /** Softmax temperature τ > 0 (the logits are divided by it), a normal float32 (≥ 1.18e-38, ≤ 3.4e38). Default 1. */
  temperature?: number;
  /**
   * Where ∂L/∂logits goes: 'separate' (default: `out.gradLogits`, else a buffer of the library's
   * pool: memory of an earlier default gradient the caller no longer holds, else fresh),
   * 'inplace', 'none'.
   */
  gradient?: GradientMode;
  /**
   * Optional preallocated outputs: gradLogits [N·V] of the logits' type (apart from `logits`),
   * the others Float32Array [N]. Reuse gradLogits across calls: a fresh N·V buffer costs about as
   * much in page faults as the kernel itself.
   */
  out?: { gradLogits?: L; logp?: Float32Array; entropy?: Float32Array; gradLogp?: Float32Array };
}

export interface GrpoLossFromLogitsResult<L extends LogitsArray = LogitsArray> {
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
  /** ∂L/∂logits [N·V]: the separate buffer, the logits buffer itself ('inplace'), or null ('none'). */
  gradLogits: L | null;
}

const OP = 'grpoLossFromLogits';

/** Option keys every form of grpoLossFromLogits takes (the CUDA form: these and no others). */
export const GRPO_LOSS_FROM_LOGITS_KEYS = [
  'logits', 'dtype', 'vocabSize', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp', 'rolloutLogp', 'temperature', 'gradient', ...GRPO_CONFIG_KEYS,
] as const;
/** The host form's keys (+ `refLogits`, klEstimator 'full'), and its `out` keys. */
export const GRPO_LOSS_FROM_LOGITS_HOST_KEYS = [...GRPO_LOSS_FROM_LOGITS_KEYS, 'refLogits', 'out'] as const;
export const GRPO_LOSS_FROM_LOGITS_OUT_KEYS = ['gradLogits', 'logp', 'entropy', 'gradLogp'] as const;

/** S, T from N rows and S advantages: shared by the host op and its CUDA form. */
export function logitsLossShape(op: string, S: number, N: number, advantages: unknown, logits: unknown): { S: number; T: number } {
  if (S === 0) throw v.rangeError(op, 'advantages', 'a non-empty array (one advantage per sequence)', advantages);
  if (N === 0 || N % S !== 0)
    throw v.rangeError(op, 'logits', `${N} rows (logits.length / vocabSize), a positive multiple of S = advantages.length = ${S}`, logits);
  return { S, T: N / S };
}

/**
 * The non-tensor options of grpoLossFromLogits (loss config, temperature, gradient mode),
 * validated the same way for the host op and its CUDA form.
 */
export function grpoLossFromLogitsConfig(op: string, s: Record<string, unknown>, N: number, hasRefLogp: boolean, hasRolloutLogp = false) {
  const temperature = temperatureOption(op, s.temperature);
  const cfg = grpoConfigToNative(op, s);
  checkRolloutIs(op, cfg, s, N, hasRolloutLogp);
  if (cfg.beta > 0 && !hasRefLogp) throw v.typeError(op, 'refLogp', `a tensor of length ${N} when beta > 0`, s.refLogp);
  const mode = v.oneOf(op, 'gradient', s.gradient, GRADIENT_MODES, 'separate');
  return { temperature, cfg, mode };
}

function prepare<L extends LogitsArray>(o: GrpoLossFromLogitsOptions<L>) {
  const opts = v.snapshot(OP, o, GRPO_LOSS_FROM_LOGITS_HOST_KEYS, { out: GRPO_LOSS_FROM_LOGITS_OUT_KEYS });
  const { V, N } = rowsOf(OP, opts.logits, opts.vocabSize);
  const lt = logitsTensor(OP, opts.logits, opts.dtype, N * V);
  const advantages = v.float32Array(OP, 'advantages', opts.advantages);
  const { S, T } = logitsLossShape(OP, advantages.length, N, advantages, opts.logits);
  v.int32Array(OP, 'targets', opts.targets, N);
  const mask = v.mask(OP, 'mask', opts.mask, N);
  const oldLogp = v.optionalFloat32Array(OP, 'oldLogp', opts.oldLogp, N);
  const refLogp = v.optionalFloat32Array(OP, 'refLogp', opts.refLogp, N);
  if (opts.refLogits !== undefined) throw v.typeError(OP, 'refLogits', "undefined unless klEstimator is 'full'", opts.refLogits);
  const rolloutLogp = v.optionalFloat32Array(OP, 'rolloutLogp', opts.rolloutLogp, N);
  const { temperature, cfg, mode } = grpoLossFromLogitsConfig(OP, opts, N, !!refLogp, !!rolloutLogp);
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  let gradLogits: Float32Array | Uint16Array | null = null;
  if (mode === 'separate') {
    if (out.gradLogits === undefined) {
      // Reused memory when an earlier default gradient has been collected (never one a caller
      // still holds): a fresh N·V buffer pays its page faults on every call (buffer_pool.cc).
      const ab = native().pooledArrayBuffer(N * V * (lt.dtype === 'float32' ? 4 : 2));
      gradLogits = lt.dtype === 'float32' ? new Float32Array(ab, 0, N * V) : new Uint16Array(ab, 0, N * V);
    } else {
      const want = lt.dtype === 'float32' ? 'Float32Array' : 'Uint16Array';
      gradLogits = v.typedArray(OP, 'out.gradLogits', out.gradLogits, want, N * V, `${want} of length ${N * V} (the logits' dtype ${lt.dtype})`);
    }
  } else if (mode === 'inplace') {
    if (out.gradLogits !== undefined) throw v.typeError(OP, 'out.gradLogits', "undefined with gradient: 'inplace'", out.gradLogits);
    gradLogits = lt.data;
  } else if (out.gradLogits !== undefined) {
    throw v.typeError(OP, 'out.gradLogits', "undefined with gradient: 'none'", out.gradLogits);
  }
  const logp = v.outFloat32(OP, 'out.logp', out.logp, N);
  const entropy = v.outFloat32(OP, 'out.entropy', out.entropy, N);
  const gradLogp = v.outFloat32(OP, 'out.gradLogp', out.gradLogp, N);
  // 'inplace' writes the gradient over the logits by design (each row read, then written), so
  // there the logits are an output too: no other input or output may overlap them. Every other
  // overlap of an output with an input or another output is an alias; inputs may share memory.
  const inputs = { targets: opts.targets as Int32Array, advantages, mask, oldLogp, refLogp, rolloutLogp };
  if (opts.out !== undefined || mode === 'inplace') v.noAliases(
    OP,
    {
      'out.gradLogits': mode === 'separate' ? gradLogits : null, logits: mode === 'inplace' ? lt.data : null,
      'out.logp': logp, 'out.entropy': entropy, 'out.gradLogp': gradLogp,
    },
    { ...(mode === 'inplace' ? {} : { logits: lt.data }), ...inputs },
    mode === 'inplace' ? { 'logits|*': "gradient: 'inplace' writes the gradient over logits" }
      : { 'out.gradLogits|logits': "pass gradient: 'inplace' to write the gradient over the logits" },
  );
  const targets = v.ids(OP, 'targets', opts.targets, N, V);
  v.allFinite(OP, 'advantages', advantages);
  if (oldLogp) v.allFiniteWhere(OP, 'oldLogp', oldLogp, mask);
  if (refLogp) v.allFiniteWhere(OP, 'refLogp', refLogp, mask);
  if (rolloutLogp) v.allFiniteWhere(OP, 'rolloutLogp', rolloutLogp, mask);
  const args = {
    S, T, V, logits: lt.data, logitsDtype: lt.dtype, targets, temperature, oldLogp, refLogp, rolloutLogp, advantages, mask, ...cfg,
    gradMode: GRADIENT_MODES.indexOf(mode),
    gradLogits: mode === 'separate' ? gradLogits : undefined,
    gradLogitsDtype: lt.dtype,
    logp, entropy, gradLogp,
  };
  const result = (m: GrpoMetrics): GrpoLossFromLogitsResult<L> => ({ loss: m.loss, metrics: { ...m }, logp, entropy, gradLogp, gradLogits: gradLogits as L | null });
  return { args, result };
}

/** The fused GRPO loss, metrics and ∂L/∂logits from logits (async: runs on the native thread pool). */
export async function grpoLossFromLogits<L extends LogitsArray>(o: GrpoLossFromLogitsOptions<L>): Promise<GrpoLossFromLogitsResult<L>> {
  if (wantsFullKl(o)) return (await fullKlLossFromLogits(o)) as GrpoLossFromLogitsResult<L>;
  const p = prepare(o);
  return p.result(await native().grpoLossFromLogits(p.args, true));
}

/** Synchronous twin of {@link grpoLossFromLogits}. */
export function grpoLossFromLogitsSync<L extends LogitsArray>(o: GrpoLossFromLogitsOptions<L>): GrpoLossFromLogitsResult<L> {
  if (wantsFullKl(o)) return fullKlLossFromLogitsSync(o) as GrpoLossFromLogitsResult<L>;
  const p = prepare(o);
  return p.result(native().grpoLossFromLogits(p.args, false));
}

/**
 * The pool of default gradients (README "grpoLossFromLogits"): blocks and bytes it holds, how many
 * are free, and how many default calls reused memory or made fresh buffers. `release: true` first
 * lets go of the pool's memory (what no ArrayBuffer uses any more is freed).
 */
export function gradientPool(opts: { release?: boolean } = {}): { blocks: number; bytes: number; free: number; reused: number; fresh: number } {
  return native().pooledMemory(opts.release === true);
}
