// `grpo train --model DIR` end to end on a tiny Qwen3-architecture checkpoint written here in
// HF layout (with tokenizer files and a ChatML template): GRPO steps run, the run saves an HF
// folder that reloads to the trained weights (bf16), and resuming is bit-exact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { runTrain } from '../lib/trainer/run';
import { loadCheckpoint } from '../lib/trainer/checkpoint';
import { loadHfModel } from '../lib/models/hf';
import { ARCHS, bf16Round, randomWeights, writeHfCheckpoint, writeTinyTokenizer } from './hf_helpers';
import type { RefConfig } from './reference/hf_llama';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hftrain-'));
test.after(() => fs.rmSync(root, { recursive: true, force: true }));
const quiet = { log: () => {} };

const modelDir = path.join(root, 'tiny-qwen3');
const V = writeTinyTokenizer(modelDir);
const cfg: RefConfig = { ...ARCHS.qwen3, V };
writeHfCheckpoint(modelDir, cfg, randomWeights(cfg, 31));

// a dense signal for a random model: the fraction of completion characters that are digits
const rewardFile = path.join(root, 'digits.js');
fs.writeFileSync(rewardFile, "module.exports = function digits(cs) { return cs.map((t) => (t.length ? t.replace(/[^0-9]/g, '').length / t.length : 0)); };\n");

const opts = {
  model: modelDir, task: 'arithmetic', digits: 1, ops: ['+'], trainSize: 40, testSize: 4, batchSize: 2,
  maxCompletionLength: 6, numGenerations: 4, warmupRatio: 0, rewards: ['format'], rewardModule: rewardFile, evalSteps: 0, evalLimit: 2, evalK: 1, learningRate: 1e-2, beta: 0.04, progress: false, seed: 3,
};

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

test('train --model DIR: steps run, an HF folder is saved and reloads to the trained weights', async () => {
  const out = path.join(root, 'a');
  const r = await runTrain({ ...opts, outputDir: out, maxSteps: 2, saveSteps: 1 }, quiet);
  assert.is(r.steps, 2);
  const ck = loadCheckpoint(r.checkpoint);
  const base = await loadHfModel(modelDir);
  let changed = false;
  for (const [k, t] of base.stateDict()) if (!bitsEqual(t.data, ck.weights.get(k)!.data)) changed = true;
  assert.ok(changed, 'training changed no weight');
  const saved = await loadHfModel(path.join(out, 'hf-model'));
  for (const [k, t] of saved.stateDict()) assert.equal(Array.from(t.data), Array.from(ck.weights.get(k)!.data, bf16Round), k);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
    assert.ok(fs.existsSync(path.join(out, 'hf-model', f)), f);
  base.dispose();
  saved.dispose();
});

test('train --model DIR: resume is bit-exact (2 steps straight == 1 step, resume, 1 step)', async () => {
  const a = await runTrain({ ...opts, outputDir: path.join(root, 'b'), maxSteps: 2 }, quiet);
  await runTrain({ ...opts, outputDir: path.join(root, 'c'), maxSteps: 1 }, quiet);
  const c = await runTrain({ ...opts, outputDir: path.join(root, 'c'), maxSteps: 2, resume: true }, quiet);
  const wa = loadCheckpoint(a.checkpoint).weights, wc = loadCheckpoint(c.checkpoint).weights;
  for (const [k, t] of wa) assert.ok(bitsEqual(t.data, wc.get(k)!.data), `${k} differs after resume`);
});

test('train --model DIR --use-peft: adapters train, base frozen, PEFT folder reloads, resume is bit-exact', async () => {
  const peft = { ...opts, usePeft: true, loraR: 4, loraAlpha: 8, loraTargetModules: ['q_proj', 'v_proj', 'down_proj'], learningRate: 5e-2 };
  const a = await runTrain({ ...peft, outputDir: path.join(root, 'p1'), maxSteps: 2 }, quiet);
  const wa = loadCheckpoint(a.checkpoint).weights;
  const base = await loadHfModel(modelDir);
  const adapterB = [...wa].filter(([k]) => k.endsWith('lora_B.weight'));
  assert.is(adapterB.length, 3 * cfg.nL);
  assert.ok(adapterB.some(([, t]) => t.data.some((x) => x !== 0)), 'no adapter moved');
  const { loadHfModelWithAdapter } = await import('../lib/models/hf');
  const re = await loadHfModelWithAdapter(modelDir, path.join(root, 'p1', 'adapter'));
  const rsd = re.stateDict();
  for (const [k, t] of wa) assert.ok(bitsEqual(t.data, rsd.get(k)!.data), `${k} differs in the saved adapter`);
  // the base stayed frozen: the reloaded base + adapters holds the folder's base tensors
  for (const [k, t] of base.stateDict()) assert.ok(bitsEqual(t.data, rsd.get(k)!.data), `base tensor ${k} changed`);
  await runTrain({ ...peft, outputDir: path.join(root, 'p2'), maxSteps: 1 }, quiet);
  const c = await runTrain({ ...peft, outputDir: path.join(root, 'p2'), maxSteps: 2, resume: true }, quiet);
  const wc = loadCheckpoint(c.checkpoint).weights;
  assert.is(wc.size, wa.size);
  for (const [k, t] of wa) assert.ok(bitsEqual(t.data, wc.get(k)!.data), `${k} differs after resume`);
  const oa = loadCheckpoint(a.checkpoint).optimizer!, oc = loadCheckpoint(c.checkpoint).optimizer!;
  for (const [k, t] of oa) assert.ok(bitsEqual(t.data, oc.get(k)!.data), `optimizer ${k} differs after resume`);
  base.dispose();
  re.dispose();
});

