// Asynchronous (one-step-off) rollouts: the next step's rollouts are sampled from a weight
// snapshot while the current step trains; samples past maxStaleness are dropped, counted and
// sampled again, so maxStaleness 0 reproduces the synchronous run bit for bit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { InProcessEngine, type RolloutEngine } from '../lib/rollout/engine';
import { SnapshotEngine } from '../lib/rollout/async';
import type { Rollout } from '../lib/trainer/rollout';
import { mixSeed } from '../lib/tasks/rng';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';

const trainer = (model: ReturnType<typeof tinyModel>, cfg: object, engine?: RolloutEngine) =>
  new GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig(cfg), engine });

test('async with maxStaleness 0 equals the synchronous run; every prefetched sample is dropped and counted', async () => {
  const m1 = tinyModel(7), m2 = tinyModel(7);
  const sync = trainer(m1, { maxSteps: 3 });
  const asy = trainer(m2, { maxSteps: 3, asyncRollouts: true, maxStaleness: 0 });
  const S = 3 * 4;
  for (let k = 1; k <= 3; k++) {
    const a = await sync.step(), b = await asy.step();
    assert.is(b.reward, a.reward);
    assert.is(b.loss, a.loss);
    assert.is(b['async/stale_dropped'], k === 1 ? 0 : S, `step ${k}`);
    assert.is(b['async/stale_dropped_total'], (k - 1) * S);
    assert.is(b['async/staleness_mean'], 0);
    assert.is(a['async/stale_dropped'], 0);
    assert.ok(sameWeights(m1, m2), `weights after step ${k}`);
  }
  assert.is(asy.staleDropped, 2 * S);
  await asy.close();
  m1.dispose();
  m2.dispose();
});

test('one-step-off, maxStaleness 1: step k+1 trains on samples of the weights before step k, sampled from a snapshot', async () => {
  const m = tinyModel(7);
  const w0 = m.clone();  // the weights before any update: what the prefetch of step 2 must sample with
  // recorded when called: the prefetch is still running when its step returns
  const seen: { r: Promise<Rollout>; prompts: string[] }[] = [];
  const inner = new SnapshotEngine(m, tok);
  const spy: RolloutEngine = {
    name: 'spy',
    generate: (p, r, o) => {
      const ro = inner.generate(p, r, o);
      seen.push({ r: ro, prompts: p.map((x) => (typeof x === 'string' ? x : x.prompt)) });
      return ro;
    },
    syncWeights: (mm, v) => inner.syncWeights(mm, v),
    close: () => inner.close(),
  };
  const t = trainer(m, { maxSteps: 3, asyncRollouts: true, maxStaleness: 1 }, spy);
  const s1 = await t.step();
  assert.is(s1['async/staleness_mean'], 0);
  assert.is(seen.length, 2, 'step 1 sampled its batch and started the prefetch of step 2');
  assert.equal((await seen[1].r).policyVersion, new Array(12).fill(0));
  const s2 = await t.step();
  assert.is(s2['async/prefetched'], 1);
  assert.is(s2['async/stale_dropped'], 0);
  assert.is(s2['async/staleness_mean'], 1);
  assert.is(s2['async/staleness_max'], 1);
  // the reference: sampling step 2's prompts with the untouched initial weights
  const ref = await new InProcessEngine(w0, tok).generate(seen[1].prompts, 4, { temperature: 1, topK: 0, topP: 1, minP: 0, maxCompletionLength: 4, stop: [], seed: mixSeed(3, 1, 0) });
  const pre = await seen[1].r;
  assert.equal(pre.tokens.map((x) => [...x]), ref.tokens.map((x) => [...x]));
  assert.equal(pre.logprobs.map((x) => [...x]), ref.logprobs.map((x) => [...x]));
  await t.step();
  assert.is(seen.length, 3, 'no prefetch past the last step');
  await t.close();
  await spy.close();
  w0.dispose();
  m.dispose();
});

test('μ = 2: a prefetch is 2 updates old; maxStaleness 1 drops it (= the synchronous run), maxStaleness 2 keeps it', async () => {
  const m1 = tinyModel(7), m2 = tinyModel(7), m3 = tinyModel(7);
  const sync = trainer(m1, { maxSteps: 2, numIterations: 2 });
  const drop = trainer(m2, { maxSteps: 2, numIterations: 2, asyncRollouts: true, maxStaleness: 1 });
  const keep = trainer(m3, { maxSteps: 2, numIterations: 2, asyncRollouts: true, maxStaleness: 2 });
  await sync.step(); await drop.step(); await keep.step();
  await sync.step();
  const d = await drop.step(), k = await keep.step();
  assert.is(d['async/stale_dropped'], 12);
  assert.is(d['async/staleness_mean'], 0);
  assert.ok(sameWeights(m1, m2));
  assert.is(k['async/stale_dropped'], 0);
  assert.is(k['async/staleness_mean'], 2);
  assert.not.ok(sameWeights(m1, m3), 'kept stale samples give another run');
  for (const t of [drop, keep]) await t.close();
  for (const m of [m1, m2, m3]) m.dispose();
});

test('async + rollout IS correction: weights 1 on fresh samples, not on stale ones; μ = 2 takes an old-policy pass', async () => {
  const m = tinyModel(7);
  const t = trainer(m, { maxSteps: 3, numIterations: 2, asyncRollouts: true, maxStaleness: 2, rolloutImportanceSamplingMode: 'token_truncate', rolloutImportanceSamplingThreshold: 1.2 });
  const s1 = await t.step();
  // fresh samples: the training policy's ℓ_old (old-policy pass) equals the sampler's log-probs up to float32 rounding
  assert.ok(Math.abs((s1['rollout_is/weight_mean'] as number) - 1) < 1e-5, `step 1 weight ${s1['rollout_is/weight_mean']}`);
  assert.is(s1['rollout_is/clipped_frac'], 0);
  assert.ok((s1['time/old_policy'] as number) > 0);
  const s2 = await t.step();
  assert.is(s2['async/staleness_mean'], 2);
  assert.ok(Math.abs((s2['rollout_is/weight_mean'] as number) - 1) > 1e-4, `step 2 weight ${s2['rollout_is/weight_mean']}`);
  assert.ok(Number.isFinite(s2.loss as number));
  await t.close();
  m.dispose();
});

test('async options are checked', () => {
  const m = tinyModel(7);
  assert.throws(() => trainer(m, { maxStaleness: -1 }), /expected an integer >= 0 for maxStaleness but received -1/);
  assert.throws(() => trainer(m, { asyncRollouts: 'yes' }), /expected true or false for asyncRollouts/);
  assert.throws(() => trainer(m, { rolloutImportanceSamplingMode: 'tis' }), /expected rolloutImportanceSamplingMode one of token_truncate/);
  assert.throws(() => trainer(m, { asyncRollouts: true }, new InProcessEngine(m, tok)), /asyncRollouts samples while the model trains/);
  m.dispose();
});

test.run();
