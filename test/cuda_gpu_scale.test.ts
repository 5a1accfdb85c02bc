// On a real GPU only (`npm run test:gpu`, GRPO_TEST_GPU=1): CPU <-> CUDA agreement at the sizes
// GRPO runs at (V = 151936, Qwen's vocabulary), and identical sampled tokens for the same seed.
// Skipped under the emulator (`npm test`), where test/cuda_ops.test.ts and
// test/cuda_sample.test.ts run the same kernels at emulator-sized shapes.
import { ON_GPU, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { groupAdvantagesSync, grpoLossFromLogitsSync, logprobsSync, sampleSync } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import { close, randn, rng } from './helpers';
import { refToHalf, refWiden } from './reference/logprobs';

const gpuTest = ON_GPU ? test : test.skip;
const V = 151936;

gpuTest('logprobs bf16 64 x 151936: CUDA agrees with the CPU', () => {
  const N = 64;
  const z = refToHalf(randn(rng(1), N * V, 2), 'bfloat16');
  const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
  const cpu = logprobsSync({ logits: z, dtype: 'bfloat16', vocabSize: V, targets });
  const dz = DeviceTensor.fromHost(z, { dtype: 'bfloat16' }), dt = DeviceTensor.fromHost(targets);
  const g = cuda.logprobsSync({ logits: dz, vocabSize: V, targets: dt });
  close(g.logp.toHost() as Float32Array, cpu.logp, 1e-5, 1e-5, 'logp');
  close(g.entropy!.toHost() as Float32Array, cpu.entropy!, 1e-5, 1e-5, 'entropy');
  for (const t of [dz, dt, g.logp, g.entropy]) t!.dispose();
});

for (const cfg of [{}, { importanceSamplingLevel: 'sequence' as const, lossType: 'grpo' as const }, { beta: 0.04, topEntropyQuantile: 0.8 }]) {
  gpuTest(`grpoLossFromLogits bf16 8 x 32 x 151936 ${JSON.stringify(cfg)}: CUDA agrees with the CPU`, () => {
    const S = 8, T = 32, N = S * T;
    const r = rng(2);
    const z = refToHalf(randn(r, N * V, 2), 'bfloat16');
    const targets = new Int32Array(N).map(() => Math.floor(r() * V));
    const advantages = randn(r, S);
    const mask = new Uint8Array(N).map((_, n) => (n % T < T - (Math.floor(n / T) % 5) ? 1 : 0));
    const oldLogp = new Float32Array(N).fill(-12);
    const refLogp = new Float32Array(N).fill(-12.1);
    const cpu = grpoLossFromLogitsSync({ logits: z, dtype: 'bfloat16', vocabSize: V, targets, advantages, mask, oldLogp, refLogp, ...cfg });
    const d = {
      z: DeviceTensor.fromHost(z, { dtype: 'bfloat16' }), t: DeviceTensor.fromHost(targets), a: DeviceTensor.fromHost(advantages),
      m: DeviceTensor.fromHost(mask), o: DeviceTensor.fromHost(oldLogp), r: DeviceTensor.fromHost(refLogp),
    };
    const g = cuda.grpoLossFromLogitsSync({ logits: d.z, vocabSize: V, targets: d.t, advantages: d.a, mask: d.m, oldLogp: d.o, refLogp: d.r, ...cfg });
    close([g.loss], [cpu.loss], 1e-5, 1e-7, 'loss');
    close(g.gradLogp.toHost() as Float32Array, cpu.gradLogp, 1e-4, 1e-8, 'gradLogp');
    close(refWiden(g.gradLogits!.toHost() as Uint16Array, 'bfloat16'), refWiden(cpu.gradLogits as Uint16Array, 'bfloat16'), 1e-2, 1e-9, 'gradLogits');
    for (const t of [...Object.values(d), g.logp, g.entropy, g.gradLogp, g.gradLogits]) t!.dispose();
  });
}

for (const p of [{}, { topK: 50 }, { topP: 0.95 }, { minP: 0.05 }, { topK: 64, topP: 0.9, minP: 0.02, temperature: 0.8 }, { temperature: 0 }]) {
  gpuTest(`sample 128 x 151936 ${JSON.stringify(p)}: identical tokens on CUDA and CPU`, () => {
    const R = 128;
    const z = randn(rng(3), R * V, 3);
    const cpu = sampleSync({ logits: z, vocabSize: V, seed: 2024, step: 5, truncatedLogprobs: true, ...p });
    const dz = DeviceTensor.fromHost(z);
    const g = cuda.sampleSync({ logits: dz, vocabSize: V, seed: 2024, step: 5, truncatedLogprobs: true, ...p });
    assert.equal(Array.from(g.tokens.toHost()), Array.from(cpu.tokens));
    close(g.logp.toHost() as Float32Array, cpu.logp, 1e-5, 1e-5, 'logp');
    for (const t of [dz, g.tokens, g.logp, g.truncLogp]) t!.dispose();
  });
}

gpuTest('groupAdvantages 8192 sequences: CUDA gives the CPU bits', () => {
  const S = 8192;
  const r = rng(4);
  const rewards = new Float32Array(S).map(() => Math.round(r() * 10) / 10);
  const cpu = groupAdvantagesSync({ rewards, groupSize: 16 });
  const dr = DeviceTensor.fromHost(rewards);
  const g = cuda.groupAdvantagesSync({ rewards: dr, groupSize: 16 });
  assert.equal(Array.from(g.advantages.toHost()), Array.from(cpu.advantages));
  for (const t of [dr, g.advantages, g.rewards, g.groupMean, g.groupStd]) t.dispose();
});

test('this file only measures on a real GPU', () => {
  assert.ok(true);
});

test.run();
