// grpoLoss (spec §4-§6) against the float64 reference (test/reference/grpo_loss.ts): every
// option combination that changes the math, gradient checks by central finite differences of
// the reference loss, async/sync agreement, thread-count independence, and bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { grpoLoss, grpoLossSync, setNumThreads, numThreads, KL_ESTIMATORS, grpoConfigToNative } from '../lib';
import type { GrpoLossConfig, GrpoLossOptions, LossType, PolicyLoss, ImportanceSamplingLevel } from '../lib/ops/grpo_loss';
import { close, closeScalar, normal, rng } from './helpers';
import { refGrpoLoss, RefGrpoInputs } from './reference/grpo_loss';

const LEVELS: ImportanceSamplingLevel[] = ['token', 'sequence'];
const POLICIES: PolicyLoss[] = ['clip', 'dual_clip', 'cispo', 'sapo'];
const LOSS_TYPES: LossType[] = ['grpo', 'bnpo', 'dapo', 'dr_grpo', 'seq_sum'];
// Clip bounds used throughout: 1 - 0.2 = 0.8, 1 + 0.28 = 1.28, delta 2, dual-clip c 3, cispo cap 5.
const EPS = 0.2, EPS_HIGH = 0.28, DELTA = 2.0;
// Ratios at least 5% away from every kink above: finite differences are valid there, and the
// set includes clipped points (below 0.8, above 1.28 / 2 / 3 / 5).
const SAFE_RATIOS = [0.3, 0.6, 0.75, 0.9, 1.0, 1.1, 1.2, 1.5, 1.9, 2.2, 2.6, 3.4, 4.5, 6, 8];

interface Case {
  inputs: RefGrpoInputs & { logp: Float32Array; advantages: Float32Array; oldLogp?: Float32Array; refLogp?: Float32Array; entropy?: Float32Array; mask: Uint8Array };
  S: number;
  T: number;
}

/**
 * Random inputs. Padding (mask 0) holds NaN to prove it is never read. `safe`: every ratio
 * (token, or GSPO's sequence ratio) is taken from SAFE_RATIOS; otherwise log-ratios are
 * random with a few large ones so every clip region is visited.
 */
function makeCase(seed: number, S: number, T: number, o: { level?: ImportanceSamplingLevel; safe?: boolean; emptySeqs?: number[] } = {}): Case {
  const r = rng(seed);
  const N = S * T;
  const mask = new Uint8Array(N);
  for (let i = 0; i < S; i++) {
    const len = T === 1 ? 1 : 1 + Math.floor(r() * T);  // padded at the end, like completions
    for (let t = 0; t < len; t++) mask[i * T + t] = 1;
    if (T > 4 && r() < 0.3) mask[i * T + Math.floor(r() * len)] = 0;  // a hole (e.g. a tool token)
  }
  for (const i of o.emptySeqs ?? []) mask.fill(0, i * T, (i + 1) * T);
  const logp = new Float32Array(N), oldLogp = new Float32Array(N), refLogp = new Float32Array(N), entropy = new Float32Array(N);
  const advantages = new Float32Array(S);
  for (let i = 0; i < S; i++) advantages[i] = (r() < 0.5 ? -1 : 1) * (0.1 + 2 * r());
  const pick = () => SAFE_RATIOS[Math.floor(r() * SAFE_RATIOS.length)];
  for (let i = 0; i < S; i++) {
    const lr = new Float64Array(T);
    let sum = 0, cnt = 0;
    for (let t = 0; t < T; t++) {
      const n = i * T + t;
      lr[t] = o.safe ? (o.level === 'sequence' ? 0.3 * normal(r) : Math.log(pick())) : r() < 0.15 ? 1.5 * normal(r) : 0.15 * normal(r);
      if (mask[n]) {
        sum += lr[t];
        cnt++;
      }
    }
    if (o.safe && o.level === 'sequence' && cnt > 0) {
      const shift = Math.log(pick()) - sum / cnt;  // GSPO ratio exactly a safe value
      for (let t = 0; t < T; t++) lr[t] += shift;
    }
    for (let t = 0; t < T; t++) {
      const n = i * T + t;
      logp[n] = -0.05 - 4 * r();
      oldLogp[n] = logp[n] - lr[t];
      // d = ref - logp: mostly small; a few past low_var_kl's D clamp (d ~ 3) and the 20 clamp
      const u = r();
      const d = u < 0.05 ? 3 + r() : u < 0.08 ? -25 : 0.5 * normal(r);
      refLogp[n] = logp[n] + d;
      entropy[n] = 3 * r();
      if (!mask[n]) logp[n] = oldLogp[n] = refLogp[n] = entropy[n] = NaN;
    }
  }
  return { inputs: { logp, oldLogp, refLogp, advantages, mask, entropy }, S, T };
}

interface Combo extends GrpoLossConfig {
  name: string;
}

/** Every combination that changes the math; the KL estimator rotates through all four. */
function combos(level: ImportanceSamplingLevel, policyLoss: PolicyLoss, lossType: LossType): Combo[] {
  const out: Combo[] = [];
  let k = 0;
  for (const beta of [0, 0.04]) {
    for (const delta of policyLoss === 'cispo' || policyLoss === 'sapo' ? [undefined] : [undefined, DELTA]) {
      for (const q of [1, 0.3]) {
        const klEstimator = KL_ESTIMATORS[(k + LOSS_TYPES.indexOf(lossType)) % 4];
        const cfg: Combo = {
          name: `${level}/${policyLoss}/${lossType} beta=${beta} delta=${delta} q=${q} kl=${klEstimator}`,
          importanceSamplingLevel: level,
          policyLoss,
          lossType,
          epsilon: EPS,
          beta,
          klEstimator,
          clampLogRatio: k % 3 !== 2,
          topEntropyQuantile: q,
        };
        if (policyLoss !== 'cispo') cfg.epsilonHigh = EPS_HIGH;
        if (policyLoss === 'sapo' && k % 2 === 1) Object.assign(cfg, { sapoTemperaturePos: 2.5, sapoTemperatureNeg: 0.4 });
        if (delta !== undefined) cfg.delta = delta;
        if (lossType === 'dapo' && k % 2 === 1) cfg.numItemsInBatch = 1000;
        if (lossType === 'dr_grpo' && k % 2 === 1) cfg.maxCompletionLength = 77;
        out.push(cfg);
        k++;
      }
    }
  }
  return out;
}

function run(c: Case, cfg: Combo, extra: Partial<GrpoLossOptions> = {}) {
  const { name, ...config } = cfg;
  return grpoLossSync({ ...c.inputs, ...config, perTokenLoss: true, ...extra });
}

const SIZES: [number, number, number[]][] = [
  [1, 1, []],
  [3, 5, []],
  [8, 64, [2, 5]],
];

for (const level of LEVELS) {
  for (const policyLoss of POLICIES) {
    for (const lossType of LOSS_TYPES) {
      test(`grpoLoss ${level}/${policyLoss}/${lossType}: loss, gradient, per-token loss and metrics match the float64 reference`, () => {
        for (const cfg of combos(level, policyLoss, lossType)) {
          for (const [S, T, empty] of SIZES) {
            const c = makeCase(S * 1000 + T + LOSS_TYPES.indexOf(lossType), S, T, { emptySeqs: empty });
            const want = refGrpoLoss(c.inputs, cfg);
            const got = run(c, cfg);
            const what = `${cfg.name} S=${S} T=${T}`;
            closeScalar(got.loss, want.loss, 1e-5, 1e-12, `${what} loss`);
            assert.is(got.metrics.loss, got.loss);
            let gmax = 0;
            for (const g of want.gradLogp) gmax = Math.max(gmax, Math.abs(g));
            close(got.gradLogp!, want.gradLogp, 1e-5, 1e-6 * gmax + 1e-30, `${what} gradLogp`);
            close(got.perTokenLoss!, want.perTokenLoss, 1e-5, 1e-9, `${what} perTokenLoss`);
            for (const key of ['kl', 'entropy', 'clipLow', 'clipHigh', 'clipRegion', 'ratio', 'maskedTokens'] as const)
              closeScalar(got.metrics[key], want.metrics[key], 1e-9, 1e-12, `${what} metrics.${key}`);
            for (let n = 0; n < S * T; n++) {
              if (!c.inputs.mask[n]) {
                assert.is(got.gradLogp![n], 0, `${what}: masked-out gradient is 0`);
                assert.is(got.perTokenLoss![n], 0, `${what}: masked-out per-token loss is 0`);
              }
            }
          }
        }
      });
    }
  }
}

