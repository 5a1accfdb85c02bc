// grpoLossFromLogits (spec §7) against the float64 reference (§1 on the logits, the grpoLoss
// reference for §4-§6, the chain rule for ∂L/∂z), for every option family; finite differences
// of the float64 loss; in-place = separate; 'none' gives the same loss; masked rows get zero
// gradient rows; 16-bit logits; async/sync; bad input; every ISA variant (child processes).
import { spawnSync } from 'child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { backend, grpoLossFromLogits, grpoLossFromLogitsSync, GrpoLossConfig, GrpoLossFromLogitsOptions } from '../lib';
import { close, closeScalar, normal, randn, rng } from './helpers';
import { refFusedLoss, refGrpoLossFromLogits } from './reference/grpo_loss_from_logits';
import { refLogprobs, refToHalf, refWiden } from './reference/logprobs';

const ISA = backend().cpuIsa;

interface Batch {
  S: number; T: number; V: number;
  logits: Float32Array;
  targets: Int32Array;
  advantages: Float32Array;
  mask: Uint8Array;
  oldLogp: Float32Array;
  refLogp: Float32Array;
}

// Random batch: ℓ_old and ℓ_ref near the true ℓ so that ratios straddle the clip range.
function batch(seed: number, S = 4, T = 6, V = 301, tau = 1): Batch {
  const r = rng(seed);
  const N = S * T;
  const logits = randn(r, N * V, 2);
  const targets = new Int32Array(N).map(() => Math.floor(r() * V));
  const advantages = new Float32Array(S).map(() => normal(r));
  const mask = new Uint8Array(N).fill(1);
  for (let i = 0; i < S; i++) for (let t = T - (i % 3); t < T; t++) mask[i * T + t] = 0;  // padding
  const { logp } = refLogprobs(refWiden(logits), V, targets, tau);
  const oldLogp = new Float32Array(N).map((_, n) => logp[n] + 0.25 * normal(r));
  const refLogp = new Float32Array(N).map((_, n) => logp[n] + 0.5 * normal(r));
  return { S, T, V, logits, targets, advantages, mask, oldLogp, refLogp };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const FAMILIES: [string, GrpoLossConfig & { temperature?: number }][] = [
  ['defaults (token, clip, dapo)', {}],
  ['lossType grpo', { lossType: 'grpo' }],
  ['lossType bnpo', { lossType: 'bnpo' }],
  ['lossType dr_grpo', { lossType: 'dr_grpo', maxCompletionLength: 8 }],
  ['lossType seq_sum', { lossType: 'seq_sum' }],
  ['dapo with numItemsInBatch', { lossType: 'dapo', numItemsInBatch: 50 }],
  ['sequence level (GSPO)', { importanceSamplingLevel: 'sequence' }],
  ['sequence level, grpo, beta', { importanceSamplingLevel: 'sequence', lossType: 'grpo', beta: 0.04 }],
  ['dual_clip', { policyLoss: 'dual_clip' }],
  ['cispo', { policyLoss: 'cispo', epsilonHigh: 1.1 }],
  ['clip-higher + delta', { epsilon: 0.2, epsilonHigh: 0.28, delta: 1.5 }],
  ['beta 0.04 k3', { beta: 0.04 }],
  ['beta 0.04 k1', { beta: 0.04, klEstimator: 'k1' }],
  ['beta 0.04 k2, bnpo', { beta: 0.04, klEstimator: 'k2', lossType: 'bnpo' }],
  ['beta 0.04 low_var_kl', { beta: 0.04, klEstimator: 'low_var_kl' }],
  ['top entropy 0.5', { topEntropyQuantile: 0.5 }],
  ['top entropy 0.2 + beta', { topEntropyQuantile: 0.2, beta: 0.04 }],
  ['temperature 0.7', { temperature: 0.7 }],
  ['temperature 1.5, sequence, cispo', { temperature: 1.5, importanceSamplingLevel: 'sequence', policyLoss: 'cispo' }],
  ['sapo, grpo', { policyLoss: 'sapo', lossType: 'grpo', sapoTemperaturePos: 1.5, sapoTemperatureNeg: 0.7 }],
  ['sapo, sequence level', { policyLoss: 'sapo', importanceSamplingLevel: 'sequence' }],
  ['cispo range (verl)', { policyLoss: 'cispo', cispoClip: 'range', epsilonHigh: 0.28 }],
  ['bias-corrected KL', { beta: 0.1, useBiasCorrectionKl: true }],
  ['bias-corrected KL, sequence level', { beta: 0.1, useBiasCorrectionKl: true, importanceSamplingLevel: 'sequence' }],
  ['low_var_kl+ (straight through)', { beta: 0.2, klEstimator: 'low_var_kl+' }],
  ['abs KL', { beta: 0.2, klEstimator: 'abs' }],
  ['geo_mean (GMPO)', { policyLoss: 'geo_mean', epsilon: 0.4, epsilonHigh: 0.4, beta: 0.04 }],
  ['vespo (TRL)', { policyLoss: 'vespo', beta: 0.04 }],
  ['clip_cov (verl), wide bounds', { policyLoss: 'clip_cov', clipCovRatio: 0.2, clipCovLb: -10, clipCovUb: 10 }],
  ['kl_cov (verl)', { policyLoss: 'kl_cov', klCovRatio: 0.2, ppoKlCoef: 0.5 }],
  ['luspo (TRL), sequence level, beta', { lossType: 'luspo', importanceSamplingLevel: 'sequence', beta: 0.04 }],
  ['seq-mean-token-sum (verl)', { lossAggMode: 'seq-mean-token-sum', globalBatchSize: 7 }],
  ['entropy bonus (verl entropy_coeff)', { entropyCoef: 0.05 }],
  ['entropy bonus, temperature 0.8, top entropy 0.5, beta', { entropyCoef: 0.1, temperature: 0.8, topEntropyQuantile: 0.5, beta: 0.04 }],
];

for (const [name, cfg] of FAMILIES) {
  for (const withOld of [true, false]) {
    test(`grpoLossFromLogits ${name}${withOld ? '' : ', no oldLogp'}: matches float64 (${ISA})`, () => {
      const tau = cfg.temperature ?? 1;
      const b = batch(name.length * 7 + (withOld ? 1 : 0), 4, 6, 301, tau);
      const oldLogp = withOld ? b.oldLogp : undefined;
      const want = refGrpoLossFromLogits({ z: refWiden(b.logits), V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp, refLogp: b.refLogp, temperature: tau }, cfg);
      const got = grpoLossFromLogitsSync({ ...cfg, logits: b.logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp, refLogp: b.refLogp });
      close(got.logp, want.logp, 1e-5, 1e-6, 'logp');
      close(got.entropy, want.entropy, 1e-5, 1e-5, 'entropy');
      closeScalar(got.loss, want.loss, 1e-5, 1e-7, 'loss');
      const gs = maxAbs(want.gradLogp);
      close(got.gradLogp, want.gradLogp, 1e-4, 1e-6 * gs, 'gradLogp');
      const gz = maxAbs(want.gradLogits);
      close(got.gradLogits as Float32Array, want.gradLogits, 1e-4, 1e-6 * gz + 1e-12, 'gradLogits');
      closeScalar(got.metrics.entropy, want.metrics.entropy, 1e-5, 1e-6, 'metrics.entropy');
      closeScalar(got.metrics.kl, want.metrics.kl, 1e-5, 1e-6, 'metrics.kl');
      closeScalar(got.metrics.ratio, want.metrics.ratio, 1e-5, 1e-6, 'metrics.ratio');
      assert.is(got.metrics.maskedTokens, want.metrics.maskedTokens);
      // masked rows: all-zero gradient rows
      const gl = got.gradLogits as Float32Array;
      for (let n = 0; n < b.S * b.T; n++) {
        if (b.mask[n]) continue;
        for (let v = 0; v < b.V; v++) if (gl[n * b.V + v] !== 0) assert.unreachable(`masked row ${n} has gradient ${gl[n * b.V + v]} at ${v}`);
      }
      // the same loss without a gradient, and in place
      const none = grpoLossFromLogitsSync({ ...cfg, logits: b.logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp, refLogp: b.refLogp, gradient: 'none' });
      assert.is(none.gradLogits, null);
      closeScalar(none.loss, got.loss, 1e-6, 1e-9, 'loss (gradient none)');
      const z = b.logits.slice();
      const inpl = grpoLossFromLogitsSync({ ...cfg, logits: z, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp, refLogp: b.refLogp, gradient: 'inplace' });
      assert.is(inpl.gradLogits, z);
      // in place and separate take the same schedule (one pass keeps e in the output row either
      // way), so the same bits
      assert.is(inpl.loss, got.loss, 'loss (in place)');
      assert.ok(z.every((v, i) => Object.is(v, gl[i])), 'gradLogits in place equals separate');
    });
  }
}

// Top-entropy selection on a peaked batch (issue 8): every row near-deterministic, half of the
// targets not the argmax. The entropies must order the tokens as the float64 ones do (as TRL's
// do), so the same tokens keep their policy term and the loss and ∂L/∂ℓ match the reference.
test(`grpoLossFromLogits: top-entropy selection on peaked rows keeps the reference's tokens (${ISA})`, () => {
  const r = rng(88);
  const S = 4, T = 8, V = 7, N = S * T, tau = 0.6;
  const logits = randn(r, N * V, 1);
  const targets = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const peak = Math.floor(r() * V);
    // distinct gaps (entropies spread over decades), all with exp(−gap/τ) above float32's exp floor
    logits[n * V + peak] += 10 + 1.2 * n;
    targets[n] = n % 2 ? peak : (peak + 1 + Math.floor(r() * (V - 1))) % V;
  }
  const advantages = new Float32Array(S).map(() => normal(r));
  const mask = new Uint8Array(N).fill(1);
  const { logp } = refLogprobs(refWiden(logits), V, targets, Math.fround(tau));
  const oldLogp = new Float32Array(N).map((_, n) => logp[n] + 0.1 * normal(r));
  for (const q of [0.5, 0.2]) {
    const cfg: GrpoLossConfig = { topEntropyQuantile: q };
    const want = refGrpoLossFromLogits({ z: refWiden(logits), V, targets, advantages, mask, oldLogp, temperature: Math.fround(tau) }, cfg);
    const got = grpoLossFromLogitsSync({ ...cfg, logits, vocabSize: V, targets, advantages, mask, oldLogp, temperature: tau });
    close(got.entropy, want.entropy, 2e-5, 0, 'entropy');
    for (let n = 0; n < N; n++) if (!(got.entropy[n] >= 0)) assert.unreachable(`entropy[${n}] = ${got.entropy[n]}`);
    // deselected tokens have ∂L/∂ℓ = 0: the same set as the reference's
    for (let n = 0; n < N; n++) assert.is(got.gradLogp[n] === 0, want.gradLogp[n] === 0, `token ${n} selection (q=${q})`);
    closeScalar(got.loss, want.loss, 1e-5, 1e-7, `loss (q=${q})`);
    close(got.gradLogp, want.gradLogp, 1e-4, 1e-7, `gradLogp (q=${q})`);
  }
});

