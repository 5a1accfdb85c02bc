// The RolloutEngine seam: the trainer samples only through its engine and tells it about every
// optimiser update; the in-process engine gives exactly the tokens of a direct rollout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { rollout, type PromptInput, type SamplingOptions } from '../lib/trainer/rollout';
import { InProcessEngine, type RolloutEngine } from '../lib/rollout/engine';
import type { PolicyModel } from '../lib/models';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';

test('in-process engine: same tokens and log-probs as rollout(), policy version recorded', async () => {
  const m = tinyModel(5);
  const eng = new InProcessEngine(m, tok);
  const o = { maxCompletionLength: 4, temperature: 1, seed: 11 };
  const prompts = task.train.slice(0, 3);
  const a = await eng.generate(prompts, 2, o);
  const b = await rollout(m, tok, prompts, 2, o);
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]));
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]));
  assert.equal(a.policyVersion, [0, 0, 0, 0, 0, 0]);
  await eng.syncWeights(m, 3);
  assert.equal((await eng.generate(prompts, 1, o)).policyVersion, [3, 3, 3]);
  m.dispose();
});

test('the trainer samples only through its engine and syncs it after every update', async () => {
  const syncs: number[] = [];
  let calls = 0;
  const model = tinyModel(7);
  const inner = new InProcessEngine(model, tok);
  const engine: RolloutEngine = {
    name: 'spy',
    generate: (p: PromptInput[], r: number, o: SamplingOptions & { seed: number }) => { calls++; return inner.generate(p, r, o); },
    syncWeights: async (m: PolicyModel, v: number) => { syncs.push(v); await inner.syncWeights(m, v); },
    close: async () => {},
  };
  const cfg = tinyConfig({ maxSteps: 2, numIterations: 2, beta: 0 });
  const t = new GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg, engine });
  await t.step();
  await t.step();
  assert.is(calls, 2);
  assert.equal(syncs, [1, 2, 3, 4]);
  // the default engine gives the same run, bit for bit
  const model2 = tinyModel(7);
  const t2 = new GrpoTrainer({ model: model2, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
  await t2.step();
  await t2.step();
  assert.ok(sameWeights(model, model2));
  model.dispose();
  model2.dispose();
});

test.run();