/**
 * Central finite difference of the reference loss w.r.t. logp[n], with oldLogp held fixed
 * (without oldLogp: at the unperturbed logp, i.e. detached). CISPO's ratio weight is a
 * stop-gradient, so there oldLogp[n] moves with logp[n]: the ratio stays put and the difference
 * measures exactly the gradient autograd gives.
 */
function fdGrad(c: Case, cfg: GrpoLossConfig, n: number, h = 1e-6): number {
  // cispo's and vespo's weights are stop-gradients of the log-ratio: move ℓ_old with ℓ
  const moveOld = cfg.policyLoss === 'cispo' || cfg.policyLoss === 'vespo';
  const lp = Float64Array.from(c.inputs.logp);
  const old = Float64Array.from(c.inputs.oldLogp ?? c.inputs.logp);
  const at = (s: number) => {
    const l = lp.slice(), o = old.slice();
    l[n] += s * h;
    if (moveOld) o[n] += s * h;
    return refGrpoLoss({ ...c.inputs, logp: l, oldLogp: o }, cfg).loss;
  };
  return (at(1) - at(-1)) / (2 * h);
}

for (const level of LEVELS) {
  for (const policyLoss of POLICIES) {
    test(`grpoLoss ${level}/${policyLoss}: gradLogp equals central finite differences of the float64 loss (all options)`, () => {
      for (const lossType of LOSS_TYPES) {
        for (const cfg of combos(level, policyLoss, lossType)) {
          for (const [S, T, empty] of [[3, 5, []], [8, 64, [2, 5]]] as [number, number, number[]][]) {
            const c = makeCase(77 + S + LOSS_TYPES.indexOf(lossType), S, T, { level, safe: true, emptySeqs: empty });
            const got = run(c, cfg);
            const N = S * T;
            // every token of the small case; 40 tokens of the large one
            const rows = N <= 64 ? [...Array(N).keys()] : Array.from({ length: 40 }, (_, k) => (k * 2654435761) % N);
            let scale = 0;
            const fds = rows.map((n) => fdGrad(c, cfg, n));
            for (const f of fds) scale = Math.max(scale, Math.abs(f));
            rows.forEach((n, k) => {
              const g = got.gradLogp![n];
              assert.ok(
                Math.abs(g - fds[k]) <= 1e-4 * Math.abs(fds[k]) + 1e-5 * scale + 1e-12,
                `${cfg.name} S=${S} T=${T} row ${n}: grad ${g} vs finite difference ${fds[k]}`,
              );
            });
          }
        }
      }
    });
  }
}

// Options added for issue 8 beyond the grid above: verl's cispo range, TRL's
// use_bias_correction_kl, verl's abs KL, each against the reference and finite differences;
// the straight-through KL forms against the reference (their gradient is k2's by definition).
const EXTRA: Combo[] = [
  { name: 'cispo range (verl)', policyLoss: 'cispo', cispoClip: 'range', epsilon: 0.2, epsilonHigh: 0.28 },
  { name: 'cispo range, beta', policyLoss: 'cispo', cispoClip: 'range', beta: 0.04, lossType: 'bnpo', epsilonHigh: 0.28 },
  { name: 'bias-corrected KL, k3', beta: 0.1, useBiasCorrectionKl: true, epsilonHigh: 0.28 },
  { name: 'bias-corrected KL, low_var_kl, grpo', beta: 0.1, klEstimator: 'low_var_kl', useBiasCorrectionKl: true, lossType: 'grpo', epsilonHigh: 0.28 },
  { name: 'bias-corrected KL, sapo', policyLoss: 'sapo', beta: 0.1, useBiasCorrectionKl: true, lossType: 'grpo' },
  { name: 'abs KL', beta: 0.1, klEstimator: 'abs', epsilonHigh: 0.28 },
];
// (epsilonHigh 0.28 everywhere: SAFE_RATIOS keep clear of the kinks 0.8 and 1.28, not of 1.2)
for (const level of LEVELS) {
  test(`grpoLoss ${level}: cispo range, bias-corrected KL, abs KL match the float64 reference and finite differences`, () => {
    for (const cfg of EXTRA) {
      for (const [S, T, empty] of [[3, 5, []], [8, 64, [2, 5]]] as [number, number, number[]][]) {
        const c = makeCase(91 + S + T, S, T, { emptySeqs: empty });
        const want = refGrpoLoss(c.inputs, cfg);
        const got = run(c, cfg);
        const what = `${level} ${cfg.name} S=${S} T=${T}`;
        const lcfg = { ...cfg, importanceSamplingLevel: level };
        const w2 = refGrpoLoss(c.inputs, lcfg), g2 = run(c, lcfg as Combo);
        closeScalar(got.loss, want.loss, 1e-5, 1e-12, `${what} loss (token)`);
        closeScalar(g2.loss, w2.loss, 1e-5, 1e-12, `${what} loss`);
        let gmax = 0;
        for (const g of w2.gradLogp) gmax = Math.max(gmax, Math.abs(g));
        close(g2.gradLogp!, w2.gradLogp, 1e-5, 1e-6 * gmax + 1e-30, `${what} gradLogp`);
        for (const key of ['kl', 'clipLow', 'clipHigh', 'clipRegion', 'ratio'] as const)
          closeScalar(g2.metrics[key], w2.metrics[key], 1e-9, 1e-12, `${what} metrics.${key}`);
        // finite differences on safe ratios
        const cs = makeCase(177 + S + T, S, T, { level, safe: true, emptySeqs: empty });
        const gs = run(cs, lcfg as Combo);
        const rows = S * T <= 64 ? [...Array(S * T).keys()] : Array.from({ length: 40 }, (_, k) => (k * 2654435761) % (S * T));
        const fds = rows.map((n) => fdGrad(cs, lcfg, n));
        const scale = Math.max(...fds.map(Math.abs));
        rows.forEach((n, k) => {
          assert.ok(Math.abs(gs.gradLogp![n] - fds[k]) <= 1e-4 * Math.abs(fds[k]) + 1e-5 * scale + 1e-12,
            `${what} row ${n}: grad ${gs.gradLogp![n]} vs finite difference ${fds[k]}`);
        });
      }
    }
  });
}

