// Trainer invariants: loss-type selection, μ iterations reuse the old log-probs from generation,
// β = 0 has no reference model and no reference pass, dynamic sampling, reward failures,
// gradient accumulation, packing of completion rows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { grpoLossFromLogits } from '../lib/ops/grpo_loss_from_logits';
import { GrpoTrainer, LossFn } from '../lib/trainer/grpo';
import { packBatch, gatherCompletionLogits, scatterCompletionGrad, sliceBatch } from '../lib/trainer/batch';
import { learningRateAt } from '../lib/trainer/schedule';
import { supervisedFineTune } from '../lib/trainer/sft';
import { RewardFunction } from '../lib/rewards';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';

type LossArgs = Parameters<LossFn>[0] & Record<string, unknown>;

function spy() {
  const calls: LossArgs[] = [];
  const results: Awaited<ReturnType<LossFn>>[] = [];
  const fn = (async (o: LossArgs) => {
    calls.push({ ...o, oldLogp: o.oldLogp && Float32Array.from(o.oldLogp as Float32Array), logits: Float32Array.from(o.logits as Float32Array) });
    const r = await grpoLossFromLogits(o as never);
    results.push(r);
    return r;
  }) as unknown as LossFn;
  return { fn, calls, results };
}

test('packBatch / gather / scatter: completion rows map to the rows that predict them', () => {
  const b = packBatch([[1, 5], [1, 6, 7]], [[8, 2], [9]], 0, [false, true]);
  assert.is(b.L, 4);
  assert.is(b.T, 2);
  assert.equal([...b.tokens], [1, 5, 8, 2, 1, 6, 7, 9]);
  assert.equal([...b.rowIndex], [1, 2, 6, -1]);
  assert.equal([...b.targets], [8, 2, 9, 0]);
  assert.equal([...b.mask], [1, 1, 0, 0], 'sequence 1 masked out');
  const V = 3;
  const logits = Float32Array.from({ length: 2 * 4 * V }, (_, i) => i);
  const g = gatherCompletionLogits(logits, b, V);
  assert.equal([...g], [3, 4, 5, 6, 7, 8, 18, 19, 20, 0, 0, 0]);
  const full = scatterCompletionGrad(g, b, V, 2);
  assert.equal([...full.subarray(3, 9)], [6, 8, 10, 12, 14, 16]);
  assert.equal([...full.subarray(18, 21)], [36, 38, 40]);
  assert.is(full.reduce((s, x) => s + x, 0), 6 + 8 + 10 + 12 + 14 + 16 + 36 + 38 + 40);
  const s = sliceBatch(b, [1]);
  assert.equal([...s.rowIndex], [2, -1]);
  assert.equal([...s.tokens], [1, 6, 7, 9]);
});

test('learning rate: linear warm-up then cosine to minLrRatio', () => {
  const s = { learningRate: 1, totalUpdates: 20, warmupRatio: 0.1, minLrRatio: 0.1 };
  assert.is(learningRateAt(0, s), 0.5);
  assert.is(learningRateAt(1, s), 1);
  assert.ok(Math.abs(learningRateAt(2, s) - 1) < 1e-12);
  assert.ok(Math.abs(learningRateAt(20, s) - 0.1) < 1e-12);
  assert.ok(learningRateAt(10, s) < 1 && learningRateAt(10, s) > 0.1);
});

test('lossType is passed through; dapo gets the step-wide token count, the others none', async () => {
  for (const lossType of ['grpo', 'bnpo', 'dapo', 'dr_grpo', 'seq_sum'] as const) {
    const s = spy();
    const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig({ lossType, gradientAccumulationSteps: 2 }), lossFn: s.fn });
    await tr.step();
    assert.is(s.calls.length, 2, 'one loss call per micro-batch');
    let masked = 0;
    for (const c of s.calls) {
      assert.is(c.lossType, lossType);
      assert.is(c.gradient, 'inplace');
      assert.is(c.maxCompletionLength, 4);
      for (const m of c.mask as Uint8Array) masked += m;
    }
    for (const c of s.calls) assert.is(c.numItemsInBatch, lossType === 'dapo' ? masked : undefined);
  }
});

