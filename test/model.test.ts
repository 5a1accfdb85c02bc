// The built-in transformer: forward against the float64 reference, every parameter group's
// gradient against central differences of the reference, determinism, and bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';

import { backend, setNumThreads, numThreads } from '../lib';
import { close, rng, randn } from './helpers';
import { bitsEqual, randomModel, randomTokens, TINY } from './model_helpers';
import { refForward, toRefParams } from './reference/transformer';

const B = 2, L = 5, V = TINY.vocabSize;

test('forward logits match the float64 reference', async () => {
  const m = randomModel();
  const r = rng(11);
  const tokens = randomTokens(r, B * L, V);
  const got = await m.forward(tokens, B, L);
  const want = refForward(TINY, toRefParams(m.stateDict()), tokens, B, L);
  let scale = 0;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  close(got, want, 1e-5, 1e-5 * scale, 'logits');
  // a full-length batch and a batch of one
  const t2 = randomTokens(r, 3 * TINY.maxSeqLen, V);
  close(m.forwardSync(t2, 3, TINY.maxSeqLen), refForward(TINY, toRefParams(m.stateDict()), t2, 3, TINY.maxSeqLen), 1e-5, 1e-5 * scale, 'logits T');
  m.dispose();
});

test('gradients of every parameter tensor match central differences of the float64 reference', () => {
  const m = randomModel();
  const r = rng(12);
  const tokens = randomTokens(r, B * L, V);
  // L = sum w * logits for a random w
  const w = randn(r, B * L * V);
  m.zeroGrad();
  m.forwardSync(tokens, B, L, { train: true });
  m.backwardSync(w);
  const grads = m.gradients();
  const params = toRefParams(m.stateDict());
  const loss = () => {
    const lg = refForward(TINY, params, tokens, B, L);
    let s = 0;
    for (let i = 0; i < lg.length; i++) s += w[i] * lg[i];
    return s;
  };
  const h = 1e-5;
  const groups = new Set<string>();
  for (const [name, g] of grads) {
    const p = params.get(name)!;
    let gmax = 0;
    for (const x of g.data) gmax = Math.max(gmax, Math.abs(x));
    const idx = new Set<number>();
    // the embedding rows/positions that were used, plus random coordinates
    while (idx.size < Math.min(20, p.length)) idx.add(Math.floor(r() * p.length));
    if (name === 'wte') for (let j = 0; j < 5; j++) idx.add(tokens[j] * TINY.dModel + j);
    for (const j of idx) {
      const orig = p[j];
      p[j] = orig + h;
      const lp = loss();
      p[j] = orig - h;
      const lm = loss();
      p[j] = orig;
      const fd = (lp - lm) / (2 * h);
      const got = g.data[j];
      const tol = 2e-3 * Math.abs(fd) + 1e-4 * gmax + 1e-6;
      if (!(Math.abs(got - fd) <= tol)) assert.unreachable(`${name}[${j}]: native ${got}, finite difference ${fd} (tol ${tol})`);
    }
    groups.add(name.replace(/^blocks\.\d+\./, '').replace(/\.(weight|bias)$/, ''));
  }
  for (const gname of ['wte', 'wpe', 'ln1', 'ln2', 'attn.q', 'attn.k', 'attn.v', 'attn.o', 'mlp.fc', 'mlp.proj', 'ln_f', 'head'])
    assert.ok(groups.has(gname), gname);
  m.dispose();
});

