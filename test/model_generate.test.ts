// KV-cache generation of the built-in transformer: the cache path equals a full recompute,
// batching (with prompts of different lengths) does not change any row, thread counts neither.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { numThreads, setNumThreads } from '../lib';
import { close, rng } from './helpers';
import { argmax, bitsEqual, randomModel, TINY } from './model_helpers';

const CFG = { ...TINY, maxSeqLen: 16 };
const V = CFG.vocabSize;

function logSoftmaxAt(logits: Float32Array, off: number, tok: number): number {
  let mx = -Infinity;
  for (let v = 0; v < V; v++) mx = Math.max(mx, logits[off + v]);
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(logits[off + v] - mx);
  return logits[off + tok] - mx - Math.log(z);
}

test('decode-step logits are bit-identical to the full forward of the same prefix', async () => {
  const m = randomModel(CFG, 4);
  const r = rng(21);
  const seq = Int32Array.from({ length: 12 }, () => Math.floor(r() * V));
  const full = await m.forward(seq, 1, 12);
  const d = CFG.dModel, T = CFG.maxSeqLen;
  const cache = new Float32Array(2 * CFG.nLayers * 1 * T * d);
  // prefill 5 tokens, then one at a time
  let lg = await m.decodeStep({ cache, slots: 1, tokens: seq.subarray(0, 5), slot: Int32Array.of(0), start: Int32Array.of(0), count: Int32Array.of(5) });
  assert.ok(bitsEqual(lg, full.subarray(4 * V, 5 * V)), 'prefill');
  for (let p = 5; p < 12; p++) {
    lg = await m.decodeStep({ cache, slots: 1, tokens: seq.subarray(p, p + 1), slot: Int32Array.of(0), start: Int32Array.of(p), count: Int32Array.of(1) });
    assert.ok(bitsEqual(lg, full.subarray(p * V, (p + 1) * V)), `position ${p}`);
  }
  m.dispose();
});

test('greedy generation equals argmax of a full recompute, with its log-probs', async () => {
  const m = randomModel(CFG, 5);
  const prompts = [[1, 4, 5], [1, 7], [1, 2, 3, 9, 10, 4]];
  const g = await m.generate(prompts, { maxNewTokens: 8, temperature: 0, seed: 1 });
  for (let b = 0; b < prompts.length; b++) {
    const seq = [...prompts[b], ...g.tokens[b]];
    assert.is(g.tokens[b].length, 8);
    assert.is(g.truncated[b], true);
    const L = seq.length - 1;  // the last token is never fed back
    const logits = await m.forward(Int32Array.from(seq.slice(0, L)), 1, L);
    const want: number[] = [], wantLp: number[] = [];
    for (let i = 0; i < 8; i++) {
      const off = (prompts[b].length - 1 + i) * V;
      const tok = argmax(logits, off, V);
      want.push(tok);
      wantLp.push(logSoftmaxAt(logits, off, tok));
    }
    assert.equal(Array.from(g.tokens[b]), want, `row ${b}`);
    close(g.logprobs[b], wantLp, 1e-5, 1e-6, `logprobs row ${b}`);
  }
  m.dispose();
});

test('sampled log-probs are log softmax(z/τ) of the drawn token over the whole vocab', async () => {
  const m = randomModel(CFG, 6);
  const prompt = [1, 5, 6];
  const tau = 0.7;
  const g = await m.generate([prompt], { maxNewTokens: 6, temperature: tau, topK: 4, seed: 3 });
  const seq = [...prompt, ...g.tokens[0]];
  const logits = await m.forward(Int32Array.from(seq.slice(0, seq.length - 1)), 1, seq.length - 1);
  const scaled = logits.map((x) => x / tau);
  for (let i = 0; i < 6; i++) {
    const off = (prompt.length - 1 + i) * V;
    assert.ok(Math.abs(g.logprobs[0][i] - logSoftmaxAt(scaled, off, g.tokens[0][i])) < 1e-4, `token ${i}`);
  }
  m.dispose();
});

