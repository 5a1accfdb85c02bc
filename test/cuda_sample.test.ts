// cuda/sample.cu through the CPU emulator: the same tokens as the CPU backend for the same seed
// (spec §9, the algorithm at the top of native/ops/sample.cc), over every filter and their
// combinations, greedy and degenerate rows, ties, every dtype, row ids and steps; log-probs
// against the CPU and the float64 reference.
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { sampleSync } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import { close, randn, rng } from './helpers';
import { refToHalf } from './reference/logprobs';


type Params = { temperature?: number; topK?: number; topP?: number; minP?: number };
const CASES: [string, Params][] = [
  ['plain', {}],
  ['temperature 0.7', { temperature: 0.7 }],
  ['top-k 5', { topK: 5 }],
  ['top-p 0.9', { topP: 0.9 }],
  ['min-p 0.1', { minP: 0.1 }],
  ['top-k 20 + top-p 0.8 + min-p 0.05', { topK: 20, topP: 0.8, minP: 0.05, temperature: 1.3 }],
  ['top-p 0.3 (few kept)', { topP: 0.3 }],
  ['greedy', { temperature: 0 }],
];

function compare(name: string, host: Float32Array | Uint16Array, dtype: 'float32' | 'bfloat16' | 'float16', R: number, V: number, p: Params, seed: number, extra: { rowIds?: number[]; step?: number } = {}) {
  const cpu = sampleSync({ logits: host, dtype, vocabSize: V, seed, truncatedLogprobs: true, ...p, ...extra });
  const dz = DeviceTensor.fromHost(host, { dtype, shape: [R, V] });
  for (const order of [0, 1, 2]) {
    setOrder(order, 9);
    const g = cuda.sampleSync({ logits: dz, vocabSize: V, seed, truncatedLogprobs: true, ...p, ...extra });
    setOrder(0);
    assert.equal(Array.from(g.tokens.toHost()), Array.from(cpu.tokens), `${name}: identical tokens`);
    close(g.logp.toHost() as Float32Array, cpu.logp, 1e-6, 1e-6, `${name}: logp`);
    close(g.truncLogp!.toHost() as Float32Array, cpu.truncLogp!, 1e-6, 1e-6, `${name}: truncLogp`);
    g.tokens.dispose();
    g.logp.dispose();
    g.truncLogp!.dispose();
  }
  dz.dispose();
}

for (const [name, p] of CASES) {
  for (const { R, V } of [{ R: 1, V: 7 }, { R: 9, V: 300 }, { R: 3, V: 1037 }, { R: 2, V: 151936 }]) {
    test(`cuda sample ${name} R=${R} V=${V}: same tokens as the CPU`, () => {
      const r = rng(R * 131 + V);
      const z = randn(r, R * V, 2.5);
      compare(name, z, 'float32', R, V, p, 1234 + V);
    });
  }
}

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`cuda sample ${dtype} (many exact ties): same tokens as the CPU`, () => {
    const R = 6, V = 515;
    const host = refToHalf(randn(rng(8), R * V, 2), dtype);
    for (const [name, p] of CASES) compare(`${dtype} ${name}`, host, dtype, R, V, p, 77);
  });
}

test('cuda sample: row ids and steps key the draw as on the CPU', () => {
  const R = 4, V = 200;
  const z = randn(rng(2), R * V, 1);
  for (const step of [0, 1, 99]) compare(`step ${step}`, z, 'float32', R, V, { topK: 50 }, 5, { rowIds: [10, 3, 7, 4000000000], step });
});

test('cuda sample: ties at the k-th value are all kept, degenerate rows, large seeds', () => {
  const V = 64;
  const z = new Float32Array(4 * V);
  for (let v = 0; v < V; v++) z[v] = v % 4;  // row 0: many exact ties
  z.fill(-Infinity, V, 2 * V);  // row 1: every logit −inf
  z[2 * V + 5] = Infinity;  // row 2: +inf
  for (let v = 0; v < V; v++) z[3 * V + v] = v === 9 ? NaN : -v / 8;  // row 3: a NaN entry
  for (const p of [{}, { topK: 3 }, { topP: 0.5 }, { minP: 0.5 }, { temperature: 0 }] as Params[]) compare(`ties/degenerate ${JSON.stringify(p)}`, z, 'float32', 4, V, p, 2 ** 40 + 3);
});

test('cuda sample async gives the same tokens', async () => {
  const R = 5, V = 100;
  const dz = DeviceTensor.fromHost(randn(rng(6), R * V), { shape: [R, V] });
  const a = cuda.sampleSync({ logits: dz, vocabSize: V, seed: 3, topP: 0.9 });
  const b = await cuda.sample({ logits: dz, vocabSize: V, seed: 3, topP: 0.9 });
  assert.equal(Array.from(await b.tokens.download()), Array.from(a.tokens.toHost()));
  for (const t of [dz, a.tokens, a.logp, b.tokens, b.logp]) t.dispose();
});

test.run();
