// Hugging Face Llama / Qwen2 / Qwen3 checkpoints: tiny folders written here in the real layout
// (random weights, every architecture, one sharded, bf16 and f32), loaded through mmap, checked
// against the float64 reference written from the HF modeling code (test/reference/hf_llama.ts):
// logits, gradients (central differences of the reference), KV-cache decoding, batched
// generation, save/reload, and bad checkpoints.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadHfModel, loadHfModelSync, saveHfModel, HfCausalLM } from '../lib/models/hf';
import { rng } from './helpers';
import { ARCHS, randomWeights, relErr, toRef, tokens, writeHfCheckpoint, hfConfigJson } from './hf_helpers';
import { refLogits, RefConfig, RefWeights } from './reference/hf_llama';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hf-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));


let n = 0;
function checkpoint(c: RefConfig, w: RefWeights, o: Parameters<typeof writeHfCheckpoint>[3] = {}): string {
  const dir = path.join(tmp, `ck${n++}`);
  writeHfCheckpoint(dir, c, w, o);
  return dir;
}

for (const [key, c] of Object.entries(ARCHS)) {
  test(`${key}: f32 logits match the float64 reference (<= 1e-4 relative)`, async () => {
    const w = randomWeights(c, 7);
    const m = await loadHfModel(checkpoint(c, w));
    // the loaded weights are exactly what was written
    for (const [name, t] of m.stateDict()) assert.equal(Array.from(t.data), Array.from(w.get(name)!), name);
    const r = rng(3);
    const B = 3, L = 7;
    const tk = tokens(r, B * L, c.V);
    const got = await m.forward(tk, B, L);
    const e = relErr(got, refLogits(c, w, tk, B, L));
    assert.ok(e <= 1e-4, `relative error ${e}`);
    m.dispose();
  });

  test(`${key}: gradients match central differences of the float64 reference`, () => {
    const w = randomWeights(c, 11);
    const m = loadHfModelSync(checkpoint(c, w));
    const r = rng(5);
    const B = 2, L = 5, N = B * L;
    const tk = tokens(r, N, c.V);
    // loss = Σ logits ⊙ R
    const R = Float64Array.from({ length: N * c.V }, () => r() * 2 - 1);
    m.forwardSync(tk, B, L, { train: true });
    m.zeroGrad();
    m.backwardSync(Float32Array.from(R));
    const grads = m.gradients();
    const loss = (ww: RefWeights) => {
      const z = refLogits(c, ww, tk, B, L);
      let s = 0;
      for (let i = 0; i < z.length; i++) s += z[i] * R[i];
      return s;
    };
    const h = 1e-4;
    for (const [name, g] of grads) {
      const p = w.get(name)!;
      for (let s = 0; s < 3; s++) {
        const i = Math.floor(r() * p.length);
        const keep = p[i];
        p[i] = keep + h;
        const up = loss(w);
        p[i] = keep - h;
        const dn = loss(w);
        p[i] = keep;
        const fd = (up - dn) / (2 * h);
        assert.ok(Math.abs(g.data[i] - fd) <= 2e-3 * Math.max(1, Math.abs(fd)), `${name}[${i}]: native ${g.data[i]} vs finite difference ${fd}`);
      }
    }
    m.dispose();
  });

  test(`${key}: KV-cache decoding equals the full forward pass`, async () => {
    const w = randomWeights(c, 13);
    const m = await loadHfModel(checkpoint(c, w));
    const r = rng(8);
    const L = 9, P = 4;
    const tk = tokens(r, L, c.V);
    const full = await m.forward(tk, 1, L);
    const kvd = c.KVH * c.hd;
    const cache = new Float32Array(2 * c.nL * 1 * L * kvd);
    const args = { cache, slots: 1, ctx: L, slot: Int32Array.of(0) };
    let lg = await m.decodeStep({ ...args, tokens: tk.subarray(0, P), start: Int32Array.of(0), count: Int32Array.of(P) });
    assert.ok(relErr(lg, full.subarray((P - 1) * c.V, P * c.V)) <= 1e-5, 'prefill');
    for (let p = P; p < L; p++) {
      lg = await m.decodeStep({ ...args, tokens: tk.subarray(p, p + 1), start: Int32Array.of(p), count: Int32Array.of(1) });
      const e = relErr(lg, full.subarray(p * c.V, (p + 1) * c.V));
      assert.ok(e <= 1e-5, `position ${p}: ${e}`);
    }
    m.dispose();
  });
}