test('μ iterations: every iteration gets the same old log-probs, the sampler\'s; μ = 1 passes none', async () => {
  const s = spy();
  const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig({ numIterations: 3, learningRate: 5e-2 }), lossFn: s.fn });
  const m = await tr.step();
  assert.is(s.calls.length, 3);
  assert.is(tr.state.updates, 3);
  const old0 = s.calls[0].oldLogp as Float32Array;
  assert.ok(old0 instanceof Float32Array);
  for (const c of s.calls) assert.equal([...(c.oldLogp as Float32Array)], [...old0], 'ℓ_old is reused, not recomputed');
  // the first iteration's policy is the sampling policy: ℓ equals ℓ_old (ratio 1) up to float error
  const mask = s.calls[0].mask as Uint8Array;
  for (let i = 0; i < mask.length; i++) if (mask[i]) assert.ok(Math.abs(s.results[0].logp[i] - old0[i]) < 1e-4, `token ${i}: ℓ ${s.results[0].logp[i]} vs ℓ_old ${old0[i]}`);
  // later iterations see an updated policy: the logits changed, ℓ_old did not
  assert.not.equal([...(s.calls[2].logits as Float32Array)], [...(s.calls[0].logits as Float32Array)]);
  assert.ok(Math.abs(s.results[2].metrics.ratio - 1) > 1e-6, 'ratio moved away from 1');
  assert.is(typeof m.loss, 'number');

  const s1 = spy();
  const tr1 = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig(), lossFn: s1.fn });
  await tr1.step();
  assert.is(s1.calls.length, 1);
  assert.is(s1.calls[0].oldLogp, undefined, 'μ = 1: ℓ_old = ℓ detached inside the kernel');
});

test('β = 0: no reference model is made and no reference pass runs; β > 0: frozen reference, ℓ_ref passed', async () => {
  const model = tinyModel();
  let clones = 0;
  const clone = model.clone.bind(model);
  model.clone = () => (clones++, clone());
  const s = spy();
  const tr = new GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig({ beta: 0 }), lossFn: s.fn });
  const m = await tr.step();
  assert.is(tr.refModel, null);
  assert.is(clones, 0);
  assert.is(s.calls[0].refLogp, undefined);
  assert.is(m['time/reference'], 0);
  assert.is(m.kl, undefined);

  const model2 = tinyModel();
  const s2 = spy();
  const tr2 = new GrpoTrainer({ model: model2, tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig({ beta: 0.1 }), lossFn: s2.fn });
  const frozen = tr2.refModel!;
  assert.ok(frozen && frozen !== model2);
  assert.ok(sameWeights(frozen, model2));
  await tr2.step();
  await tr2.step();
  assert.ok(s2.calls[0].refLogp instanceof Float32Array);
  assert.is(s2.calls[0].beta, 0.1);
  assert.ok(sameWeights(frozen, tinyModel()), 'the reference never moves');
  assert.not.ok(sameWeights(frozen, model2), 'the policy does');
  // at the first step policy == reference, so the KL is 0
  assert.ok(Math.abs(s2.results[0].metrics.kl) < 1e-5, String(s2.results[0].metrics.kl));
});

test("klEstimator 'full': the reference pass hands its completion logits (per micro-batch) to the loss, KL 0 at step 1 and > 0 after", async () => {
  const model = tinyModel();
  const s = spy();
  const tr = new GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig({ beta: 0.1, klEstimator: 'full', gradientAccumulationSteps: 2 }), lossFn: s.fn });
  await tr.step();
  assert.is(s.calls.length, 2, 'two micro-batches');
  for (const [i, c] of s.calls.entries()) {
    const o = c as unknown as { refLogits: Float32Array; refLogp?: Float32Array; logits: Float32Array; klEstimator: string };
    assert.is(o.klEstimator, 'full');
    assert.is(o.refLogp, undefined);
    assert.ok(o.refLogits instanceof Float32Array && o.refLogits.length === o.logits.length, `call ${i}: refLogits [n·T·V]`);
    // policy == reference at the first step: the same completion logits, so KL = 0
    for (let k = 0; k < o.logits.length; k++) assert.ok(Math.abs(o.refLogits[k] - o.logits[k]) <= 1e-5 * (1 + Math.abs(o.logits[k])), `call ${i}: logit ${k}`);
    assert.ok(Math.abs(s.results[i].metrics.kl) < 1e-6, String(s.results[i].metrics.kl));
  }
  await tr.step();
  assert.ok(s.results[2].metrics.kl > 0, `KL after an update: ${s.results[2].metrics.kl}`);
});