test('a wide MLP (dFF 300 > the 256-input matmul block, ragged tiles) matches the reference, gradients too', () => {
  const cfg = { vocabSize: 19, dModel: 24, nLayers: 1, nHeads: 3, dFF: 300, maxSeqLen: 7, seed: 8 };
  const m = randomModel(cfg, 3);
  const r = rng(17);
  const Bw = 2, Lw = 7, Vw = cfg.vocabSize;
  const tokens = randomTokens(r, Bw * Lw, Vw);
  const w = randn(r, Bw * Lw * Vw);
  m.zeroGrad();
  const got = m.forwardSync(tokens, Bw, Lw, { train: true });
  m.backwardSync(w);
  const params = toRefParams(m.stateDict());
  const want = refForward(cfg, params, tokens, Bw, Lw);
  const scale = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  close(got, want, 1e-5, 1e-5 * scale, 'logits');
  const grads = m.gradients();
  const h = 1e-5;
  for (const name of ['blocks.0.mlp.fc.weight', 'blocks.0.mlp.proj.weight', 'blocks.0.mlp.fc.bias', 'blocks.0.ln2.weight', 'wte']) {
    const p = params.get(name)!, g = grads.get(name)!.data;
    const gmax = g.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    for (let k = 0; k < 8; k++) {
      const j = Math.floor(r() * p.length);
      const orig = p[j];
      const loss = () => refForward(cfg, params, tokens, Bw, Lw).reduce((a, x, i) => a + w[i] * x, 0);
      p[j] = orig + h;
      const lp = loss();
      p[j] = orig - h;
      const lm = loss();
      p[j] = orig;
      const fd = (lp - lm) / (2 * h);
      const tol = 2e-3 * Math.abs(fd) + 1e-4 * gmax + 1e-6;
      if (!(Math.abs(g[j] - fd) <= tol)) assert.unreachable(`${name}[${j}]: native ${g[j]}, finite difference ${fd}`);
    }
  }
  m.dispose();
});

test('gradients accumulate across backward calls until zeroGrad', () => {
  const m = randomModel();
  const r = rng(13);
  const tokens = randomTokens(r, B * L, V);
  const w = randn(r, B * L * V);
  m.zeroGrad();
  m.forwardSync(tokens, B, L, { train: true });
  m.backwardSync(w);
  const g1 = m.gradients().get('blocks.0.attn.q.weight')!.data.slice();
  m.backwardSync(w);
  const g2 = m.gradients().get('blocks.0.attn.q.weight')!.data;
  const gmax = g1.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  close(g2, g1.map((x) => 2 * x), 1e-5, 1e-6 * gmax, 'twice');
  m.zeroGrad();
  assert.ok(m.gradients().get('wte')!.data.every((x) => x === 0));
  m.dispose();
});

test('an eval forward between train forward and backward leaves the saved activations alone', () => {
  const m = randomModel();
  const r = rng(14);
  const tokens = randomTokens(r, B * L, V);
  const w = randn(r, B * L * V);
  m.forwardSync(tokens, B, L, { train: true });
  m.backwardSync(w);
  const want = m.gradients().get('head.weight')!.data.slice();
  m.zeroGrad();
  m.forwardSync(tokens, B, L, { train: true });
  m.forwardSync(randomTokens(r, 3 * 4, V), 3, 4);
  m.backwardSync(w);
  assert.ok(bitsEqual(m.gradients().get('head.weight')!.data, want));
  m.dispose();
});

test('forward and backward are bit-identical across calls and thread counts', async () => {
  const before = numThreads();
  const cfg = { vocabSize: 37, dModel: 32, nLayers: 2, nHeads: 4, dFF: 300, maxSeqLen: 24, seed: 9 };
  const run = async (threads: number) => {
    setNumThreads(threads);
    const m = randomModel(cfg, 2);
    const r = rng(15);
    const tokens = randomTokens(r, 6 * 24, 37);
    const logits = await m.forward(tokens, 6, 24, { train: true });
    await m.backward(randn(r, logits.length));
    const grads = m.gradients();
    m.dispose();
    return { logits, grads };
  };
  const a = await run(1), b = await run(2), c = await run(2), d = await run(3);
  for (const o of [b, c, d]) {
    assert.ok(bitsEqual(a.logits, o.logits), 'logits');
    for (const [k, t] of a.grads) assert.ok(bitsEqual(t.data, o.grads.get(k)!.data), k);
  }
  setNumThreads(before);
});

test('async and sync forms agree', async () => {
  const m = randomModel();
  const tokens = randomTokens(rng(16), B * L, V);
  assert.ok(bitsEqual(await m.forward(tokens, B, L), m.forwardSync(tokens, B, L)));
  m.dispose();
});

