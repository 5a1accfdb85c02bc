// Rollout importance-sampling correction (TIS / MIS, ms-swift's four modes, TRL's vLLM IS
// correction) in the loss kernels: loss, metrics and dL/dℓ against a float64 reference written
// from the formulas, the gradient against finite differences of that reference, the CUDA kernels
// (through the emulator) bit-equal to the CPU ones, and grpoLossFromLogits = grpoLoss over the
// logits' log-probs.
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { grpoLossSync, grpoLossFromLogitsSync, logprobsSync } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import type { RolloutImportanceSamplingMode } from '../lib/ops/grpo_loss';
import { close, randn, rng } from './helpers';

interface Case {
  mode: RolloutImportanceSamplingMode;
  level: 'token' | 'sequence';
  lossType: 'grpo' | 'dapo';
  beta: number;
  withOld: boolean;
  C: number;
}

interface Inputs {
  S: number;
  T: number;
  logp: Float64Array;
  old: Float64Array | null;
  ref: Float64Array;
  rollout: Float64Array;
  adv: Float64Array;
  mask: Uint8Array;
}

const clampLr = (x: number) => Math.max(-20, Math.min(20, x));

/**
 * The loss in float64 as a function of ℓ, with everything detached held fixed: ℓ0 (ℓ detached,
 * the old log-probs when none are given) and the rollout IS weights computed from (old ?? ℓ0).
 * Policy term: PPO clip, ε = 0.2; KL: k3 (d clamped to ±20).
 */
function refLoss(inp: Inputs, c: Case, logp: Float64Array, l0: Float64Array) {
  const { S, T, mask, adv, ref, rollout } = inp;
  const old = inp.old ?? l0;
  const eps = 0.2;
  let nBatch = 0;
  const nSeq: number[] = [];
  for (let i = 0; i < S; i++) {
    let n = 0;
    for (let t = 0; t < T; t++) n += mask[i * T + t];
    nSeq.push(n);
    nBatch += n;
  }
  let loss = 0, wSum = 0, clipped = 0;
  for (let i = 0; i < S; i++) {
    const inv = 1 / Math.max(nSeq[i], 1);
    const aggW = c.lossType === 'dapo' ? 1 / nBatch : inv / S;
    // rollout IS weights (detached)
    const isRef = inp.old ?? l0;
    let seqLr = 0;
    for (let t = 0; t < T; t++) if (mask[i * T + t]) seqLr += clampLr(isRef[i * T + t] - rollout[i * T + t]);
    const R = Math.exp(seqLr * inv);
    if (c.mode.startsWith('sequence') && R > c.C) clipped += 1 / S;
    // GSPO ratio
    let gspo = 0;
    for (let t = 0; t < T; t++) if (mask[i * T + t]) gspo += logp[i * T + t] - old[i * T + t];
    const sRatio = Math.exp(gspo * inv);
    for (let t = 0; t < T; t++) {
      const n = i * T + t;
      if (!mask[n]) continue;
      const r = Math.exp(clampLr(isRef[n] - rollout[n]));
      let w: number;
      switch (c.mode) {
        case 'token_truncate': w = Math.min(r, c.C); if (r > c.C) clipped += 1 / nBatch; break;
        case 'token_mask': w = r <= c.C ? r : 0; if (r > c.C) clipped += 1 / nBatch; break;
        case 'sequence_truncate': w = Math.min(R, c.C); break;
        case 'sequence_mask': w = R <= c.C ? r : 0; break;
      }
      wSum += w / nBatch;
      const rho = c.level === 'token' ? Math.exp(logp[n] - old[n]) : sRatio;
      const A = adv[i];
      const P = -Math.min(rho * A, Math.min(Math.max(rho, 1 - eps), 1 + eps) * A);
      const d = clampLr(ref[n] - logp[n]);
      const D = Math.exp(d) - d - 1;
      loss += aggW * (w * P + c.beta * D);
    }
  }
  return { loss, isWeightMean: wSum, isClippedFrac: clipped };
}

