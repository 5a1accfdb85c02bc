// grpoLossFromHidden (spec §8): against the float64 reference (logits h·Wᵀ in float64, then the
// spec §7 reference), bit-equal to grpoLossFromLogits on the materialised logits (inputs whose
// logits are exact in float32), gradients against finite differences of the float64 loss,
// bit-identical results for every chunk size and thread count, accumulation into gradWeight,
// bfloat16 / float16 weights and hidden states, async = sync, and bad input named.
import { spawnSync } from 'child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  backend, grpoLossFromHidden, grpoLossFromHiddenSync, grpoLossFromLogitsSync, GrpoLossConfig, GrpoLossFromHiddenOptions,
  numThreads, setNumThreads,
} from '../lib';
import { close, closeScalar, normal, randn, rng } from './helpers';
import { refGrpoLossFromHidden, refHiddenLoss, refLinear, refLinearGrads } from './reference/grpo_loss_from_hidden';
import { refLogprobs, refToHalf, refWiden } from './reference/logprobs';

const CONFIGS: [string, GrpoLossConfig][] = [
  ['defaults (dapo, token)', {}],
  ['grpo + k3 beta', { lossType: 'grpo', beta: 0.04 }],
  ['sequence level (GSPO)', { importanceSamplingLevel: 'sequence', lossType: 'grpo' }],
  ['dual_clip + bnpo', { policyLoss: 'dual_clip', lossType: 'bnpo', epsilonHigh: 0.28 }],
  ['cispo + dr_grpo', { policyLoss: 'cispo', lossType: 'dr_grpo' }],
  ['top entropy 0.5 + seq_sum + low_var_kl', { topEntropyQuantile: 0.5, lossType: 'seq_sum', beta: 0.1, klEstimator: 'low_var_kl' }],
  ['vespo (TRL)', { policyLoss: 'vespo' }],
  ['kl_cov (verl) + seq-mean-token-mean', { policyLoss: 'kl_cov', klCovRatio: 0.2, lossAggMode: 'seq-mean-token-mean' }],
  ['entropy bonus (entropyCoef) + grpo + k3 beta', { entropyCoef: 0.05, lossType: 'grpo', beta: 0.04 }],
  ['entropy bonus (negative entropyCoef) + top entropy 0.5', { entropyCoef: -0.1, topEntropyQuantile: 0.5 }],
];

interface Batch {
  S: number; T: number; V: number; D: number;
  hidden: Float32Array;
  weight: Float32Array;
  targets: Int32Array;
  advantages: Float32Array;
  mask: Uint8Array;
  oldLogp: Float32Array;
  refLogp: Float32Array;
}

// Random batch; `exact`: h = k/8 and W = k/16 for small integers k, so every logit is a short
// dyadic sum that float32 holds exactly whatever the summation order. ℓ_old and ℓ_ref lie near
// the true ℓ so ratios straddle the clip range.
function batch(seed: number, S = 3, T = 5, V = 53, D = 20, exact = false, tau = 1): Batch {
  const r = rng(seed);
  const N = S * T;
  const hidden = exact ? Float32Array.from({ length: N * D }, () => Math.round((r() - 0.5) * 16) / 8) : randn(r, N * D, 1);
  const weight = exact ? Float32Array.from({ length: V * D }, () => Math.round((r() - 0.5) * 16) / 16) : randn(r, V * D, 0.5);
  const targets = new Int32Array(N).map(() => Math.floor(r() * V));
  const advantages = new Float32Array(S).map(() => normal(r));
  const mask = new Uint8Array(N).fill(1);
  for (let i = 0; i < S; i++) for (let t = T - (i % 3); t < T; t++) mask[i * T + t] = 0;  // padding
  const z = refLinear(refWiden(hidden), refWiden(weight), D, V);
  const { logp } = refLogprobs(z, V, targets, tau);
  const oldLogp = new Float32Array(N).map((_, n) => logp[n] + 0.25 * normal(r));
  const refLogp = new Float32Array(N).map((_, n) => logp[n] + 0.5 * normal(r));
  return { S, T, V, D, hidden, weight, targets, advantages, mask, oldLogp, refLogp };
}