test(`grpoLossFromLogits: dL/dz matches finite differences of the float64 loss (${ISA})`, () => {
  // (not cispo: its stop-gradient on min(ρ, cap) makes the gradient differ from d(loss value))
  for (const [k, cfg] of [{}, { importanceSamplingLevel: 'sequence', beta: 0.04 }, { policyLoss: 'dual_clip', lossType: 'grpo' }, { topEntropyQuantile: 0.5, temperature: 0.8 },
    { policyLoss: 'sapo', lossType: 'grpo' }, { beta: 0.1, useBiasCorrectionKl: true, temperature: 0.9 }, { policyLoss: 'geo_mean', epsilon: 0.4, epsilonHigh: 0.4 },
    { policyLoss: 'kl_cov', klCovRatio: 0.25, ppoKlCoef: 0.5 }, { lossType: 'luspo', importanceSamplingLevel: 'sequence', beta: 0.04 },
    { entropyCoef: 0.2 }, { entropyCoef: 0.3, temperature: 0.7, lossType: 'grpo' }].entries()) {
    const c = cfg as GrpoLossConfig & { temperature?: number };
    const tau = c.temperature ?? 1;
    const b = batch(1000 + k, 3, 4, 53, tau);
    const z = refWiden(b.logits);
    const inp = { z, V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, temperature: tau };
    const got = grpoLossFromLogitsSync({ ...c, logits: b.logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp });
    const g = got.gradLogits as Float32Array;
    const r = rng(k + 5);
    const scale = maxAbs(g);
    for (let j = 0; j < 12; j++) {
      // half the probes on a row's target entry (the largest gradients), half anywhere
      const n = Math.floor(r() * b.S * b.T);
      const i = j % 2 ? n * b.V + b.targets[n] : Math.floor(r() * z.length);
      const h = 1e-4;
      const z0 = z[i];
      z[i] = z0 + h;
      const lp = refFusedLoss(inp, c);
      z[i] = z0 - h;
      const lm = refFusedLoss(inp, c);
      z[i] = z0;
      const fd = (lp - lm) / (2 * h);
      assert.ok(Math.abs(g[i] - fd) <= 1e-3 * Math.abs(fd) + 1e-5 * scale + 1e-9, `config ${k}, entry ${i}: grad ${g[i]} vs finite difference ${fd}`);
    }
  }
});

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`grpoLossFromLogits ${dtype} logits and gradient (${ISA})`, () => {
    for (const cfg of [{}, { importanceSamplingLevel: 'sequence' as const }, { beta: 0.04, topEntropyQuantile: 0.5 }, { entropyCoef: 0.1 }]) {
      const b = batch(31, 4, 5, 1001);
      const h = refToHalf(b.logits, dtype);
      const want = refGrpoLossFromLogits({ z: refWiden(h, dtype), V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp }, cfg);
      const got = grpoLossFromLogitsSync({ ...cfg, logits: h, dtype, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp });
      assert.ok(got.gradLogits instanceof Uint16Array);
      close(got.logp, want.logp, 1e-5, 1e-6, 'logp');
      closeScalar(got.loss, want.loss, 1e-5, 1e-7, 'loss');
      const gw = refWiden(got.gradLogits as Uint16Array, dtype);
      close(gw, want.gradLogits, 1e-2, 1e-2 * maxAbs(want.gradLogits) * (dtype === 'bfloat16' ? 1 : 0.01) + 1e-12, 'gradLogits');
      const z = h.slice();
      grpoLossFromLogitsSync({ ...cfg, logits: z, dtype, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, gradient: 'inplace' });
      assert.equal(Array.from(z), Array.from(got.gradLogits as Uint16Array), 'in place equals separate');
    }
  });
}