test('grpoLoss geo_mean (verl GMPO): loss, gradient, per-token loss, metrics vs float64 and finite differences', () => {
  for (const cfg of [
    { name: 'geo_mean', policyLoss: 'geo_mean', epsilon: 0.4, epsilonHigh: 0.4 },
    { name: 'geo_mean asymmetric, beta, grpo', policyLoss: 'geo_mean', epsilon: 0.3, epsilonHigh: 0.5, beta: 0.05, lossType: 'grpo' },
  ] as Combo[]) {
    for (const [S, T, empty] of [[1, 1, []], [3, 5, []], [8, 64, [2, 5]]] as [number, number, number[]][]) {
      const what = `${cfg.name} S=${S} T=${T}`;
      for (const withOld of [true, false]) {
        const c = makeCase(300 + S + T, S, T, { emptySeqs: empty });
        if (!withOld) delete c.inputs.oldLogp;
        const want = refGrpoLoss(c.inputs, cfg);
        const got = run(c, cfg);
        closeScalar(got.loss, want.loss, 1e-5, 1e-12, `${what} loss`);
        close(got.gradLogp!, want.gradLogp, 1e-5, 1e-9, `${what} gradLogp`);
        close(got.perTokenLoss!, want.perTokenLoss, 1e-5, 1e-9, `${what} perTokenLoss`);
        for (const key of ['kl', 'clipLow', 'clipHigh', 'clipRegion', 'ratio'] as const)
          closeScalar(got.metrics[key], want.metrics[key], 1e-9, 1e-12, `${what} metrics.${key}`);
      }
      const cs = makeCase(400 + S + T, S, T, { safe: true, emptySeqs: empty });
      const gs = run(cs, cfg);
      const rows = S * T <= 64 ? [...Array(S * T).keys()] : Array.from({ length: 40 }, (_, k) => (k * 2654435761) % (S * T));
      const fds = rows.map((n) => fdGrad(cs, cfg, n));
      const scale = Math.max(...fds.map(Math.abs));
      rows.forEach((n, k) => {
        assert.ok(Math.abs(gs.gradLogp![n] - fds[k]) <= 1e-4 * Math.abs(fds[k]) + 1e-5 * scale + 1e-12, `${what} row ${n}: grad ${gs.gradLogp![n]} vs finite difference ${fds[k]}`);
      });
    }
  }
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'geo_mean', importanceSamplingLevel: 'sequence' }), /importanceSamplingLevel/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'geo_mean', topEntropyQuantile: 0.5 }), /topEntropyQuantile/);
});

test('grpoLoss straight-through KL (verl k1+ / k3+ / low_var_kl+ / abs+): value of the estimator, gradient of k2', () => {
  const c = makeCase(4242, 6, 16);
  for (const [plus, base] of [['k1+', 'k1'], ['k3+', 'k3'], ['low_var_kl+', 'low_var_kl'], ['abs+', 'abs']] as const) {
    const cfg = { name: plus, beta: 0.3, klEstimator: plus, lossType: 'bnpo' } as Combo;
    const want = refGrpoLoss(c.inputs, cfg);
    const got = run(c, cfg);
    closeScalar(got.loss, want.loss, 1e-5, 1e-12, `${plus} loss`);
    close(got.gradLogp!, want.gradLogp, 1e-5, 1e-7, `${plus} gradLogp`);
    // loss and kl metric of the base estimator; gradient of k2
    const vb = run(c, { ...cfg, klEstimator: base });
    const gk2 = run(c, { ...cfg, klEstimator: 'k2' });
    closeScalar(got.loss, vb.loss, 1e-6, 1e-12, `${plus} loss = ${base} loss`);
    closeScalar(got.metrics.kl, vb.metrics.kl, 1e-9, 1e-12, `${plus} kl metric`);
    close(got.gradLogp!, gk2.gradLogp!, 1e-6, 1e-9, `${plus} gradient = k2 gradient`);
  }
});

test('grpoLoss without oldLogp: rho = 1 with gradient rho (logp detached), both levels', () => {
  for (const level of LEVELS) {
    for (const policyLoss of POLICIES) {
      const c = makeCase(5, 4, 9, { emptySeqs: [1] });
      const inputs = { ...c.inputs, oldLogp: undefined };
      const cfg: Combo = { name: `${level}/${policyLoss}`, importanceSamplingLevel: level, policyLoss, beta: 0.1, lossType: 'grpo' };
      const got = grpoLossSync({ ...inputs, importanceSamplingLevel: level, policyLoss, beta: 0.1, lossType: 'grpo' });
      const want = refGrpoLoss(inputs, cfg);
      closeScalar(got.loss, want.loss, 1e-6, 1e-12, `${cfg.name} loss`);
      close(got.gradLogp!, want.gradLogp, 1e-5, 1e-7, `${cfg.name} grad`);
      closeScalar(got.metrics.ratio, 1, 0, 0, `${cfg.name} ratio`);
      for (let n = 0; n < 36; n++) {
        if (!c.inputs.mask[n]) continue;
        const fd = fdGrad({ ...c, inputs: inputs as Case['inputs'] }, cfg, n);
        assert.ok(Math.abs(got.gradLogp![n] - fd) <= 1e-5 + 1e-4 * Math.abs(fd), `${cfg.name} row ${n}: ${got.gradLogp![n]} vs fd ${fd}`);
      }
    }
  }
});

test('grpoLoss known values: one token, clip, dapo', () => {
  // rho = e^0.5 > 1.2, A = 1 > 0: clipped, loss = -1.2, no gradient through rho.
  const r = grpoLossSync({ logp: new Float32Array([-1]), oldLogp: new Float32Array([-1.5]), advantages: new Float32Array([1]) });
  closeScalar(r.loss, -1.2, 1e-7, 0, 'loss');
  assert.is(r.gradLogp![0], 0);
  assert.is(r.metrics.clipHigh, 1);
  // A = -1: the unclipped term is the min: loss = rho, gradient rho.
  const s = grpoLossSync({ logp: new Float32Array([-1]), oldLogp: new Float32Array([-1.5]), advantages: new Float32Array([-1]) });
  closeScalar(s.loss, Math.exp(0.5), 1e-7, 0, 'loss');
  closeScalar(s.gradLogp![0], Math.exp(0.5), 1e-6, 0, 'grad');
  // dual_clip bounds it by c * |A| = 3 once rho > 3.
  const d = grpoLossSync({ logp: new Float32Array([0]), oldLogp: new Float32Array([-2]), advantages: new Float32Array([-1]), policyLoss: 'dual_clip' });
  closeScalar(d.loss, 3, 1e-7, 0, 'dual clip loss');
  assert.is(d.gradLogp![0], 0);
  // cispo: P = -min(rho, 5) * A * logp
  const cz = grpoLossSync({ logp: new Float32Array([-1]), oldLogp: new Float32Array([-1.5]), advantages: new Float32Array([2]), policyLoss: 'cispo' });
  closeScalar(cz.loss, Math.exp(0.5) * 2, 1e-6, 0, 'cispo loss');
  closeScalar(cz.gradLogp![0], -Math.exp(0.5) * 2, 1e-6, 0, 'cispo grad');
});

test('grpoLoss all tokens masked: loss 0, metrics 0, gradients 0', () => {
  const N = 12;
  const r = grpoLossSync({
    logp: new Float32Array(N).fill(NaN), advantages: new Float32Array(3).fill(1), mask: new Uint8Array(N),
    refLogp: new Float32Array(N), beta: 0.1, lossType: 'bnpo', entropy: new Float32Array(N), topEntropyQuantile: 0.5,
  });
  assert.is(r.loss, 0);
  assert.is(r.metrics.maskedTokens, 0);
  assert.is(r.metrics.ratio, 0);
  assert.ok(r.gradLogp!.every((g) => g === 0));
});

test('grpoLoss top-entropy selection keeps the top q fraction (TRL) and leaves the KL term', () => {
  // 10 tokens with entropies 0..9; q = 0.3: threshold = quantile(0.7) = 6.3 -> tokens 7, 8, 9 keep P.
  const N = 10;
  const entropy = Float32Array.from({ length: N }, (_, i) => i);
  const logp = new Float32Array(N).fill(-1);
  const refLogp = new Float32Array(N).fill(-1.2);
  const r = grpoLossSync({ logp, refLogp, entropy, advantages: new Float32Array([1]), topEntropyQuantile: 0.3, beta: 0.5, perTokenLoss: true, lossType: 'seq_sum' });
  const d = Math.expm1(-0.2) + 0.2;  // k3 with d = -0.2
  for (let n = 0; n < N; n++) closeScalar(r.perTokenLoss![n], (n >= 7 ? -1 : 0) + 0.5 * d, 1e-6, 0, `ptl[${n}]`);
  closeScalar(r.metrics.entropy, 4.5, 1e-12, 0, 'entropy metric');
});

