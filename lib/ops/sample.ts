/**
 * sample — spec §9 (batched sampling). Per row b of logits z [R, V]: u = z/τ_b; keep the top_k
 * largest u (ties at the k-th all kept), then the smallest descending prefix whose renormalised
 * mass reaches top_p (ties with its last entry kept), then drop p_v < min_p·p_max; draw one
 * token from the renormalised kept set by Gumbel-max with counter-based Philox 4x32-10
 * randomness. The draw depends only on (seed, rowId, step, vocab id) and the kept set: never
 * on thread count, how rows are batched, or the backend. The exact algorithm (the contract the
 * CUDA kernel also follows) is written at the top of native/ops/sample.cc.
 *
 * τ_b = 0 is greedy: the first index of the maximum logit, with its log-prob at τ = 1.
 *
 * Non-finite logits never crash or read out of bounds: NaN logits count as −Infinity (never
 * drawn). A row whose maximum is ±Infinity (all −Infinity/NaN, or some +Infinity) returns the
 * first index of that maximum (token 0 for an all −Infinity/NaN row) with logp = truncLogp = NaN.
 */
import { native } from '../native';
import * as v from '../validate';
import { logitsTensor, rowsOf } from './logprobs';

export interface SampleOptions {
  /** Logits [R, V] row-major: Float32Array, or Uint16Array of bfloat16/float16 bits. */
  logits: Float32Array | Uint16Array;
  /** 'float32' (default for Float32Array), 'bfloat16' or 'float16' (required for Uint16Array). */
  dtype?: v.FloatDType;
  /** V, the vocabulary size (row length). R = logits.length / V. */
  vocabSize: number;
  /** τ ≥ 0 per row or for all rows (default 1). 0 = greedy; otherwise a normal float32 (≥ 1.18e-38, ≤ 3.4e38). */
  temperature?: number | Float32Array;
  /** Keep the k largest (0 = off, default; k ≥ V is off too). Integer ≥ 0. */
  topK?: number | Int32Array;
  /** Nucleus mass in (0, 1] (1 = off, default); ≥ 1.18e-38 (0 in float32 below that). */
  topP?: number | Float32Array;
  /** Drop p_v < minP·p_max; in [0, 1] (0 = off, default), 0 or ≥ 1.18e-38. */
  minP?: number | Float32Array;
  /** The Philox key: a non-negative safe integer or a bigint < 2^64. */
  seed: number | bigint;
  /** Decoding step (the Philox counter's third word), uint32; default 0. */
  step?: number;
  /** Per-row ids (uint32) for the Philox counter; default the row index. Give sequence ids so
   * that a batch split across calls samples the same tokens as one call. */
  rowIds?: Uint32Array | number[];
  /** Also return log-probs under the truncated (kept) distribution (default false). */
  truncatedLogprobs?: boolean;
  /** Optional preallocated outputs. */
  out?: { tokens?: Int32Array; logp?: Float32Array; truncLogp?: Float32Array };
}

export interface SampleResult {
  /** The drawn token per row. */
  tokens: Int32Array;
  /** log softmax(z/τ)[token] over the whole vocabulary (ℓ_old for GRPO); τ = 1 when greedy. */
  logp: Float32Array;
  /** log-prob under the renormalised kept distribution (0 when greedy), or null unless
   * `truncatedLogprobs: true`. */
  truncLogp: Float32Array | null;
}

const OP = 'sample';
const MAX_V = 0x7fffffff;

/** Option keys every form of sample takes (the CUDA form: these and no others). */
export const SAMPLE_KEYS = [
  'logits', 'dtype', 'vocabSize', 'temperature', 'topK', 'topP', 'minP', 'seed', 'step', 'rowIds', 'truncatedLogprobs',
] as const;
/** The host form's keys, and its `out` keys. */
export const SAMPLE_HOST_KEYS = [...SAMPLE_KEYS, 'out'] as const;
export const SAMPLE_OUT_KEYS = ['tokens', 'logp', 'truncLogp'] as const;

function perRow<T extends Float32Array | Int32Array>(
  OP: string,
  name: string,
  x: unknown,
  dflt: number,
  R: number,
  Ctor: { new (n: number): T; name: string },
  check: (a: number) => boolean,
  expected: string,
): T {
  if (x === undefined) return new Ctor(R).fill(dflt) as T;
  if (typeof x === 'number') {
    if (!check(x)) throw v.rangeError(OP, name, expected, x);
    return new Ctor(R).fill(x) as T;
  }
  return v.typedArray(OP, name, x, Ctor.name as 'Float32Array' | 'Int32Array', R, `${expected} or a ${Ctor.name} of length ${R}`) as T;
}

/** The content check of a per-row array (run after every caller-code step of prepare). */
function perRowValues(OP: string, name: string, a: Float32Array | Int32Array, check: (a: number) => boolean, expected: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!check(a[i])) throw v.rangeError(OP, name, expected, `${a[i]} at index ${i}`);
  }
}

function splitSeed(OP: string, seed: unknown): { seedLo: number; seedHi: number } {
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed >= 1n << 64n) throw v.rangeError(OP, 'seed', 'a bigint in [0, 2^64)', seed);
    return { seedLo: Number(seed & 0xffffffffn), seedHi: Number(seed >> 32n) };
  }
  if (typeof seed !== 'number') throw v.typeError(OP, 'seed', 'a non-negative safe integer or a bigint', seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw v.rangeError(OP, 'seed', 'a non-negative safe integer or a bigint', seed);
  return { seedLo: seed % 4294967296, seedHi: Math.floor(seed / 4294967296) };
}

