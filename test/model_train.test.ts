// Training with the built-in transformer: AdamW against a float64 AdamW, global-norm clipping,
// a small supervised run that learns a pattern bit-reproducibly, clone and exact resume.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { createTransformer, readSafetensors, Transformer, writeSafetensors } from '../lib';
import { closeScalar, rng, randn } from './helpers';
import { bitsEqual, crossEntropy, randomModel, randomTokens, TINY } from './model_helpers';

const B = 2, L = 5, V = TINY.vocabSize;

function withGrads(m: Transformer, seed: number) {
  const r = rng(seed);
  m.zeroGrad();
  m.forwardSync(randomTokens(r, B * L, V), B, L, { train: true });
  m.backwardSync(randn(r, B * L * V));
}

/** PyTorch's AdamW in float64 on flat arrays (one step), with a clip factor on g. */
function refAdamW(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, t: number, o: { lr: number; b1: number; b2: number; eps: number; wd: number; decay: boolean[] }, clip = 1) {
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * clip;
    m[i] = o.b1 * m[i] + (1 - o.b1) * gi;
    v[i] = o.b2 * v[i] + (1 - o.b2) * gi * gi;
    if (o.decay[i]) p[i] *= 1 - o.lr * o.wd;
    p[i] -= (o.lr / (1 - o.b1 ** t)) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - o.b2 ** t) + o.eps));
  }
}

function flat(m: Transformer, map: Map<string, { data: Float32Array }>): Float64Array {
  const out = new Float64Array(m.numParameters);
  for (const p of m.parameters) out.set(map.get(p.name)!.data, p.offset);
  return out;
}

test('AdamW steps match a float64 AdamW (bias correction, decoupled weight decay on matrices only)', () => {
  const m = randomModel();
  const o = { lr: 3e-2, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.1, decay: [] as boolean[] };
  for (const p of m.parameters) for (let i = 0; i < p.size; i++) o.decay.push(p.decay);
  const p = flat(m, m.stateDict());
  const mm = new Float64Array(p.length), vv = new Float64Array(p.length);
  for (let t = 1; t <= 3; t++) {
    withGrads(m, 100 + t);
    const g = flat(m, m.gradients());
    const norm = m.step({ lr: o.lr, beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd });
    closeScalar(norm, Math.sqrt(g.reduce((a, x) => a + x * x, 0)), 1e-9, 0, 'norm');
    refAdamW(p, g, mm, vv, t, o);
    const got = flat(m, m.stateDict());
    for (let i = 0; i < p.length; i++)
      if (!(Math.abs(got[i] - p[i]) <= 1e-5 * Math.abs(p[i]) + 1e-6)) assert.unreachable(`step ${t} param ${i}: ${got[i]} vs ${p[i]}`);
    const st = m.optimizerState();
    assert.is(st.step, t);
    const gm = flat(m, new Map([...st].filter(([k]) => k.startsWith('m.')).map(([k, x]) => [k.slice(2), x])));
    for (let i = 0; i < p.length; i += 97) closeScalar(gm[i], mm[i], 1e-5, 1e-9, `m[${i}]`);
  }
  // weight decay did not touch norms and biases: they moved only by the Adam update
  assert.ok(m.parameters.some((q) => !q.decay && q.name.endsWith('bias')));
  m.dispose();
});

test('global-norm clipping scales the gradient to maxGradNorm and returns the norm before it', () => {
  const m = randomModel();
  withGrads(m, 7);
  const g = flat(m, m.gradients());
  const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
  const p = flat(m, m.stateDict());
  // eps = 1 makes the first Adam update depend on the gradient's scale, so clipping shows
  const o = { lr: 1e-2, b1: 0.9, b2: 0.999, eps: 1, wd: 0, decay: [] as boolean[] };
  const max = norm / 4;
  const got = m.step({ lr: o.lr, eps: 1, maxGradNorm: max });
  closeScalar(got, norm, 1e-9, 0, 'returned norm');
  refAdamW(p, g, new Float64Array(p.length), new Float64Array(p.length), 1, o, max / (norm + 1e-6));
  const after = flat(m, m.stateDict());
  for (let i = 0; i < p.length; i++) if (!(Math.abs(after[i] - p[i]) <= 1e-5 * Math.abs(p[i]) + 1e-7)) assert.unreachable(`param ${i}`);
  // a threshold above the norm changes nothing
  const m2 = randomModel();
  withGrads(m2, 7);
  const m3 = m2.clone();
  withGrads(m3, 7);
  m2.step({ lr: o.lr, eps: 1, maxGradNorm: norm * 2 });
  m3.step({ lr: o.lr, eps: 1 });
  for (const [k, t] of m2.stateDict()) assert.ok(bitsEqual(t.data, m3.stateDict().get(k)!.data), k);
  m.dispose();
  m2.dispose();
  m3.dispose();
});

