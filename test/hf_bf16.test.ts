// Frozen matrices kept in bfloat16 (frozenDtype 'bfloat16': the LoRA base, a frozen reference
// copy), read by matmuls that widen one panel at a time and accumulate in float32: logits match
// the float64 reference run on the bf16-rounded weights; since the widening is exact and the
// per-element operations are those of the float32 kernels, logits, KV-cache decoding, hidden
// states and the adapters' gradients equal (bit for bit) the same model held in float32.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { HfCausalLM, loadHfModel } from '../lib/models/hf';
import { rng } from './helpers';
import { ARCHS, bf16Round, randomWeights, relErr, tokens, writeHfCheckpoint } from './hf_helpers';
import { refLogits, RefWeights } from './reference/hf_llama';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bf16-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const lora = { r: 2, alpha: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 5 };

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function randomB(m: HfCausalLM, seed: number) {
  const sd = m.stateDict();
  const r = rng(seed);
  for (const [k, t] of sd) if (k.endsWith('lora_B.weight')) for (let i = 0; i < t.data.length; i++) t.data[i] = 0.3 * (2 * r() - 1);
  m.loadStateDict(sd);
}

for (const [key, c] of Object.entries(ARCHS)) {
  test(`${key}: bf16-stored frozen base: logits = float64 reference on the bf16 weights; = the float32-stored model bit for bit`, async () => {
    const w = randomWeights(c, 17, true);
    const dir = path.join(tmp, key);
    writeHfCheckpoint(dir, c, w, { dtype: 'BF16' });
    const a = await loadHfModel(dir, { lora }); // default for a bf16 checkpoint: bf16 frozen storage
    const b = await loadHfModel(dir, { lora, frozenDtype: 'float32' });
    assert.is(a.frozenDtype, 'bfloat16');
    assert.is(b.frozenDtype, 'float32');
    const r = rng(4);
    const B = 2, L = 6, N = B * L;
    const tk = tokens(r, N, c.V);
    // B = 0 at init: the model is the base
    const za = await a.forward(tk, B, L);
    assert.ok(relErr(za, refLogits(c, w, tk, B, L)) <= 1e-4, 'vs float64 reference');
    assert.equal(bits(za), bits(await b.forward(tk, B, L)));
    randomB(a, 9);
    randomB(b, 9);
    const la = await a.forward(tk, B, L, { train: true });
    const lb = await b.forward(tk, B, L, { train: true });
    assert.equal(bits(la), bits(lb));
    const R = Float32Array.from({ length: N * c.V }, () => r() * 2 - 1);
    a.zeroGrad();
    b.zeroGrad();
    await a.backward(R);
    await b.backward(R);
    const ga = a.gradients(), gb = b.gradients();
    for (const [k, t] of ga) assert.equal(bits(t.data), bits(gb.get(k)!.data), k);
    // hidden-state path and its head (a Uint16Array of bf16 bits when stored so)
    const rows = Int32Array.from([0, 5, -1, 11]);
    assert.equal(bits(await a.forwardHidden(tk, B, L, rows)), bits(await b.forwardHidden(tk, B, L, rows)));
    const ha = a.outputHead(), hb = b.outputHead();
    assert.is(ha.weightDtype, 'bfloat16');
    assert.ok(ha.weight instanceof Uint16Array);
    assert.is(hb.weightDtype, 'float32');
    const wf = hb.weight as Float32Array, wb = ha.weight as Uint16Array;
    for (let i = 0; i < wf.length; i++) assert.is(wf[i], new Float32Array(new Uint32Array([wb[i] << 16]).buffer)[0]);
    // KV-cache decoding
    const kvd = c.KVH * c.hd;
    const args = () => ({ cache: new Float32Array(2 * c.nL * L * kvd), slots: 1, ctx: L, slot: Int32Array.of(0), tokens: tk.subarray(0, L), start: Int32Array.of(0), count: Int32Array.of(L) });
    assert.equal(bits(await a.decodeStep(args())), bits(await b.decodeStep(args())));
    // the base weights read back as stored
    for (const [k, t] of a.stateDict()) if (!HfCausalLM.isAdapter(k)) assert.equal(Array.from(t.data), Array.from(w.get(k)!), k);
    a.dispose();
    b.dispose();
  });
}

test('frozenDtype bfloat16 on a float32 checkpoint rounds the frozen matrices to nearest even; trained tensors stay float32', async () => {
  const c = ARCHS.qwen2;
  const w = randomWeights(c, 19);
  const dir = path.join(tmp, 'f32');
  writeHfCheckpoint(dir, c, w);
  const m = await loadHfModel(dir, { lora, frozenDtype: 'bfloat16' });
  for (const [k, t] of m.stateDict()) {
    if (HfCausalLM.isAdapter(k)) continue;
    const want = w.get(k)!;
    const matrix = m.parameters.find((p) => p.name === k)!.shape.length === 2;
    assert.equal(Array.from(t.data), Array.from(want, (x) => (matrix ? bf16Round(x) : Math.fround(x))), k);
  }
  // the logits are those of the rounded weights
  const rounded: RefWeights = new Map([...w].map(([k, a]) => [k, (m.parameters.find((p) => p.name === k)!.shape.length === 2 ? a.map(bf16Round) : a)]));
  const tk = tokens(rng(2), 10, c.V);
  assert.ok(relErr(await m.forward(tk, 2, 5), refLogits(c, rounded, tk, 2, 5)) <= 1e-4);
  m.dispose();
});

test('referenceCopy: a frozen bf16 copy of a full model (no gradients) gives the same logits; LoRA gives the base view', async () => {
  const c = ARCHS.llama;
  const w = randomWeights(c, 29, true);
  const dir = path.join(tmp, 'ref');
  writeHfCheckpoint(dir, c, w, { dtype: 'BF16' });
  const m = await loadHfModel(dir);
  const ref = m.referenceCopy() as HfCausalLM;
  assert.ok(ref.frozen);
  assert.is(ref.frozenDtype, 'bfloat16');
  assert.ok(ref.parameters.every((p) => !p.trainable));
  assert.is(ref.gradients().size, 0);
  const tk = tokens(rng(6), 12, c.V);
  assert.equal(bits(await ref.forward(tk, 2, 6)), bits(await m.forward(tk, 2, 6)));
  ref.dispose();
  m.dispose();
  const l = await loadHfModel(dir, { lora });
  const view = l.referenceCopy();
  assert.is(view.stateDict().size, 0); // the base view: nothing of its own
  l.dispose();
});

test.run();
