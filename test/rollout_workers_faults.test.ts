// Local rollout workers' faults against real child processes (lib/rollout/workers.ts): a worker
// killed (SIGKILL) or stopped (SIGSTOP, a hang past the timeout) mid-request, or answering garbage
// (the test-only GRPO_ROLLOUT_WORKER_FAULT switch of rollout_worker.ts), has its share retried on
// another worker with exactly the in-process tokens, and is replaced with the current weights; with
// no live worker left the call fails naming the engine, the workers and the request; `grpo train`
// then exits non-zero and leaves only complete checkpoints. Every test kills its processes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { pathToFileURL } from 'url';
import { InProcessEngine } from '../lib/rollout/engine';
import { WorkerEngine, checkWorkerAnswer } from '../lib/rollout/workers';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { latestCheckpoint, loadCheckpoint } from '../lib/trainer/checkpoint';
import type { Rollout } from '../lib/trainer/rollout';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';

const o = { maxCompletionLength: 5, temperature: 1, seed: 21, stop: ['='] };
const prompts = task.train.slice(0, 4);
const same = (a: Rollout, b: Rollout) => {
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]));
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]));
  assert.equal(a.truncated, b.truncated);
  assert.equal(a.texts, b.texts);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** Polls `cond` every 20 ms for up to 20 s. */
