// End to end: a short GRPO run on a tiny task must raise the reward (within the test budget).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { tok, task, tinyModel, rewards } from './trainer_setup';

test('GRPO from scratch on 1-digit addition: reward rises', async () => {
  // From a random init almost nothing is well-formed: the digits reward gives the first signal,
  // then the format (digits, then EOS within 4 tokens) and accuracy follow.
  const tr = new GrpoTrainer({
    model: tinyModel(11, 32), tokenizer: tok, task, rewardFunctions: rewards(),
    config: { maxSteps: 30, batchSize: 8, numGenerations: 8, maxCompletionLength: 4, learningRate: 2e-2, warmupRatio: 0, seed: 5 },
  });
  const r: number[] = [];
  for (let i = 0; i < 30; i++) r.push((await tr.step()).reward as number);
  const first = r.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = r.slice(-5).reduce((a, b) => a + b) / 5;
  console.log(`reward: first 5 steps ${first.toFixed(3)}, last 5 steps ${last.toFixed(3)}`);
  assert.ok(last > first + 0.2, `reward did not improve: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
});

test.run();
