// grpoLossFromHidden's CUDA kernel (cuda/grpo_loss_from_hidden.cu) run through the CPU emulator
// (cuda/emu): against the float64 reference and the CPU op, for every option family, chunks that
// cut sequences, shapes that leave partial 16×16 gemm tiles (V, D not multiples of 16), bf16
// weight and hidden states, accumulation into a given gradWeight, the emulator's thread orders,
// and the dispatch of the public op on device tensors. Emulated blocks are real threads: shapes
// stay small.
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { grpoLossFromHiddenSync, GrpoLossConfig, opBackends } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import { close, closeScalar, normal, randn, rng } from './helpers';
import { refGrpoLossFromHidden, refLinear } from './reference/grpo_loss_from_hidden';
import { refLogprobs, refToHalf, refWiden } from './reference/logprobs';

const CONFIGS: [string, GrpoLossConfig][] = [
  ['defaults (dapo, token)', {}],
  ['grpo + k3 beta', { lossType: 'grpo', beta: 0.04 }],
  ['sequence level (GSPO)', { importanceSamplingLevel: 'sequence', lossType: 'grpo' }],
  ['cispo + dr_grpo', { policyLoss: 'cispo', lossType: 'dr_grpo' }],
  ['top entropy 0.5 + seq_sum + low_var_kl', { topEntropyQuantile: 0.5, lossType: 'seq_sum', beta: 0.1, klEstimator: 'low_var_kl' }],
  ['vespo (TRL)', { policyLoss: 'vespo' }],
  ['kl_cov (verl) + seq-mean-token-mean', { policyLoss: 'kl_cov', klCovRatio: 0.2, lossAggMode: 'seq-mean-token-mean' }],
  ['entropy bonus (entropyCoef) + grpo + k3 beta', { entropyCoef: 0.05, lossType: 'grpo', beta: 0.04 }],
  ['entropy bonus (negative entropyCoef) + top entropy 0.5', { entropyCoef: -0.1, topEntropyQuantile: 0.5 }],
];

function inputs(seed: number, S: number, T: number, V: number, D: number) {
  const r = rng(seed);
  const N = S * T;
  const hidden = randn(r, N * D);
  const weight = randn(r, V * D, 0.5);
  const targets = new Int32Array(N).map(() => Math.floor(r() * V));
  const advantages = new Float32Array(S).map(() => normal(r));
  const mask = new Uint8Array(N).fill(1);
  for (let i = 0; i < S; i++) for (let t = T - (i % 3); t < T; t++) mask[i * T + t] = 0;
  const { logp } = refLogprobs(refLinear(refWiden(hidden), refWiden(weight), D, V), V, targets);
  const oldLogp = Float32Array.from(logp, (x) => x + 0.25 * normal(r));
  const refLogp = Float32Array.from(logp, (x) => x + 0.5 * normal(r));
  return { hidden, weight, targets, advantages, mask, oldLogp, refLogp };
}
const up = (a: Float32Array | Int32Array | Uint8Array) => DeviceTensor.fromHost(a);
const down = (t: DeviceTensor | null) => t!.toHost() as Float32Array;

for (const [name, cfg] of CONFIGS) {
  test(`cuda grpoLossFromHidden ${name}: float64 reference and the CPU op`, () => {
    const S = 2, T = 3, V = 37, D = 19, tau = 0.8;
    const inp = inputs(name.length * 13, S, T, V, D);
    const want = refGrpoLossFromHidden({ h: refWiden(inp.hidden), W: refWiden(inp.weight), D, V, targets: inp.targets, advantages: inp.advantages, mask: inp.mask, oldLogp: inp.oldLogp, refLogp: inp.refLogp, temperature: tau }, cfg);
    const cpu = grpoLossFromHiddenSync({ ...inp, hiddenSize: D, vocabSize: V, temperature: tau, ...cfg });
    const d = { hidden: up(inp.hidden), weight: up(inp.weight), targets: up(inp.targets), advantages: up(inp.advantages), mask: up(inp.mask), oldLogp: up(inp.oldLogp), refLogp: up(inp.refLogp) };
    for (const [order, chunkSize] of [[0, 4], [2, 1], [1, 100]]) {
      setOrder(order, 7);
      const g = cuda.grpoLossFromHiddenSync({ ...d, hiddenSize: D, vocabSize: V, temperature: tau, chunkSize, ...cfg });
      setOrder(0);
      const tag = `order ${order}, chunkSize ${chunkSize}`;
      closeScalar(g.loss, want.loss, 1e-4, 1e-6, `${tag}: loss`);
      close(down(g.logp), want.logp, 1e-5, 1e-5, `${tag}: logp`);
      close(down(g.entropy), want.entropy, 1e-5, 1e-5, `${tag}: entropy`);
      close(down(g.gradLogp), want.gradLogp, 1e-4, 1e-6, `${tag}: gradLogp`);
      close(down(g.gradHidden), want.gradHidden, 1e-4, 1e-6, `${tag}: gradHidden`);
      close(down(g.gradWeight), want.gradWeight, 1e-4, 1e-6, `${tag}: gradWeight`);
      closeScalar(g.loss, cpu.loss, 1e-5, 1e-7, `${tag}: loss vs CPU`);
      close(down(g.gradHidden), cpu.gradHidden!, 1e-5, 1e-7, `${tag}: gradHidden vs CPU`);
      close(down(g.gradWeight), cpu.gradWeight!, 1e-5, 1e-7, `${tag}: gradWeight vs CPU`);
      for (const k of ['kl', 'entropy', 'clipLow', 'clipHigh', 'clipRegion', 'ratio', 'maskedTokens'] as const)
        closeScalar(g.metrics[k], cpu.metrics[k], 1e-5, 1e-7, `${tag}: metrics.${k} vs CPU`);
      for (const t of [g.logp, g.entropy, g.gradLogp, g.gradHidden, g.gradWeight]) t?.dispose();
    }
    for (const t of Object.values(d)) t.dispose();
  });
}

