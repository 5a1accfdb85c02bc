import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { klPenalty, klPenaltySync, KL_ESTIMATORS } from '../lib';
import { close, randn, rng } from './helpers';
import { refKl } from './reference/kl_penalty';

function reference(logp: Float32Array, refLogp: Float32Array, est: (typeof KL_ESTIMATORS)[number], clamp: boolean) {
  const kl = new Float64Array(logp.length);
  const grad = new Float64Array(logp.length);
  for (let i = 0; i < logp.length; i++) {
    const r = refKl(logp[i], refLogp[i], est, clamp);
    kl[i] = r.d;
    grad[i] = r.grad;
  }
  return { kl, grad };
}

for (const n of [1, 7, 1000, 100003]) {
  for (const est of KL_ESTIMATORS) {
    for (const clamp of [true, false]) {
      test(`klPenalty ${est} clamp=${clamp} n=${n} matches the float64 reference`, () => {
        const r = rng(n * 31 + KL_ESTIMATORS.indexOf(est));
        const logp = randn(r, n, 2, -3);
        const refLogp = randn(r, n, 2, -3);
        // a few tokens far apart so both clamps are exercised
        if (n > 2) {
          logp[0] = -40;
          refLogp[0] = -1;
          logp[1] = -0.5;
          refLogp[1] = -30;
        }
        const want = reference(logp, refLogp, est, clamp);
        const got = klPenaltySync({ logp, refLogp, estimator: est, clampLogRatio: clamp });
        // float32 outputs of float64 math: a few float32 ulps relative
        close(got.kl, want.kl, 1e-6, 1e-30, 'kl');
        close(got.grad!, want.grad, 1e-6, 1e-30, 'grad');
      });
    }
  }
}

test('klPenalty gradient matches finite differences of the float64 reference', () => {
  const r = rng(5);
  for (const est of KL_ESTIMATORS) {
    for (let k = 0; k < 50; k++) {
      const logp = -5 * r();
      const refLogp = -5 * r();
      const h = 1e-6;
      // straight-through forms ('k3+' …): the gradient is k2's (verl), not the value's derivative
      const gEst = est.endsWith('+') ? 'k2' : est;
      const fd = (refKl(logp + h, refLogp, gEst).d - refKl(logp - h, refLogp, gEst).d) / (2 * h);
      const got = klPenaltySync({ logp: new Float32Array([logp]), refLogp: new Float32Array([refLogp]), estimator: est });
      const g = got.grad![0];
      assert.ok(Math.abs(g - fd) <= 1e-4 * Math.max(1, Math.abs(fd)), `${est}: grad ${g} vs finite difference ${fd}`);
    }
  }
});

// k3 near d = 0 keeps its digits (D = q(d), the series, not expm1(d) − d), and the vectorised
// loop gives the bits of the scalar tail (n = 8k + 3 puts 3 tokens in the tail).
test('klPenalty k3: relative-exact for tiny log-ratios; vector lanes and tail agree', () => {
  const ds = [1e-7, -3e-6, 2.5e-5, -1e-4, 0.01, -0.3, 0.34, 0.35, -0.36, 0.7, 5, -19.9, 19.9];
  const n = 8 * ds.length + 3;
  const logp = new Float32Array(n).fill(-2);
  const refLogp = new Float32Array(n);
  for (let i = 0; i < n; i++) refLogp[i] = -2 + ds[i % ds.length];
  const got = klPenaltySync({ logp, refLogp, estimator: 'k3' });
  for (let i = 0; i < n; i++) {
    const d = refLogp[i] - logp[i];  // the float32 inputs' exact difference
    // float64 series Σ_{j>=2} d^j/j! to convergence (exact for these |d|)
    let term = d, sum = 0;
    for (let j = 2; j < 60; j++) { term *= d / j; sum += term; }
    const want = Math.abs(d) < 1 ? sum : Math.expm1(d) - d;
    assert.ok(Math.abs(got.kl[i] - want) <= 1e-7 * Math.abs(want), `d=${d}: D ${got.kl[i]} vs ${want}`);
    const j = i % ds.length;
    assert.is(got.kl[i], got.kl[j], `token ${i} (lane/tail) vs token ${j}`);
  }
});

// The kernel's own finiteness check (Σ d over d = refLogp − logp, the unclamped difference):
// every kind of non-finite input, in a vector lane and in the scalar tail (n = 8k + 3), for a
// clamping estimator (where the clamp would hide ±Inf in the outputs) and k1; the error names the
// array and the index.
test('klPenalty: a non-finite input anywhere is found and named (vector lanes and tail)', () => {
  const n = 8 * 4 + 3;
  const cases: [string, number, number][] = [
    ['logp', Infinity, 0], ['logp', -Infinity, 0], ['logp', NaN, 0],
    ['refLogp', 0, Infinity], ['refLogp', 0, -Infinity], ['refLogp', 0, NaN],
    ['logp', Infinity, Infinity], ['logp', -Infinity, -Infinity],  // d = NaN, not ±Inf
  ];
  for (const est of ['k3', 'k1', 'low_var_kl'] as const) {
    for (const at of [5, 8 * 4 + 1]) {
      for (const [name, lp, rp] of cases) {
        const logp = new Float32Array(n).fill(-1), refLogp = new Float32Array(n).fill(-1.5);
        logp[at] = lp === 0 ? -1 : lp;
        refLogp[at] = rp === 0 ? -1.5 : rp;
        let err: unknown = null;
        try { klPenaltySync({ logp, refLogp, estimator: est }); } catch (e) { err = e; }
        assert.instance(err, RangeError, `${est} ${name}=${lp}/${rp} at ${at}: throws`);
        assert.match((err as Error).message, new RegExp(`${name}.*at index ${at}`), `${est} at ${at}: ${(err as Error).message}`);
      }
      // and a finite extreme (|d| beyond the clamp) is not mistaken for one
      const logp = new Float32Array(n).fill(-1), refLogp = new Float32Array(n).fill(-1.5);
      logp[at] = -3e38;
      refLogp[at] = 3e38;
      const r = klPenaltySync({ logp, refLogp, estimator: est });
      // k3: d clamped to 20, D = e^20 − 21; low_var_kl: D clamped to 10; k1: −d overflows float32
      const want = est === 'k3' ? Math.fround(Math.exp(20) - 21) : est === 'low_var_kl' ? 10 : -Infinity;
      assert.ok(Math.abs(r.kl[at] - want) <= 1e-6 * Math.abs(want) || r.kl[at] === want, `${est}: finite extreme accepted (${r.kl[at]} vs ${want})`);
    }
  }
});

