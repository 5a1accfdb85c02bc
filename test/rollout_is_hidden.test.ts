// The rollout IS correction (ms-swift's four modes) in grpoLossFromHidden, CPU and CUDA (through
// the emulator): ℓ, loss, metrics and both gradients against the float64 reference (logits h·Wᵀ
// in float64, then the grpoLoss reference with the IS weights), gradients against central
// differences of that reference, the bits of grpoLossFromLogits on the materialised logits, and
// bad input named before native code runs.
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { grpoLossFromHiddenSync, grpoLossFromLogitsSync, GrpoLossConfig, GrpoLossFromHiddenOptions } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import type { RolloutImportanceSamplingMode } from '../lib/ops/grpo_loss';
import { close, closeScalar, normal, randn, rng } from './helpers';
import { refGrpoLossFromHidden, refHiddenLoss, refLinear, refLinearGrads } from './reference/grpo_loss_from_hidden';
import { refLogprobs, refWiden } from './reference/logprobs';

const MODES: RolloutImportanceSamplingMode[] = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'];
const C = 1.3;
const BASES: [string, GrpoLossConfig][] = [
  ['clip, dapo', {}],
  ['GSPO, grpo, k3 beta', { importanceSamplingLevel: 'sequence', lossType: 'grpo', beta: 0.04 }],
  ['geo_mean (verl GMPO)', { policyLoss: 'geo_mean' }],
  ['entropy bonus + grpo', { entropyCoef: 0.05, lossType: 'grpo' }],
];
const METRICS = ['kl', 'entropy', 'clipLow', 'clipHigh', 'clipRegion', 'ratio', 'maskedTokens', 'isWeightMean', 'isClippedFrac'] as const;

interface Batch {
  S: number; T: number; V: number; D: number;
  hidden: Float32Array; weight: Float32Array; targets: Int32Array; advantages: Float32Array; mask: Uint8Array;
  oldLogp: Float32Array; refLogp: Float32Array;
  /** ℓ in float64 at h, W (the IS weights' ℓ_train without oldLogp: ℓ detached). */
  logp: Float64Array;
}

// `exact`: h = k/8, W = k/16 (small integers k), so every logit is exact in float32 in any order.
function batch(seed: number, S = 3, T = 5, V = 53, D = 20, exact = false, tau = 1): Batch {
  const r = rng(seed);
  const N = S * T;
  const hidden = exact ? Float32Array.from({ length: N * D }, () => Math.round((r() - 0.5) * 16) / 8) : randn(r, N * D, 1);
  const weight = exact ? Float32Array.from({ length: V * D }, () => Math.round((r() - 0.5) * 16) / 16) : randn(r, V * D, 0.5);
  const targets = new Int32Array(N).map(() => Math.floor(r() * V));
  const advantages = new Float32Array(S).map((_, i) => (i % 2 ? -1 : 1) * (0.3 + Math.abs(normal(r))));  // both signs (geo_mean)
  const mask = new Uint8Array(N).fill(1);
  for (let i = 0; i < S; i++) for (let t = T - (i % 3); t < T; t++) mask[i * T + t] = 0;
  const { logp } = refLogprobs(refLinear(refWiden(hidden), refWiden(weight), D, V), V, targets, tau);
  const oldLogp = new Float32Array(N).map((_, n) => logp[n] + 0.2 * normal(r));
  const refLogp = new Float32Array(N).map((_, n) => logp[n] + 0.5 * normal(r));
  return { S, T, V, D, hidden, weight, targets, advantages, mask, oldLogp, refLogp, logp };
}

/**
 * The sampler's log-probs: ℓ_train − lr with lr = a per-sequence shift (+1, 0, −0.4, ...) plus
 * ±0.8 noise, so that token ratios and sequence ratios fall on both sides of C.
 */
function rolloutOf(b: Batch, train: ArrayLike<number>, seed: number): Float32Array {
  const r = rng(seed);
  const shift = [1.0, 0, -0.4, 0.6];
  return Float32Array.from({ length: b.S * b.T }, (_, n) => train[n] - shift[Math.floor(n / b.T) % 4] - 1.6 * (r() - 0.5));
}

