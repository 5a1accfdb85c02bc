// Multimodal prompts through the rollout engines: an image task (clevr_count) and an audio task
// (beep_count) sampled by 2 local workers and by the snapshot (async) engine give the in-process
// engine's tokens and log-probs for the same seed (the reference is the in-process engine: the
// model's own generate on the whole batch, media spliced at the placeholders); a GRPO step
// through the workers equals the in-process step bit for bit. The remote path has no media field
// (/v1/completions takes token ids): the engine refuses media prompts, `grpo train
// --rollout-engine remote` and `grpo eval --endpoint` refuse a multimodal task before writing
// anything, and `grpo serve` of a multimodal checkpoint serves text prompts only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createTransformer, mediaModelConfig, mediaTokenizer, type PolicyModel } from '../lib/models';
import { beepCountTask, clevrCountTask } from '../lib/tasks/multimodal';
import type { Task } from '../lib/tasks/types';
import { InProcessEngine } from '../lib/rollout/engine';
import { SnapshotEngine } from '../lib/rollout/async';
import { WorkerEngine } from '../lib/rollout/workers';
import { RemoteEngine } from '../lib/rollout/remote';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { runEval, runTrain } from '../lib/trainer/run';
import { startServe } from '../lib/serve';
import { writeRolloutWeights } from '../lib/serve/weights';
import { readSafetensors } from '../lib/models/safetensors';
import { rewards, sameWeights } from './trainer_setup';

const TASKS: [string, Task][] = [
  ['clevr_count (image)', clevrCountTask({ seed: 3, trainSize: 12, testSize: 4 })],
  ['beep_count (audio)', beepCountTask({ seed: 3, trainSize: 12, testSize: 4 })],
];

/** A tiny built-in model with the task's encoders, and its tokenizer. */
function setup(task: Task, seed = 5) {
  const media = mediaModelConfig(task.media!, { patchSize: 4, encoderHidden: 6 });
  const tok = mediaTokenizer(media);
  const longest = Math.max(...task.train.map((e) => tok.encode(e.prompt).length));
  const model = createTransformer({ vocabSize: tok.vocabSize, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, maxSeqLen: longest + 8, seed, media });
  return { tok, model };
}

const o = { maxCompletionLength: 4, temperature: 1, seed: 17 };
type R = { tokens: Int32Array[]; logprobs: Float32Array[]; truncated: boolean[]; texts: string[] };
const same = (a: R, b: R, what: string) => {
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]), `${what}: tokens`);
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]), `${what}: log-probs`);
  assert.equal(a.truncated, b.truncated, `${what}: truncated`);
  assert.equal(a.texts, b.texts, `${what}: texts`);
};

/** Whether two rollouts differ anywhere (the media must matter, or the equality above proves little). */
const differ = (a: R, b: R) => JSON.stringify(a.logprobs.map((t) => [...t])) !== JSON.stringify(b.logprobs.map((t) => [...t]));

for (const [name, task] of TASKS) {
  test(`${name}: 2 workers and the snapshot engine give the in-process tokens and log-probs; the media change them`, async () => {
    const { tok, model } = setup(task);
    const prompts = task.train.slice(0, 5);
    const ref = await new InProcessEngine(model, tok).generate(prompts, 3, o);
    assert.is(ref.media?.length, 15, 'the reference rollout carries per-sequence media');
    // the same prompts with another example's media: other log-probs (the encoders are in the path)
    const swapped = prompts.map((e, i) => ({ ...e, media: prompts[(i + 1) % prompts.length].media }));
    assert.ok(differ(ref, await new InProcessEngine(model, tok).generate(swapped, 3, o)), 'media must change the samples');
    const eng = await WorkerEngine.create(model, tok, { workers: 2, threadsPerWorker: 1 });
    const snap = new SnapshotEngine(model, tok);
    try {
      same(await eng.generate(prompts, 3, o), ref, 'workers');
      // an odd split: 7 sequences of one prompt over 2 workers (rows 0..2 and 3..6 share the media)
      same(await eng.generate(prompts.slice(1, 2), 7, o), await new InProcessEngine(model, tok).generate(prompts.slice(1, 2), 7, o), 'workers, one prompt');
      same(await snap.generate(prompts, 3, o), ref, 'snapshot');
    } finally {
      await eng.close();
      await snap.close();
      model.dispose();
    }
  });
}

test('a GRPO step of a multimodal task through 2 workers equals the in-process step bit for bit', async () => {
  const task = TASKS[0][1];
  const a = setup(task, 7), b = setup(task, 7);
  const cfg = { maxSteps: 2, batchSize: 3, numGenerations: 4, maxCompletionLength: 3, learningRate: 1e-2, seed: 3, numIterations: 2 };
  const eng = await WorkerEngine.create(b.model, b.tok, { workers: 2, threadsPerWorker: 1 });
  try {
    const t1 = new GrpoTrainer({ model: a.model, tokenizer: a.tok, task, rewardFunctions: rewards(), config: cfg });
    const t2 = new GrpoTrainer({ model: b.model, tokenizer: b.tok, task, rewardFunctions: rewards(), config: cfg, engine: eng });
    for (let i = 0; i < 2; i++) {
      const x = await t1.step(), y = await t2.step();
      assert.is(y.reward, x.reward);
      assert.is(y.loss, x.loss);
    }
    assert.ok(sameWeights(a.model, b.model), 'the same weights after 2 steps');
    // the steps trained something: the weights left their start
    const fresh = setup(task, 7);
    assert.not.ok(sameWeights(a.model, fresh.model));
    fresh.model.dispose();
  } finally {
    await eng.close();
    a.model.dispose();
    b.model.dispose();
  }
});