test('token ids changed after an async forward is called do not reach the kernel (copied at call time)', async () => {
  const [, c] = Object.entries(ARCHS)[0];
  const w = randomWeights(c, 13);
  const m = await loadHfModel(checkpoint(c, w));
  const r = rng(17);
  const B = 2, L = 6;
  const tk = tokens(r, B * L, c.V);
  const want = m.forwardSync(Int32Array.from(tk), B, L).slice();
  for (let k = 0; k < 20; k++) {
    const p = m.forward(tk.slice(), B, L);
    const same = m.forward(tk, B, L);
    // an out-of-range id written after the call, while the kernel may still be reading
    const keep = Int32Array.from(tk);
    tk.fill(k % 2 ? 1 << 30 : -5);
    assert.equal(Array.from(await same), Array.from(want));
    assert.equal(Array.from(await p), Array.from(want));
    tk.set(keep);
  }
  m.dispose();
});

test('batched generation of prompts of different lengths equals one prompt at a time (same seeds, same tokens)', async () => {
  const c = ARCHS.qwen2;
  const m = await loadHfModel(checkpoint(c, randomWeights(c, 17)));
  const r = rng(9);
  const prompts = [3, 7, 1, 5].map((len) => Array.from(tokens(r, len, c.V)));
  const o = { maxNewTokens: 6, temperature: 1, seed: 1234, stopTokenIds: [0] };
  const batch = await m.generate(prompts, { ...o, rowIds: [10, 11, 12, 13] });
  for (let b = 0; b < prompts.length; b++) {
    const one = await m.generate([prompts[b]], { ...o, rowIds: [10 + b] });
    assert.equal(Array.from(batch.tokens[b]), Array.from(one.tokens[0]), `prompt ${b}`);
    assert.equal(Array.from(batch.logprobs[b]), Array.from(one.logprobs[0]), `prompt ${b} logprobs`);
  }
  // greedy generation agrees with argmax of the full forward pass over prompt + completion
  const g = await m.generate([prompts[1]], { maxNewTokens: 4, temperature: 0, seed: 1 });
  const seq = Int32Array.from([...prompts[1], ...g.tokens[0]]);
  const z = await m.forward(seq, 1, seq.length);
  for (let t = 0; t < 4; t++) {
    const row = z.subarray((prompts[1].length - 1 + t) * c.V, (prompts[1].length + t) * c.V);
    assert.is(g.tokens[0][t], row.indexOf(Math.max(...row)), `greedy token ${t}`);
  }
  m.dispose();
});

test('bf16 weights and a sharded checkpoint load to the same values as written', async () => {
  const c = ARCHS.qwen3;
  const w = randomWeights(c, 21, true); // bf16-representable values
  const a = await loadHfModel(checkpoint(c, w, { dtype: 'BF16' }));
  const b = await loadHfModel(checkpoint(c, w, { dtype: 'F32', shards: 3 }));
  for (const [name, t] of a.stateDict()) assert.equal(Array.from(t.data), Array.from(w.get(name)!), name);
  const tk = tokens(rng(1), 12, c.V);
  assert.equal(Array.from(await a.forward(tk, 2, 6)), Array.from(await b.forward(tk, 2, 6)));
  a.dispose();
  b.dispose();
});