async function until(cond: () => boolean, what: string) {
  for (let t = 0; t < 1000; t++) {
    if (cond()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}
/** Kills what a test stopped or left (a stopped process dies of SIGKILL too). */
const reap = (pids: number[]) => pids.forEach((p) => alive(p) && process.kill(p, 'SIGKILL'));
/** Runs `f` with GRPO_ROLLOUT_WORKER_FAULT set (the worker processes it starts inherit it), then unsets it. */
async function withFault<T>(fault: string, f: () => Promise<T>): Promise<T> {
  process.env.GRPO_ROLLOUT_WORKER_FAULT = fault;
  try {
    return await f();
  } finally {
    delete process.env.GRPO_ROLLOUT_WORKER_FAULT;
  }
}

test('SIGKILL mid-request: the share is retried on the other worker, same tokens as in-process; the worker is replaced with the current weights', async () => {
  const m = tinyModel(5), m2 = tinyModel(9), m3 = tinyModel(11);
  const eng = await WorkerEngine.create(m, tok, { workers: 2, threadsPerWorker: 1, timeout: 30 });
  const started = eng.pids;
  try {
    // version 3 reaches the workers with this call's rows
    await eng.syncWeights(m2, 3);
    const victim = eng.pids[1];
    // stopped first, so that its request is certainly outstanding when it dies
    process.kill(victim, 'SIGSTOP');
    const call = eng.generate(prompts, 3, o);
    await until(() => eng.stats.requests >= 2, 'both shares sent');
    process.kill(victim, 'SIGKILL');
    const r = await call;
    same(r, await new InProcessEngine(m2, tok).generate(prompts, 3, o));
    assert.equal(r.policyVersion, new Array(12).fill(3));
    assert.is(eng.stats.retries, 1);
    assert.is(eng.stats.failures.length, 1);
    assert.match(eng.stats.failures[0], `worker 1 (pid ${victim}) was killed (SIGKILL)`);
    assert.is(eng.stats.respawns, 1);
    // the pool recovered: a new process at index 1, started with version 3, then given version 4
    const r2 = await eng.generate(prompts, 3, { ...o, seed: 22 });
    assert.is.not(eng.pids[1], victim);
    assert.is(eng.pids[0], started[0]);
    same(r2, await new InProcessEngine(m2, tok).generate(prompts, 3, { ...o, seed: 22 }));
    assert.equal(r2.policyVersion, new Array(12).fill(3));
    await eng.syncWeights(m3, 4);
    const r3 = await eng.generate(prompts, 3, o);
    same(r3, await new InProcessEngine(m3, tok).generate(prompts, 3, o));
    assert.equal(r3.policyVersion, new Array(12).fill(4));
    assert.is(eng.stats.retries, 1, 'no retry once recovered');
  } finally {
    const pids = [...started, ...eng.pids];
    await eng.close();
    reap(pids);
    for (const x of [m, m2, m3]) x.dispose();
  }
});

test('a GRPO step with a worker killed mid-step equals the in-process step bit for bit', async () => {
  const cfg = tinyConfig({ maxSteps: 2 });
  const m1 = tinyModel(7), m2 = tinyModel(7);
  const eng = await WorkerEngine.create(m2, tok, { workers: 2, threadsPerWorker: 1, timeout: 30 });
  const started = eng.pids;
  try {
    const t1 = new GrpoTrainer({ model: m1, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
    const t2 = new GrpoTrainer({ model: m2, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg, engine: eng });
    process.kill(started[0], 'SIGSTOP');
    const s2 = t2.step();
    await until(() => eng.stats.requests >= 2, 'both shares sent');
    process.kill(started[0], 'SIGKILL');
    const a = await t1.step(), b = await s2;
    assert.is(eng.stats.retries, 1);
    assert.is(a.reward, b.reward);
    assert.is(a.loss, b.loss);
    assert.ok(sameWeights(m1, m2));
    // the next step samples with the replacement, given the updated weights
    const a2 = await t1.step(), b2 = await t2.step();
    assert.is(a2.loss, b2.loss);
    assert.ok(sameWeights(m1, m2));
    assert.is(eng.stats.retries, 1);
  } finally {
    const pids = [...started, ...eng.pids];
    await eng.close();
    reap(pids);
    m1.dispose();
    m2.dispose();
  }
});

test('SIGSTOP (a hang): the share times out, the worker is killed and replaced, the share retried; same tokens', async () => {
  const m = tinyModel(5);
  const eng = await WorkerEngine.create(m, tok, { workers: 2, threadsPerWorker: 1, timeout: 1 });
  const started = eng.pids;
  try {
    const victim = started[0];
    process.kill(victim, 'SIGSTOP');
    const t0 = Date.now();
    const r = await eng.generate(prompts, 3, o);
    same(r, await new InProcessEngine(m, tok).generate(prompts, 3, o));
    assert.ok(Date.now() - t0 < 15000, 'bounded by the timeout');
    assert.is(eng.stats.retries, 1);
    assert.match(eng.stats.failures[0], `worker 0 (pid ${victim}) did not answer within 1 s`);
    // killed, not left stopped
    await until(() => !alive(victim), 'the hung worker to be killed');
    same(await eng.generate(prompts, 3, o), r);
    assert.is.not(eng.pids[0], victim);
    assert.is(eng.stats.retries, 1);
  } finally {
    const pids = [...started, ...eng.pids];
    await eng.close();
    reap(pids);
    m.dispose();
  }
});

test('garbage answers (ids, NaN and positive log-probs, row and log-prob counts, weight version, errors, exit): each retried, same tokens; the error names the field', async () => {
  const m = tinyModel(5);
  const V = m.vocabSize;
  // worker 1's k-th process answers with the k-th fault; every call its share is retried on worker 0
  const faults: [string, string][] = [
    ['ids', `answered garbage (tokens[0][0]: expected a token id in [0, ${V}) but received ${V})`],
    ['nan', 'answered garbage (logprobs[0][0]: expected a finite log-prob <= 0 but received NaN)'],
    ['positive', 'answered garbage (logprobs[0][0]: expected a finite log-prob <= 0 but received 0.5)'],
    ['rows', 'answered garbage (tokens: expected 6 rows but received 5)'],
    ['count', 'answered garbage (logprobs[0]: expected '],
    ['version', 'answered garbage (version: expected weights version 0 (the snapshot it was sent) but received 1)'],
    ['error', 'failed (injected fault)'],
    ['exit', 'exited (code 3)'],
  ];
  const ref = await new InProcessEngine(m, tok).generate(prompts, 3, { ...o, stop: [] });
  const pids: number[] = [];
  // set for the whole test: the replacements read it when they start
  process.env.GRPO_ROLLOUT_WORKER_FAULT = `${faults.map((f) => f[0]).join(',')}@1`;
  const eng = await WorkerEngine.create(m, tok, { workers: 2, threadsPerWorker: 1, timeout: 30, retries: 1 });
  try {
    for (let k = 0; k < faults.length; k++) {
      pids.push(...eng.pids);
      const bad = eng.pids[1];
      same(await eng.generate(prompts, 3, { ...o, stop: [] }), ref);
      assert.is(eng.stats.retries, k + 1, faults[k][0]);
      assert.match(eng.stats.failures[k], `worker 1 (pid ${bad}) ${faults[k][1]}`);
      // a garbage-answering worker is killed, not only avoided
      await until(() => !alive(bad), `worker 1 killed after '${faults[k][0]}'`);
    }
    // past the list: a healthy worker 1, no more retries
    same(await eng.generate(prompts, 3, { ...o, stop: [] }), ref);
    assert.is(eng.stats.retries, faults.length);
    assert.is(eng.stats.respawns, faults.length);
  } finally {
    delete process.env.GRPO_ROLLOUT_WORKER_FAULT;
    pids.push(...eng.pids);
    await eng.close();
    reap(pids);
    m.dispose();
  }
});

test('checkWorkerAnswer names what is wrong, and passes a sound answer', () => {
  const g = () => ({ tokens: [Int32Array.of(1, 2), Int32Array.of()], logprobs: [Float32Array.of(-1, 0), Float32Array.of()], truncated: [true, false], version: 2 });
  assert.is(checkWorkerAnswer(g(), 2, 2, 10, 2), null);
  const bad = (f: (x: ReturnType<typeof g>) => unknown, msg: string) => {
    const x = g();
    const y = f(x);
    assert.is(checkWorkerAnswer(y === undefined ? x : y, 2, 2, 10, 2), msg);
  };
  bad(() => null, 'answer: expected an object but received null');
  bad((x) => void (x.tokens[0] = Int32Array.of(1, 2, 3)), 'tokens[0]: expected at most max_tokens 2 ids but received 3');
  bad((x) => void (x.tokens[0][1] = -1), 'tokens[0][1]: expected a token id in [0, 10) but received -1');
  bad((x) => void (x.logprobs[0][0] = -Infinity), 'logprobs[0][0]: expected a finite log-prob <= 0 but received -Infinity');
  bad((x) => void (x.logprobs[1] = Float32Array.of(-1)), 'logprobs[1]: expected 0 log-probs (one per token id) but received 1');
  bad((x) => void ((x.truncated as unknown[])[1] = 1), 'truncated[1]: expected a boolean but received 1');
  bad((x) => void ((x.tokens as unknown[])[1] = [1]), 'tokens[1]: expected an Int32Array but received [1]');
  bad((x) => void x.truncated.pop(), 'truncated: expected 2 rows but received 1');
  bad((x) => ({ ...x, version: undefined }), 'version: expected weights version 2 (the snapshot it was sent) but received undefined');
});

test('every worker dead: the call fails naming the engine, the workers and the request; the next call recovers', async () => {
  const m = tinyModel(5);
  const eng = await WorkerEngine.create(m, tok, { workers: 2, threadsPerWorker: 1, timeout: 30 });
  const started = eng.pids;
  try {
    for (const p of started) process.kill(p, 'SIGSTOP');
    const call = eng.generate(prompts, 3, o);
    await until(() => eng.stats.requests >= 2, 'both shares sent');
    for (const p of started) process.kill(p, 'SIGKILL');
    const e = await call.then(() => null, (x: Error) => x);
    assert.ok(e, 'the call must fail');
    assert.match(e!.message, /^rollout engine workers:2: generate rows (0\.\.5|6\.\.11) \(seed 21, policy version 0\) failed /);
    for (const [i, p] of started.entries()) assert.match(e!.message, `worker ${i} (pid ${p})`);
    assert.match(e!.message, 'no live worker left to run it');
    assert.match(e!.message, 'was killed (SIGKILL)');
    // the replacements serve the next call
    same(await eng.generate(prompts, 3, o), await new InProcessEngine(m, tok).generate(prompts, 3, o));
    assert.ok(eng.pids.every((p) => !started.includes(p)));
  } finally {
    const pids = [...started, ...eng.pids];
    await eng.close();
    reap(pids);
    m.dispose();
  }
});

test('retries 0, one worker answering garbage: the call fails after 1 attempt naming the worker and the field', async () => {
  const m = tinyModel(5);
  const eng = await withFault('ids', () => WorkerEngine.create(m, tok, { workers: 1, threadsPerWorker: 1, retries: 0 }));
  const started = eng.pids;
  try {
    const e = await eng.generate(prompts.slice(0, 2), 2, o).then(() => null, (x: Error) => x);
    assert.is(e?.message, `rollout engine workers:1: generate rows 0..3 (seed 21, policy version 0) failed after 1 attempt: worker 0 (pid ${started[0]}) answered garbage (tokens[0][0]: expected a token id in [0, ${m.vocabSize}) but received ${m.vocabSize})`);
  } finally {
    const pids = [...started, ...eng.pids];
    await eng.close();
    reap(pids);
    m.dispose();
  }
});

test('grpo train with every worker dying at step 2: exit 1 naming the engine, workers and rows; only the complete step-1 checkpoint', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-worker-faults-'));
  try {
    const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');
    const tsx = pathToFileURL(path.resolve(__dirname, '..', 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    const args = [
      'train', '--output-dir', dir, '--digits', '1', '--ops', '+', '--train-size', '20', '--test-size', '4', '--d-model', '16', '--n-layers', '1',
      '--n-heads', '2', '--d-ff', '32', '--max-seq-len', '16', '--max-steps', '3', '--batch-size', '2', '--num-generations', '2',
      '--max-completion-length', '4', '--eval-steps', '0', '--eval-limit', '4', '--eval-k', '2', '--save-steps', '1', '--no-progress',
      '--rollout-engine', 'workers', '--rollout-workers', '2', '--rollout-timeout', '30', '--rollout-retries', '1',
    ];
    // each worker's first process exits at its second generate request (step 2)
    const r = spawnSync(process.execPath, ['--import', tsx, bin, ...args], { encoding: 'utf8', env: { ...process.env, GRPO_ROLLOUT_WORKER_FAULT: 'exit:2', GRPO_NUM_THREADS: '1' }, timeout: 50000 });
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, /grpo: rollout engine workers:2: generate rows \d+\.\.\d+ \(seed \d+, policy version 1\) failed /);
    assert.match(r.stderr, /worker [01] \(pid \d+\)/);
    assert.match(r.stderr, 'exited (code 3)');
    const ck = latestCheckpoint(dir);
    assert.is(path.basename(ck!), 'step-000001');
    assert.is(loadCheckpoint(ck!).meta.step, 1);
    assert.equal(fs.readdirSync(path.join(dir, 'checkpoints')).sort(), ['latest.json', 'step-000001']);
    assert.match(fs.readFileSync(path.join(dir, 'report.html'), 'utf8'), 'failed: rollout engine workers:2');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