// From 2^21 tokens the kernel streams the outputs of the estimators without exp (k1, k2, abs:
// non-temporal stores from the first 16-byte aligned token, the tokens before through the scalar
// formula; outputs misaligned against each other: plain stores; k3 keeps plain stores). Every alignment gives the bits of short calls (below the threshold: plain
// stores), and a non-finite input in the streamed part is still found.
test('klPenalty at 2^21 tokens (streamed outputs): the bits of short calls at every alignment', () => {
  const n = (1 << 21) + 5, half = 1 << 20;
  const r = rng(77);
  const logp = randn(r, n + 8, 2, -3), refLogp = randn(r, n + 8, 2, -3);
  logp[9] = -40;
  refLogp[n - 3] = -45;
  const klBuf = new Float32Array(n + 8), gradBuf = new Float32Array(n + 8);
  for (const est of ['k1', 'k2', 'abs', 'k3'] as const) {
    for (const [offIn, offKl, offGrad] of [[0, 0, 0], [1, 3, 3], [2, 5, 1], [7, 0, 4], [0, 2, 6]]) {
      const lp = logp.subarray(offIn, offIn + n), rp = refLogp.subarray(offIn, offIn + n);
      const kl = klBuf.subarray(offKl, offKl + n), grad = gradBuf.subarray(offGrad, offGrad + n);
      kl.fill(NaN);
      grad.fill(NaN);
      klPenaltySync({ logp: lp, refLogp: rp, estimator: est, out: { kl, grad } });
      const want = { kl: new Float32Array(n), grad: new Float32Array(n) };
      for (let b = 0; b < n; b += half) {
        const e = Math.min(n, b + half);
        const p = klPenaltySync({ logp: lp.subarray(b, e), refLogp: rp.subarray(b, e), estimator: est });
        want.kl.set(p.kl, b);
        want.grad.set(p.grad!, b);
      }
      const what = `${est} offsets ${offIn}/${offKl}/${offGrad}`;
      const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      assert.ok(bits(kl).equals(bits(want.kl)), `${what}: kl bits`);
      assert.ok(bits(grad).equals(bits(want.grad)), `${what}: grad bits`);
      // and against the float64 reference at a few tokens (head, streamed body, tail)
      for (const i of [0, 3, 9, 12345, half + 1, n - 3, n - 1]) {
        const w = refKl(lp[i], rp[i], est, true);
        assert.ok(Math.abs(kl[i] - w.d) <= 1e-6 * Math.abs(w.d) + 1e-30, `${what}: kl[${i}] ${kl[i]} vs ${w.d}`);
      }
    }
  }
  const lp = logp.subarray(1, 1 + n).slice(), rp = refLogp.subarray(1, 1 + n);
  lp[n - 100] = NaN;
  assert.throws(() => klPenaltySync({ logp: lp, refLogp: rp, estimator: 'k3' }), (e: Error) => e instanceof RangeError && new RegExp(`logp.*at index ${n - 100}`).test(e.message));
});

test('klPenalty async equals sync and writes into given buffers', async () => {
  const r = rng(9);
  const logp = randn(r, 5000);
  const refLogp = randn(r, 5000);
  const a = klPenaltySync({ logp, refLogp });
  const out = { kl: new Float32Array(5000), grad: new Float32Array(5000) };
  const b = await klPenalty({ logp, refLogp, out });
  assert.is(b.kl, out.kl);
  assert.equal(Array.from(b.kl), Array.from(a.kl));
  assert.equal(Array.from(b.grad!), Array.from(a.grad!));
});

test('klPenalty rejects bad input with named arguments', async () => {
  const ok = new Float32Array(3);
  assert.throws(() => klPenaltySync({ logp: ok, refLogp: new Float32Array(2) }), /refLogp/);
  assert.throws(() => klPenaltySync({ logp: [1, 2, 3] as unknown as Float32Array, refLogp: ok }), /logp/);
  assert.throws(() => klPenaltySync({ logp: ok, refLogp: ok, estimator: 'k4' as never }), /estimator/);
  assert.throws(() => klPenaltySync({ logp: new Float32Array([NaN, 0, 0]), refLogp: ok }), /logp/);
  let rejected = false;
  await klPenalty({ logp: ok, refLogp: new Float32Array(4) }).catch((e) => {
    rejected = e instanceof RangeError && /refLogp/.test(e.message);
  });
  assert.ok(rejected, 'async form rejects');
});

test.run();