test('a saved folder reloads to identical logits (f32) and to bf16-rounded weights (bf16 default)', async () => {
  const c = ARCHS.llama;
  const src = checkpoint(c, randomWeights(c, 23));
  const m = await loadHfModel(src);
  const out32 = path.join(tmp, 'saved32');
  saveHfModel(m, out32, { dtype: 'float32', sourceDir: src });
  const r32 = await loadHfModel(out32);
  const tk = tokens(rng(2), 10, c.V);
  assert.equal(Array.from(await r32.forward(tk, 2, 5)), Array.from(await m.forward(tk, 2, 5)));
  const out16 = path.join(tmp, 'saved16');
  saveHfModel(m, out16);
  const cfg = JSON.parse(fs.readFileSync(path.join(out16, 'config.json'), 'utf8'));
  assert.is(cfg.torch_dtype, 'bfloat16');
  const r16 = await loadHfModel(out16);
  const { bf16Round } = await import('./hf_helpers');
  for (const [name, t] of r16.stateDict()) {
    const orig = m.stateDict().get(name)!.data;
    assert.equal(Array.from(t.data), Array.from(orig, bf16Round), name);
  }
  assert.throws(() => saveHfModel(m, out16), /not empty/);
  for (const x of [m, r32, r16]) x.dispose();
});

test('bad checkpoints give errors naming the file and tensor', async () => {
  const c = ARCHS.qwen2;
  const w = randomWeights(c, 29);
  // wrong shape: config says a bigger intermediate size than the file holds
  const dirShape = checkpoint(c, w, { extraConfig: { intermediate_size: c.F + 4 } });
  await assertRejects(loadHfModel(dirShape), /model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[36,24\] but config\.json implies \[40,24\]/);
  // missing tensor: an index that leaves one out
  const dirIdx = checkpoint(c, w, { shards: 2 });
  const idxFile = path.join(dirIdx, 'model.safetensors.index.json');
  const idx = JSON.parse(fs.readFileSync(idxFile, 'utf8'));
  delete idx.weight_map['model.layers.1.mlp.up_proj.weight'];
  fs.writeFileSync(idxFile, JSON.stringify(idx));
  await assertRejects(loadHfModel(dirIdx), /tensor 'model\.layers\.1\.mlp\.up_proj\.weight' is missing/);
  // unknown architecture
  const dirArch = checkpoint(c, w, { extraConfig: { architectures: ['GPT2LMHeadModel'] } });
  await assertRejects(loadHfModel(dirArch), /config\.json: unsupported architecture "GPT2LMHeadModel"/);
  // truncated file
  const dirTrunc = checkpoint(c, w);
  const f = path.join(dirTrunc, 'model.safetensors');
  const bytes = fs.readFileSync(f);
  fs.writeFileSync(f, bytes.subarray(0, bytes.length - 100));
  await assertRejects(loadHfModel(dirTrunc), /model\.safetensors: tensor '.*' ends at byte \d+ of a \d+-byte data section \(truncated file\?\)/);
  // header length pointing past the end
  const dirHdr = checkpoint(c, w);
  const g = path.join(dirHdr, 'model.safetensors');
  const b2 = fs.readFileSync(g);
  b2.writeBigUInt64LE(BigInt(b2.length * 2), 0);
  fs.writeFileSync(g, b2);
  await assertRejects(loadHfModel(dirHdr), /model\.safetensors: the header length field says \d+ bytes but the file has \d+ after it/);
  // not a checkpoint at all
  await assertRejects(loadHfModel(tmp), /no config\.json/);
});

async function assertRejects(p: Promise<unknown>, re: RegExp) {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

test('config: rope_parameters (transformers v5) and top-level rope_theta give the same model', async () => {
  const { parseHfConfig } = await import('../lib/models/hf');
  const c = ARCHS.qwen3;
  const a = parseHfConfig(hfConfigJson(c));
  const j = hfConfigJson(c);
  delete j.rope_theta;
  j.rope_parameters = { rope_type: 'default', rope_theta: c.theta };
  const b = parseHfConfig(j);
  assert.equal(Array.from(a.invFreq), Array.from(b.invFreq));
  assert.is(a.headDim, 8);
  assert.throws(() => parseHfConfig({ ...hfConfigJson(c), rope_scaling: { rope_type: 'yarn', factor: 4 } }), /rope_scaling type/);
  assert.throws(() => parseHfConfig({ ...hfConfigJson(c), num_key_value_heads: 3 }), /num_key_value_heads/);
});

void HfCausalLM;
test.run();