test('train --use-peft: a checkpoint holds the adapters, their Adam moments and the base identity, not the base weights', async () => {
  const peft = { ...opts, usePeft: true, loraR: 2, loraAlpha: 4, loraTargetModules: ['q_proj', 'v_proj'] };
  const r = await runTrain({ ...peft, outputDir: path.join(root, 'p3'), maxSteps: 1 }, quiet);
  const ck = loadCheckpoint(r.checkpoint);
  const base = await loadHfModel(modelDir, { lora: { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] } });
  const adapters = base.parameters.filter((p) => p.trainable);
  const adapterFloats = adapters.reduce((s, p) => s + p.size, 0);
  assert.equal([...ck.weights.keys()].sort(), adapters.map((p) => p.name).sort());
  assert.ok(ck.meta.base && ck.meta.base.dir === path.resolve(modelDir), 'trainer_state.json names the base folder');
  assert.equal(ck.meta.base!.files.map((f) => f.file), ['config.json', 'model.safetensors']);
  assert.is(ck.meta.base!.files[1].size, fs.statSync(path.join(modelDir, 'model.safetensors')).size);
  // sizes: model.safetensors = adapters (float32) + header; optimizer = 2 moments of them; no reference copy
  const header = (f: string) => 8 + Number(fs.readFileSync(f).readBigUInt64LE(0));
  const mf = path.join(ck.dir, 'model.safetensors'), of = path.join(ck.dir, 'optimizer.safetensors');
  assert.is(fs.statSync(mf).size - header(mf), 4 * adapterFloats);
  assert.is(fs.statSync(of).size - header(of), 2 * 4 * adapterFloats);
  assert.not.ok(fs.existsSync(path.join(ck.dir, 'reference.safetensors')));
  base.dispose();
});

test('grpo serve --model DIR --checkpoint CK of a LoRA run: the adapters load on the base the checkpoint names', async () => {
  const { loadServedModel } = await import('../lib/serve/weights');
  const ckDir = path.join(root, 'p1');
  const ck = loadCheckpoint(ckDir);
  const served = await loadServedModel({ model: modelDir, checkpoint: ckDir, fresh: () => { throw new Error('not used'); } });
  const m = served.model as import('../lib/models/hf').HfCausalLM;
  const sd = m.trainableStateDict();
  assert.equal([...sd.keys()].sort(), [...ck.weights.keys()].sort());
  for (const [k, t] of ck.weights) assert.ok(bitsEqual(t.data, sd.get(k)!.data), `${k} differs in the served model`);
  assert.is(served.version, ck.meta.step);
  m.dispose();
});

test('train --use-peft: resuming on a changed or incomplete base is refused, naming the file', async () => {
  const peft = { ...opts, usePeft: true, loraR: 2, loraAlpha: 4, loraTargetModules: ['q_proj'] };
  const run = path.join(root, 'p4');
  await runTrain({ ...peft, outputDir: run, maxSteps: 1 }, quiet);
  // a copy of the folder is the same base (modification times differ; nothing else does)
  const copy = path.join(root, 'copy-of-base');
  fs.cpSync(modelDir, copy, { recursive: true });
  const ok = await runTrain({ ...peft, model: copy, outputDir: run, maxSteps: 2, resume: true }, quiet);
  assert.is(ok.steps, 2);
  // same layout (identical header), other weights: another fine-tune of the same architecture
  const other = path.join(root, 'other-base');
  fs.cpSync(modelDir, other, { recursive: true });
  writeHfCheckpoint(other, cfg, randomWeights(cfg, 32));
  const err = async (o: Record<string, unknown>, re: RegExp) => {
    try {
      await runTrain({ ...peft, outputDir: run, maxSteps: 3, resume: true, ...o }, quiet);
    } catch (e) {
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable('resume on a changed base was accepted');
  };
  await err({ model: other }, new RegExp(`${path.join(other, 'model.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has other contents`));
  fs.rmSync(path.join(copy, 'model.safetensors'));
  fs.writeFileSync(path.join(copy, 'model.safetensors'), Buffer.alloc(16));
  await err({ model: copy }, /model\.safetensors/);
  // the base folder the checkpoint names is gone
  fs.rmSync(path.join(copy, 'config.json'));
  await err({ model: copy }, /config\.json/);
});

test.run();
