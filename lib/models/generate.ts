/**
 * KV-cache generation shared by the models with a native decode (the built-in transformer, the
 * HF models): one validation of the options, prefill of every prompt in its own cache slot, then
 * one token per step through the package's sample op.
 */
import { sampleSync } from '../ops/sample';
import * as v from '../validate';
import type { GenerateOptions, Generation } from './policy';

/** What a model provides to {@link generateWithCache}. */
export interface CacheDecoder {
  vocabSize: number;
  maxSeqLen: number;
  /** Floats of a cache with `slots` slots of `ctx` positions. */
  cacheFloats(slots: number, ctx: number): number;
  /** The model's native decode (cache, slots, ctx, R rows, logits, tokens, slot/start/count). */
  decode(args: Record<string, unknown>, async: true): Promise<void> | void;
  /** Extra arguments of the prefill call only (a multimodal model's encoder inputs). */
  prefillArgs?: Record<string, unknown>;
}

/**
 * Batched sampling with a KV cache. Each prompt keeps its own positions (no padding): its
 * prompt is encoded once, then one token per step, logits of the last position only. Tokens
 * are drawn through the package's sample op with step = index of the token in the completion
 * and the row's rowId, so a prompt's completion does not depend on what else is in the batch.
 */
export async function generateWithCache(op: string, m: CacheDecoder, prompts: number[][], opts: GenerateOptions): Promise<Generation> {
  if (!Array.isArray(prompts)) throw v.typeError(op, 'prompts', 'an array of token-id arrays', prompts);
  const o = v.options(op, opts);
  const B = prompts.length;
  const maxNew = v.integer(op, 'maxNewTokens', o.maxNewTokens, 0, m.maxSeqLen);
  const temperature = v.numberIn(op, 'temperature', o.temperature, 0, Infinity, 1);
  const topK = v.integer(op, 'topK', o.topK, 0, 2 ** 31 - 1, 0);
  const topP = v.numberIn(op, 'topP', o.topP, 0, 1, 1, { loOpen: true });
  const minP = v.numberIn(op, 'minP', o.minP, 0, 1, 0);
  const seed = o.seed as number | bigint;
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed >= 2n ** 64n) throw v.rangeError(op, 'seed', 'a bigint in [0, 2^64)', seed);
  } else {
    v.integer(op, 'seed', seed, 0, Number.MAX_SAFE_INTEGER);
  }
  const rowIds = new Uint32Array(B);
  if (o.rowIds === undefined) {
    for (let b = 0; b < B; b++) rowIds[b] = b;
  } else {
    if (!Array.isArray(o.rowIds) || o.rowIds.length !== B) throw v.typeError(op, 'rowIds', `an array of ${B} uint32 ids`, o.rowIds);
    o.rowIds.forEach((id, b) => (rowIds[b] = v.integer(op, `rowIds[${b}]`, id, 0, 2 ** 32 - 1)));
  }
  const stop = new Set<number>();
  if (o.stopTokenIds !== undefined) {
    if (!Array.isArray(o.stopTokenIds)) throw v.typeError(op, 'stopTokenIds', 'an array of token ids', o.stopTokenIds);
    o.stopTokenIds.forEach((id, i) => stop.add(v.integer(op, `stopTokenIds[${i}]`, id, 0, m.vocabSize - 1)));
  }
  const V = m.vocabSize;
  const T = m.maxSeqLen;
  const lens = prompts.map((p, b) => {
    if (!Array.isArray(p) || p.length === 0) throw v.typeError(op, `prompts[${b}]`, 'a non-empty array of token ids', p);
    for (let i = 0; i < p.length; i++) {
      const x = p[i];
      if (!Number.isInteger(x) || x < 0 || x >= V) throw v.rangeError(op, `prompts[${b}]`, `ids in [0, ${V})`, `${x} at index ${i}`);
    }
    if (p.length + maxNew > T)
      throw v.rangeError(op, `prompts[${b}]`, `prompt length + maxNewTokens (${maxNew}) <= maxSeqLen (${T})`, `a prompt of length ${p.length}`);
    return p.length;
  });
  const out: number[][] = prompts.map(() => []);
  const lps: number[][] = prompts.map(() => []);
  const truncated: boolean[] = prompts.map(() => maxNew === 0);
  const result = (): Generation => ({
    tokens: out.map((t) => Int32Array.from(t)),
    logprobs: lps.map((l) => Float32Array.from(l)),
    truncated,
  });
  if (B === 0 || maxNew === 0) return result();

  // Each slot holds the positions its row can reach (the longest prompt + maxNewTokens).
  const ctx = Math.max(...lens) + maxNew;
  const cache = new Float32Array(m.cacheFloats(B, ctx));
  const logits = new Float32Array(B * V);
  // Prefill: every prompt at positions 0 .. len-1 of its own cache slot.
  let active = Array.from({ length: B }, (_, b) => b);
  await m.decode(
    {
      cache, slots: B, ctx, R: B, logits,
      tokens: Int32Array.from(prompts.flat()),
      slot: Int32Array.from(active),
      start: new Int32Array(B),
      count: Int32Array.from(lens),
      ...m.prefillArgs,
    },
    true,
  );
  for (let k = 0; k < maxNew; k++) {
    const R = active.length;
    const s = sampleSync({
      logits: logits.subarray(0, R * V), vocabSize: V, temperature, topK, topP, minP, seed, step: k,
      rowIds: Uint32Array.from(active, (b) => rowIds[b]),
    });
    const next: number[] = [];
    const nextTok: number[] = [];
    for (let i = 0; i < R; i++) {
      const b = active[i];
      const tok = s.tokens[i];
      out[b].push(tok);
      lps[b].push(s.logp[i]);
      if (stop.has(tok)) continue;
      if (k + 1 === maxNew) truncated[b] = true;
      else {
        next.push(b);
        nextTok.push(tok);
      }
    }
    if (next.length === 0) break;
    active = next;
    await m.decode(
      {
        cache, slots: B, ctx, R: next.length, logits: logits.subarray(0, next.length * V),
        tokens: Int32Array.from(nextTok),
        slot: Int32Array.from(next),
        start: Int32Array.from(next, (b) => lens[b] + k),
        count: new Int32Array(next.length).fill(1),
      },
      true,
    );
  }
  return result();
}