// Accepted per-row values. The float ones are also normal float32 magnitudes (or 0): the
// kernels take them as float32, where 1e39 is Infinity (a uniform draw at τ = 1e39) and 1e-46
// is 0 (greedy at τ = 1e-46, an empty nucleus at topP = 1e-46).
const TEMPERATURE_OK = (x: number) => v.floatOk(x, 0, v.FLOAT32_MAX);
const TEMPERATURE_TEXT = 'a number >= 0 (0 = greedy) that float32 represents (0 or 1.18e-38 <= x <= 3.4e38)';
const TOPK_OK = (x: number) => Number.isInteger(x) && x >= 0 && x <= MAX_V;
const TOPK_TEXT = 'an integer >= 0';
const TOPP_OK = (x: number) => v.floatOk(x, 0, 1, true);
const TOPP_TEXT = 'a number in (0, 1] that float32 represents (>= 1.18e-38)';
const MINP_OK = (x: number) => v.floatOk(x, 0, 1);
const MINP_TEXT = 'a number in [0, 1] that float32 represents (0 or >= 1.18e-38)';

/**
 * The per-row sampling parameters (scalars broadcast to R rows), seed, step and row ids,
 * validated; shared by the host op and the CUDA form (lib/device.ts) so both accept the same
 * options with the same messages. `OP` names the calling op in errors. Caller-supplied per-row
 * arrays are used as they are, so their values are checked after every step that can run
 * caller code (the rowIds copy reads a plain array's elements).
 */
export function sampleParams(OP: string, opts: Record<string, unknown>, R: number) {
  const temperature = perRow(OP, 'temperature', opts.temperature, 1, R, Float32Array, TEMPERATURE_OK, TEMPERATURE_TEXT);
  const topK = perRow(OP, 'topK', opts.topK, 0, R, Int32Array, TOPK_OK, TOPK_TEXT);
  const topP = perRow(OP, 'topP', opts.topP, 1, R, Float32Array, TOPP_OK, TOPP_TEXT);
  const minP = perRow(OP, 'minP', opts.minP, 0, R, Float32Array, MINP_OK, MINP_TEXT);
  const { seedLo, seedHi } = splitSeed(OP, opts.seed);
  const step = v.integer(OP, 'step', opts.step, 0, 0xffffffff, 0);
  let rowIds: Uint32Array | undefined;
  if (opts.rowIds !== undefined) {
    const r = opts.rowIds;
    const expected = `a Uint32Array or number[] of length ${R}`;
    if (Array.isArray(r)) {
      v.plainArray(OP, 'rowIds', r, expected, R);
      rowIds = new Uint32Array(R);
      for (let i = 0; i < R; i++) {
        const x = r[i];
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff)
          throw v.rangeError(OP, 'rowIds', 'integers in [0, 2^32)', `${String(x)} at index ${i}`);
        rowIds[i] = x;
      }
    } else {
      rowIds = v.typedArray(OP, 'rowIds', r, 'Uint32Array', R, expected);
    }
  }
  const wantTrunc = v.boolean(OP, 'truncatedLogprobs', opts.truncatedLogprobs, false);
  perRowValues(OP, 'temperature', temperature, TEMPERATURE_OK, TEMPERATURE_TEXT);
  perRowValues(OP, 'topK', topK, TOPK_OK, TOPK_TEXT);
  perRowValues(OP, 'topP', topP, TOPP_OK, TOPP_TEXT);
  perRowValues(OP, 'minP', minP, MINP_OK, MINP_TEXT);
  return { temperature, topK, topP, minP, seedLo, seedHi, step, rowIds, wantTrunc };
}

function prepare(o: SampleOptions) {
  const opts = v.snapshot(OP, o, SAMPLE_HOST_KEYS, { out: SAMPLE_OUT_KEYS });
  // the same row logic (and messages) as logprobs and the CUDA form
  const { V, N: R } = rowsOf(OP, opts.logits, opts.vocabSize);
  const { data: logits, dtype } = logitsTensor(OP, opts.logits, opts.dtype, R * V);
  const { temperature, topK, topP, minP, seedLo, seedHi, step, rowIds, wantTrunc } = sampleParams(OP, opts, R);
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  const tokens = out.tokens === undefined ? new Int32Array(R) : v.int32Array(OP, 'out.tokens', out.tokens, R);
  const logp = v.outFloat32(OP, 'out.logp', out.logp, R);
  const truncLogp = wantTrunc ? v.outFloat32(OP, 'out.truncLogp', out.truncLogp, R) : null;
  if (opts.out !== undefined) v.noAliases(OP, { 'out.tokens': tokens, 'out.logp': logp, 'out.truncLogp': truncLogp }, { logits, temperature, topK, topP, minP, rowIds });
  const args = {
    R, V, logits, logitsDtype: dtype, temperature, topK, topP, minP,
    seedLo, seedHi, step, rowIds, tokens, logp, truncLogp,
  };
  return { args, result: (): SampleResult => ({ tokens, logp, truncLogp }) };
}

/** Draw one token per row (async: runs on the native thread pool). */
export async function sample(o: SampleOptions): Promise<SampleResult> {
  const p = prepare(o);
  await native().sample(p.args, true);
  return p.result();
}

/** Synchronous twin of {@link sample}. */
export function sampleSync(o: SampleOptions): SampleResult {
  const p = prepare(o);
  native().sample(p.args, false);
  return p.result();
}