test('dynamic sampling: groups whose rewards all agree are dropped and more are drawn, up to the cap', async () => {
  const constant: RewardFunction = { name: 'constant', compute: (c) => c.completions.map(() => 1) };
  const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: [constant], config: tinyConfig({ dynamicSampling: true, maxDynamicSamplingRounds: 2 }) });
  const m = await tr.step();
  assert.is(m['dynamic_sampling/rounds'], 2);
  assert.is(m['dynamic_sampling/kept_groups'], 0);
  assert.is(m.skipped, true);
  assert.is(m.frac_reward_zero_std, 1);
  assert.is(tr.state.cursor, 6, 'two rounds of 3 prompts drawn');
  // every group has spread: one round suffices
  const spread: RewardFunction = { name: 'spread', compute: (c) => c.completions.map((_, i) => i % 2) };
  const tr2 = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: [spread], config: tinyConfig({ dynamicSampling: true }) });
  const m2 = await tr2.step();
  assert.is(m2['dynamic_sampling/rounds'], 1);
  assert.is(m2['dynamic_sampling/kept_groups'], 3);
});

test("with rewardErrors 'no_reward', a reward function that throws or returns nothing gives no reward, is reported, and training goes on", async () => {
  const bad: RewardFunction = { name: 'bad', compute: () => { throw new Error('nope'); } };
  const none: RewardFunction = { name: 'none', compute: () => undefined as unknown as number[] };
  const seen: string[] = [];
  const tr = new GrpoTrainer({
    model: tinyModel(), tokenizer: tok, task, rewardFunctions: [...rewards(), bad, none], config: tinyConfig({ rewardErrors: 'no_reward' }),
    onRewardFailure: (f) => seen.push(f.name),
  });
  const m = await tr.step();
  assert.equal(seen, ['bad', 'none']);
  assert.is(tr.rewardFailures.length, 2);
  assert.ok(Number.isNaN(m['rewards/bad/mean'] as number));
  assert.ok(Number.isFinite(m.reward as number));
  const allBad = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: [bad], config: tinyConfig({ rewardErrors: 'no_reward' }) });
  const m2 = await allBad.step();
  assert.is(m2.no_reward, 12, 'every sequence without reward (advantage 0)');
});

test('a reward that is constant for constantRewardSteps steps is reported once and flagged in the metrics', async () => {
  const zero: RewardFunction = { name: 'zero', compute: (c) => c.completions.map(() => 0) };
  const seen: { name: string; value: number; steps: number; at: number }[] = [];
  const tr = new GrpoTrainer({
    model: tinyModel(), tokenizer: tok, task, rewardFunctions: [zero, rewards()[2]], config: tinyConfig({ maxSteps: 5 }),
    constantRewardSteps: 3, onRewardConstant: (c, at) => seen.push({ name: c.name, value: c.value, steps: c.steps, at }),
  });
  const ms = [];
  for (let i = 0; i < 5; i++) ms.push(await tr.step());
  assert.equal(ms.map((m) => m['rewards/zero/constant_steps']), [1, 2, 3, 4, 5]);
  assert.equal(ms.map((m) => m['rewards/zero/stuck']), [false, false, true, true, true]);
  assert.equal(seen, [{ name: 'zero', value: 0, steps: 3, at: 3 }]);
  // the digit-fraction reward varies between completions: never flagged
  assert.ok(ms.every((m) => m['rewards/digits/stuck'] === false));
});

for (const agg of [{ lossType: 'dapo' }, { lossAggMode: 'token-mean' }, { lossAggMode: 'seq-mean-token-sum' }, { lossAggMode: 'seq-mean-token-mean' }, { lossAggMode: 'seq-mean-token-sum-norm' }]) {
test(`gradient accumulation: 1 and 3 micro-batches give the same update (${JSON.stringify(agg)}: step-wide normalisers)`, async () => {
  const a = tinyModel(), b = tinyModel();
  const cfg = tinyConfig({ ...agg, maxGradNorm: 0 });
  await new GrpoTrainer({ model: a, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg }).step();
  await new GrpoTrainer({ model: b, tokenizer: tok, task, rewardFunctions: rewards(), config: { ...cfg, gradientAccumulationSteps: 3 } }).step();
  const sa = a.stateDict(), sb = b.stateDict();
  let worst = 0;
  for (const [k, t] of sa) {
    const u = sb.get(k)!;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i] - u.data[i]));
  }
  assert.ok(worst < 1e-5, `max weight difference ${worst}`);
});
}

