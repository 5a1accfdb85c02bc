// grpo serve --model DIR (a Hugging Face folder): the remote engine gets the in-process tokens of
// the HF model and its tokenizer, and a weight update (a float32 transformers folder) moves the
// server to exactly the trainer's new weights.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadHfCheckpoint } from '../lib/models/hf';
import { RemoteEngine } from '../lib/rollout/remote';
import { rollout, type Rollout } from '../lib/trainer/rollout';
import type { RefConfig } from './reference/hf_llama';
import { ARCHS, randomWeights, writeHfCheckpoint, writeTinyTokenizer } from './hf_helpers';
import { spawnServe } from './rollout_remote_helpers';

const same = (a: Rollout, b: Rollout) => {
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]));
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]));
  assert.equal(a.texts, b.texts);
};

test('HF model behind grpo serve: identical tokens to in-process; syncWeights moves the server to the new weights', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-remote-hf-'));
  const dir = path.join(root, 'model'), dir2 = path.join(root, 'model2');
  const V = writeTinyTokenizer(dir);
  writeTinyTokenizer(dir2);
  const cfg: RefConfig = { ...ARCHS.qwen3, V };
  writeHfCheckpoint(dir, cfg, randomWeights(cfg, 31));
  writeHfCheckpoint(dir2, cfg, randomWeights(cfg, 32));
  const a = await loadHfCheckpoint(dir);
  const b = await loadHfCheckpoint(dir2);
  const s = await spawnServe(['--model', dir]);
  try {
    const prompts = ['2+3=', '7+1=', 'hello'];
    const o = { maxCompletionLength: 5, temperature: 1, topK: 10, seed: 3 };
    const eng = new RemoteEngine({ urls: [s.url], tokenizer: a.tokenizer, vocabSize: a.model.vocabSize, weightsDir: path.join(root, 'run', 'rollout-weights'), sourceDir: dir });
    same(await eng.generate(prompts, 2, o), await rollout(a.model, a.tokenizer, prompts, 2, o));
    await eng.syncWeights(b.model, 1);
    const r = await eng.generate(prompts, 2, o);
    same(r, await rollout(b.model, b.tokenizer, prompts, 2, o));
    assert.equal(r.policyVersion, new Array(6).fill(1));
    assert.ok(fs.existsSync(path.join(root, 'run', 'rollout-weights', 'v-000001', 'config.json')));
    // a directory that does not exist is refused, naming the field
    const bad = await fetch(`${s.url}/update_weights_from_disk`, { method: 'POST', body: JSON.stringify({ model_path: path.join(root, 'nowhere') }) });
    assert.is(bad.status, 400);
    assert.match((await bad.json()).error.message, 'model_path: ');
  } finally {
    await s.stop();
    a.model.dispose();
    b.model.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('HF LoRA model behind grpo serve: syncWeights sends the adapters (not merged weights) and the tokens equal in-process bit for bit', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-remote-lora-'));
  const dir = path.join(root, 'model');
  const V = writeTinyTokenizer(dir);
  const cfg: RefConfig = { ...ARCHS.qwen2, V };
  writeHfCheckpoint(dir, cfg, randomWeights(cfg, 41), { dtype: 'BF16' });
  const lora = { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], seed: 5 };
  const a = await loadHfCheckpoint(dir, { lora });
  // trained-looking adapters: B non-zero (B = 0 would make the LoRA model the base itself)
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2;
  const ad = a.model.trainableStateDict();
  for (const t of ad.values()) for (let i = 0; i < t.data.length; i++) t.data[i] = rnd();
  a.model.loadTrainableStateDict(ad);
  const s = await spawnServe(['--model', dir]);
  try {
    const prompts = ['2+3=', '7+1=', 'hello'];
    const o = { maxCompletionLength: 6, temperature: 1, topK: 0, seed: 11 };
    const weightsDir = path.join(root, 'run', 'rollout-weights');
    const eng = new RemoteEngine({ urls: [s.url], tokenizer: a.tokenizer, vocabSize: a.model.vocabSize, weightsDir, sourceDir: dir });
    await eng.syncWeights(a.model, 3);
    const v = path.join(weightsDir, 'v-000003');
    assert.equal(fs.readdirSync(v).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.is(JSON.parse(fs.readFileSync(path.join(v, 'adapter_config.json'), 'utf8')).base_model_name_or_path, path.resolve(dir));
    const r = await eng.generate(prompts, 2, o);
    same(r, await rollout(a.model, a.tokenizer, prompts, 2, o));
    assert.equal(r.policyVersion, new Array(6).fill(3));
    // an adapter folder whose base is gone is refused, naming the field; the server keeps serving
    const badDir = path.join(root, 'bad-adapter');
    fs.mkdirSync(badDir);
    fs.copyFileSync(path.join(v, 'adapter_model.safetensors'), path.join(badDir, 'adapter_model.safetensors'));
    fs.writeFileSync(path.join(badDir, 'adapter_config.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(v, 'adapter_config.json'), 'utf8')), base_model_name_or_path: path.join(root, 'nowhere') }));
    const bad = await fetch(`${s.url}/update_weights_from_disk`, { method: 'POST', body: JSON.stringify({ model_path: badDir }) });
    assert.is(bad.status, 400);
    assert.match((await bad.json()).error.message, 'base_model_name_or_path');
    same(await eng.generate(prompts, 2, o), await rollout(a.model, a.tokenizer, prompts, 2, o));
  } finally {
    await s.stop();
    a.model.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