test(`grpoLossFromLogits: a large vocabulary row (V = 151937) (${ISA})`, () => {
  const b = batch(4242, 2, 2, 151937);
  const want = refGrpoLossFromLogits({ z: refWiden(b.logits), V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp }, {});
  const got = grpoLossFromLogitsSync({ logits: b.logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp });
  close(got.logp, want.logp, 1e-5, 1e-6, 'logp');
  closeScalar(got.loss, want.loss, 1e-5, 1e-7, 'loss');
  close(got.gradLogits as Float32Array, want.gradLogits, 1e-4, 1e-6 * maxAbs(want.gradLogits), 'gradLogits');
});

test(`grpoLossFromLogits: V a multiple of 16 over several blocks (streamed rows), aligned and not (${ISA})`, () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const cfg of [{}, { importanceSamplingLevel: 'sequence' as const }]) {
      const b = batch(99, 3, 3, 6160);  // 6160 = 3 blocks of 2048 + 16
      const N = b.S * b.T;
      const x = dtype === 'float32' ? b.logits : refToHalf(b.logits, dtype);
      const want = refGrpoLossFromLogits({ z: refWiden(x, dtype), V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp }, cfg);
      const tol = dtype === 'float32' ? 1e-4 : 1e-2;
      const wz = maxAbs(want.gradLogits);
      const opts = { ...cfg, logits: x, dtype, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp };
      for (const offset of [0, 1, 8]) {  // elements: page-aligned rows, then rows off 64-byte lines
        const buf = dtype === 'float32' ? new Float32Array(N * b.V + 16) : new Uint16Array(N * b.V + 16);
        const gradLogits = buf.subarray(offset, offset + N * b.V);
        const got = grpoLossFromLogitsSync({ ...opts, out: { gradLogits } } as GrpoLossFromLogitsOptions);
        closeScalar(got.loss, want.loss, 1e-5, 1e-7, 'loss');
        close(refWiden(gradLogits, dtype), want.gradLogits, tol, tol * 1e-2 * wz + 1e-12, `gradLogits (${dtype}, offset ${offset})`);
      }
    }
  }
});

