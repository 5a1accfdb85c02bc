/**
 * klFull — the exact KL(π‖π_ref) per token position from both models' logits rows (README Math
 * §3, `full`): with u = z/τ, u' = z_ref/τ, p = softmax(u), q = softmax(u'),
 *   KL_n = Σ_v p_v·(log p_v − log q_v),   ∂KL_n/∂z_v = p_v·((u_v − u'_v) − E_p[u − u'])/τ.
 * One fused kernel over the two rows (value and gradient wrt the policy logits; the reference is
 * frozen). The sampled-token estimators k1/k2/k3 estimate this KL from one token; `full` needs
 * the reference logits. Used by grpoLossFromLogits with `klEstimator: 'full'` and `refLogits`.
 */
import { native } from '../native';
import * as v from '../validate';
import type { FloatDType } from '../validate';
import { logitsTensor, rowsOf, temperatureOption } from './logprobs';

export interface KlFullOptions<L extends Float32Array | Uint16Array = Float32Array | Uint16Array> {
  /** Policy logits [N, V], row-major: Float32Array, or Uint16Array of bfloat16 / float16 bits. */
  logits: L;
  /** Reference logits [N, V], the same type and dtype. */
  refLogits: L;
  /** Element type of both logits tensors (and of the gradient); required for Uint16Array. */
  dtype?: FloatDType;
  /** V, the row length. */
  vocabSize: number;
  /** Softmax temperature τ > 0 applied to both models' logits. Default 1. */
  temperature?: number;
  /** Compute ∂KL/∂logits (default true). */
  grad?: boolean;
  /** Scale of each row's gradient [N] (the loss's weight of the row); default 1. */
  coef?: Float32Array;
  /** Add the (scaled) gradient to `out.grad` instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Preallocated outputs: kl [N], grad [N·V] of the logits' type (required with `accumulate`). */
  out?: { kl?: Float32Array; grad?: L };
}

export interface KlFullResult<L extends Float32Array | Uint16Array = Float32Array | Uint16Array> {
  /** KL(π‖π_ref) per row [N] (nats). */
  kl: Float32Array;
  /** coef·∂KL/∂logits [N·V], or null with `grad: false`. */
  grad: L | null;
}

const OP = 'klFull';
export const KL_FULL_HOST_KEYS = ['logits', 'refLogits', 'dtype', 'vocabSize', 'temperature', 'grad', 'coef', 'accumulate', 'out'] as const;

function prepare<L extends Float32Array | Uint16Array>(o: KlFullOptions<L>) {
  const opts = v.snapshot(OP, o, KL_FULL_HOST_KEYS, { out: ['kl', 'grad'] });
  const { V, N } = rowsOf(OP, opts.logits, opts.vocabSize);
  const lt = logitsTensor(OP, opts.logits, opts.dtype, N * V);
  const rt = v.floatTensor(OP, 'refLogits', opts.refLogits, lt.dtype, N * V);
  const temperature = temperatureOption(OP, opts.temperature);
  const wantGrad = v.boolean(OP, 'grad', opts.grad, true);
  const accumulate = v.boolean(OP, 'accumulate', opts.accumulate, false);
  const coef = v.optionalFloat32Array(OP, 'coef', opts.coef, N);
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  const kl = v.outFloat32(OP, 'out.kl', out.kl, N);
  let grad: Float32Array | Uint16Array | null = null;
  if (wantGrad) {
    const want = lt.dtype === 'float32' ? 'Float32Array' : 'Uint16Array';
    if (out.grad === undefined) {
      if (accumulate) throw v.typeError(OP, 'out.grad', `a ${want} of length ${N * V} to add to with accumulate: true`, out.grad);
      grad = lt.dtype === 'float32' ? new Float32Array(N * V) : new Uint16Array(N * V);
    } else {
      grad = v.typedArray(OP, 'out.grad', out.grad, want, N * V, `${want} of length ${N * V} (the logits' dtype ${lt.dtype})`);
    }
  } else if (out.grad !== undefined || accumulate) {
    throw v.typeError(OP, out.grad !== undefined ? 'out.grad' : 'accumulate', 'unset with grad: false', out.grad ?? accumulate);
  }
  v.noAliases(OP, { 'out.kl': kl, 'out.grad': grad }, { logits: lt.data, refLogits: rt.data, coef });
  if (coef) v.allFinite(OP, 'coef', coef);
  const args = {
    N, V, logits: lt.data, logitsDtype: lt.dtype, refLogits: rt.data, refLogitsDtype: rt.dtype, temperature, coef, kl,
    grad: grad ?? undefined, gradDtype: lt.dtype, accumulate,
  };
  return { args, result: (): KlFullResult<L> => ({ kl, grad: grad as L | null }) };
}

/** Exact per-row KL(π‖π_ref) and its gradient wrt the policy logits (async: native thread pool). */
export async function klFull<L extends Float32Array | Uint16Array>(o: KlFullOptions<L>): Promise<KlFullResult<L>> {
  const p = prepare(o);
  await native().klFull(p.args, true);
  return p.result();
}

/** Synchronous twin of {@link klFull}. */
export function klFullSync<L extends Float32Array | Uint16Array>(o: KlFullOptions<L>): KlFullResult<L> {
  const p = prepare(o);
  native().klFull(p.args, false);
  return p.result();
}
