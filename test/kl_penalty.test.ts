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
      const fd = (refKl(logp + h, refLogp, est).d - refKl(logp - h, refLogp, est).d) / (2 * h);
      const got = klPenaltySync({ logp: new Float32Array([logp]), refLogp: new Float32Array([refLogp]), estimator: est });
      const g = got.grad![0];
      assert.ok(Math.abs(g - fd) <= 1e-4 * Math.max(1, Math.abs(fd)), `${est}: grad ${g} vs finite difference ${fd}`);
    }
  }
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