test('grpoLossFromLogits async equals sync; out buffers are used', async () => {
  const b = batch(77);
  const base: GrpoLossFromLogitsOptions = { logits: b.logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, beta: 0.04 };
  const a = grpoLossFromLogitsSync(base);
  const N = b.S * b.T;
  const out = { gradLogits: new Float32Array(N * b.V), logp: new Float32Array(N), entropy: new Float32Array(N), gradLogp: new Float32Array(N) };
  const c = await grpoLossFromLogits({ ...base, out });
  assert.is(c.gradLogits, out.gradLogits);
  assert.is(c.logp, out.logp);
  assert.is(c.gradLogp, out.gradLogp);
  assert.is(c.loss, a.loss);
  assert.equal(c.metrics, a.metrics);
  assert.equal(Array.from(c.gradLogits as Float32Array), Array.from(a.gradLogits as Float32Array));
  assert.equal(Array.from(c.entropy), Array.from(a.entropy));
});

test('grpoLossFromLogits rejects bad input with named arguments', async () => {
  const b = batch(3, 2, 2, 5);
  const ok: GrpoLossFromLogitsOptions = { logits: b.logits, vocabSize: 5, targets: b.targets, advantages: b.advantages };
  const bad = (o: Partial<GrpoLossFromLogitsOptions> & Record<string, unknown>, re: RegExp) => assert.throws(() => grpoLossFromLogitsSync({ ...ok, ...o } as never), re);
  bad({ vocabSize: 6 }, /logits/);
  bad({ vocabSize: 0 }, /vocabSize/);
  bad({ targets: new Int32Array([0, 5, 1, 2]) }, /targets/);
  bad({ targets: new Int32Array([0, 1, 2]) }, /targets/);
  bad({ targets: [0, 1, 2, 3] as never }, /targets/);
  bad({ logits: Array.from(b.logits) as never }, /logits/);
  bad({ logits: new Uint16Array(20) }, /dtype/);
  bad({ dtype: 'bfloat16' }, /logits/);
  bad({ dtype: 'float64' as never }, /dtype/);
  bad({ advantages: new Float32Array(3) }, /logits|advantages/);
  bad({ advantages: new Float32Array(0) }, /advantages/);
  bad({ advantages: [1, 2] as never }, /advantages/);
  bad({ advantages: new Float32Array([NaN, 1]) }, /advantages/);
  bad({ mask: new Uint8Array(3) }, /mask/);
  bad({ mask: new Uint8Array([0, 1, 2, 1]) }, /mask/);
  bad({ oldLogp: new Float32Array(3) }, /oldLogp/);
  bad({ beta: 0.1 }, /refLogp/);
  bad({ temperature: 0 }, /temperature/);
  bad({ gradient: 'both' as never }, /gradient/);
  bad({ out: { gradLogits: new Float32Array(19) } }, /gradLogits/);
  bad({ out: { gradLogits: new Uint16Array(20) } }, /gradLogits/);
  bad({ out: { gradLogits: b.logits } }, /gradLogits/);
  bad({ gradient: 'inplace', out: { gradLogits: new Float32Array(20) } }, /gradLogits/);
  bad({ out: { logp: new Float32Array(2) } }, /out\.logp/);
  bad({ lossType: 'mean' as never }, /lossType/);
  bad({ topEntropyQuantile: 2 }, /topEntropyQuantile/);
  const h = refToHalf(b.logits, 'bfloat16');
  assert.throws(() => grpoLossFromLogitsSync({ ...ok, logits: h, dtype: 'bfloat16', out: { gradLogits: new Float32Array(20) } }), /gradLogits/);
  let rejected = false;
  await grpoLossFromLogits({ ...ok, vocabSize: 6 }).catch((e) => (rejected = /logits/.test(e.message)));
  assert.ok(rejected, 'async form rejects');
});