function opts(b: Batch, cfg: GrpoLossConfig, extra: Partial<GrpoLossFromHiddenOptions> = {}): GrpoLossFromHiddenOptions {
  return {
    hidden: b.hidden, weight: b.weight, hiddenSize: b.D, vocabSize: b.V, targets: b.targets, advantages: b.advantages,
    mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, ...cfg, ...extra,
  };
}
function refOf(b: Batch, cfg: GrpoLossConfig, tau = 1, h = refWiden(b.hidden), W = refWiden(b.weight)) {
  return refGrpoLossFromHidden({ h, W, D: b.D, V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, temperature: tau }, cfg);
}
const METRICS = ['kl', 'entropy', 'clipLow', 'clipHigh', 'clipRegion', 'ratio', 'maskedTokens'] as const;

for (const [name, cfg] of CONFIGS) {
  for (const tau of [1, 0.7]) {
    test(`grpoLossFromHidden ${name}, τ=${tau}: ℓ, H, loss, metrics and both gradients match the float64 reference`, () => {
      const b = batch(name.length * 31 + tau * 10, 3, 5, 53, 20, false, tau);
      const want = refOf(b, cfg, tau);
      const got = grpoLossFromHiddenSync(opts(b, cfg, { temperature: tau, chunkSize: 4 }));  // chunks cut sequences
      close(got.logp, want.logp, 1e-5, 1e-5, 'logp');
      close(got.entropy, want.entropy, 1e-5, 1e-5, 'entropy');
      closeScalar(got.loss, want.loss, 1e-4, 1e-6, 'loss');
      close(got.gradLogp, want.gradLogp, 1e-4, 1e-6, 'gradLogp');
      close(got.gradHidden!, want.gradHidden, 1e-4, 1e-6, 'gradHidden');
      close(got.gradWeight!, want.gradWeight, 1e-4, 1e-6, 'gradWeight');
      for (const k of METRICS) closeScalar(got.metrics[k], want.metrics[k], 1e-5, 1e-6, `metrics.${k}`);
    });
  }
}

for (const [name, cfg] of CONFIGS) {
  test(`grpoLossFromHidden ${name}: the bits of grpoLossFromLogits on the materialised logits`, () => {
    const b = batch(500 + name.length, 3, 5, 53, 24, true, 0.7);
    const z = refLinear(refWiden(b.hidden), refWiden(b.weight), b.D, b.V);
    const logits = Float32Array.from(z);
    for (let i = 0; i < z.length; i++) assert.is(logits[i], z[i], 'the test inputs give exact float32 logits');
    const lg = grpoLossFromLogitsSync({ logits, vocabSize: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, temperature: 0.7, ...cfg });
    const got = grpoLossFromHiddenSync(opts(b, cfg, { temperature: 0.7, chunkSize: 7 }));
    assert.equal(Array.from(got.logp), Array.from(lg.logp), 'logp bits');
    assert.equal(Array.from(got.entropy), Array.from(lg.entropy), 'entropy bits');
    assert.equal(Array.from(got.gradLogp), Array.from(lg.gradLogp), 'gradLogp bits');
    assert.is(got.loss, lg.loss, 'loss bits');
    assert.equal(got.metrics, lg.metrics, 'metrics');
    // The two products of grpoLossFromLogits's ∂L/∂z, in float64.
    const dz = refWiden(lg.gradLogits as Float32Array), W = refWiden(b.weight), h = refWiden(b.hidden);
    const { dh, dw } = refLinearGrads(dz, W, h, b.S * b.T, b.V, b.D);
    close(got.gradHidden!, dh, 1e-5, 1e-7, 'gradHidden = ∂L/∂z · W');
    close(got.gradWeight!, dw, 1e-5, 1e-7, 'gradWeight = (∂L/∂z)ᵀ · h');
  });
}

for (const [name, cfg] of [CONFIGS[1], CONFIGS[2], CONFIGS[5], CONFIGS[8], CONFIGS[9]]) {
  test(`grpoLossFromHidden ${name}: gradients match central differences of the float64 loss`, () => {
    const b = batch(77 + name.length, 2, 4, 29, 12);
    const got = grpoLossFromHiddenSync(opts(b, cfg, { chunkSize: 3, temperature: 0.9 }));
    const h = refWiden(b.hidden), W = refWiden(b.weight);
    const loss = () => refHiddenLoss({ h, W, D: b.D, V: b.V, targets: b.targets, advantages: b.advantages, mask: b.mask, oldLogp: b.oldLogp, refLogp: b.refLogp, temperature: 0.9 }, cfg);
    const eps = 1e-5;
    const r = rng(5);
    for (const [what, x, grad] of [['gradHidden', h, got.gradHidden!], ['gradWeight', W, got.gradWeight!]] as const) {
      for (let trial = 0; trial < 12; trial++) {
        const i = Math.floor(r() * x.length);
        const x0 = x[i];
        x[i] = x0 + eps;
        const lp = loss();
        x[i] = x0 - eps;
        const lm = loss();
        x[i] = x0;
        const fd = (lp - lm) / (2 * eps);
        closeScalar(grad[i], fd, 2e-3, 2e-6, `${what}[${i}] vs finite difference`);
      }
    }
  });
}

