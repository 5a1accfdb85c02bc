/**
 * logprobs — spec §1 (the "selective log-softmax"). Shapes: N rows (tokens) of V logits,
 * row-major; N = logits.length / vocabSize. Per row n, with u = z/τ:
 *   logp[n] = u[y[n]] − logsumexp(u),   entropy[n] = logsumexp(u) − Σ_v softmax(u)_v·u_v.
 * Logits may be float32 (Float32Array) or bfloat16 / float16 bits (Uint16Array + `dtype`);
 * they are widened on load and reduced in float32 lanes with double row totals. −Infinity
 * logits (a masked vocabulary) have probability 0 and add nothing to the entropy.
 */
import { native } from '../native';
import * as v from '../validate';
import type { FloatDType } from '../validate';

export interface LogprobsOptions {
  /** Logits [N, V], row-major: Float32Array, or Uint16Array of bfloat16 / float16 bits. */
  logits: Float32Array | Uint16Array;
  /** Element type of `logits`; required for a Uint16Array, default 'float32'. */
  dtype?: FloatDType;
  /** V, the row length (≥ 1); logits.length must be a multiple of it. */
  vocabSize: number;
  /** Target (sampled) token id per row, in [0, V): Int32Array of length N. */
  targets: Int32Array;
  /** Softmax temperature τ > 0 (the logits are divided by it). Default 1. */
  temperature?: number;
  /** Also compute the entropy per row (default true). */
  entropy?: boolean;
  /** Optional preallocated outputs (Float32Array of length N). */
  out?: { logp?: Float32Array; entropy?: Float32Array };
}

export interface LogprobsResult {
  /** log p(y[n]) per row. */
  logp: Float32Array;
  /** Entropy of each row's softmax (nats), or null when `entropy: false`. */
  entropy: Float32Array | null;
}

const OP = 'logprobs';

/** The row count N of `logits` for `vocabSize`, with errors naming the argument. */
export function rowsOf(op: string, logits: unknown, vocabSize: unknown): { V: number; N: number } {
  const V = v.integer(op, 'vocabSize', vocabSize, 1, 2 ** 31 - 1);
  if (!(logits instanceof Float32Array) && !(logits instanceof Uint16Array))
    throw v.typeError(op, 'logits', 'Float32Array or Uint16Array (bfloat16 / float16 bits)', logits);
  if (logits.length % V !== 0)
    throw v.rangeError(op, 'logits', `a length that is a multiple of vocabSize = ${V}`, logits);
  return { V, N: logits.length / V };
}

/**
 * The logits tensor with its `dtype` option checked first (so the message names `dtype`):
 * Float32Array for 'float32' (the default), Uint16Array for 'bfloat16' / 'float16'.
 */
export function logitsTensor(op: string, logits: unknown, dtype: unknown, length: number) {
  if (dtype !== undefined) v.oneOf(op, 'dtype', dtype, v.FLOAT_DTYPES);
  else if (logits instanceof Uint16Array)
    throw v.typeError(op, 'dtype', "'bfloat16' or 'float16' for Uint16Array logits", dtype);
  return v.floatTensor(op, 'logits', logits, dtype, length);
}

function prepare(o: LogprobsOptions) {
  const opts = v.options(OP, o);
  const { V, N } = rowsOf(OP, opts.logits, opts.vocabSize);
  const lt = logitsTensor(OP, opts.logits, opts.dtype, N * V);
  const targets = v.ids(OP, 'targets', opts.targets, N, V);
  const temperature = v.number(OP, 'temperature', opts.temperature, 1);
  if (!(temperature > 0)) throw v.rangeError(OP, 'temperature', 'a number > 0', temperature);
  const wantEntropy = v.boolean(OP, 'entropy', opts.entropy, true);
  const out = opts.out === undefined ? {} : v.options(OP, opts.out);
  const logp = v.outFloat32(OP, 'out.logp', out.logp, N);
  const entropy = wantEntropy ? v.outFloat32(OP, 'out.entropy', out.entropy, N) : null;
  const args = { N, V, logits: lt.data, logitsDtype: lt.dtype, targets, temperature, logp, entropy };
  return { args, result: (): LogprobsResult => ({ logp, entropy }) };
}

/** Token log-probs (and entropies) from logits (async: runs on the native thread pool). */
export async function logprobs(o: LogprobsOptions): Promise<LogprobsResult> {
  const p = prepare(o);
  await native().logprobs(p.args, true);
  return p.result();
}

/** Synchronous twin of {@link logprobs}. */
export function logprobsSync(o: LogprobsOptions): LogprobsResult {
  const p = prepare(o);
  native().logprobs(p.args, false);
  return p.result();
}