test('grpoLossFromLogits: random malformed calls throw and never crash', () => {
  const r = rng(4);
  const pick = <T,>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const values = [undefined, null, 0, 1, 5, -2, 0.5, NaN, 'separate', 'inplace', 'none', 'bfloat16', 'float16', 'x', [], {}, new Float32Array(20), new Float32Array(4), new Float32Array(2), new Uint16Array(20), new Int32Array(4), new Int32Array([9, 9, 9, 9]), new Uint8Array(4), new Float64Array(20)];
  let threw = 0;
  for (let k = 0; k < 400; k++) {
    const o: Record<string, unknown> = { logits: new Float32Array(20), vocabSize: 5, targets: new Int32Array(4), advantages: new Float32Array(2) };
    for (const key of ['logits', 'vocabSize', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp', 'dtype', 'temperature', 'gradient', 'beta', 'lossType', 'out'])
      if (r() < 0.3) o[key] = pick(values);
    if (r() < 0.2) o.out = { gradLogits: pick(values), logp: pick(values) };
    try {
      const res = grpoLossFromLogitsSync(o as never);
      assert.ok(typeof res.loss === 'number');
    } catch (e) {
      assert.ok(e instanceof TypeError || e instanceof RangeError, String(e));
      threw++;
    }
  }
  assert.ok(threw > 100);
});

if (!process.env.GRPO_CPU_ISA) {
  test('grpoLossFromLogits: the AVX2 and generic kernels, and the two-pass and pipelined schedules, pass this file too (child processes)', () => {
    // GRPO_FUSED_SCHEDULE: the token-level cases by two passes instead of the default one pass
    // (one row at a time), and by the one pass pipelined over two rows.
    for (const env of [{ GRPO_CPU_ISA: 'avx2' }, { GRPO_CPU_ISA: 'generic' }, { GRPO_CPU_ISA: 'avx2', GRPO_FUSED_SCHEDULE: 'pipe' }, { GRPO_CPU_ISA: ISA, GRPO_FUSED_SCHEDULE: 'two' }, { GRPO_CPU_ISA: ISA, GRPO_FUSED_SCHEDULE: 'pipe' }]) {
      const child = spawnSync(process.execPath, ['--import', 'tsx', __filename], {
        env: { ...process.env, ...env, FORCE_COLOR: '0' },
        encoding: 'utf8',
      });
      const out = (child.stdout || '') + (child.stderr || '');
      assert.ok(child.status === 0, `${JSON.stringify(env)} failed:\n${out.slice(-3000)}`);
    }
  });
}

test.run();
