// Local rollout workers' faults against real child processes (lib/rollout/workers.ts): a worker
// killed (SIGKILL) or stopped (SIGSTOP, a hang past the timeout) mid-request has its share retried
// on another worker with exactly the in-process tokens (a GRPO step too), and is replaced with the
// current weights; with no live worker left the call fails naming the engine, the workers and the
// request, and the next call recovers. Garbage answers and `grpo train`'s failure are in
// rollout_workers_garbage.test.ts. Every test kills its processes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InProcessEngine } from '../lib/rollout/engine';
import { WorkerEngine } from '../lib/rollout/workers';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';
import { alive, reap, same, until } from './rollout_workers_helpers';

const o = { maxCompletionLength: 5, temperature: 1, seed: 21, stop: ['='] };
const prompts = task.train.slice(0, 4);

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
    // right away (the replacement may still be starting: worker 0 then takes both shares)
    same(await eng.generate(prompts, 3, o), r);
    assert.is(eng.stats.retries, 1);
    // the pool recovered: a new process at index 1, started with version 3, then given version 4
    await eng.ready();
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
    await eng.ready();
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
  // 2 s: the healthy worker must answer within it even on a loaded box
  const eng = await WorkerEngine.create(m, tok, { workers: 2, threadsPerWorker: 1, timeout: 2 });
  const started = eng.pids;
  try {
    const victim = started[0];
    process.kill(victim, 'SIGSTOP');
    const t0 = Date.now();
    const r = await eng.generate(prompts, 3, o);
    same(r, await new InProcessEngine(m, tok).generate(prompts, 3, o));
    assert.ok(Date.now() - t0 < 15000, 'bounded by the timeout');
    assert.is(eng.stats.retries, 1);
    assert.match(eng.stats.failures[0], `worker 0 (pid ${victim}) did not answer within 2 s`);
    // killed, not left stopped
    await until(() => !alive(victim), 'the hung worker to be killed');
    await eng.ready();
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

test.run();