function makeInputs(seed: number, withOld: boolean): Inputs {
  const S = 4, T = 6, N = S * T;
  const r = rng(seed);
  const logp = Float64Array.from(randn(r, N, 0.8, -2), (x) => Math.fround(x));
  const old = withOld ? Float64Array.from(logp, (x) => Math.fround(x + 0.3 * (r() - 0.5))) : null;
  const ref = Float64Array.from(logp, (x) => Math.fround(x + 0.4 * (r() - 0.5)));
  // the sampler's log-probs: off by up to ±1 so that ratios fall on both sides of C
  // plus a shift per sequence, so that sequence-level ratios also fall on both sides of C
  const shift = [-1.2, 0, 0.3, -0.1];
  const rollout = Float64Array.from(logp, (x, n) => Math.fround(x + 2 * (r() - 0.5) + shift[Math.floor(n / T)]));
  const adv = Float64Array.from(randn(r, S), (x) => Math.fround(x));
  const mask = new Uint8Array(N).map((_, n) => (n % T < T - (Math.floor(n / T) % 3) ? 1 : 0));
  return { S, T, logp, old, ref, rollout, adv, mask };
}

const f32 = (a: Float64Array | null) => (a ? Float32Array.from(a) : undefined);
const cases: Case[] = [];
for (const mode of ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'] as const)
  for (const [level, lossType, beta, withOld] of [['token', 'dapo', 0, false], ['token', 'grpo', 0.1, true], ['sequence', 'dapo', 0.05, true]] as const)
    cases.push({ mode, level, lossType, beta, withOld, C: 1.5 });

for (const c of cases) {
  const name = `${c.mode} ${c.level} ${c.lossType} beta=${c.beta}${c.withOld ? ' oldLogp' : ''}`;
  test(`grpoLoss rollout IS ${name}: loss, metrics, gradient vs float64 reference and finite differences; CUDA = CPU bits`, () => {
    const inp = makeInputs(cases.indexOf(c) + 1, c.withOld);
    const opts = {
      logp: f32(inp.logp)!, oldLogp: f32(inp.old), refLogp: f32(inp.ref), rolloutLogp: f32(inp.rollout), advantages: f32(inp.adv)!, mask: inp.mask,
      importanceSamplingLevel: c.level, lossType: c.lossType, beta: c.beta,
      rolloutImportanceSamplingMode: c.mode, rolloutImportanceSamplingThreshold: c.C,
    };
    const got = grpoLossSync(opts);
    const want = refLoss(inp, c, inp.logp, inp.logp);
    close([got.loss], [want.loss], 1e-6, 1e-9, 'loss');
    close([got.metrics.isWeightMean], [want.isWeightMean], 1e-6, 1e-12, 'isWeightMean');
    close([got.metrics.isClippedFrac], [want.isClippedFrac], 1e-9, 1e-12, 'isClippedFrac');
    assert.ok(want.isClippedFrac > 0 && want.isClippedFrac < 1, `the case must truncate/mask some but not all (${want.isClippedFrac})`);
    // central differences of the float64 reference in ℓ, detached inputs held at the base point
    const fd = new Float64Array(inp.logp.length);
    const h = 1e-6;
    for (let n = 0; n < fd.length; n++) {
      if (!inp.mask[n]) continue;
      const p = Float64Array.from(inp.logp), m = Float64Array.from(inp.logp);
      p[n] += h;
      m[n] -= h;
      fd[n] = (refLoss(inp, c, p, inp.logp).loss - refLoss(inp, c, m, inp.logp).loss) / (2 * h);
    }
    close(got.gradLogp!, fd, 1e-4, 1e-7, 'gradLogp vs finite differences');
    // without the correction the loss differs (the weights are not all 1)
    const off = grpoLossSync({ ...opts, rolloutLogp: undefined, rolloutImportanceSamplingMode: undefined });
    assert.is.not(off.loss, got.loss);
    assert.is(off.metrics.isWeightMean, 1);
    // CUDA through the emulator: the CPU's bits, in two thread orders
    const up = (a: Float32Array | Uint8Array | undefined) => (a ? DeviceTensor.fromHost(a) : undefined);
    const d = { logp: up(opts.logp)!, oldLogp: up(opts.oldLogp), refLogp: up(opts.refLogp), rolloutLogp: up(opts.rolloutLogp), advantages: up(opts.advantages)!, mask: up(opts.mask)! };
    for (const order of [0, 2]) {
      setOrder(order, 17);
      try {
        const g = cuda.grpoLossSync({ ...opts, ...d });
        assert.is(g.loss, got.loss, 'CUDA loss bits');
        assert.equal(g.metrics, got.metrics, 'CUDA metrics');
        assert.equal(Array.from(g.gradLogp!.toHost() as Float32Array), Array.from(got.gradLogp!), 'CUDA gradLogp bits');
        g.gradLogp!.dispose();
      } finally {
        setOrder(0);
      }
    }
    for (const t of Object.values(d)) t?.dispose();
  });
}

for (const mode of ['token_truncate', 'sequence_mask'] as const) {
  test(`grpoLossFromLogits rollout IS ${mode}: = grpoLoss over the logits' log-probs (CPU and CUDA), gradient in place too`, () => {
    const S = 3, T = 5, V = 37, N = S * T;
    const r = rng(77);
    const logits = randn(r, N * V, 2);
    const targets = Int32Array.from({ length: N }, () => Math.floor(r() * V));
    const lp = logprobsSync({ logits, vocabSize: V, targets }).logp;
    const rolloutLogp = Float32Array.from(lp, (x) => x + 2 * (r() - 0.5));
    const oldLogp = Float32Array.from(lp, (x) => x + 0.2 * (r() - 0.5));
    const advantages = randn(r, S);
    const mask = new Uint8Array(N).fill(1);
    mask[N - 1] = 0;
    const o = { advantages, mask, oldLogp, rolloutLogp, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: 1.3 };
    const base = grpoLossSync({ logp: lp, ...o });
    const fused = grpoLossFromLogitsSync({ logits: Float32Array.from(logits), vocabSize: V, targets, ...o });
    close([fused.loss], [base.loss], 1e-6, 1e-9, 'loss');
    close([fused.metrics.isWeightMean], [base.metrics.isWeightMean], 1e-6, 0, 'isWeightMean');
    assert.is(fused.metrics.isClippedFrac, base.metrics.isClippedFrac);
    close(fused.gradLogp!, base.gradLogp!, 1e-5, 1e-8, 'dL/dℓ');
    const inplace = Float32Array.from(logits);
    const ip = grpoLossFromLogitsSync({ logits: inplace, vocabSize: V, targets, ...o, gradient: 'inplace' });
    assert.equal(Array.from(inplace), Array.from(fused.gradLogits as Float32Array), 'in place = separate');
    assert.is(ip.loss, fused.loss);
    const up = (a: Float32Array | Int32Array | Uint8Array) => DeviceTensor.fromHost(a);
    const d = { logits: up(logits), targets: up(targets), advantages: up(advantages), mask: up(mask), oldLogp: up(oldLogp), rolloutLogp: up(rolloutLogp) };
    const g = cuda.grpoLossFromLogitsSync({ ...o, ...d, vocabSize: V });
    close([g.loss], [fused.loss], 1e-6, 1e-9, 'CUDA loss');
    assert.is(g.metrics.isClippedFrac, fused.metrics.isClippedFrac);
    close(g.gradLogits!.toHost() as Float32Array, fused.gradLogits as Float32Array, 1e-5, 1e-8, 'CUDA gradLogits');
    for (const t of [...Object.values(d), g.gradLogits, g.logp, g.entropy, g.gradLogp]) t?.dispose();
  });
}

test('rollout IS options are checked before native code runs', () => {
  const logp = new Float32Array([-1, -2]), advantages = new Float32Array([1]);
  assert.throws(() => grpoLossSync({ logp, advantages, rolloutImportanceSamplingMode: 'token_truncate' }), /expected a tensor of length 2 \(the sampler's log-probs\) when rolloutImportanceSamplingMode is set for rolloutLogp but received undefined/);
  assert.throws(() => grpoLossSync({ logp, advantages, rolloutLogp: logp }), /expected one of token_truncate, token_mask, sequence_truncate, sequence_mask when rolloutLogp is given .* for rolloutImportanceSamplingMode/);
  assert.throws(() => grpoLossSync({ logp, advantages, rolloutLogp: logp, rolloutImportanceSamplingMode: 'token' as never }), /rolloutImportanceSamplingMode/);
  assert.throws(() => grpoLossSync({ logp, advantages, rolloutLogp: logp, rolloutImportanceSamplingMode: 'token_mask', rolloutImportanceSamplingThreshold: 0 }), /rolloutImportanceSamplingThreshold/);
  assert.throws(() => grpoLossSync({ logp, advantages, rolloutLogp: new Float32Array(3), rolloutImportanceSamplingMode: 'token_mask' }), /rolloutLogp/);
  assert.throws(() => grpoLossSync({ logp, advantages, rolloutLogp: new Float32Array([NaN, 0]), rolloutImportanceSamplingMode: 'token_mask' }), /rolloutLogp/);
});

test.run();