test('grpoLossFromHidden: every output is bit-identical for any chunk size and thread count', () => {
  const threads = numThreads();
  try {
    for (const [name, cfg] of [CONFIGS[0], CONFIGS[2], CONFIGS[5]]) {
      const b = batch(9 + name.length, 4, 9, 67, 40);
      const base = grpoLossFromHiddenSync(opts(b, cfg, { chunkSize: 36 }));
      for (const [chunkSize, th] of [[1, threads], [5, threads], [16, 1], [17, 2], [1000, 3], [undefined, threads]] as const) {
        setNumThreads(th);
        const got = grpoLossFromHiddenSync(opts(b, cfg, chunkSize === undefined ? {} : { chunkSize }));
        const tag = `${name}, chunkSize ${chunkSize}, ${th} threads`;
        assert.is(got.loss, base.loss, `${tag}: loss`);
        assert.equal(got.metrics, base.metrics, `${tag}: metrics`);
        for (const k of ['logp', 'entropy', 'gradLogp', 'gradHidden', 'gradWeight'] as const)
          assert.ok(Buffer.from(got[k]!.buffer).equals(Buffer.from(base[k]!.buffer)), `${tag}: ${k} bits`);
      }
    }
  } finally {
    setNumThreads(threads);
  }
});

test('grpoLossFromHidden: gradWeight accumulates (+=) into the caller buffer; false / gradHidden: false skip them', () => {
  const b = batch(3);
  const one = grpoLossFromHiddenSync(opts(b, {}));
  const acc = Float32Array.from(one.gradWeight!, (x) => x + 1);
  const r = grpoLossFromHiddenSync(opts(b, {}, { gradWeight: acc }));
  assert.is(r.gradWeight, acc);
  close(acc, Array.from(one.gradWeight!, (x) => x + 1 + x), 1e-6, 1e-6, 'gradWeight = previous + new');
  const skip = grpoLossFromHiddenSync(opts(b, {}, { gradWeight: false }));
  assert.is(skip.gradWeight, null);
  assert.equal(Array.from(skip.gradHidden!), Array.from(one.gradHidden!), 'gradHidden without gradWeight');
  const none = grpoLossFromHiddenSync(opts(b, {}, { gradWeight: false, gradHidden: false }));
  assert.is(none.gradHidden, null);
  assert.is(none.loss, one.loss);
  assert.equal(Array.from(none.gradLogp), Array.from(one.gradLogp));
  const gh = new Float32Array(b.hidden.length).fill(NaN);
  const pre = grpoLossFromHiddenSync(opts(b, {}, { out: { gradHidden: gh } }));
  assert.is(pre.gradHidden, gh);
  assert.equal(Array.from(gh), Array.from(one.gradHidden!), 'out.gradHidden is overwritten, masked rows included');
  const N = b.S * b.T;
  for (let n = 0; n < N; n++) if (!b.mask[n]) for (let k = 0; k < b.D; k++) assert.is(gh[n * b.D + k], 0, `masked row ${n}`);
});

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`grpoLossFromHidden ${dtype} weight and hidden states: the float64 reference on the widened values`, () => {
    const b = batch(11, 3, 4, 61, 24);
    const w16 = refToHalf(b.weight, dtype), h16 = refToHalf(b.hidden, dtype);
    for (const [hid, hdt] of [[b.hidden, 'float32'], [h16, dtype]] as const) {
      const cfg = { lossType: 'grpo', beta: 0.04 } as const;
      const want = refOf(b, cfg, 1, refWiden(hid, hdt), refWiden(w16, dtype));
      const got = grpoLossFromHiddenSync(opts(b, cfg, { hidden: hid, hiddenDtype: hdt, weight: w16, weightDtype: dtype, chunkSize: 5 }));
      close(got.logp, want.logp, 1e-5, 1e-5, `${hdt} hidden: logp`);
      closeScalar(got.loss, want.loss, 1e-4, 1e-6, `${hdt} hidden: loss`);
      close(got.gradHidden!, want.gradHidden, 1e-4, 1e-6, `${hdt} hidden: gradHidden`);
      close(got.gradWeight!, want.gradWeight, 1e-4, 1e-6, `${hdt} hidden: gradWeight`);
    }
  });
}

