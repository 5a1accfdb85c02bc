// pass@k (unbiased estimator, spec §10), maj@k, the eval table.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { passAtK, majorityAnswer, formatEvalTable } from '../lib/eval';

function binom(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

test('passAtK equals 1 − C(n−c,k)/C(n,k) for every small n, c, k', () => {
  for (let n = 1; n <= 12; n++)
    for (let c = 0; c <= n; c++)
      for (let k = 1; k <= n; k++) {
        const want = 1 - binom(n - c, k) / binom(n, k);
        assert.ok(Math.abs(passAtK(n, c, k) - want) < 1e-12, `n=${n} c=${c} k=${k}: ${passAtK(n, c, k)} vs ${want}`);
      }
});

test('passAtK: pass@1 = c/n, edge cases, stable for large n, bad input', () => {
  assert.ok(Math.abs(passAtK(10, 3, 1) - 0.3) < 1e-15);
  assert.is(passAtK(5, 0, 3), 0);
  assert.is(passAtK(5, 5, 1), 1);
  assert.is(passAtK(5, 3, 3), 1, 'n − c < k: every k-subset has a correct one');
  const big = passAtK(1000, 10, 100);
  assert.ok(big > 0.65 && big < 0.66, String(big)); // 1 − Π(1 − 100/j), j = 991..1000
  assert.throws(() => passAtK(4, 5, 1), /passAtK/);
  assert.throws(() => passAtK(4, 1, 5), /passAtK/);
  assert.throws(() => passAtK(4, 1, 0), /passAtK/);
});

test('majorityAnswer: most frequent non-null, first on ties', () => {
  assert.is(majorityAnswer(['3', null, '4', '4', '3']), '3');
  assert.is(majorityAnswer(['1', '2', '2']), '2');
  assert.is(majorityAnswer([null, null]), null);
});

test('formatEvalTable names every metric', () => {
  const t = formatEvalTable({
    task: 'arithmetic', prompts: 10, k: 4, temperature: 1, passAt: { 'pass@1': 0.25, 'pass@4': 0.5 }, 'pass@1': 0.25, 'pass@k': 0.5,
    'maj@k': 0.3, meanReward: 1.2, formatRate: 0.9, meanLength: 3.1, truncatedRate: 0, seconds: 1, samples: [],
  });
  for (const s of ['pass@1', 'pass@4', 'maj@4', 'mean reward', 'format rate', 'mean length', '25.0%']) assert.ok(t.includes(s), s);
});

test.run();
