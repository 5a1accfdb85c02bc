// Shared by the trainer tests: a tiny built-in model on a tiny arithmetic task.
import { CharTokenizer, createTransformer, PolicyModel } from '../lib/models';
import { arithmeticTask } from '../lib/tasks';
import { accuracyReward, formatReward, RewardFunction } from '../lib/rewards';
import { GrpoConfig } from '../lib/trainer/grpo';

export const tok = new CharTokenizer();
export const task = arithmeticTask({ seed: 1, digits: 1, ops: ['+'], trainSize: 60, testSize: 20 });

export function tinyModel(seed = 7, dModel = 16): PolicyModel {
  return createTransformer({ vocabSize: tok.vocabSize, dModel, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 16, seed });
}

/** A dense signal even for a random model: the fraction of completion characters that are digits. */
export const digitsReward: RewardFunction = {
  name: 'digits',
  compute: (c) => c.completions.map((t) => (t.length ? t.replace(/[^0-9]/g, '').length / t.length : 0)),
};

export const rewards = (): RewardFunction[] => [accuracyReward(), formatReward(), digitsReward];

export const tinyConfig = (o: Partial<GrpoConfig> = {}): Partial<GrpoConfig> => ({
  maxSteps: 4, batchSize: 3, numGenerations: 4, maxCompletionLength: 4, learningRate: 1e-2, seed: 3, ...o,
});

/** Bitwise equality of two state dicts. */
export function sameWeights(a: PolicyModel, b: PolicyModel): boolean {
  const sa = a.stateDict(), sb = b.stateDict();
  if (sa.size !== sb.size) return false;
  for (const [k, t] of sa) {
    const u = sb.get(k);
    if (!u || u.data.length !== t.data.length) return false;
    const x = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    const y = new Uint32Array(u.data.buffer, u.data.byteOffset, u.data.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}
