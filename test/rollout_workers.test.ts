// Local rollout workers (lib/rollout/workers.ts): the same tokens and log-probs as in-process for
// the same seed and weights, weights followed after updates. Faults (killed, hung, garbage-answering
// workers: retry, replacement, the errors) are in rollout_workers_faults.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InProcessEngine } from '../lib/rollout/engine';
import { WorkerEngine } from '../lib/rollout/workers';
import { GrpoTrainer } from '../lib/trainer/grpo';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadHfCheckpoint } from '../lib/models/hf';
import { ARCHS, randomWeights, writeHfCheckpoint, writeTinyTokenizer } from './hf_helpers';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';

const rejects = async (f: () => Promise<unknown>, re: RegExp) => {
  const e = await f().then(() => null, (x: Error) => x);
  assert.ok(e, `expected a rejection matching ${re}`);
  assert.match(e!.message, re);
};
const o = { maxCompletionLength: 5, temperature: 1, seed: 21, stop: ['='] };
const same = (a: { tokens: Int32Array[]; logprobs: Float32Array[]; truncated: boolean[]; texts: string[] }, b: typeof a) => {
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]));
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]));
  assert.equal(a.truncated, b.truncated);
  assert.equal(a.texts, b.texts);
};

test('2 workers: identical tokens, log-probs and texts to in-process; weights and versions follow syncWeights', async () => {
  const m = tinyModel(5);
  const eng = await WorkerEngine.create(m, tok, { workers: 2, threadsPerWorker: 1 });
  try {
    const ref = new InProcessEngine(m, tok);
    const prompts = task.train.slice(0, 5);
    const a = await eng.generate(prompts, 3, o);
    same(a, await ref.generate(prompts, 3, o));
    assert.equal(a.policyVersion, new Array(15).fill(0));
    // new weights (a different model's): the workers must sample with them from now on
    const m2 = tinyModel(9);
    await eng.syncWeights(m2, 4);
    const b = await eng.generate(prompts, 3, o);
    same(b, await new InProcessEngine(m2, tok).generate(prompts, 3, o));
    assert.equal(b.policyVersion, new Array(15).fill(4));
    // an odd split (7 rows over 2 workers) and one prompt
    same(await eng.generate(prompts.slice(0, 1), 7, o), await new InProcessEngine(m2, tok).generate(prompts.slice(0, 1), 7, o));
    m2.dispose();
  } finally {
    await eng.close();
    m.dispose();
  }
});

test('an HF model with LoRA adapters: 2 workers give the in-process tokens, before and after new weights', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hf-workers-'));
  const V = writeTinyTokenizer(dir);
  const cfg = { ...ARCHS.qwen3, V };
  writeHfCheckpoint(dir, cfg, randomWeights(cfg, 3));
  const { model, tokenizer } = await loadHfCheckpoint(dir, { maxSeqLen: 24, lora: { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'], seed: 5 } });
  tokenizer.useChatTemplate = false;
  const eng = await WorkerEngine.create(model, tokenizer, { workers: 2, threadsPerWorker: 1 });
  try {
    const prompts = ['1+2=', '3+4=', '5+1='];
    const so = { maxCompletionLength: 6, temperature: 1, seed: 5 };
    same(await eng.generate(prompts, 3, so), await new InProcessEngine(model, tokenizer).generate(prompts, 3, so));
    // change the adapters (what LoRA training changes) and sync
    const sd = model.stateDict();
    for (const [k, t] of sd) if (k.includes('lora_B')) t.data.fill(0.05);
    model.loadStateDict(sd);
    await eng.syncWeights(model, 1);
    const b = await eng.generate(prompts, 3, so);
    same(b, await new InProcessEngine(model, tokenizer).generate(prompts, 3, so));
    assert.equal(b.policyVersion, new Array(9).fill(1));
  } finally {
    await eng.close();
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a GRPO run through 2 workers equals the in-process run bit for bit', async () => {
  const cfg = tinyConfig({ maxSteps: 2, numIterations: 2 });
  const m1 = tinyModel(7), m2 = tinyModel(7);
  const eng = await WorkerEngine.create(m2, tok, { workers: 2, threadsPerWorker: 1 });
  try {
    const t1 = new GrpoTrainer({ model: m1, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
    const t2 = new GrpoTrainer({ model: m2, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg, engine: eng });
    for (let i = 0; i < 2; i++) {
      const a = await t1.step(), b = await t2.step();
      assert.is(a.reward, b.reward);
      assert.is(a.loss, b.loss);
    }
    assert.ok(sameWeights(m1, m2));
  } finally {
    await eng.close();
    m1.dispose();
    m2.dispose();
  }
});

test('bad options and models are refused before any process starts', async () => {
  const m = tinyModel(5);
  await rejects(() => WorkerEngine.create(m, tok, { workers: 0 }), /expected an integer in \[1, 256\] for workers but received 0/);
  await rejects(() => WorkerEngine.create(m, tok, { workers: 1, timeout: -1 }), /timeout but received -1/);
  await rejects(() => WorkerEngine.create(m, tok, { workers: 1, retries: 1.5 }), /expected an integer >= 0 for retries but received 1.5/);
  await rejects(() => WorkerEngine.create({ ...m } as never, tok, { workers: 1 }), /expected the built-in transformer or an HF model/);
  m.dispose();
});

test.run();