test('grpoLoss async equals sync, writes into given buffers, grad:false', async () => {
  const c = makeCase(11, 16, 100, { emptySeqs: [3] });
  const cfg = { importanceSamplingLevel: 'sequence' as const, beta: 0.04, lossType: 'grpo' as const, topEntropyQuantile: 0.5 };
  const a = grpoLossSync({ ...c.inputs, ...cfg, perTokenLoss: true });
  const out = { gradLogp: new Float32Array(1600), perTokenLoss: new Float32Array(1600) };
  const b = await grpoLoss({ ...c.inputs, ...cfg, perTokenLoss: true, out });
  assert.is(b.gradLogp, out.gradLogp);
  assert.is(b.perTokenLoss, out.perTokenLoss);
  assert.is(b.loss, a.loss);
  assert.equal(b.metrics, a.metrics);
  assert.equal(Array.from(b.gradLogp!), Array.from(a.gradLogp!));
  assert.equal(Array.from(b.perTokenLoss!), Array.from(a.perTokenLoss!));
  const n = grpoLossSync({ ...c.inputs, ...cfg, grad: false });
  assert.is(n.gradLogp, null);
  assert.is(n.perTokenLoss, null);
  assert.is(n.loss, a.loss);
  // mask given as Float32Array and boolean[]
  const mf = Float32Array.from(c.inputs.mask);
  const mb = Array.from(c.inputs.mask, (x) => x === 1);
  assert.is(grpoLossSync({ ...c.inputs, ...cfg, mask: mf }).loss, a.loss);
  assert.is(grpoLossSync({ ...c.inputs, ...cfg, mask: mb }).loss, a.loss);
});

test('grpoLoss large batch (parallel): matches the reference and does not depend on the thread count', () => {
  const c = makeCase(21, 64, 2048, { emptySeqs: [7] });
  for (const level of LEVELS) {
    const cfg: Combo = { name: level, importanceSamplingLevel: level, beta: 0.04, topEntropyQuantile: 0.8, lossType: 'grpo' };
    const want = refGrpoLoss(c.inputs, cfg);
    const before = numThreads();
    const results = [1, 3, 8].map((k) => {
      setNumThreads(k);
      return run(c, cfg);
    });
    setNumThreads(before);
    closeScalar(results[0].loss, want.loss, 1e-9, 1e-12, `${level} loss`);
    close(results[0].gradLogp!, want.gradLogp, 1e-5, 1e-10, `${level} grad`);
    for (const r of results.slice(1)) {
      assert.is(r.loss, results[0].loss, 'loss bitwise equal across thread counts');
      assert.equal(r.metrics, results[0].metrics);
      assert.equal(Array.from(r.gradLogp!), Array.from(results[0].gradLogp!));
    }
  }
});

test('grpoConfigToNative: defaults and native codes', () => {
  const d = grpoConfigToNative('x', {});
  assert.equal(d, {
    level: 0, policyLoss: 0, epsilonLow: 0.2, epsilonHigh: 0.2, delta: undefined, clipRatioC: 3, beta: 0, klEstimator: 2,
    clampLogRatio: true, lossType: 2, numItemsInBatch: undefined, maxCompletionLength: undefined, topEntropyQuantile: 1,
    cispoRange: false, sapoTemperaturePos: 1, sapoTemperatureNeg: 1.05, useBiasCorrectionKl: false,
    clampSequenceLogRatio: false, clipCovRatio: 2e-4, clipCovLb: 1, clipCovUb: 5, klCovRatio: 2e-4, ppoKlCoef: 0.1,
    vespoKPos: 2, vespoLambdaPos: 3, vespoKNeg: 3, vespoLambdaNeg: 2, globalBatchSize: undefined, lossScaleFactor: undefined, entropyCoef: 0,
    rolloutIsMode: 0, rolloutIsThreshold: 2,
  });
  // verl / TRL names to native codes (formulas.h PolicyLoss / LossType)
  assert.equal(['vespo', 'clip_cov', 'kl_cov'].map((p) => grpoConfigToNative('x', { policyLoss: p }).policyLoss), [5, 6, 7]);
  assert.is(grpoConfigToNative('x', { lossType: 'luspo' }).lossType, 5);
  assert.equal(['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'].map((m) => grpoConfigToNative('x', { lossAggMode: m }).lossType), [2, 6, 7, 8]);
  const sp = grpoConfigToNative('x', { policyLoss: 'sapo', sapoTemperaturePos: 2, sapoTemperatureNeg: 0.5, klEstimator: 'k3+' });
  assert.equal([sp.policyLoss, sp.sapoTemperaturePos, sp.sapoTemperatureNeg, sp.klEstimator], [3, 2, 0.5, 6]);
  const cr = grpoConfigToNative('x', { policyLoss: 'cispo', cispoClip: 'range', epsilon: 0.1 });
  assert.equal([cr.cispoRange, cr.epsilonLow, cr.epsilonHigh], [true, 0.1, 0.1]);  // verl: ε_high defaults to ε
  assert.throws(() => grpoConfigToNative('x', { cispoClip: 'range' }), /cispoClip/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'sapo', sapoTemperatureNeg: 0 }), /sapoTemperatureNeg/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'sapo', delta: 3 }), /delta/);
  const c = grpoConfigToNative('x', { policyLoss: 'cispo', lossType: 'seq_sum', importanceSamplingLevel: 'sequence', klEstimator: 'low_var_kl' });
  assert.is(c.epsilonHigh, 5);
  assert.is(c.policyLoss, 2);
  assert.is(c.lossType, 4);
  assert.is(c.level, 1);
  assert.is(c.klEstimator, 3);
  assert.is(grpoConfigToNative('x', { epsilon: 0.1 }).epsilonHigh, 0.1);
  assert.is(grpoConfigToNative('x', { delta: 1.5 }).delta, 1.5);
});

