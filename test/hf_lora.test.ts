// LoRA on HF models (PEFT names and layout): gradients of the adapters against central
// differences of the float64 reference run on the merged weights W + (α/r)·B·A; adapters off is
// the base model bit for bit (the GRPO reference without a second copy); a step moves only the
// adapters; the PEFT adapter folder reloads, and merging it equals the merged save.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadHfModel, loadHfModelWithAdapter, mergedStateDict, saveHfModel, saveLoraAdapter, HfCausalLM } from '../lib/models/hf';
import { rng } from './helpers';
import { ARCHS, randomWeights, writeHfCheckpoint } from './hf_helpers';
import { refLogits, RefWeights } from './reference/hf_llama';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-lora-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const c = ARCHS.qwen2; // biases + untied head: every path of the projections
const base = path.join(tmp, 'base');
writeHfCheckpoint(base, c, randomWeights(c, 41));
const lora = { r: 3, alpha: 6, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 9 };

function tokens(r: () => number, n: number): Int32Array {
  return Int32Array.from({ length: n }, () => Math.floor(r() * c.V));
}
/** Random B (PEFT starts it at zero, which would hide A's gradient). */
async function withRandomB(): Promise<HfCausalLM> {
  const m = await loadHfModel(base, { lora });
  const sd = m.stateDict();
  const r = rng(77);
  for (const [k, t] of sd) if (k.endsWith('lora_B.weight')) for (let i = 0; i < t.data.length; i++) t.data[i] = 0.3 * (2 * r() - 1);
  m.loadStateDict(sd);
  return m;
}
/** The reference's weights: base weights with (α/r)·B·A added, in float64. */
function mergedRef(sd: Map<string, { shape: number[]; data: Float32Array | Float64Array }>): RefWeights {
  const w: RefWeights = new Map();
  for (const [k, t] of sd) if (!k.startsWith('base_model.')) w.set(k, Float64Array.from(t.data));
  for (const [k, A] of sd) {
    if (!k.endsWith('.lora_A.weight')) continue;
    const stem = k.slice('base_model.model.'.length, -'.lora_A.weight'.length);
    const B = sd.get(`base_model.model.${stem}.lora_B.weight`)!;
    const W = w.get(`${stem}.weight`)!;
    const [o, r] = B.shape, inF = A.shape[1];
    for (let i = 0; i < o; i++)
      for (let j = 0; j < inF; j++) for (let q = 0; q < r; q++) W[i * inF + j] += (lora.alpha / lora.r) * B.data[i * r + q] * A.data[q * inF + j];
  }
  return w;
}

test('LoRA logits match the float64 reference on merged weights; adapters off is the base model bit for bit', async () => {
  const m = await withRandomB();
  const plain = await loadHfModel(base);
  const tk = tokens(rng(1), 12);
  const got = await m.forward(tk, 2, 6);
  const want = refLogits(c, mergedRef(m.stateDict()), tk, 2, 6);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) (num = Math.max(num, Math.abs(got[i] - want[i]))), (den = Math.max(den, Math.abs(want[i])));
  assert.ok(num / den <= 1e-4, `relative error ${num / den}`);
  assert.equal(Array.from(await m.forward(tk, 2, 6, { adapters: false })), Array.from(await plain.forward(tk, 2, 6)));
  assert.equal(Array.from(await m.referenceModel().forward(tk, 2, 6)), Array.from(await plain.forward(tk, 2, 6)));
  m.dispose();
  plain.dispose();
});

test('LoRA gradients match central differences of the reference; only adapters have gradients', async () => {
  const m = await withRandomB();
  const r = rng(5);
  const B = 2, L = 5, N = B * L;
  const tk = tokens(r, N);
  const R = Float64Array.from({ length: N * c.V }, () => r() * 2 - 1);
  m.forwardSync(tk, B, L, { train: true });
  m.zeroGrad();
  m.backwardSync(Float32Array.from(R));
  const grads = m.gradients();
  assert.ok([...grads.keys()].every((k) => HfCausalLM.isAdapter(k)), 'a frozen tensor has a gradient');
  assert.is(grads.size, 2 * 7 * c.nL);
  const sd = new Map([...m.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: Float64Array.from(t.data) }]));
  const loss = () => {
    const z = refLogits(c, mergedRef(sd), tk, B, L);
    let s = 0;
    for (let i = 0; i < z.length; i++) s += z[i] * R[i];
    return s;
  };
  const h = 1e-4;
  for (const [name, g] of grads) {
    const p = sd.get(name)!.data;
    for (let s = 0; s < 2; s++) {
      const i = Math.floor(r() * p.length);
      const keep = p[i];
      p[i] = keep + h;
      const up = loss();
      p[i] = keep - h;
      const dn = loss();
      p[i] = keep;
      const fd = (up - dn) / (2 * h);
      assert.ok(Math.abs(g.data[i] - fd) <= 2e-3 * Math.max(1, Math.abs(fd)), `${name}[${i}]: native ${g.data[i]} vs finite difference ${fd}`);
    }
  }
  // a step moves the adapters only
  const before = m.stateDict();
  m.step({ lr: 1e-2 });
  for (const [k, t] of m.stateDict()) {
    const same = t.data.every((x, i) => x === before.get(k)!.data[i]);
    assert.is(same, !HfCausalLM.isAdapter(k), k);
  }
  m.dispose();
});

test('PEFT adapter folder reloads to identical logits; merging it equals the merged save', async () => {
  const m = await withRandomB();
  const ad = path.join(tmp, 'adapter');
  saveLoraAdapter(m, ad, { baseModel: base });
  const cfg = JSON.parse(fs.readFileSync(path.join(ad, 'adapter_config.json'), 'utf8'));
  assert.equal([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout], ['LORA', 3, 6, 0]);
  const re = await loadHfModelWithAdapter(base, ad);
  const tk = tokens(rng(3), 10);
  assert.equal(Array.from(await re.forward(tk, 2, 5)), Array.from(await m.forward(tk, 2, 5)));
  const mergedDir = path.join(tmp, 'merged');
  saveHfModel(m, mergedDir, { dtype: 'float32', sourceDir: base });
  const merged = await loadHfModel(mergedDir);
  const fromAdapter = mergedStateDict(re);
  for (const [k, t] of merged.stateDict()) assert.equal(Array.from(t.data), Array.from(fromAdapter.get(k)!.data), k);
  // and the merged model computes what the adapters do
  const a = await merged.forward(tk, 2, 5), b = await m.forward(tk, 2, 5);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) (num = Math.max(num, Math.abs(a[i] - b[i]))), (den = Math.max(den, Math.abs(b[i])));
  assert.ok(num / den <= 1e-5, `merged vs adapters: ${num / den}`);
  for (const x of [m, re, merged]) x.dispose();
});

test('bad LoRA options are named', async () => {
  let msg = '';
  try {
    await loadHfModel(base, { lora: { r: 2, alpha: 4, targetModules: ['qkv_proj'] } });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.match(msg, /targetModules/);
  assert.match(msg, /qkv_proj/);
});

test.run();