test('cuda grpoLossFromHidden bfloat16 weight + hidden, gradWeight accumulated, via the dispatching op', () => {
  const S = 2, T = 2, V = 21, D = 17;
  const inp = inputs(5, S, T, V, D);
  const w16 = refToHalf(inp.weight, 'bfloat16'), h16 = refToHalf(inp.hidden, 'bfloat16');
  const want = refGrpoLossFromHidden({ h: refWiden(h16, 'bfloat16'), W: refWiden(w16, 'bfloat16'), D, V, targets: inp.targets, advantages: inp.advantages, mask: inp.mask, oldLogp: inp.oldLogp, refLogp: inp.refLogp }, { beta: 0.04 });
  const start = Float32Array.from({ length: V * D }, (_, i) => (i % 7) * 0.01);
  const gw = up(start);
  const d = {
    hidden: DeviceTensor.fromHost(h16, { dtype: 'bfloat16' }), weight: DeviceTensor.fromHost(w16, { dtype: 'bfloat16' }),
    targets: up(inp.targets), advantages: up(inp.advantages), mask: up(inp.mask), oldLogp: up(inp.oldLogp), refLogp: up(inp.refLogp),
  };
  const g = grpoLossFromHiddenSync({ ...d, hiddenSize: D, vocabSize: V, beta: 0.04, gradWeight: gw, chunkSize: 3 });
  assert.is(opBackends().grpoLossFromHidden, 'cuda');
  assert.is(g.gradWeight, gw);
  closeScalar(g.loss, want.loss, 1e-4, 1e-6, 'loss');
  close(down(g.gradHidden), want.gradHidden, 1e-4, 1e-6, 'gradHidden');
  close(down(gw), Array.from(want.gradWeight, (x, i) => x + start[i]), 1e-4, 1e-6, 'gradWeight = start + ∂L/∂W');
  const skip = grpoLossFromHiddenSync({ ...d, hiddenSize: D, vocabSize: V, beta: 0.04, gradWeight: false, gradHidden: false });
  assert.is(skip.gradWeight, null);
  assert.is(skip.gradHidden, null);
  closeScalar(skip.loss, g.loss, 1e-7, 0, 'loss without gradients');
  for (const t of [...Object.values(d), gw, g.logp, g.entropy, g.gradLogp, g.gradHidden, skip.logp, skip.entropy, skip.gradLogp]) t?.dispose();
});

test('cuda grpoLossFromHidden: mixing host and device tensors, bad shapes are named errors', () => {
  const inp = inputs(1, 2, 2, 11, 5);
  const dh = up(inp.hidden);
  assert.throws(() => grpoLossFromHiddenSync({ ...inp, hidden: dh, hiddenSize: 5, vocabSize: 11 } as never), /hidden is a DeviceTensor but weight is a host array/);
  const dw = up(inp.weight), dt = up(inp.targets), da = up(inp.advantages);
  assert.throws(() => cuda.grpoLossFromHiddenSync({ hidden: dh, weight: dw, targets: dt, advantages: da, hiddenSize: 5, vocabSize: 12 }), /cuda.grpoLossFromHidden: expected a DeviceTensor of 60 elements for weight/);
  assert.throws(() => cuda.grpoLossFromHiddenSync({ hidden: dh, weight: dw, targets: dt, advantages: da, hiddenSize: 5, vocabSize: 11, gradWeight: dw }), /expected a DeviceTensor apart from hidden and weight for gradWeight/);
  for (const t of [dh, dw, dt, da]) t.dispose();
});

test.run();