test('batched generation of prompts of different lengths equals one at a time', async () => {
  const m = randomModel(CFG, 7);
  const prompts = [[1, 3], [1, 4, 4, 8, 2, 6], [1], [1, 9, 9, 9]];
  const ids = [10, 11, 12, 13];
  const opts = { maxNewTokens: 9, temperature: 1.0, topP: 0.95, seed: 42n, stopTokenIds: [2] };
  const all = await m.generate(prompts, { ...opts, rowIds: ids });
  for (let b = 0; b < prompts.length; b++) {
    const one = await m.generate([prompts[b]], { ...opts, rowIds: [ids[b]] });
    assert.equal(Array.from(one.tokens[0]), Array.from(all.tokens[b]), `row ${b} tokens`);
    assert.ok(bitsEqual(one.logprobs[0], all.logprobs[b]), `row ${b} logprobs`);
    assert.is(one.truncated[0], all.truncated[b]);
    const stopped = all.tokens[b].length > 0 && all.tokens[b][all.tokens[b].length - 1] === 2;
    assert.is(all.truncated[b], !stopped, `row ${b} truncated flag`);
    assert.ok(all.tokens[b].length <= 9);
  }
  // reordering the batch (same row ids) changes nothing
  const rev = await m.generate([...prompts].reverse(), { ...opts, rowIds: [...ids].reverse() });
  for (let b = 0; b < prompts.length; b++) assert.equal(Array.from(rev.tokens[prompts.length - 1 - b]), Array.from(all.tokens[b]));
  m.dispose();
});

test('stop tokens end a row (included) and the others go on', async () => {
  const m = randomModel(CFG, 8);
  // every token is a stop token: each row emits exactly one
  const g = await m.generate([[1, 2], [3]], { maxNewTokens: 5, seed: 1, stopTokenIds: Array.from({ length: V }, (_, i) => i) });
  assert.equal(g.tokens.map((t) => t.length), [1, 1]);
  assert.equal(g.truncated, [false, false]);
  const none = await m.generate([[1, 2]], { maxNewTokens: 0, seed: 1 });
  assert.is(none.tokens[0].length, 0);
  m.dispose();
});

test('same seed gives the same tokens at 1 and 2 threads; another seed differs', async () => {
  const before = numThreads();
  const prompts = Array.from({ length: 6 }, (_, b) => Array.from({ length: 1 + b }, (_, i) => (i * 3 + b) % V));
  const run = async (threads: number, seed: number) => {
    setNumThreads(threads);
    const m = randomModel(CFG, 9);
    const g = await m.generate(prompts, { maxNewTokens: 10, seed });
    m.dispose();
    return g;
  };
  const a = await run(1, 5), b = await run(2, 5), c = await run(2, 6);
  for (let i = 0; i < prompts.length; i++) {
    assert.equal(Array.from(a.tokens[i]), Array.from(b.tokens[i]));
    assert.ok(bitsEqual(a.logprobs[i], b.logprobs[i]));
  }
  assert.ok(a.tokens.some((t, i) => t.join() !== c.tokens[i].join()), 'a different seed draws differently');
  setNumThreads(before);
});

test('generate rejects bad input naming the argument', async () => {
  const m = randomModel(CFG, 10);
  await m.generate([[1, 2]], { maxNewTokens: 15, seed: 1 }).then(
    () => assert.unreachable('too long'),
    (e) => assert.match(String(e), /maxSeqLen.*prompts\[0\]/),
  );
  for (const [prompts, opts, re] of [
    [[[1, 11]], { maxNewTokens: 2, seed: 1 }, /prompts\[0\]/],
    [[[]], { maxNewTokens: 2, seed: 1 }, /prompts\[0\]/],
    [[[1]], { maxNewTokens: -1, seed: 1 }, /maxNewTokens/],
    [[[1]], { maxNewTokens: 2, seed: -1 }, /seed/],
    [[[1]], { maxNewTokens: 2, seed: 1, temperature: -1 }, /temperature/],
    [[[1]], { maxNewTokens: 2, seed: 1, rowIds: [1, 2] }, /rowIds/],
    [[[1]], { maxNewTokens: 2, seed: 1, stopTokenIds: [99] }, /stopTokenIds/],
  ] as const) {
    await m.generate(prompts as unknown as number[][], opts as never).then(
      () => assert.unreachable(String(re)),
      (e) => assert.match(String(e), re),
    );
  }
  m.dispose();
});

test.run();