test('grpoLossFromHidden async resolves with the same bits as the sync form', async () => {
  const b = batch(21);
  const s = grpoLossFromHiddenSync(opts(b, { beta: 0.04 }));
  const a = await grpoLossFromHidden(opts(b, { beta: 0.04 }));
  assert.is(a.loss, s.loss);
  assert.equal(Array.from(a.gradHidden!), Array.from(s.gradHidden!));
  assert.equal(Array.from(a.gradWeight!), Array.from(s.gradWeight!));
});

test('grpoLossFromHidden: bad input is an error naming the argument', () => {
  const b = batch(1);
  const bad = (extra: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => grpoLossFromHiddenSync({ ...opts(b, {}), ...extra } as GrpoLossFromHiddenOptions), re);
  bad({ hiddenSize: 0 }, /grpoLossFromHidden: expected an integer in \[1, \d+\] for hiddenSize but received 0/);
  bad({ entropyCoef: Number.NaN }, /entropyCoef/);
  bad({ hiddenSize: 7 }, /expected a length that is a multiple of hiddenSize = 7 for hidden/);
  bad({ hidden: new Float64Array(b.hidden.length) }, /expected Float32Array or Uint16Array .* for hidden but received Float64Array/);
  bad({ weight: new Float32Array(5) }, /expected Float32Array of length 1060 (\(dtype float32\) )?for weight but received Float32Array\(5\)/);
  // one option snapshot: unknown keys (a typo silently giving the default loss) and float32 range
  bad({ losType: 'grpo' }, /grpoLossFromHidden: unknown option losType \(did you mean lossType\?\)/);
  bad({ temperature: 1e39 }, /temperature/);
  bad({ weight: new Uint16Array(b.weight.length) }, /for weightDtype/);
  bad({ weight: new Uint16Array(b.weight.length), weightDtype: 'float32' }, /expected Float32Array of length 1060 \(dtype float32\) for weight/);
  bad({ hidden: new Uint16Array(b.hidden.length), hiddenDtype: 'int8' }, /for hiddenDtype but received/);
  bad({ vocabSize: 2.5 }, /for vocabSize but received 2.5/);
  bad({ targets: new Int32Array(b.targets.length).fill(b.V) }, /expected ids in \[0, 53\) for targets but received '53 at index 0'/);
  bad({ advantages: new Float32Array(4) }, /expected 15 rows .* multiple of S = advantages.length = 4 for hidden/);
  bad({ chunkSize: 0 }, /expected an integer in \[1, \d+\] for chunkSize but received 0/);
  bad({ temperature: 0 }, /for temperature but received 0/);
  bad({ beta: 0.1, refLogp: undefined }, /for refLogp but received undefined/);
  bad({ gradWeight: new Float32Array(3) }, /expected Float32Array of length 1060 .* for gradWeight but received Float32Array\(3\)/);
  bad({ gradWeight: 'yes' }, /to accumulate into, or a boolean for gradWeight but received/);
  bad({ gradWeight: b.weight }, /expected a buffer apart from hidden and weight for gradWeight/);
  bad({ out: { gradHidden: b.hidden } }, /expected a buffer apart from hidden, weight and gradWeight for out.gradHidden/);
  bad({ out: { gradHidden: new Float32Array(3) } }, /for out.gradHidden but received Float32Array\(3\)/);
  bad({ gradHidden: false, out: { gradHidden: new Float32Array(300) } }, /undefined with gradHidden: false for out.gradHidden/);
  bad({ lossType: 'mean' }, /for lossType but received/);
  bad({ mask: new Uint8Array(15).fill(2) }, /expected mask values 0 or 1 for mask/);
});

if (!process.env.GRPO_CPU_ISA) {
  test('grpoLossFromHidden: the AVX2 and generic matmul and row kernels pass this file too (child processes)', () => {
    const isas = backend().cpuIsa === 'avx512' ? ['avx2', 'generic'] : ['generic'];
    for (const isa of isas) {
      const child = spawnSync(process.execPath, ['--import', 'tsx', __filename], { env: { ...process.env, GRPO_CPU_ISA: isa, FORCE_COLOR: '0' }, encoding: 'utf8' });
      const out = (child.stdout || '') + (child.stderr || '');
      assert.ok(child.status === 0, `GRPO_CPU_ISA=${isa} failed:\n${out.slice(-3000)}`);
    }
  });
}

test.run();