test('grpo train --task beep_count --rollout-engine workers: the same run, bit for bit, as in-process', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-mm-workers-'));
  try {
    const base = {
      task: 'beep_count', trainSize: 12, testSize: 4, seed: 5, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, maxSeqLen: 48, encoderHidden: 6,
      maxSteps: 2, batchSize: 2, numGenerations: 2, numIterations: 2, maxCompletionLength: 3, evalSteps: 0, evalLimit: 2, evalK: 1,
      rewards: ['format'], progress: false, saveSteps: 0,
    };
    const quiet = { log: () => {} };
    const local = await runTrain({ ...base, outputDir: path.join(root, 'local') }, quiet);
    const workers = await runTrain({ ...base, outputDir: path.join(root, 'workers'), rolloutEngine: 'workers', rolloutWorkers: 2 }, quiet);
    const a = readSafetensors(path.join(local.checkpoint, 'model.safetensors')).tensors;
    const b = readSafetensors(path.join(workers.checkpoint, 'model.safetensors')).tensors;
    assert.ok([...a.keys()].some((k) => k.startsWith('audio.')), 'the run trained the model with an audio encoder');
    assert.equal([...a.keys()], [...b.keys()]);
    for (const [k, t] of a) assert.ok(Buffer.from(t.data.buffer).equals(Buffer.from(b.get(k)!.data.buffer)), k);
    assert.is(workers.lastMetrics!.loss, local.lastMetrics!.loss);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('the remote engine refuses a media prompt before any request, naming the prompt and why', async () => {
  const task = TASKS[1][1];
  const { tok, model } = setup(task);
  // a URL nothing listens on: the refusal must come before any connection is tried
  const eng = new RemoteEngine({ urls: ['http://127.0.0.1:9'], tokenizer: tok, vocabSize: model.vocabSize, retries: 0 });
  try {
    const e = await eng.generate(['1+1=', task.train[0]], 2, o).then(() => null, (x: Error) => x);
    assert.ok(e);
    assert.match(e!.message, /remote:http:\/\/127\.0\.0\.1:9: prompts\[1\]: expected a text prompt but received one with media \(1 audio\); the completions API carries token ids only/);
    assert.is(eng.stats.requests, 0);
  } finally {
    await eng.close();
    model.dispose();
  }
});

test('grpo train --rollout-engine remote and grpo eval --endpoint with a multimodal task fail at startup, writing nothing', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-mm-remote-'));
  try {
    const out = path.join(root, 'run');
    const base = { task: 'clevr_count', trainSize: 8, testSize: 4, maxSteps: 1, progress: false, outputDir: out };
    const e = await runTrain({ ...base, rolloutEngine: 'remote', rolloutUrls: ['http://127.0.0.1:9'] }, { log: () => {} }).then(() => null, (x: Error) => x);
    assert.ok(e, 'the run must fail');
    assert.match(e!.message, /^--rollout-engine remote: expected a text task but clevr_count is multimodal .*Use --rollout-engine in-process or workers/);
    assert.not.ok(fs.existsSync(out), 'no run directory');
    const e2 = await runEval({ ...base, endpoint: 'http://127.0.0.1:9' }, { log: () => {} }).then(() => null, (x: Error) => x);
    assert.match(e2!.message, /^--endpoint: expected a text task but clevr_count is multimodal/);
    assert.not.ok(fs.existsSync(out));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('grpo serve of a multimodal checkpoint: says it serves text prompts only, answers text prompts, refuses media placeholders', async () => {
  const task = TASKS[0][1];
  const { tok, model } = setup(task);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-mm-serve-'));
  const lines: string[] = [];
  let s: Awaited<ReturnType<typeof startServe>> | null = null;
  try {
    const dir = writeRolloutWeights(root, model, 2);
    s = await startServe({ checkpoint: dir, port: 0, host: '127.0.0.1' }, (m) => lines.push(m));
    assert.ok(lines.some((l) => /a multimodal model: this server serves text prompts only/.test(l)), lines.join('\n'));
    const post = (prompt: unknown) =>
      fetch(`${s!.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, n: 2, max_tokens: 3, seed: 4, logprobs: 0, return_token_ids: true }) });
    // a text prompt: the in-process engine's tokens for the same weights and seed (text rows only)
    const text = [tok.bosId, ...tok.encode('all=')];
    const r = await post([text]);
    assert.is(r.status, 200);
    const j = (await r.json()) as { choices: { token_ids: number[] }[] };
    const ref = await new InProcessEngine(model, tok).generate(['all='], 2, { maxCompletionLength: 3, temperature: 1, seed: 4 });
    // the server cuts nothing (no stop strings) but stops at EOS, as the rollout does
    assert.equal(j.choices.map((c) => c.token_ids), ref.tokens.map((t) => [...t]));
    // a prompt holding the image placeholders (token ids, or the tag the tokenizer expands)
    for (const p of [[[tok.bosId, ...tok.encode(task.train[0].prompt)]], task.train[0].prompt]) {
      const bad = await post(p);
      assert.is(bad.status, 400);
      const err = ((await bad.json()) as { error: { message: string; param: string } }).error;
      assert.is(err.param, 'prompt');
      assert.match(err.message, new RegExp(`prompt\\[0\\]: token 1 is the <image> placeholder id ${tok.imageTokenId}; this server serves text prompts only`));
    }
  } finally {
    await s?.close();
    model.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
