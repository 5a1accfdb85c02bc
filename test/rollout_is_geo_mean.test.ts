// The rollout IS correction with policyLoss 'geo_mean' (verl GMPO). verl's
// compute_policy_loss_geo_mean folds its token-level rollout_is_weights into one weight per
// sequence, their geometric mean exp(Σ_t m·log(w_t + 1e-10) / (n_i + 1e-8)), and multiplies the
// sequence's policy loss by it. Checked here: grpoLoss against a line-by-line float64 transcription
// of that verl function (and against the shared float64 reference, with a KL term), its gradient
// against central differences, the CUDA kernel (emulated) bit-equal to the CPU one, and
// grpoLossFromLogits = grpoLoss over the logits' log-probs (CPU and CUDA).
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { grpoLossFromLogitsSync, grpoLossSync, logprobsSync } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import type { GrpoLossConfig, RolloutImportanceSamplingMode } from '../lib/ops/grpo_loss';
import { centralDiff, close, closeScalar, randn, rng } from './helpers';
import { refGrpoLoss } from './reference/grpo_loss';

const MODES: RolloutImportanceSamplingMode[] = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'];
const clampLr = (x: number) => Math.max(-20, Math.min(20, x));

/** The token-level IS weights of a mode (ms-swift), from ℓ_train = ℓ_old and the sampler's ℓ. */
function isWeights(mode: RolloutImportanceSamplingMode, C: number, old: Float64Array, roll: Float64Array, mask: Uint8Array, S: number) {
  const T = old.length / S;
  const w = new Float64Array(old.length);
  for (let i = 0; i < S; i++) {
    let sum = 0, n = 0;
    for (let t = 0; t < T; t++) if (mask[i * T + t]) { sum += clampLr(old[i * T + t] - roll[i * T + t]); n++; }
    const R = Math.exp(sum / Math.max(n, 1));
    for (let t = 0; t < T; t++) {
      const k = i * T + t;
      const r = Math.exp(clampLr(old[k] - roll[k]));
      w[k] = mode === 'token_truncate' ? Math.min(r, C) : mode === 'token_mask' ? (r <= C ? r : 0) : mode === 'sequence_truncate' ? Math.min(R, C) : R <= C ? r : 0;
    }
  }
  return w;
}

/**
 * verl compute_policy_loss_geo_mean, forward, statement by statement (torch ops on [S, T] rows):
 * negative_approx_kl = ℓ − ℓ_old; clamp to [−ε_low, ε_high]; min(sgn(A)·x, sgn(A)·clamp)·sgn(A);
 * ratio = exp(Σ masked / (Σ mask + 1e-8)); advantage = Σ A·m / (Σ m + 1e-8) (A per sequence);
 * pg_losses = −advantage·ratio; × exp(Σ log(w + 1e-10)·m / (Σ m + 1e-8)); torch.mean over S.
 */
function verlGeoMean(logp: Float64Array, old: Float64Array, adv: Float64Array, mask: Uint8Array, epsLow: number, epsHigh: number, w: Float64Array | null) {
  const S = adv.length, T = logp.length / S;
  let total = 0;
  for (let i = 0; i < S; i++) {
    const sg = Math.sign(adv[i]);
    let msum = 0, n = 0, asum = 0, lw = 0;
    for (let t = 0; t < T; t++) {
      const k = i * T + t;
      if (!mask[k]) continue;
      const x = logp[k] - old[k];
      const xc = Math.min(Math.max(x, -epsLow), epsHigh);
      msum += sg * Math.min(sg * x, sg * xc);
      n += 1;
      asum += adv[i];
      if (w) lw += Math.log(w[k] + 1e-10);
    }
    const ratio = Math.exp(msum / (n + 1e-8));
    const advantage = asum / (n + 1e-8);
    let pg = -advantage * ratio;
    if (w) pg *= Math.exp(lw / (n + 1e-8));
    total += pg;
  }
  return total / S;
}

function inputs(seed: number) {
  const S = 4, T = 6, N = S * T;
  const r = rng(seed);
  const logp = Float64Array.from(randn(r, N, 0.8, -2), (x) => Math.fround(x));
  const old = Float64Array.from(logp, (x) => Math.fround(x + 0.6 * (r() - 0.5)));  // some log-ratios past ±ε
  const shift = [1.0, 0, -0.4, 0.5];
  const roll = Float64Array.from(old, (x, n) => Math.fround(x - shift[Math.floor(n / T)] - 1.6 * (r() - 0.5)));
  const ref = Float64Array.from(logp, (x) => Math.fround(x + 0.4 * (r() - 0.5)));
  const adv = Float64Array.from([0.9, -1.3, 0.4, -0.2], (x) => Math.fround(x));
  const mask = new Uint8Array(N).map((_, n) => (n % T < T - (Math.floor(n / T) % 3) ? 1 : 0));
  return { S, T, logp, old, roll, ref, adv, mask };
}

