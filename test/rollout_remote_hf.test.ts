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

test.run();