// Supervised next-token training on a repeating pattern.
async function train(steps: number, model?: Transformer, from = 0) {
  const cfg = { vocabSize: 12, dModel: 32, nLayers: 2, nHeads: 2, dFF: 64, maxSeqLen: 16, seed: 5 };
  const m = model ?? createTransformer(cfg);
  const Bt = 8, Lt = 16;
  const losses: number[] = [];
  for (let s = from; s < from + steps; s++) {
    // sequences "a b c d e f a b c ..." from a random phase (ids 1..6); target = next token
    const r = rng(1000 + s);
    const seq = new Int32Array(Bt * (Lt + 1));
    for (let b = 0; b < Bt; b++) {
      const ph = Math.floor(r() * 6);
      for (let i = 0; i <= Lt; i++) seq[b * (Lt + 1) + i] = 1 + ((ph + i) % 6);
    }
    const inp = new Int32Array(Bt * Lt), tgt = new Int32Array(Bt * Lt);
    for (let b = 0; b < Bt; b++)
      for (let i = 0; i < Lt; i++) {
        inp[b * Lt + i] = seq[b * (Lt + 1) + i];
        tgt[b * Lt + i] = seq[b * (Lt + 1) + i + 1];
      }
    m.zeroGrad();
    const logits = await m.forward(inp, Bt, Lt, { train: true });
    const { loss, grad } = crossEntropy(logits, tgt, cfg.vocabSize);
    losses.push(loss);
    await m.backward(grad);
    m.step({ lr: 1e-2, maxGradNorm: 1, weightDecay: 0.01 });
  }
  return { m, losses };
}

test('a few hundred supervised steps learn a pattern, bit-reproducibly', async () => {
  const a = await train(150);
  const b = await train(150);
  const first = a.losses[0], last = a.losses[a.losses.length - 1];
  assert.ok(first > 2, `initial loss ${first}`);
  assert.ok(last < 0.05 * first, `loss ${first} -> ${last}`);
  for (const [k, t] of a.m.stateDict()) assert.ok(bitsEqual(t.data, b.m.stateDict().get(k)!.data), k);
  assert.equal(a.losses, b.losses);
  a.m.dispose();
  b.m.dispose();
});

test('4 steps straight == 2 steps, save to safetensors, load into a fresh model, 2 steps', async () => {
  const straight = await train(4);
  const half = await train(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-model-'));
  const wfile = path.join(dir, 'model.safetensors'), ofile = path.join(dir, 'optim.safetensors');
  writeSafetensors(wfile, half.m.stateDict(), { config: JSON.stringify(half.m.config) });
  const os_ = half.m.optimizerState();
  writeSafetensors(ofile, os_, { step: String(os_.step) });
  half.m.dispose();
  const w = readSafetensors(wfile), o = readSafetensors(ofile);
  const fresh = createTransformer(JSON.parse(w.metadata.config));
  fresh.loadStateDict(w.tensors);
  fresh.loadOptimizerState(o.tensors, Number(o.metadata.step));
  const resumed = await train(2, fresh, 2);
  for (const [k, t] of straight.m.stateDict()) assert.ok(bitsEqual(t.data, resumed.m.stateDict().get(k)!.data), k);
  assert.equal(resumed.losses, straight.losses.slice(2));
  fs.rmSync(dir, { recursive: true, force: true });
  straight.m.dispose();
  fresh.dispose();
});

test('clone is a deep copy: stepping the original leaves the clone unchanged', async () => {
  const m = randomModel();
  withGrads(m, 3);
  m.step({ lr: 1e-2 });
  const c = m.clone();
  assert.is(c.optimizerState().step, 1);
  const before = c.stateDict();
  for (const [k, t] of m.stateDict()) assert.ok(bitsEqual(t.data, before.get(k)!.data), k);
  withGrads(m, 4);
  m.step({ lr: 1e-2 });
  for (const [k, t] of c.stateDict()) assert.ok(bitsEqual(t.data, before.get(k)!.data), k);
  assert.ok(!bitsEqual(m.stateDict().get('head.weight')!.data, before.get('head.weight')!.data));
  // same seed, same initial weights; another seed, others
  const x = createTransformer(TINY), y = createTransformer(TINY), z = createTransformer({ ...TINY, seed: 4 });
  assert.ok(bitsEqual(x.stateDict().get('wte')!.data, y.stateDict().get('wte')!.data));
  assert.ok(!bitsEqual(x.stateDict().get('wte')!.data, z.stateDict().get('wte')!.data));
  for (const q of [m, c, x, y, z]) q.dispose();
});

test.run();