test('grpoLoss rejects bad input with the argument named', async () => {
  const S = 2, T = 3, N = 6;
  const ok = () => ({ logp: new Float32Array(N).fill(-1), advantages: new Float32Array(S).fill(1) }) as GrpoLossOptions;
  const bad: [string, Partial<Record<keyof GrpoLossOptions, unknown>> | null, RegExp, ErrorConstructor][] = [
    ['logp length not a multiple of S', { logp: new Float32Array(5) }, /logp/, RangeError],
    ['empty logp', { logp: new Float32Array(0) }, /logp/, RangeError],
    ['empty advantages', { advantages: new Float32Array(0) }, /advantages/, RangeError],
    ['logp as Array', { logp: [-1, -1, -1, -1, -1, -1] }, /logp/, TypeError],
    ['logp as Float64Array', { logp: new Float64Array(N) }, /logp/, TypeError],
    ['advantages as Array', { advantages: [1, 1] }, /advantages/, TypeError],
    ['oldLogp wrong length', { oldLogp: new Float32Array(5) }, /oldLogp/, RangeError],
    ['refLogp wrong type', { refLogp: new Int32Array(N), beta: 0.1 }, /refLogp/, TypeError],
    ['entropy wrong length', { entropy: new Float32Array(7) }, /entropy/, RangeError],
    ['mask wrong length', { mask: new Uint8Array(5) }, /mask/, RangeError],
    ['mask value 2', { mask: new Uint8Array([1, 1, 2, 1, 1, 1]) }, /mask/, RangeError],
    ['mask as string', { mask: 'all' }, /mask/, TypeError],
    ['NaN logp where mask=1', { logp: new Float32Array([-1, NaN, -1, -1, -1, -1]) }, /logp/, RangeError],
    ['Inf oldLogp where mask=1', { oldLogp: new Float32Array([-1, -1, -Infinity, -1, -1, -1]) }, /oldLogp/, RangeError],
    ['NaN refLogp where mask=1', { refLogp: new Float32Array([-1, -1, -1, NaN, -1, -1]) }, /refLogp/, RangeError],
    ['NaN advantage', { advantages: new Float32Array([1, NaN]) }, /advantages/, RangeError],
    ['beta > 0 without refLogp', { beta: 0.04 }, /refLogp/, TypeError],
    ['negative beta', { beta: -1 }, /beta/, RangeError],
    ['q < 1 without entropy', { topEntropyQuantile: 0.5 }, /entropy/, TypeError],
    ['q > 1', { topEntropyQuantile: 1.5, entropy: new Float32Array(N) }, /topEntropyQuantile/, RangeError],
    ['bad level', { importanceSamplingLevel: 'seq' }, /importanceSamplingLevel/, RangeError],
    ['bad policyLoss', { policyLoss: 'ppo' }, /policyLoss/, RangeError],
    ['bad lossType', { lossType: 'mean' }, /lossType/, RangeError],
    ['lossType not a string', { lossType: 3 }, /lossType/, TypeError],
    ['bad klEstimator', { klEstimator: 'k4' }, /klEstimator/, RangeError],
    ['epsilon > 1', { epsilon: 1.5 }, /epsilon/, RangeError],
    ['epsilon as string', { epsilon: '0.2' }, /epsilon/, TypeError],
    ['epsilonHigh negative', { epsilonHigh: -0.1 }, /epsilonHigh/, RangeError],
    ['cispo cap 0', { policyLoss: 'cispo', epsilonHigh: 0 }, /epsilonHigh/, RangeError],
    ['delta below 1 + epsilonHigh', { delta: 1.1 }, /delta/, RangeError],
    ['delta with cispo', { delta: 3, policyLoss: 'cispo' }, /delta/, RangeError],
    ['clipRatioC <= 1', { clipRatioC: 1 }, /clipRatioC/, RangeError],
    ['clampLogRatio not boolean', { clampLogRatio: 1 }, /clampLogRatio/, TypeError],
    ['numItemsInBatch 0', { numItemsInBatch: 0 }, /numItemsInBatch/, RangeError],
    ['numItemsInBatch NaN', { numItemsInBatch: NaN }, /numItemsInBatch/, RangeError],
    ['maxCompletionLength 2.5', { maxCompletionLength: 2.5 }, /maxCompletionLength/, RangeError],
    ['grad not boolean', { grad: 'yes' }, /grad/, TypeError],
    ['out.gradLogp wrong length', { out: { gradLogp: new Float32Array(2) } }, /out\.gradLogp/, RangeError],
    ['out.perTokenLoss wrong type', { perTokenLoss: true, out: { perTokenLoss: new Float64Array(N) } }, /out\.perTokenLoss/, TypeError],
  ];
  for (const [what, patch, re, kind] of bad) {
    const o = { ...ok(), ...patch } as GrpoLossOptions;
    try {
      grpoLossSync(o);
      assert.unreachable(`${what}: no error`);
    } catch (e) {
      assert.instance(e, kind, `${what}: ${(e as Error).message}`);
      assert.match((e as Error).message, re, `${what}: message names the argument`);
      assert.match((e as Error).message, /^grpoLoss: /, `${what}: message names the op`);
    }
    let rejected: unknown = null;
    await grpoLoss(o).catch((e) => (rejected = e));
    assert.instance(rejected, kind, `${what} (async rejects)`);
  }
  assert.throws(() => grpoLossSync(null as never), /options/);
  assert.throws(() => grpoLossSync(undefined as never), /options/);
  // padding may hold anything
  const padded = grpoLossSync({ ...ok(), logp: new Float32Array([-1, NaN, Infinity, -1, -1, NaN]), mask: [1, 0, 0, 1, 1, 0] });
  assert.ok(Number.isFinite(padded.loss));
});

test('grpoLoss survives hundreds of random malformed calls (errors are TypeError/RangeError, never a crash)', async () => {
  const r = rng(99);
  const junk = (): unknown => {
    const k = Math.floor(r() * 16);
    switch (k) {
      case 0: return undefined;
      case 1: return null;
      case 2: return NaN;
      case 3: return -1;
      case 4: return 1e300;
      case 5: return 'token';
      case 6: return {};
      case 7: return [1, 2, 3];
      case 8: return new Float32Array(Math.floor(r() * 20));
      case 9: return new Float64Array(6);
      case 10: return new Uint8Array(Math.floor(r() * 12));
      case 11: return true;
      case 12: return 0.5;
      case 13: return new Int32Array(6);
      case 14: return Symbol('x');
      default: return new Float32Array(6).fill(NaN);
    }
  };
  const keys = ['logp', 'oldLogp', 'refLogp', 'advantages', 'mask', 'entropy', 'importanceSamplingLevel', 'policyLoss', 'epsilon',
    'epsilonHigh', 'delta', 'clipRatioC', 'beta', 'klEstimator', 'clampLogRatio', 'lossType', 'numItemsInBatch',
    'maxCompletionLength', 'topEntropyQuantile', 'grad', 'perTokenLoss', 'out'];
  let errors = 0, successes = 0;
  for (let it = 0; it < 400; it++) {
    const o: Record<string, unknown> = { logp: new Float32Array(6).fill(-1), advantages: new Float32Array(2).fill(1), refLogp: new Float32Array(6), entropy: new Float32Array(6) };
    const nbad = 1 + Math.floor(r() * 3);
    for (let j = 0; j < nbad; j++) o[keys[Math.floor(r() * keys.length)]] = junk();
    for (const call of [() => grpoLossSync(o as never), () => grpoLoss(o as never)]) {
      try {
        await call();
        successes++;
      } catch (e) {
        errors++;
        assert.ok(e instanceof TypeError || e instanceof RangeError, `iteration ${it}: ${String(e)}`);
      }
    }
  }
  assert.ok(errors > 300 && successes > 0, `${errors} errors, ${successes} successes`);
});


// Issue 8, second part: TRL vespo / luspo, verl clip_cov / kl_cov, verl loss_agg_mode with its
// global normalisers, verl's GSPO log-ratio clamp; each against the float64 reference (written
// from the upstream formulas in test/reference/grpo_loss.ts) and central finite differences.
const UPSTREAM: Combo[] = [
  { name: 'vespo (TRL defaults)', policyLoss: 'vespo' },
  { name: 'vespo k/λ, beta, bias-corrected KL', policyLoss: 'vespo', vespoKPos: 1.5, vespoLambdaPos: 0.5, vespoKNeg: 4, vespoLambdaNeg: 0, beta: 0.05, useBiasCorrectionKl: true },
  { name: 'clip_cov (ratio 0.1, cov in (0, 1))', policyLoss: 'clip_cov', epsilonHigh: 0.28, clipCovRatio: 0.1, clipCovLb: 0, clipCovUb: 1 },
  { name: 'clip_cov (verl defaults), grpo, beta', policyLoss: 'clip_cov', lossType: 'grpo', beta: 0.04, epsilonHigh: 0.28 },
  { name: 'kl_cov (ratio 0.2, coef 0.5)', policyLoss: 'kl_cov', klCovRatio: 0.2, ppoKlCoef: 0.5 },
  { name: 'kl_cov (verl defaults), bnpo, beta', policyLoss: 'kl_cov', lossType: 'bnpo', beta: 0.04 },
  { name: 'luspo, token level, beta', lossType: 'luspo', beta: 0.04, epsilonHigh: 0.28 },
  { name: 'luspo, sequence level, beta', lossType: 'luspo', importanceSamplingLevel: 'sequence', beta: 0.04, epsilonHigh: 0.28 },
  { name: 'luspo, sequence level, bias-corrected KL', lossType: 'luspo', importanceSamplingLevel: 'sequence', beta: 0.1, useBiasCorrectionKl: true, epsilonHigh: 0.28 },
  { name: 'token-mean, batch_num_tokens', lossAggMode: 'token-mean', numItemsInBatch: 500, epsilonHigh: 0.28 },
  { name: 'seq-mean-token-sum', lossAggMode: 'seq-mean-token-sum', beta: 0.04, epsilonHigh: 0.28 },
  { name: 'seq-mean-token-sum, global_batch_size', lossAggMode: 'seq-mean-token-sum', globalBatchSize: 32, epsilonHigh: 0.28 },
  { name: 'seq-mean-token-mean, sequence level', lossAggMode: 'seq-mean-token-mean', beta: 0.04, importanceSamplingLevel: 'sequence', epsilonHigh: 0.28 },
  { name: 'seq-mean-token-mean, global_batch_size', lossAggMode: 'seq-mean-token-mean', globalBatchSize: 32, epsilonHigh: 0.28 },
  { name: 'seq-mean-token-sum-norm', lossAggMode: 'seq-mean-token-sum-norm', epsilonHigh: 0.28 },
  { name: 'seq-mean-token-sum-norm, loss_scale_factor', lossAggMode: 'seq-mean-token-sum-norm', lossScaleFactor: 4096, beta: 0.04, epsilonHigh: 0.28 },
  { name: 'GSPO, verl log-ratio clamp', importanceSamplingLevel: 'sequence', clampSequenceLogRatio: true, beta: 0.04, epsilonHigh: 0.28 },
];