const f32 = (a: Float64Array) => Float32Array.from(a);
const C = 1.3;

for (const mode of MODES) {
  test(`grpoLoss geo_mean + rollout IS ${mode}: loss = verl's geo_mean with rollout_is_weights; gradient = central differences; CUDA = CPU bits`, () => {
    const inp = inputs(MODES.indexOf(mode) + 1);
    const cfg = { policyLoss: 'geo_mean' as const, epsilon: 0.2, epsilonHigh: 0.28, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
    const opts = { logp: f32(inp.logp), oldLogp: f32(inp.old), rolloutLogp: f32(inp.roll), advantages: f32(inp.adv), mask: inp.mask, perTokenLoss: true, ...cfg };
    const got = grpoLossSync(opts);
    const w = isWeights(mode, C, inp.old, inp.roll, inp.mask, inp.S);
    const want = verlGeoMean(inp.logp, inp.old, inp.adv, inp.mask, 0.2, 0.28, w);
    closeScalar(got.loss, want, 1e-6, 1e-9, 'loss vs verl');
    // the correction matters here: without it the loss differs
    const plain = verlGeoMean(inp.logp, inp.old, inp.adv, inp.mask, 0.2, 0.28, null);
    assert.ok(Math.abs(plain - want) > 1e-3, `with (${want}) and without (${plain}) the IS weights`);
    const off = grpoLossSync({ ...opts, rolloutLogp: undefined, rolloutImportanceSamplingMode: undefined });
    closeScalar(off.loss, plain, 1e-6, 1e-9, 'loss without the correction vs verl');
    // ∂loss/∂ℓ: central differences of verl's function (w, ℓ_old held fixed: detached)
    const fd = centralDiff(inp.logp, (lp) => verlGeoMean(lp, inp.old, inp.adv, inp.mask, 0.2, 0.28, w), 1e-6, (n) => !inp.mask[n]);
    close(got.gradLogp!, fd, 1e-4, 1e-7, 'gradLogp vs finite differences');
    // metrics: isWeightMean = masked mean of the sequence weight W_i applied; isClippedFrac as for the other losses
    const ref = refGrpoLoss({ logp: inp.logp, oldLogp: inp.old, advantages: inp.adv, mask: inp.mask, rolloutLogp: inp.roll }, cfg);
    closeScalar(got.loss, ref.loss, 1e-6, 1e-9, 'loss vs the shared reference');
    let wsum = 0, n = 0;
    for (let i = 0; i < inp.S; i++) {
      let lw = 0, ni = 0;
      for (let t = 0; t < inp.T; t++) if (inp.mask[i * inp.T + t]) { lw += Math.log(w[i * inp.T + t] + 1e-10); ni++; }
      wsum += ni * Math.exp(lw / (ni + 1e-8));
      n += ni;
    }
    closeScalar(got.metrics.isWeightMean, wsum / n, 1e-6, 1e-12, 'isWeightMean');
    closeScalar(got.metrics.isClippedFrac, ref.metrics.isClippedFrac, 1e-9, 1e-12, 'isClippedFrac');
    assert.ok(ref.metrics.isClippedFrac > 0 && ref.metrics.isClippedFrac < 1, `isClippedFrac ${ref.metrics.isClippedFrac}`);
    close(got.perTokenLoss!, ref.perTokenLoss, 1e-5, 1e-7, 'perTokenLoss');
    for (const k of ['ratio', 'clipLow', 'clipHigh', 'clipRegion'] as const) closeScalar(got.metrics[k], ref.metrics[k], 1e-6, 1e-9, `metrics.${k}`);
    // CUDA through the emulator: the CPU's bits, in two thread orders
    const up = (a: Float32Array | Uint8Array) => DeviceTensor.fromHost(a);
    const d = { logp: up(opts.logp), oldLogp: up(opts.oldLogp), rolloutLogp: up(opts.rolloutLogp), advantages: up(opts.advantages), mask: up(opts.mask) };
    for (const order of [0, 2]) {
      setOrder(order, 17);
      try {
        const g = cuda.grpoLossSync({ ...cfg, ...d, perTokenLoss: true });
        assert.is(g.loss, got.loss, 'CUDA loss bits');
        assert.equal(g.metrics, got.metrics, 'CUDA metrics');
        assert.equal(Array.from(g.gradLogp!.toHost() as Float32Array), Array.from(got.gradLogp!), 'CUDA gradLogp bits');
        assert.equal(Array.from(g.perTokenLoss!.toHost() as Float32Array), Array.from(got.perTokenLoss!), 'CUDA perTokenLoss bits');
        g.gradLogp!.dispose();
        g.perTokenLoss!.dispose();
      } finally {
        setOrder(0);
      }
    }
    for (const t of Object.values(d)) t.dispose();
  });
}

for (const mode of MODES) {
  test(`grpoLoss geo_mean + rollout IS ${mode} with a KL term and lossType grpo: float64 reference and central differences`, () => {
    const inp = inputs(20 + MODES.indexOf(mode));
    const cfg: GrpoLossConfig = { policyLoss: 'geo_mean', beta: 0.05, lossType: 'grpo', rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
    const got = grpoLossSync({ logp: f32(inp.logp), oldLogp: f32(inp.old), refLogp: f32(inp.ref), rolloutLogp: f32(inp.roll), advantages: f32(inp.adv), mask: inp.mask, ...cfg });
    const base = { oldLogp: inp.old, refLogp: inp.ref, advantages: inp.adv, mask: inp.mask, rolloutLogp: inp.roll };
    const want = refGrpoLoss({ logp: inp.logp, ...base }, cfg);
    closeScalar(got.loss, want.loss, 1e-6, 1e-9, 'loss');
    close(got.gradLogp!, want.gradLogp, 1e-5, 1e-8, 'gradLogp');
    closeScalar(got.metrics.isWeightMean, want.metrics.isWeightMean, 1e-6, 1e-12, 'isWeightMean');
    const fd = centralDiff(inp.logp, (lp) => refGrpoLoss({ logp: lp, ...base }, cfg).loss, 1e-6, (n) => !inp.mask[n]);
    close(got.gradLogp!, fd, 1e-4, 1e-7, 'gradLogp vs finite differences');
  });
}

for (const mode of ['token_mask', 'sequence_truncate'] as const) {
  test(`grpoLossFromLogits geo_mean + rollout IS ${mode}: = grpoLoss over the logits' log-probs (CPU and CUDA)`, () => {
    const S = 3, T = 5, V = 37, N = S * T;
    const r = rng(91);
    const logits = randn(r, N * V, 2);
    const targets = Int32Array.from({ length: N }, () => Math.floor(r() * V));
    const lp = logprobsSync({ logits, vocabSize: V, targets }).logp;
    const oldLogp = Float32Array.from(lp, (x) => x + 0.5 * (r() - 0.5));
    const rolloutLogp = Float32Array.from(oldLogp, (x, n) => x - [0.9, 0, -0.3][Math.floor(n / T)] - 1.6 * (r() - 0.5));
    const advantages = Float32Array.from([0.7, -1.1, 0.3]);
    const mask = new Uint8Array(N).fill(1);
    mask[N - 1] = 0;
    const o = { advantages, mask, oldLogp, rolloutLogp, policyLoss: 'geo_mean' as const, rolloutImportanceSamplingMode: mode, rolloutImportanceSamplingThreshold: C };
    const base = grpoLossSync({ logp: lp, ...o });
    const fused = grpoLossFromLogitsSync({ logits: Float32Array.from(logits), vocabSize: V, targets, ...o });
    closeScalar(fused.loss, base.loss, 1e-6, 1e-9, 'loss');
    closeScalar(fused.metrics.isWeightMean, base.metrics.isWeightMean, 1e-6, 0, 'isWeightMean');
    assert.is(fused.metrics.isClippedFrac, base.metrics.isClippedFrac);
    close(fused.gradLogp!, base.gradLogp!, 1e-5, 1e-8, 'dL/dℓ');
    const up = (a: Float32Array | Int32Array | Uint8Array) => DeviceTensor.fromHost(a);
    const d = { logits: up(logits), targets: up(targets), advantages: up(advantages), mask: up(mask), oldLogp: up(oldLogp), rolloutLogp: up(rolloutLogp) };
    const g = cuda.grpoLossFromLogitsSync({ ...o, ...d, vocabSize: V });
    closeScalar(g.loss, fused.loss, 1e-6, 1e-9, 'CUDA loss');
    assert.is(g.metrics.isClippedFrac, fused.metrics.isClippedFrac);
    close(g.gradLogits!.toHost() as Float32Array, fused.gradLogits as Float32Array, 1e-5, 1e-8, 'CUDA gradLogits');
    for (const t of [...Object.values(d), g.gradLogits, g.logp, g.entropy, g.gradLogp]) t?.dispose();
  });
}

test.run();