function opts(b: Batch, cfg: GrpoLossConfig, rolloutLogp: Float32Array, withOld: boolean, extra: Partial<GrpoLossFromHiddenOptions> = {}): GrpoLossFromHiddenOptions {
  return {
    hidden: b.hidden, weight: b.weight, hiddenSize: b.D, vocabSize: b.V, targets: b.targets, advantages: b.advantages,
    mask: b.mask, oldLogp: withOld ? b.oldLogp : undefined, refLogp: b.refLogp, rolloutLogp, ...cfg, ...extra,
  };
}
function refInputs(b: Batch, rolloutLogp: Float32Array, withOld: boolean, tau: number) {
  return {
    h: refWiden(b.hidden), W: refWiden(b.weight), D: b.D, V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask,
    oldLogp: withOld ? b.oldLogp : undefined, refLogp: b.refLogp, rolloutLogp, detachedLogp: b.logp, temperature: tau,
  };
}

for (const [name, base] of BASES) {
  for (const mode of MODES) {
    for (const withOld of [true, false]) {
      const tag = `${name}, ${mode}${withOld ? ', oldLogp' : ', ℓ detached'}`;
      test(`grpoLossFromHidden rollout IS ${tag}: ℓ, loss, metrics, ∂L/∂ℓ, ∂L/∂h, ∂L/∂W = float64 reference`, () => {
        const tau = 0.8;
        const b = batch(name.length * 7 + MODES.indexOf(mode), 3, 5, 53, 20, false, tau);
        const cfg: GrpoLossConfig = { ...base, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
        const rl = rolloutOf(b, withOld ? b.oldLogp : b.logp, 3 + MODES.indexOf(mode));
        const want = refGrpoLossFromHidden(refInputs(b, rl, withOld, tau), cfg);
        const got = grpoLossFromHiddenSync(opts(b, cfg, rl, withOld, { temperature: tau, chunkSize: 4 }));  // chunks cut sequences
        close(got.logp, want.logp, 1e-5, 1e-5, 'logp');
        closeScalar(got.loss, want.loss, 1e-4, 1e-6, 'loss');
        close(got.gradLogp, want.gradLogp, 1e-4, 1e-6, 'gradLogp');
        close(got.gradHidden!, want.gradHidden, 1e-4, 1e-6, 'gradHidden');
        close(got.gradWeight!, want.gradWeight, 1e-4, 1e-6, 'gradWeight');
        for (const k of METRICS) closeScalar(got.metrics[k], want.metrics[k], 1e-5, 1e-6, `metrics.${k}`);
        // the case exercises the correction: some tokens/sequences past C, not all
        assert.ok(want.metrics.isClippedFrac > 0 && want.metrics.isClippedFrac < 1, `isClippedFrac ${want.metrics.isClippedFrac}`);
        // and the correction changes the loss (weights not all 1)
        const off = grpoLossFromHiddenSync(opts(b, base, undefined as never, withOld, { temperature: tau, rolloutLogp: undefined }));
        assert.ok(Math.abs(off.loss - got.loss) > 1e-6, `loss with (${got.loss}) and without (${off.loss}) the correction`);
        assert.is(off.metrics.isWeightMean, 1);
      });
    }
  }
}

for (const [name, base] of BASES) {
  for (const mode of MODES) {
    test(`grpoLossFromHidden rollout IS ${name}, ${mode}: the bits of grpoLossFromLogits on the materialised logits`, () => {
      const b = batch(300 + name.length + MODES.indexOf(mode), 3, 5, 41, 16, true, 0.7);
      const z = refLinear(refWiden(b.hidden), refWiden(b.weight), b.D, b.V);
      const logits = Float32Array.from(z);
      for (let i = 0; i < z.length; i++) assert.is(logits[i], z[i], 'the test inputs give exact float32 logits');
      const cfg: GrpoLossConfig = { ...base, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
      const rl = rolloutOf(b, b.oldLogp, 11);
      const lg = grpoLossFromLogitsSync({
        logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp,
        rolloutLogp: rl, temperature: 0.7, ...cfg,
      });
      const got = grpoLossFromHiddenSync(opts(b, cfg, rl, true, { temperature: 0.7, chunkSize: 7 }));
      assert.equal(Array.from(got.logp), Array.from(lg.logp), 'logp bits');
      assert.equal(Array.from(got.gradLogp), Array.from(lg.gradLogp), 'gradLogp bits');
      assert.is(got.loss, lg.loss, 'loss bits');
      assert.equal(got.metrics, lg.metrics, 'metrics');
      // ∂L/∂h and ∂L/∂W are the two products of grpoLossFromLogits's ∂L/∂z, in float64
      const dz = refWiden(lg.gradLogits as Float32Array), W = refWiden(b.weight), h = refWiden(b.hidden);
      const { dh, dw } = refLinearGrads(dz, W, h, b.S * b.T, b.V, b.D);
      close(got.gradHidden!, dh, 1e-5, 1e-7, 'gradHidden = ∂L/∂z · W');
      close(got.gradWeight!, dw, 1e-5, 1e-7, 'gradWeight = (∂L/∂z)ᵀ · h');
    });
  }
}

for (const [name, base] of [BASES[0], BASES[1], BASES[2]]) {
  for (const mode of MODES) {
    test(`grpoLossFromHidden rollout IS ${name}, ${mode}: ∂L/∂h and ∂L/∂W match central differences of the float64 loss`, () => {
      const b = batch(77 + name.length + MODES.indexOf(mode), 2, 4, 29, 12, false, 0.9);
      const cfg: GrpoLossConfig = { ...base, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
      const rl = rolloutOf(b, b.oldLogp, 5);
      const got = grpoLossFromHiddenSync(opts(b, cfg, rl, true, { chunkSize: 3, temperature: 0.9 }));
      // ℓ_old given: the IS weights are constants of the loss, as the kernel treats them (detached)
      const inp = refInputs(b, rl, true, 0.9);
      const loss = () => refHiddenLoss(inp, cfg);
      const eps = 1e-5;
      const r = rng(5);
      for (const [what, x, grad] of [['gradHidden', inp.h, got.gradHidden!], ['gradWeight', inp.W, got.gradWeight!]] as const) {
        for (let trial = 0; trial < 10; trial++) {
          const i = Math.floor(r() * x.length);
          const x0 = x[i];
          x[i] = x0 + eps;
          const lp = loss();
          x[i] = x0 - eps;
          const lm = loss();
          x[i] = x0;
          closeScalar(grad[i], (lp - lm) / (2 * eps), 2e-3, 2e-6, `${what}[${i}] vs finite difference`);
        }
      }
    });
  }
}

const up = (a: Float32Array | Int32Array | Uint8Array) => DeviceTensor.fromHost(a);
const down = (t: DeviceTensor | null) => t!.toHost() as Float32Array;

for (const [name, base] of [BASES[0], BASES[2]]) {
  for (const mode of MODES) {
    test(`cuda grpoLossFromHidden rollout IS ${name}, ${mode} (emulated): float64 reference and the CPU op`, () => {
      const S = 3, T = 3, V = 37, D = 19, tau = 0.8;
      const b = batch(40 + name.length + MODES.indexOf(mode), S, T, V, D, false, tau);
      const cfg: GrpoLossConfig = { ...base, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
      const rl = rolloutOf(b, b.oldLogp, 9);
      const want = refGrpoLossFromHidden(refInputs(b, rl, true, tau), cfg);
      const cpu = grpoLossFromHiddenSync(opts(b, cfg, rl, true, { temperature: tau }));
      const d = {
        hidden: up(b.hidden), weight: up(b.weight), targets: up(b.targets), advantages: up(b.advantages), mask: up(b.mask),
        oldLogp: up(b.oldLogp), refLogp: up(b.refLogp), rolloutLogp: up(rl),
      };
      for (const [order, chunkSize] of [[0, 4], [2, 1]]) {
        setOrder(order, 7);
        const g = cuda.grpoLossFromHiddenSync({ ...d, hiddenSize: D, vocabSize: V, temperature: tau, chunkSize, ...cfg });
        setOrder(0);
        const tag = `order ${order}, chunkSize ${chunkSize}`;
        closeScalar(g.loss, want.loss, 1e-4, 1e-6, `${tag}: loss`);
        close(down(g.gradLogp), want.gradLogp, 1e-4, 1e-6, `${tag}: gradLogp`);
        close(down(g.gradHidden), want.gradHidden, 1e-4, 1e-6, `${tag}: gradHidden`);
        close(down(g.gradWeight), want.gradWeight, 1e-4, 1e-6, `${tag}: gradWeight`);
        closeScalar(g.loss, cpu.loss, 1e-5, 1e-7, `${tag}: loss vs CPU`);
        close(down(g.gradHidden), cpu.gradHidden!, 1e-5, 1e-7, `${tag}: gradHidden vs CPU`);
        close(down(g.gradWeight), cpu.gradWeight!, 1e-5, 1e-7, `${tag}: gradWeight vs CPU`);
        for (const k of METRICS) closeScalar(g.metrics[k], want.metrics[k], 1e-5, 1e-6, `${tag}: metrics.${k}`);
        for (const t of [g.logp, g.entropy, g.gradLogp, g.gradHidden, g.gradWeight]) t?.dispose();
      }
      for (const t of Object.values(d)) t.dispose();
    });
  }
}

test('grpoLossFromHidden rollout IS: bad input is named before native code runs (host and CUDA forms)', () => {
  const b = batch(2, 2, 2, 11, 5);
  const rl = rolloutOf(b, b.oldLogp, 1);
  const o = opts(b, {}, rl, true);
  assert.throws(() => grpoLossFromHiddenSync({ ...o, rolloutLogp: undefined, rolloutImportanceSamplingMode: 'token_mask' }), /grpoLossFromHidden: expected a tensor of length 4 \(the sampler's log-probs\) when rolloutImportanceSamplingMode is set for rolloutLogp but received undefined/);
  assert.throws(() => grpoLossFromHiddenSync(o), /grpoLossFromHidden: expected one of token_truncate, token_mask, sequence_truncate, sequence_mask when rolloutLogp is given .* for rolloutImportanceSamplingMode/);
  assert.throws(() => grpoLossFromHiddenSync({ ...o, rolloutLogp: new Float32Array(3), rolloutImportanceSamplingMode: 'token_mask' }), /grpoLossFromHidden: .*rolloutLogp/);
  const bad = Float32Array.from(rl);
  bad[1] = NaN;
  assert.throws(() => grpoLossFromHiddenSync({ ...o, rolloutLogp: bad, rolloutImportanceSamplingMode: 'token_mask' }), /grpoLossFromHidden: .*rolloutLogp/);
  // padding may hold NaN: masked tokens are never read
  const m = Uint8Array.from(b.mask);
  m[1] = 0;
  grpoLossFromHiddenSync({ ...o, mask: m, rolloutLogp: bad, rolloutImportanceSamplingMode: 'token_mask' });
  // ℓ is written while the loss core still reads rolloutLogp: an output over it is refused
  const shared = Float32Array.from(rl);
  assert.throws(() => grpoLossFromHiddenSync({ ...o, rolloutLogp: shared, rolloutImportanceSamplingMode: 'token_mask', out: { logp: shared } }), /grpoLossFromHidden: expected out\.logp to be memory apart from the input rolloutLogp/);
  const d = { hidden: up(b.hidden), weight: up(b.weight), targets: up(b.targets), advantages: up(b.advantages) };
  assert.throws(() => cuda.grpoLossFromHiddenSync({ ...d, hiddenSize: b.D, vocabSize: b.V, rolloutImportanceSamplingMode: 'sequence_mask' }), /cuda\.grpoLossFromHidden: expected a tensor of length 4 .* for rolloutLogp/);
  for (const t of Object.values(d)) t.dispose();
});

test.run();