test('grpoLoss vespo, luspo, clip_cov, kl_cov, verl loss_agg_mode, GSPO clamp: float64 reference and finite differences', () => {
  for (const cfg of UPSTREAM) {
    const level = cfg.importanceSamplingLevel ?? 'token';
    for (const [S, T, empty] of [[1, 1, []], [3, 5, []], [8, 64, [2, 5]]] as [number, number, number[]][]) {
      const what = `${cfg.name} S=${S} T=${T}`;
      for (const withOld of [true, false]) {
        const c = makeCase(500 + S + T, S, T, { emptySeqs: empty });
        if (!withOld) delete c.inputs.oldLogp;
        // a sequence far off-policy (mean log-ratio 12 > verl's clamp at 10)
        else for (let t = 0; t < T; t++) if (c.inputs.mask[t]) c.inputs.oldLogp![t] = c.inputs.logp[t] - 12;
        const want = refGrpoLoss(c.inputs, cfg);
        const got = run(c, cfg);
        closeScalar(got.loss, want.loss, 1e-5, 1e-12, `${what} old=${withOld} loss`);
        let gmax = 0;
        for (const g of want.gradLogp) gmax = Math.max(gmax, Math.abs(g));
        close(got.gradLogp!, want.gradLogp, 1e-5, 1e-6 * gmax + 1e-30, `${what} old=${withOld} gradLogp`);
        close(got.perTokenLoss!, want.perTokenLoss, 1e-5, 1e-9, `${what} old=${withOld} perTokenLoss`);
        for (const key of ['kl', 'clipLow', 'clipHigh', 'clipRegion', 'ratio'] as const)
          closeScalar(got.metrics[key], want.metrics[key], 1e-9, 1e-12, `${what} old=${withOld} metrics.${key}`);
      }
      const cs = makeCase(600 + S + T, S, T, { level, safe: true, emptySeqs: empty });
      const gs = run(cs, cfg);
      const rows = S * T <= 64 ? [...Array(S * T).keys()] : Array.from({ length: 40 }, (_, k) => (k * 2654435761) % (S * T));
      const fds = rows.map((n) => fdGrad(cs, cfg, n));
      const scale = Math.max(...fds.map(Math.abs));
      rows.forEach((n, k) => {
        assert.ok(Math.abs(gs.gradLogp![n] - fds[k]) <= 1e-4 * Math.abs(fds[k]) + 1e-5 * scale + 1e-12,
          `${what} row ${n}: grad ${gs.gradLogp![n]} vs finite difference ${fds[k]}`);
      });
    }
  }
});

test('grpoLoss upstream options: the selections and normalisers do what upstream does on hand-made inputs', () => {
  // kl_cov: 4 tokens, A = [2, -2] per sequence of 2; ℓ = [-1, -3 | -1, -3]: cov = (A − 0)(ℓ + 2) =
  // [2, -2, -2, 2]; ratio 0.5 -> 2 tokens, the two with cov 2 (rows 0 and 3).
  const logp = new Float32Array([-1, -3, -1, -3]);
  const oldLogp = new Float32Array([-1.1, -3, -1, -3]);
  const advantages = new Float32Array([2, -2]);
  const r = grpoLossSync({ logp, oldLogp, advantages, policyLoss: 'kl_cov', klCovRatio: 0.5, ppoKlCoef: 1, lossType: 'bnpo', perTokenLoss: true });
  const rho0 = Math.exp(-1 + 1.1);
  close(r.perTokenLoss!, [-2 * rho0 + (-1 + 1.1), -2, 2, 2], 1e-6, 1e-7, 'kl_cov per-token loss');
  // clip_cov, ratio 0.5, cov in (1, 3): rows 0 and 3 (cov 2, ρ within [0.8, 1.2]) are zeroed.
  const c = grpoLossSync({ logp, oldLogp, advantages, policyLoss: 'clip_cov', clipCovRatio: 0.5, clipCovLb: 1, clipCovUb: 3, lossType: 'bnpo', perTokenLoss: true });
  close(c.perTokenLoss!, [0, -2, 2, 0], 1e-7, 1e-7, 'clip_cov zeroes the picked tokens');
  // ... but not a token whose clipped term the max selected (row 0 at ρ = e^0.5 > 1.2, A > 0)
  const c2 = grpoLossSync({ logp, oldLogp: new Float32Array([-1.5, -3, -1, -3]), advantages, policyLoss: 'clip_cov', clipCovRatio: 0.5, clipCovLb: 1, clipCovUb: 3, lossType: 'bnpo', perTokenLoss: true });
  close(c2.perTokenLoss!, [-2 * 1.2, -2, 2, 0], 1e-6, 1e-7, 'clip_cov skips clipped tokens');
  // verl seq-mean-token-mean: the second sequence empty; G = 1 non-empty sequence, not S = 2.
  const mask = new Uint8Array([1, 1, 0, 0]);
  const s = grpoLossSync({ logp, advantages, mask, lossAggMode: 'seq-mean-token-mean', perTokenLoss: true });
  closeScalar(s.loss, (s.perTokenLoss![0] + s.perTokenLoss![1]) / (2 + 1e-8), 1e-7, 1e-12, 'seq-mean-token-mean over non-empty sequences');
  const g = grpoLossSync({ logp, advantages, mask, lossAggMode: 'seq-mean-token-sum', globalBatchSize: 8, perTokenLoss: true });
  closeScalar(g.loss, (g.perTokenLoss![0] + g.perTokenLoss![1]) / 8, 1e-7, 1e-12, 'seq-mean-token-sum over global_batch_size');
  // bad input names the option
  assert.throws(() => grpoConfigToNative('x', { lossAggMode: 'token-mean', lossType: 'dapo' }), /lossAggMode/);
  assert.throws(() => grpoConfigToNative('x', { lossAggMode: 'seq-mean' }), /lossAggMode/);
  assert.throws(() => grpoConfigToNative('x', { globalBatchSize: 4 }), /globalBatchSize/);
  assert.throws(() => grpoConfigToNative('x', { lossAggMode: 'seq-mean-token-mean', globalBatchSize: 0 }), /globalBatchSize/);
  assert.throws(() => grpoConfigToNative('x', { lossAggMode: 'seq-mean-token-sum-norm', lossScaleFactor: -1 }), /lossScaleFactor/);
  assert.throws(() => grpoConfigToNative('x', { clampSequenceLogRatio: true }), /clampSequenceLogRatio/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'vespo', importanceSamplingLevel: 'sequence' }), /importanceSamplingLevel/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'kl_cov', klCovRatio: 0 }), /klCovRatio/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'clip_cov', clipCovLb: 5, clipCovUb: 1 }), /clipCovUb/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'clip_cov', delta: 3 }), /delta/);
  assert.throws(() => grpoConfigToNative('x', { policyLoss: 'vespo', vespoKPos: NaN }), /vespoKPos/);
});

