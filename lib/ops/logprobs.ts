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
  /** Softmax temperature τ > 0 (the logits are divided by it), a normal float32 (≥ 1.18e-38, ≤ 3.4e38). Default 1. */
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

/** Option keys every form of logprobs takes (the CUDA form: these and no others). */
export const LOGPROBS_KEYS = ['logits', 'dtype', 'vocabSize', 'targets', 'temperature', 'entropy'] as const;
/** The host form's keys, and its `out` keys. */
export const LOGPROBS_HOST_KEYS = [...LOGPROBS_KEYS, 'out'] as const;
export const LOGPROBS_OUT_KEYS = ['logp', 'entropy'] as const;

/**
 * The row count N of `numel` logits for `vocabSize`, with errors naming the argument; shared by
 * the host ops (numel = logits.length) and their CUDA forms (numel = DeviceTensor.numel).
 */
export function rowsOfNumel(op: string, numel: number, vocabSize: unknown, logits: unknown): { V: number; N: number } {
  const V = v.integer(op, 'vocabSize', vocabSize, 1, 2 ** 31 - 1);
  if (numel % V !== 0) throw v.rangeError(op, 'logits', `a length that is a multiple of vocabSize = ${V}`, logits);
  return { V, N: numel / V };
}

/** The row count N of `logits` for `vocabSize`, with errors naming the argument. */
export function rowsOf(op: string, logits: unknown, vocabSize: unknown): { V: number; N: number } {
  v.integer(op, 'vocabSize', vocabSize, 1, 2 ** 31 - 1);
  const kind = v.typedArrayKind(logits);
  if (kind !== 'Float32Array' && kind !== 'Uint16Array')
    throw v.typeError(op, 'logits', 'Float32Array or Uint16Array (bfloat16 / float16 bits)', logits);
  return rowsOfNumel(op, v.realLength(logits as Float32Array), vocabSize, logits);
}

/**
 * The softmax temperature τ of logprobs and grpoLossFromLogits (host and CUDA): > 0, and a
 * normal float32 (1.18e-38 ... 3.4e38), since the kernels compute z·(1/τ) in float32 (1e39 is
 * Infinity there, 1e-45 a denormal whose reciprocal is Infinity).
 */
export function temperatureOption(op: string, x: unknown): number {
  return v.float(op, 'temperature', x, 0, Infinity, 1, { loOpen: true });
}

/**
 * The logits tensor with its `dtype` option checked first (so the message names `dtype`):
 * Float32Array for 'float32' (the default), Uint16Array for 'bfloat16' / 'float16'.
 */
export function logitsTensor(op: string, logits: unknown, dtype: unknown, length: number) {
  if (dtype !== undefined) v.oneOf(op, 'dtype', dtype, v.FLOAT_DTYPES);
  else if (v.typedArrayKind(logits) === 'Uint16Array')
    throw v.typeError(op, 'dtype', "'bfloat16' or 'float16' for Uint16Array logits", dtype);
  return v.floatTensor(op, 'logits', logits, dtype, length);
}

/** The non-tensor options, validated the same way for the host op and its CUDA form. */
export function logprobsConfig(op: string, s: Record<string, unknown>) {
  return {
    temperature: temperatureOption(op, s.temperature),
    wantEntropy: v.boolean(op, 'entropy', s.entropy, true),
  };
}

function prepare(o: LogprobsOptions) {
  const opts = v.snapshot(OP, o, LOGPROBS_HOST_KEYS, { out: LOGPROBS_OUT_KEYS });
  const { V, N } = rowsOf(OP, opts.logits, opts.vocabSize);
  const lt = logitsTensor(OP, opts.logits, opts.dtype, N * V);
  v.int32Array(OP, 'targets', opts.targets, N);
  const { temperature, wantEntropy } = logprobsConfig(OP, opts);
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  const logp = v.outFloat32(OP, 'out.logp', out.logp, N);
  const entropy = wantEntropy ? v.outFloat32(OP, 'out.entropy', out.entropy, N) : null;
  if (opts.out !== undefined) v.noAliases(OP, { 'out.logp': logp, 'out.entropy': entropy }, { logits: lt.data, targets: opts.targets as Int32Array });
  const targets = v.ids(OP, 'targets', opts.targets, N, V);
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
