// Local rollout workers answering garbage, against real child processes made to misbehave by the
// test-only GRPO_ROLLOUT_WORKER_FAULT switch (lib/rollout/rollout_worker.ts): out-of-vocabulary ids,
// NaN or positive log-probs, wrong row or log-prob counts, another weight version, an error, an
// exit. Each share is retried on another worker with exactly the in-process tokens and the worker
// replaced; after the retries the call fails naming the worker and the field; `grpo train` whose
// workers all die exits non-zero and leaves only complete checkpoints. Every test kills its processes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { pathToFileURL } from 'url';
import { InProcessEngine } from '../lib/rollout/engine';
import { WorkerEngine, checkWorkerAnswer } from '../lib/rollout/workers';
import { latestCheckpoint, loadCheckpoint } from '../lib/trainer/checkpoint';
import { tok, task, tinyModel } from './trainer_setup';
import { alive, reap, same, until } from './rollout_workers_helpers';

const o = { maxCompletionLength: 5, temperature: 1, seed: 21, stop: ['='] };
const prompts = task.train.slice(0, 4);
/** Runs `f` with GRPO_ROLLOUT_WORKER_FAULT set (the worker processes it starts inherit it), then unsets it. */
async function withFault<T>(fault: string, f: () => Promise<T>): Promise<T> {
  process.env.GRPO_ROLLOUT_WORKER_FAULT = fault;
  try {
    return await f();
  } finally {
    delete process.env.GRPO_ROLLOUT_WORKER_FAULT;
  }
}

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
      // the k-th process of worker 1 takes its share only once ready
      await eng.ready();
      pids.push(...eng.pids);
      const bad = eng.pids[1];
      same(await eng.generate(prompts, 3, { ...o, stop: [] }), ref);
      assert.is(eng.stats.retries, k + 1, faults[k][0]);
      assert.match(eng.stats.failures[k], `worker 1 (pid ${bad}) ${faults[k][1]}`);
      // a garbage-answering worker is killed, not only avoided
      await until(() => !alive(bad), `worker 1 killed after '${faults[k][0]}'`);
    }
    // past the list: a healthy worker 1, no more retries
    await eng.ready();
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