test('grpoLoss entropyCoef (verl entropy_coeff / TRL entropy_coef): loss, gradLogp and gradEntropy vs float64 and finite differences', () => {
  for (const cfg of [
    { name: 'entropy bonus, dapo', entropyCoef: 0.01, epsilonHigh: 0.28 },
    { name: 'entropy bonus, top-entropy 0.5, grpo, beta', entropyCoef: 0.05, topEntropyQuantile: 0.5, lossType: 'grpo', beta: 0.04, epsilonHigh: 0.28 },
    { name: 'entropy bonus, luspo sequence', entropyCoef: 0.02, lossType: 'luspo', importanceSamplingLevel: 'sequence', epsilonHigh: 0.28 },
    { name: 'entropy bonus, seq-mean-token-mean', entropyCoef: -0.03, lossAggMode: 'seq-mean-token-mean', epsilonHigh: 0.28 },
  ] as Combo[]) {
    for (const [S, T, empty] of [[1, 1, []], [3, 5, []], [8, 64, [2, 5]]] as [number, number, number[]][]) {
      const what = `${cfg.name} S=${S} T=${T}`;
      const c = makeCase(700 + S + T, S, T, { emptySeqs: empty });
      const want = refGrpoLoss(c.inputs, cfg);
      const got = run(c, cfg);
      closeScalar(got.loss, want.loss, 1e-5, 1e-12, `${what} loss`);
      close(got.gradLogp!, want.gradLogp, 1e-5, 1e-9, `${what} gradLogp`);
      close(got.gradEntropy!, want.gradEntropy, 1e-6, 1e-12, `${what} gradEntropy`);
      close(got.perTokenLoss!, want.perTokenLoss, 1e-5, 1e-9, `${what} perTokenLoss`);
      // ∂loss/∂H by central differences of the float64 loss (H moved alone; the top-entropy
      // threshold moves with it only at a tie, which random entropies do not have)
      const N = S * T;
      const rows = N <= 64 ? [...Array(N).keys()] : Array.from({ length: 30 }, (_, k) => (k * 2654435761) % N);
      for (const n of rows) {
        if (!c.inputs.mask[n]) {
          assert.is(got.gradEntropy![n], 0, `${what} masked-out gradEntropy`);
          continue;
        }
        const at = (s: number) => {
          const e = Float64Array.from(c.inputs.entropy!);
          e[n] += s * 1e-4;
          return refGrpoLoss({ ...c.inputs, entropy: e }, cfg).loss;
        };
        const fd = (at(1) - at(-1)) / 2e-4;
        assert.ok(Math.abs(got.gradEntropy![n] - fd) <= 1e-5 * Math.abs(fd) + 1e-10, `${what} row ${n}: gradEntropy ${got.gradEntropy![n]} vs ${fd}`);
      }
    }
  }
  const c = makeCase(5, 2, 3);
  assert.throws(() => grpoLossSync({ logp: c.inputs.logp, advantages: c.inputs.advantages, entropyCoef: 0.1 }), /entropy/);
  assert.is(grpoLossSync({ ...c.inputs, entropyCoef: 0.1, grad: false }).gradEntropy, null);
  assert.is(grpoLossSync({ ...c.inputs }).gradEntropy, null, 'no entropy bonus: no gradEntropy');
});

// The kernel's first pass checks the mask's values and every per-token input's finiteness where
// the mask is set (no JS scan before the call): each kind of bad value, in each input, in a
// later sequence of a batch the pool splits, is named with its index, and nothing is written
// (the given gradLogp keeps its contents); the same value in padding is accepted.
test('grpoLoss: a bad mask value or a non-finite masked input is found by the kernel, named, and nothing is written', async () => {
  const S = 9, T = 37, N = S * T;
  const base = () => {
    const r = rng(5);
    const logp = new Float32Array(N).map(() => -0.5 - r());
    return {
      logp, oldLogp: logp.map((x) => x + 0.05), refLogp: logp.map((x) => x - 0.1), entropy: new Float32Array(N).fill(1.5),
      rolloutLogp: logp.map((x) => x + 0.02), advantages: new Float32Array(S).map((_, i) => i - 4), mask: new Uint8Array(N).fill(1),
    };
  };
  const at = 6 * T + 11;
  for (const name of ['logp', 'oldLogp', 'refLogp', 'entropy', 'rolloutLogp'] as const) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const b = base();
      b[name][at] = bad;
      const gradLogp = new Float32Array(N).fill(7);
      const o: GrpoLossOptions = { ...b, beta: 0.04, rolloutImportanceSamplingMode: 'token_truncate', out: { gradLogp } };
      let err: unknown = null;
      try { grpoLossSync(o); } catch (e) { err = e; }
      assert.instance(err, RangeError, `${name}=${bad}: throws`);
      assert.match((err as Error).message, new RegExp(`^grpoLoss: .*\\b${name}\\b.*at index ${at}\\b`), `${name}=${bad}: ${(err as Error).message}`);
      assert.ok(gradLogp.every((x) => x === 7), `${name}=${bad}: nothing written`);
      let rejected: unknown = null;
      await grpoLoss(o).catch((e) => (rejected = e));
      assert.instance(rejected, RangeError, `${name}=${bad} (async rejects)`);
      // in padding: accepted
      b.mask[at] = 0;
      const r = grpoLossSync({ ...o, out: undefined });
      assert.ok(Number.isFinite(r.loss), `${name}=${bad} in padding: finite loss`);
      assert.is(r.gradLogp![at], 0, `${name}=${bad} in padding: gradient 0`);
    }
  }
  const b = base();
  b.mask[at] = 3;
  const gradLogp = new Float32Array(N).fill(7);
  assert.throws(() => grpoLossSync({ ...b, beta: 0.04, rolloutImportanceSamplingMode: 'token_truncate', out: { gradLogp } }), (e: Error) => e instanceof RangeError && /^grpoLoss: .*\bmask\b.*3 at index/.test(e.message));
  assert.ok(gradLogp.every((x) => x === 7), 'mask value 3: nothing written');
});

// The common configuration runs a specialisation of the per-sequence pass with the unused
// options compiled out: it must give the bits of the general form. useBiasCorrectionKl with
// beta = 0 and no refLogp computes the same function through the general form.
test('grpoLoss: the plain-configuration pass gives the bits of the general pass', () => {
  for (const policyLoss of POLICIES) {
    for (const withOld of [false, true]) {
      const c = makeCase(77, 6, 41, { emptySeqs: [2] });
      const o: GrpoLossOptions = {
        logp: c.inputs.logp, oldLogp: withOld ? c.inputs.oldLogp : undefined, advantages: c.inputs.advantages, mask: c.inputs.mask,
        policyLoss, epsilonHigh: policyLoss === 'cispo' ? 5 : EPS_HIGH, lossType: 'dapo', perTokenLoss: true,
      };
      const plain = grpoLossSync(o);
      const general = grpoLossSync({ ...o, useBiasCorrectionKl: true });
      const what = `${policyLoss} old=${withOld}`;
      assert.is(plain.loss, general.loss, `${what}: loss`);
      assert.equal(plain.metrics, general.metrics, `${what}: metrics`);
      assert.equal(Array.from(plain.gradLogp!), Array.from(general.gradLogp!), `${what}: gradLogp`);
      assert.equal(Array.from(plain.perTokenLoss!), Array.from(general.perTokenLoss!), `${what}: perTokenLoss`);
      closeScalar(plain.loss, refGrpoLoss(c.inputs.oldLogp && withOld ? c.inputs : { ...c.inputs, oldLogp: undefined }, { name: what, policyLoss, epsilonHigh: policyLoss === 'cispo' ? 5 : EPS_HIGH, lossType: 'dapo' } as Combo).loss, 1e-9, 1e-12, `${what}: loss vs reference`);
    }
  }
});