test('SFT: lowers the NLL on its examples; shouldStop ends it early', async () => {
  const m = tinyModel(3, 32);
  const losses: number[] = [];
  const r = await supervisedFineTune(m, tok, task.train, {
    steps: 40, batchSize: 16, learningRate: 1e-2, seed: 1,
    onStep: (s) => void losses.push(s.loss),
    shouldStop: (step) => step === 30,
  });
  assert.is(r.steps, 30);
  assert.is(losses.length, 30);
  assert.ok(losses[29] < 0.6 * losses[0], `NLL ${losses[0]} -> ${losses[29]}`);
});

test('every TRL-named option reaches a working step', async () => {
  const variants: Record<string, unknown>[] = [
    { importanceSamplingLevel: 'sequence', numIterations: 2 },
    { policyLoss: 'cispo', numIterations: 2, epsilonHigh: 4 },
    { policyLoss: 'dual_clip', numIterations: 2 },
    { delta: 1.5, epsilonHigh: 0.28, numIterations: 2 },
    { topEntropyQuantile: 0.5 },
    { scaleRewards: 'batch', lossType: 'grpo' },
    { scaleRewards: 'none', lossType: 'dr_grpo' },
    { advantageEstimator: 'rloo', lossType: 'bnpo' },
    { beta: 0.1, klEstimator: 'k1' },
    { beta: 0.1, klEstimator: 'low_var_kl', lossType: 'seq_sum' },
    { policyLoss: 'sapo', lossType: 'grpo', sapoTemperaturePos: 1, sapoTemperatureNeg: 1.05, numIterations: 2 },
    { policyLoss: 'geo_mean', epsilon: 0.4, epsilonHigh: 0.4, numIterations: 2 },
    { policyLoss: 'cispo', cispoClip: 'range', epsilonHigh: 0.28, numIterations: 2 },
    { beta: 0.1, klEstimator: 'k3+', useBiasCorrectionKl: true, numIterations: 2 },
    { beta: 0.1, klEstimator: 'abs' },
    { beta: 0.1, klEstimator: 'full', gradientAccumulationSteps: 2, entropyCoef: 0.01 },
    { policyLoss: 'vespo', numIterations: 2, vespoKPos: 1.5 },
    { entropyCoef: 0.01, topEntropyQuantile: 0.5, numIterations: 2 },
    { policyLoss: 'clip_cov', clipCovRatio: 0.05, clipCovLb: -5, numIterations: 2 },
    { policyLoss: 'kl_cov', klCovRatio: 0.05, ppoKlCoef: 0.2, numIterations: 2 },
    { lossType: 'luspo', importanceSamplingLevel: 'sequence', clampSequenceLogRatio: true, numIterations: 2 },
    { lossAggMode: 'seq-mean-token-sum-norm', lossScaleFactor: 8, gradientAccumulationSteps: 2 },
    { maskTruncatedCompletions: true, stop: ['1'] },
    { temperature: 0.7, topK: 5, topP: 0.9, minP: 0.05 },
    { rewardWeights: [2, 0.5, 1], weightDecay: 0.01, maxGradNorm: 0.5 },
  ];
  for (const v of variants) {
    const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: tinyConfig(v) });
    const m = await tr.step();
    assert.ok(Number.isFinite(m.loss as number) && Number.isFinite(m.grad_norm as number), `${JSON.stringify(v)}: loss ${m.loss}`);
  }
});

test('stop strings end a completion where they appear', async () => {
  const { rollout } = await import('../lib/trainer/rollout');
  const r = await rollout(tinyModel(), tok, ['1+2='], 16, { maxCompletionLength: 6, seed: 4, stop: ['a', 'e'] });
  let cut = 0;
  r.texts.forEach((t, i) => {
    const at = Math.min(...['a', 'e'].map((c) => (t.includes(c) ? t.indexOf(c) : Infinity)));
    if (at !== Infinity) {
      cut++;
      assert.is(at, t.length - 1, `'${t}' continues after its stop string`);
      assert.not.ok(r.truncated[i]);
      assert.is(r.logprobs[i].length, r.tokens[i].length);
    }
  });
  assert.ok(cut > 0, 'some completion hit a stop string');
});

test('config errors name the option', () => {
  assert.throws(() => new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: { numGenerations: 0 } }), /numGenerations/);
  assert.throws(() => new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: { rewardWeights: [1] } }), /rewardWeights/);
  assert.throws(() => new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: { temperature: 0 } }), /temperature/);
});

test.run();