test('bad input throws errors naming the argument', async () => {
  const m = randomModel();
  const ok = new Int32Array(B * L);
  assert.throws(() => m.forwardSync(Int32Array.from([0, 1, 11, 2, 3, 0, 0, 0, 0, 0]), B, L), /\[0, 11\) for tokens/);
  assert.throws(() => m.forwardSync(Int32Array.from([0, 1, -1, 2, 3, 0, 0, 0, 0, 0]), B, L), /tokens/);
  assert.throws(() => m.forwardSync(new Int32Array(2 * 9), 2, 9), /length/);
  assert.throws(() => m.forwardSync(new Int32Array(7), B, L), /tokens/);
  assert.throws(() => m.forwardSync(new Float32Array(B * L) as unknown as Int32Array, B, L), /tokens/);
  assert.throws(() => m.forwardSync(ok, 0, L), /batch/);
  assert.throws(() => m.forwardSync(ok, B, L, { out: new Float32Array(3) }), /opts\.out/);
  await assert.throws(() => m.backwardSync(new Float32Array(B * L * V)), /train: true/);
  m.forwardSync(ok, B, L, { train: true });
  assert.throws(() => m.backwardSync(new Float32Array(B * L * V - 1)), /gradLogits/);
  assert.throws(() => m.step({ lr: -1 }), /lr/);
  assert.throws(() => m.step({ lr: 1e-3, maxGradNorm: 0 }), /maxGradNorm/);
  assert.throws(() => m.step({ lr: 1e-3, beta1: 1 }), /beta1/);
  const sd = m.stateDict();
  sd.set('wpe', { shape: [7, 16], data: new Float32Array(7 * 16) });
  assert.throws(() => m.loadStateDict(sd), /wpe.*shape/);
  const sd2 = m.stateDict();
  sd2.delete('head.weight');
  assert.throws(() => m.loadStateDict(sd2), /head\.weight/);
  const sd3 = m.stateDict();
  sd3.set('extra', { shape: [1], data: new Float32Array(1) });
  assert.throws(() => m.loadStateDict(sd3), /extra/);
  assert.throws(() => randomModel({ ...TINY, nHeads: 3 }), /nHeads/);
  assert.throws(() => randomModel({ ...TINY, dModel: 0 }), /dModel/);
  // the binding's own checks, behind the TS validation, refuse what would read out of bounds
  const h = (m as unknown as { h: Record<string, (a: object, async: boolean) => unknown> }).h;
  const bad = Int32Array.from([0, 1, 99, 2, 3, 0, 0, 0, 0, 0]);
  assert.throws(() => h.forward({ tokens: bad, B, L, logits: new Float32Array(B * L * V) }, false), /argument tokens/);
  assert.throws(() => h.forward({ tokens: ok, B, L: 9, logits: new Float32Array(B * 9 * V) }, false), /argument L/);
  assert.throws(() => h.forward({ tokens: ok, B, L, logits: new Float32Array(3) }, false), /argument logits/);
  const dec = { cache: new Float32Array(2 * 2 * 1 * 8 * 16), slots: 1, ctx: 8, R: 1, slot: Int32Array.of(0), count: Int32Array.of(1), logits: new Float32Array(V) };
  assert.throws(() => h.decode({ ...dec, start: Int32Array.of(8), tokens: Int32Array.of(1) }, false), /argument count/);
  assert.throws(() => h.decode({ ...dec, start: Int32Array.of(0), slot: Int32Array.of(1), tokens: Int32Array.of(1) }, false), /argument slot/);
  assert.throws(() => h.decode({ ...dec, start: Int32Array.of(0), tokens: Int32Array.of(11) }, false), /argument tokens/);
  assert.throws(() => h.decode({ ...dec, ctx: 9, start: Int32Array.of(0), tokens: Int32Array.of(1) }, false), /argument ctx/);
  // an async call in flight locks the weights against synchronous changes
  const p = m.forward(ok, B, L);
  assert.throws(() => m.zeroGrad(), /in flight/);
  await p;
  m.zeroGrad();
  m.dispose();
  m.dispose();
  assert.throws(() => m.forwardSync(ok, B, L), /disposed/);
});

test('the baseline-ISA kernels pass this whole file too (child process, GRPO_CPU_ISA=generic)', () => {
  if (process.env.MODEL_TEST_CHILD) {
    assert.is(backend().cpuIsa, 'generic');
    return;
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename], {
    env: { ...process.env, GRPO_CPU_ISA: 'generic', MODEL_TEST_CHILD: '1', FORCE_COLOR: '0' },
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Passed:\s+9/);
});

test.run();