// Beyond 8 sequences the plain pass runs 8 at a time in vector lanes (clip, dual_clip, cispo;
// native/kernels/elementwise_impl.h grpo_plain), the rest of a thread's range one at a time.
// S = 19 (two lane groups and 3 scalar sequences, one group holding an empty sequence) and T = 45
// (five 8-token blocks and a 5-token tail), padding NaN, with refLogp (k3, low_var_kl, and k2 /
// abs+ which run per lane through the scalar formula), entropies and every output. The general
// pass is reached with top-entropy selection over equal entropies: the threshold is that value and
// every token is kept, so it computes the same function; it must give the same bits, and the loss
// must match the float64 reference.
test('grpoLoss: the plain pass in vector lanes gives the bits of the general pass', () => {
  const c = makeCase(91, 19, 45, { emptySeqs: [9] });
  const N = 19 * 45;
  const flat = new Float32Array(N).fill(0.75);
  for (let n = 0; n < N; n++) if (!c.inputs.mask[n]) flat[n] = NaN;
  for (const policyLoss of POLICIES) {
    for (const withOld of [false, true]) {
      for (const klEstimator of ['k3', 'low_var_kl', 'k2', 'abs+'] as const) {
        for (const lossType of ['dapo', 'grpo'] as const) {
          const cfg = { policyLoss, epsilon: EPS, epsilonHigh: policyLoss === 'cispo' ? 5 : EPS_HIGH, lossType, beta: 0.04, klEstimator, clampLogRatio: klEstimator !== 'k2' };
          const o: GrpoLossOptions = {
            logp: c.inputs.logp, oldLogp: withOld ? c.inputs.oldLogp : undefined, refLogp: c.inputs.refLogp, advantages: c.inputs.advantages,
            mask: c.inputs.mask, entropy: flat, perTokenLoss: true, ...cfg,
          };
          const plain = grpoLossSync(o);
          const general = grpoLossSync({ ...o, topEntropyQuantile: 0.5 });
          const what = `${policyLoss} old=${withOld} kl=${klEstimator} ${lossType}`;
          assert.is(plain.loss, general.loss, `${what}: loss`);
          assert.equal(plain.metrics, general.metrics, `${what}: metrics`);
          assert.equal(Array.from(plain.gradLogp!), Array.from(general.gradLogp!), `${what}: gradLogp`);
          assert.equal(Array.from(plain.perTokenLoss!), Array.from(general.perTokenLoss!), `${what}: perTokenLoss`);
          const inputs = { ...c.inputs, entropy: flat, oldLogp: withOld ? c.inputs.oldLogp : undefined };
          closeScalar(plain.loss, refGrpoLoss(inputs, { name: what, ...cfg } as Combo).loss, 1e-9, 1e-12, `${what}: loss vs reference`);
        }
      }
    }
  }
});

// On-policy (no oldLogp) without refLogp, clip / dual_clip: the lanes write a lane's one per-token
// loss and gradient from the mask and add its metric increments n_i times without the tokens
// (n_i·inc where that product is exact: an all-ones mask with a power-of-two token count under
// dapo; the adds otherwise). S = 21 (two lane groups and 5 scalar sequences, an empty one),
// T = 37, and S = 16, T = 64 all masked in (n_batch = 1024): the bits of the general pass (reached
// through useBiasCorrectionKl, the same function when there is no KL term) for every loss type,
// with and without delta and entropies, and the float64 reference.
test('grpoLoss: on-policy lanes without a KL term give the bits of the general pass', () => {
  const cases = [makeCase(93, 21, 37, { emptySeqs: [12] }), makeCase(94, 16, 64)];
  cases[1].inputs.mask.fill(1);
  for (const a of Object.values(cases[1].inputs)) if (a instanceof Float32Array && a.length === 16 * 64) a.forEach((x, i) => { if (!Number.isFinite(x)) a[i] = -0.5 - (i % 7) / 8; });
  let n = 0;
  for (const c of cases) {
    const N = c.inputs.logp.length;
    const ent = Float32Array.from({ length: N }, (_, i) => (c.inputs.mask[i] ? 0.1 + ((i * 7919) % 97) / 50 : NaN));
    for (const policyLoss of ['clip', 'dual_clip', 'cispo'] as const)
      for (const lossType of LOSS_TYPES)
        for (const delta of policyLoss === 'cispo' ? [undefined] : [undefined, DELTA])
          for (const withEnt of [false, true]) {
            const cfg = { policyLoss, epsilon: EPS, epsilonHigh: policyLoss === 'cispo' ? 5 : EPS_HIGH, lossType, delta };
            const o: GrpoLossOptions = { logp: c.inputs.logp, advantages: c.inputs.advantages, mask: c.inputs.mask, entropy: withEnt ? ent : undefined, perTokenLoss: true, ...cfg };
            const plain = grpoLossSync(o);
            const general = grpoLossSync({ ...o, useBiasCorrectionKl: true });
            const what = `S=${c.inputs.advantages.length} ${policyLoss} ${lossType} delta=${delta} ent=${withEnt}`;
            assert.is(plain.loss, general.loss, `${what}: loss`);
            assert.equal(plain.metrics, general.metrics, `${what}: metrics`);
            assert.equal(Array.from(plain.gradLogp!), Array.from(general.gradLogp!), `${what}: gradLogp`);
            assert.equal(Array.from(plain.perTokenLoss!), Array.from(general.perTokenLoss!), `${what}: perTokenLoss`);
            const inputs = { ...c.inputs, entropy: withEnt ? ent : undefined, oldLogp: undefined };
            closeScalar(plain.loss, refGrpoLoss(inputs, { name: what, ...cfg } as Combo).loss, 1e-9, 1e-12, `${what}: loss vs reference`);
            n++;
          }
  }
  assert.is(n, 2 * (2 * 5 * 2 * 2 + 5 * 2));
});

// ρ = exp(ℓ − ℓ_old) comes from one shared function on every backend (common/formulas.h
// ratio_exp: the CPU's vector lanes and scalar passes, the GPU), not libm's exp. Read back
// through metrics.ratio of a one-token call (the masked mean of ρ over one token is ρ), in the
// vector lanes (S = 16) and the scalar pass (S = 1): within 2 ulp of Math.exp (itself within 1 ulp
// of e^d), exactly 1 at d = 0, +Infinity past ln(MAX_VALUE), 0 below the smallest subnormal.
test('grpoLoss: the ratio exp(logp - oldLogp) within 2 ulp of exp, on the lanes and the scalar pass', () => {
  const r = rng(4242);
  const ds: number[] = [0, 1e-8, -1e-8, 0.3465, -0.3465, 0.3466, -0.3466, 0.35, -0.35, 1, -1, 5, -5, 20, -20, 87.3, -87.3, 700, 709.7, 709.8, 710, -700, -708.3, -709, -740, -745, -745.2, -746, -800, 1e4, -1e4];
  for (let i = 0; i < 400; i++) ds.push((r() * 2 - 1) * (r() < 0.5 ? 1 : r() < 0.5 ? 30 : 700));
  const ulp = (x: number) => (x === 0 ? 2 ** -1074 : Math.max(2 ** -1074, Number.EPSILON * 2 ** Math.floor(Math.log2(Math.abs(x)))));
  let checked = 0;
  for (const S of [1, 16]) {
    for (const d0 of ds) {
      // ℓ and ℓ_old are float32: pick ℓ_old, then ℓ = ℓ_old + d rounded to float32 (d as it lands)
      const old = Math.fround(-1 - r() * 3);
      const logp = Math.fround(old + d0);
      const d = logp - old;
      const N = S;
      const res = grpoLossSync({
        logp: new Float32Array(N).fill(logp), oldLogp: new Float32Array(N).fill(old), advantages: new Float32Array(S).fill(1),
        // one token masked in (the sum of 16 ratios near DBL_MAX would overflow), in lane 5 of the first group
        mask: Uint8Array.from({ length: N }, (_, i) => (i === Math.min(5, S - 1) ? 1 : 0)), lossType: 'dapo', epsilon: 0.2,
      });
      const got = res.metrics.ratio, want = Math.exp(d);
      if (want === Infinity) assert.is(got, Infinity, `d=${d}`);
      else assert.ok(Math.abs(got - want) <= 2 * ulp(want), `d=${d}: ratio ${got}, exp ${want}, ${(Math.abs(got - want) / ulp(want)).toFixed(2)} ulp`);
      if (d === 0) assert.is(got, 1, 'd = 0: exactly 1');
      checked++;
    }
  }
  assert.is(checked, 2 * ds.length);
});

test.run();
