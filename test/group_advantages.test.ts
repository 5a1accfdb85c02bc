// groupAdvantages (spec §2) against the float64 reference (test/reference/group_advantages.ts):
// every estimator × scale × std kind, contiguous groups and shuffled ids of unequal sizes,
// G = 1, partial and total "no reward" (NaN), several weighted reward columns, zero-std groups,
// async/sync, and bad input.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { groupAdvantages, groupAdvantagesSync, numThreads, setNumThreads, ADVANTAGE_SCALES } from '../lib';
import type { GroupAdvantagesOptions } from '../lib/ops/group_advantages';
import { native } from '../lib/native';
import { close, closeScalar, normal, rng } from './helpers';
import { refGroupAdvantages } from './reference/group_advantages';

const STDS = ['unbiased', 'population'] as const;

// the pooled default outputs are handed out again once the GC has collected their last view
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
async function settleGc() {
  for (let k = 0; k < 4; k++) {
    gc();
    await new Promise((res) => setImmediate(res));
  }
}

/** Rewards [S·K]: some groups constant (σ = 0), some NaN entries, a few sequences and one group with no reward. */
function makeRewards(seed: number, S: number, K: number, groupOf: (i: number) => number, nan: boolean): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(S * K);
  for (let i = 0; i < S; i++) {
    for (let k = 0; k < K; k++) {
      // group 1 is constant (binary-reward groups that all pass or all fail are common)
      x[i * K + k] = groupOf(i) === 1 ? 1 : r() < 0.3 ? Math.round(r()) : normal(r);
      if (nan && r() < 0.2) x[i * K + k] = NaN;  // partial: one function gave no reward
    }
    if (nan && r() < 0.1) x.fill(NaN, i * K, (i + 1) * K);  // total: no reward at all
    if (nan && groupOf(i) === 2) x.fill(NaN, i * K, (i + 1) * K);  // a whole group without reward
  }
  return x;
}

function check(what: string, o: GroupAdvantagesOptions, ids: ArrayLike<number>) {
  const got = groupAdvantagesSync(o);
  const estimator = o.estimator ?? 'grpo';
  const want = refGroupAdvantages({
    rewards: o.rewards, K: o.numRewardFunctions ?? 1, weights: o.weights, ids,
    estimator, scale: o.scale ?? (estimator === 'rloo' ? 'none' : 'group'), eps: o.eps ?? 1e-4, unbiased: o.std !== 'population',
  });
  let amax = 0;
  for (const a of want.advantages) amax = Math.max(amax, Math.abs(a));
  close(got.advantages, want.advantages, 1e-6, 1e-6 * amax, `${what} advantages`);
  close(got.rewards, want.rewards, 1e-6, 1e-7, `${what} rewards`);
  close(got.groupMean, want.groupMean, 1e-6, 1e-7, `${what} groupMean`);
  close(got.groupStd, want.groupStd, 1e-6, 1e-7, `${what} groupStd`);
  assert.equal(Array.from(got.groupIds), want.groupIds, `${what} groupIds`);
  closeScalar(got.zeroStdFraction, want.zeroStdFraction, 0, 1e-15, `${what} zeroStdFraction`);
  assert.is(got.numNoReward, want.numNoReward, `${what} numNoReward`);
  for (let i = 0; i < got.rewards.length; i++)
    if (Number.isNaN(got.rewards[i])) assert.is(got.advantages[i], 0, `${what}: no reward -> advantage 0`);
  return got;
}

for (const estimator of ["grpo", "rloo"] as const) {  // the other estimators: advantage_estimators.test.ts
  for (const scale of ADVANTAGE_SCALES) {
    for (const std of STDS) {
      test(`groupAdvantages ${estimator}/${scale}/${std} matches the float64 reference`, () => {
        for (const [K, weights] of [[1, undefined], [1, [-1.5]], [3, [1, 0.5, -2]]] as [number, number[] | undefined][]) {
          for (const nan of [false, true]) {
            const what = `${estimator}/${scale}/${std} K=${K} nan=${nan}`;
            // contiguous groups of G (G = 1 only for grpo: rloo needs a second member). 11 groups:
            // with K = 1 and G <= 64 the kernel runs 8 groups in lockstep (vector lanes), then a
            // block of 3 (spare lanes); G = 65 takes the one-group-at-a-time loop
            for (const G of estimator === 'rloo' ? [2, 4, 8, 16] : [1, 2, 4, 8, 16, 65]) {
              const S = 11 * G;
              const rewards = makeRewards(S * 7 + K, S, K, (i) => Math.floor(i / G), nan);
              const o: GroupAdvantagesOptions = { rewards, numRewardFunctions: K, weights, groupSize: G, estimator, scale, std };
              const got = check(`${what} G=${G}`, o, Array.from({ length: S }, (_, i) => Math.floor(i / G)));
              // the fixed-size path (no index array) gives the bits of the general one
              const { groupSize: _g, ...rest } = o;
              const viaIds = groupAdvantagesSync({ ...rest, groupIds: Int32Array.from({ length: S }, (_, i) => Math.floor(i / G)) });
              for (const key of ['advantages', 'rewards', 'groupMean', 'groupStd'] as const)
                assert.equal(Array.from(got[key]), Array.from(viaIds[key]), `${what} G=${G}: ${key} groupSize vs groupIds`);
              assert.is(got.zeroStdFraction, viaIds.zeroStdFraction);
              assert.is(got.numNoReward, viaIds.numNoReward);
              if (G === 1) {
                assert.ok(got.groupStd.every((s) => s === 0 || Number.isNaN(s)), 'G = 1: std 0');
                if (scale !== 'batch') assert.ok(got.advantages.every((a) => a === 0), 'G = 1: advantage 0');
              }
            }
            // arbitrary ids, shuffled, unequal sizes (2..9), negative and large ids
            const r = rng(31 + K);
            const sizes = [3, 2, 9, 5, 2, 7, 4];
            const idValues = [7, -3, 2147483647, 0, -2147483648, 42, 1000];
            const ids: number[] = [];
            sizes.forEach((n, g) => ids.push(...new Array(n).fill(idValues[g])));
            for (let i = ids.length - 1; i > 0; i--) {
              const j = Math.floor(r() * (i + 1));
              [ids[i], ids[j]] = [ids[j], ids[i]];
            }
            const order = [...new Set(ids)];
            const rewards = makeRewards(99 + K, ids.length, K, (i) => order.indexOf(ids[i]), nan);
            const o: GroupAdvantagesOptions = { rewards, numRewardFunctions: K, weights, groupIds: Int32Array.from(ids), estimator, scale, std, eps: 1e-6 };
            check(`${what} ids`, o, ids);
            check(`${what} ids as number[]`, { ...o, groupIds: ids }, ids);
          }
        }
      });
    }
  }
}

test('groupAdvantages known values', () => {
  // group [1, 2, 3]: μ = 2, σ = 1 (unbiased); rloo: 1 - 2.5 = -1.5, 2 - 2 = 0, 3 - 1.5 = 1.5
  const rewards = new Float32Array([1, 2, 3]);
  const g = groupAdvantagesSync({ rewards, groupSize: 3, eps: 0 });
  assert.equal(Array.from(g.advantages), [-1, 0, 1]);
  assert.equal(Array.from(g.groupStd), [1]);
  const p = groupAdvantagesSync({ rewards, groupSize: 3, eps: 0, std: 'population' });
  closeScalar(p.groupStd[0], Math.sqrt(2 / 3), 1e-7, 0, 'population std');
  const l = groupAdvantagesSync({ rewards, groupSize: 3, estimator: 'rloo' });
  assert.equal(Array.from(l.advantages), [-1.5, 0, 1.5]);
  const n = groupAdvantagesSync({ rewards, groupSize: 3, scale: 'none' });
  assert.equal(Array.from(n.advantages), [-1, 0, 1]);
  // NaN-sum over two functions: [1, NaN] -> 1; [NaN, NaN] -> no reward
  const w = groupAdvantagesSync({ rewards: new Float32Array([1, NaN, NaN, NaN, 2, 2]), numRewardFunctions: 2, weights: [1, 0.5], groupSize: 3 });
  assert.equal(Array.from(w.rewards), [1, NaN, 3]);
  assert.is(w.numNoReward, 1);
  assert.is(w.advantages[1], 0);
  assert.is(w.groupMean[0], 2);  // mean of the rewarded members only
  // constant groups: σ exactly 0, even for sums of weighted float values
  const c = groupAdvantagesSync({ rewards: new Float32Array([0.1, 0.7, 0.1, 0.7, 0.1, 0.7, 1, 1, 0, 1]), numRewardFunctions: 2, weights: [0.3, 1.7], groupIds: [5, 5, 5, 6, 6] });
  assert.is(c.groupStd[0], 0);
  assert.is(c.zeroStdFraction, 0.5);
  assert.equal(Array.from(c.groupIds), [5, 6]);
  // a tiny but non-zero spread is not zero-std
  const t = groupAdvantagesSync({ rewards: new Float32Array([1, 1.0001, 2, 2]), groupSize: 2 });
  assert.is(t.zeroStdFraction, 0.5);
  assert.ok(t.groupStd[0] > 0 && t.groupStd[1] === 0);
});

test('groupAdvantages async equals sync and writes into given buffers', async () => {
  const rewards = makeRewards(3, 64, 2, (i) => i >> 3, true);
  const o: GroupAdvantagesOptions = { rewards, numRewardFunctions: 2, groupSize: 8, scale: 'batch' };
  const a = groupAdvantagesSync(o);
  const out = { advantages: new Float32Array(64), rewards: new Float32Array(64) };
  const b = await groupAdvantages({ ...o, out });
  assert.is(b.advantages, out.advantages);
  assert.is(b.rewards, out.rewards);
  assert.equal(Array.from(b.advantages), Array.from(a.advantages));
  assert.equal(Array.from(b.groupStd), Array.from(a.groupStd));
  assert.is(b.zeroStdFraction, a.zeroStdFraction);
  assert.is(b.numNoReward, a.numNoReward);
});

// From 2^16 elements on, default outputs come from the native buffer pool (reused memory, not zeroed):
// every element must still be written by the kernel (the general path, the fixed-size path, with
// NaN rewards), and results the caller keeps must never share memory.
test('groupAdvantages default outputs at S = 2^18 (pooled memory): reference values, kept results never shared', async () => {
  const S = 1 << 18;
  const reused0 = native().pooledMemory().reused;
  const kept: ReturnType<typeof groupAdvantagesSync>[] = [];
  for (const [k, o] of [
    { rewards: makeRewards(11, S, 1, (i) => i >> 4, true), groupSize: 16 },
    // 2^17 groups: groupMean, groupStd and groupIds pooled too
    { rewards: makeRewards(12, S, 1, (i) => i >> 1, false), groupSize: 2, scale: 'batch' },
    { rewards: makeRewards(13, S, 1, (i) => i >> 4, true), groupSize: 16, estimator: 'rloo' },
  ].entries() as IterableIterator<[number, GroupAdvantagesOptions]>) {
    // the buffers of earlier calls, dropped: filled with garbage that must not survive
    for (let pass = 0; pass < 2; pass++) {
      const got = pass === 0 ? groupAdvantagesSync(o) : await groupAdvantages(o);
      const G = o.groupSize!;
      // check() makes its own call (a third buffer pair) and compares it with the reference
      check(`pooled case ${k} pass ${pass}`, o, Array.from({ length: S }, (_, i) => Math.floor(i / G)));
      assert.is(got.advantages.length, S);
      kept.push(got);
    }
    const again = groupAdvantagesSync(o);
    const out = { advantages: new Float32Array(S).fill(7), rewards: new Float32Array(S).fill(7) };
    groupAdvantagesSync({ ...o, out });
    assert.equal(Array.from(again.advantages), Array.from(out.advantages), `case ${k}: pooled and caller-given outputs, same bits`);
    assert.equal(Array.from(again.rewards), Array.from(out.rewards), `case ${k}: rewards, same bits`);
    const viaOut = groupAdvantagesSync({ ...o, out });
    for (const key of ['groupMean', 'groupStd', 'groupIds'] as const)
      assert.equal(Array.from(again[key]), Array.from(viaOut[key]), `case ${k}: ${key}, same bits`);
    // dropped with garbage in it: a reuse must overwrite every element
    for (const key of ['advantages', 'rewards', 'groupMean', 'groupStd', 'groupIds'] as const) again[key].fill(NaN);
    await settleGc();
  }
  const bufs = new Set(kept.flatMap((r) => [r.advantages.buffer, r.rewards.buffer, r.groupMean.buffer, r.groupStd.buffer, r.groupIds.buffer]));
  assert.is(bufs.size, 5 * kept.length, 'kept results, distinct buffers');
  assert.ok(native().pooledMemory().reused > reused0, 'dropped outputs were reused (the garbage-filled case ran)');
});

test('groupAdvantages writes every output into caller buffers (out.groupMean/groupStd/groupIds), fixed size and ids', async () => {
  for (const [what, o, ng] of [
    ['groupSize', { rewards: makeRewards(21, 64, 1, (i) => i >> 3, true), groupSize: 8 }, 8],
    ['groupIds', { rewards: makeRewards(22, 12, 1, (i) => i % 3, true), groupIds: [7, -2, 5, 7, -2, 5, 7, -2, 5, 7, -2, 5] }, 3],
  ] as [string, GroupAdvantagesOptions, number][]) {
    const S = o.rewards.length;
    const a = groupAdvantagesSync(o);
    for (const run of [(x: GroupAdvantagesOptions) => Promise.resolve(groupAdvantagesSync(x)), groupAdvantages]) {
      const out = {
        advantages: new Float32Array(S).fill(9), rewards: new Float32Array(S).fill(9),
        groupMean: new Float32Array(ng).fill(9), groupStd: new Float32Array(ng).fill(9), groupIds: new Int32Array(ng).fill(9),
      };
      const b = await run({ ...o, out });
      for (const key of ['advantages', 'rewards', 'groupMean', 'groupStd', 'groupIds'] as const) {
        assert.is(b[key], out[key], `${what}: ${key} is the caller's buffer`);
        assert.equal(Array.from(b[key]), Array.from(a[key]), `${what}: ${key} same values as the default outputs`);
      }
    }
  }
  // wrong lengths / kinds / aliasing are refused by name before anything is written
  const rewards = new Float32Array([1, 0, 1, 1]);
  const ids = new Int32Array(2);
  assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 2, out: { groupMean: new Float32Array(3) } }), /out\.groupMean/);
  assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 2, out: { groupStd: new Float32Array(1) } }), /out\.groupStd/);
  assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 2, out: { groupIds: new Float32Array(2) as never } }), /out\.groupIds/);
  assert.throws(() => groupAdvantagesSync({ rewards, groupIds: [1, 1, 2, 2], out: { groupIds: new Int32Array(4) } }), /out\.groupIds/);
  assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 2, out: { groupIds: new Int32Array(rewards.buffer, 0, 2) as never } }), /out\.groupIds/);
  assert.equal(Array.from(rewards), [1, 0, 1, 1], 'the aliased input was not written');
  assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 2, out: { groupIds: ids, groupMean: new Float32Array(ids.buffer) } }), /groupMean/);
});

test('groupAdvantages rejects bad input with the argument named', async () => {
  const rewards = new Float32Array([1, 2, 3, 4]);
  const bad: [string, Record<string, unknown>, RegExp, ErrorConstructor][] = [
    ['rewards as Array', { rewards: [1, 2, 3, 4], groupSize: 2 }, /rewards/, TypeError],
    ['rewards as Float64Array', { rewards: new Float64Array(4), groupSize: 2 }, /rewards/, TypeError],
    ['Inf reward', { rewards: new Float32Array([1, Infinity, 3, 4]), groupSize: 2 }, /rewards/, RangeError],
    ['-Inf reward', { rewards: new Float32Array([1, 2, -Infinity, 4]), groupSize: 2 }, /rewards/, RangeError],
    ['groupSize does not divide S', { rewards, groupSize: 3 }, /groupSize/, RangeError],
    ['groupSize 0', { rewards, groupSize: 0 }, /groupSize/, RangeError],
    ['groupSize 1.5', { rewards, groupSize: 1.5 }, /groupSize/, RangeError],
    ['groupSize as string', { rewards, groupSize: '2' }, /groupSize/, TypeError],
    ['neither groupSize nor groupIds', { rewards }, /groupSize\/groupIds/, TypeError],
    ['both groupSize and groupIds', { rewards, groupSize: 2, groupIds: new Int32Array(4) }, /groupSize\/groupIds/, TypeError],
    ['groupIds wrong length', { rewards, groupIds: new Int32Array(3) }, /groupIds/, RangeError],
    ['groupIds as Float32Array', { rewards, groupIds: new Float32Array(4) }, /groupIds/, TypeError],
    ['groupIds beyond int32', { rewards, groupIds: [0, 0, 2 ** 31, 2 ** 31] }, /groupIds/, RangeError],
    ['groupIds fractional', { rewards, groupIds: [0, 0.5, 1, 1] }, /groupIds/, RangeError],
    ['groupIds string', { rewards, groupIds: [0, 0, 'a', 1] }, /groupIds/, TypeError],
    ['rloo with groups of 1 (size)', { rewards, groupSize: 1, estimator: 'rloo' }, /groupSize/, RangeError],
    ['rloo with a group of 1 (ids)', { rewards, groupIds: [1, 1, 1, 2], estimator: 'rloo' }, /groupIds/, RangeError],
    ['numRewardFunctions does not divide', { rewards, numRewardFunctions: 3, groupSize: 1 }, /rewards/, RangeError],
    ['numRewardFunctions 0', { rewards, numRewardFunctions: 0, groupSize: 1 }, /numRewardFunctions/, RangeError],
    ['weights wrong length', { rewards, numRewardFunctions: 2, weights: [1], groupSize: 1 }, /weights/, RangeError],
    ['weights NaN', { rewards, numRewardFunctions: 2, weights: [1, NaN], groupSize: 1 }, /weights/, RangeError],
    ['weights Inf', { rewards, numRewardFunctions: 2, weights: new Float32Array([1, Infinity]), groupSize: 1 }, /weights/, RangeError],
    ['weights string', { rewards, weights: 'ones', groupSize: 2 }, /weights/, TypeError],
    ['weights entry string', { rewards, weights: ['1'], groupSize: 2 }, /weights/, TypeError],
    ['bad estimator', { rewards, groupSize: 2, estimator: 'ppo' }, /estimator/, RangeError],
    ['bad scale', { rewards, groupSize: 2, scale: 'global' }, /scale/, RangeError],
    ['bad std', { rewards, groupSize: 2, std: 'sample' }, /std/, RangeError],
    ['negative eps', { rewards, groupSize: 2, eps: -1 }, /eps/, RangeError],
    ['NaN eps', { rewards, groupSize: 2, eps: NaN }, /eps/, RangeError],
    ['out.advantages wrong length', { rewards, groupSize: 2, out: { advantages: new Float32Array(3) } }, /out\.advantages/, RangeError],
  ];
  for (const [what, o, re, kind] of bad) {
    try {
      groupAdvantagesSync(o as never);
      assert.unreachable(`${what}: no error`);
    } catch (e) {
      assert.instance(e, kind, `${what}: ${(e as Error).message}`);
      assert.match((e as Error).message, re, `${what}: message names the argument`);
      assert.match((e as Error).message, /^groupAdvantages: /, `${what}: message names the op`);
    }
    let rejected: unknown = null;
    await groupAdvantages(o as never).catch((e) => (rejected = e));
    assert.instance(rejected, kind, `${what} (async rejects)`);
  }
  assert.throws(() => groupAdvantagesSync(null as never), /options/);
});

test('groupAdvantages survives hundreds of random malformed calls', async () => {
  const r = rng(7);
  const junk = (): unknown => {
    switch (Math.floor(r() * 12)) {
      case 0: return undefined;
      case 1: return null;
      case 2: return NaN;
      case 3: return -1;
      case 4: return 3;
      case 5: return 'grpo';
      case 6: return [1, 2];
      case 7: return new Float32Array(Math.floor(r() * 9));
      case 8: return new Int32Array(Math.floor(r() * 9)).map(() => Math.floor(r() * 5 - 2));
      case 9: return 2 ** 40;
      case 10: return {};
      default: return 2;
    }
  };
  const keys = ['rewards', 'numRewardFunctions', 'weights', 'groupSize', 'groupIds', 'estimator', 'scale', 'eps', 'std', 'out', 'lengths', 'baselines', 'normalizeAdvantages'];
  let errors = 0, ok = 0;
  for (let it = 0; it < 400; it++) {
    const o: Record<string, unknown> = { rewards: new Float32Array(8).fill(1), groupSize: 4 };
    for (let j = 0, n = 1 + Math.floor(r() * 3); j < n; j++) o[keys[Math.floor(r() * keys.length)]] = junk();
    for (const call of [() => groupAdvantagesSync(o as never), () => groupAdvantages(o as never)]) {
      try {
        await call();
        ok++;
      } catch (e) {
        errors++;
        assert.ok(e instanceof TypeError || e instanceof RangeError, `iteration ${it}: ${String(e)}`);
      }
    }
  }
  assert.ok(errors > 200 && ok > 0, `${errors} errors, ${ok} successes`);
});


// The lockstep path (K = 1, contiguous groups of <= 64: 8 groups per vector step) split over the
// pool: chunk boundaries fall inside blocks of 8, so spare lanes occur in every chunk. The bits
// must not depend on the thread count and must equal the general (groupIds) path.
test('groupAdvantages lockstep groups over the pool: the bits of the general path at any thread count', () => {
  const before = numThreads();
  for (const [G, estimator, scale] of [[16, 'grpo', 'group'], [5, 'rloo', 'batch'], [64, 'grpo', 'none']] as const) {
    const NG = 4099, S = NG * G;
    const rewards = makeRewards(40 + G, S, 1, (i) => Math.floor(i / G), true);
    const viaIds = groupAdvantagesSync({ rewards, groupIds: Int32Array.from({ length: S }, (_, i) => Math.floor(i / G)), estimator, scale });
    for (const k of [1, 2, 3]) {
      setNumThreads(k);
      const got = groupAdvantagesSync({ rewards, groupSize: G, estimator, scale });
      for (const key of ['advantages', 'rewards', 'groupMean', 'groupStd'] as const)
        assert.ok(Buffer.from(got[key].buffer, got[key].byteOffset, got[key].byteLength).equals(Buffer.from(viaIds[key].buffer, viaIds[key].byteOffset, viaIds[key].byteLength)),
          `G=${G} ${estimator}/${scale} threads=${k}: ${key} bits`);
      assert.is(got.zeroStdFraction, viaIds.zeroStdFraction);
      assert.is(got.numNoReward, viaIds.numNoReward);
    }
  }
  setNumThreads(before);
  // a ±Infinity reward in a lane: named with its index
  const rewards = new Float32Array(16 * 20).fill(1);
  rewards[16 * 13 + 5] = -Infinity;
  assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 16 }), (e: Error) => e instanceof RangeError && /rewards.*-Infinity at index 213/.test(e.message));
});

// The vector steps of the fixed-size path (K = 1; 16 or 8 whole groups per step when G is a
// multiple of 8, with or without a NaN in the step; the rest member by member) against the
// general (groupIds) path, bit for bit: weight 1 (the sums take r itself), other weights with
// G ≤ 32 (equal members found by sq == 0) and G > 32 (by min == max), −0 rewards, constant
// non-binary groups, rewards spread over 2^±100, and ±Infinity (always an error, also with
// weight 0, where 0·Inf is NaN).
test('groupAdvantages vector steps: the bits of the general path for every weight, size and kind of reward', () => {
  const r = rng(2027);
  const kinds: [string, (i: number, G: number) => number][] = [
    ['binary', () => (r() < 0.5 ? 1 : 0)],
    ['normal', () => normal(r) * 3],
    ['normal with NaN', () => (r() < 0.1 ? NaN : normal(r))],
    ['signed zeros', () => (r() < 0.3 ? -0 : r() < 0.5 ? 0 : 0.25)],
    ['constant groups', (i, G) => (Math.floor(i / G) % 5) * 0.1 + (r() < 0.02 ? NaN : 0)],
    ['wide exponents', () => (r() < 0.3 ? normal(r) * 2 ** (Math.floor(r() * 200) - 100) : normal(r))],
  ];
  let cases = 0;
  for (const G of [8, 16, 24, 40, 64, 12])
    for (const w of [1, 0.5, -2, 0.1])
      for (const [kind, gen] of kinds)
        for (const [estimator, scale] of [['grpo', 'group'], ['rloo', 'batch'], ['grpo', 'none']] as const) {
          const NG = 37 + Math.floor(r() * 40), S = NG * G;  // full steps of 16 and 8, then a partial one
          const rewards = Float32Array.from({ length: S }, (_, i) => gen(i, G));
          const o: GroupAdvantagesOptions = { rewards, weights: [w], estimator, scale, std: r() < 0.5 ? 'unbiased' : 'population' };
          const got = groupAdvantagesSync({ ...o, groupSize: G });
          const viaIds = groupAdvantagesSync({ ...o, groupIds: Int32Array.from({ length: S }, (_, i) => Math.floor(i / G)) });
          const what = `G=${G} w=${w} ${kind} ${estimator}/${scale}`;
          for (const key of ['advantages', 'rewards', 'groupMean', 'groupStd'] as const)
            assert.ok(Buffer.from(got[key].buffer, got[key].byteOffset, got[key].byteLength).equals(Buffer.from(viaIds[key].buffer, viaIds[key].byteOffset, viaIds[key].byteLength)), `${what}: ${key} bits`);
          assert.is(got.zeroStdFraction, viaIds.zeroStdFraction, `${what}: zeroStdFraction`);
          assert.is(got.numNoReward, viaIds.numNoReward, `${what}: numNoReward`);
          if (kind === 'constant groups') assert.ok(got.zeroStdFraction > 0.5, `${what}: constant groups have std 0`);
          cases++;
        }
  assert.is(cases, 6 * 4 * 6 * 3);
  for (const w of [1, 0, -3])
    for (const G of [16, 40]) {
      const rewards = Float32Array.from({ length: 32 * G }, () => Math.round(r()));
      rewards[17 * G + 3] = Infinity;
      assert.throws(() => groupAdvantagesSync({ rewards, groupSize: G, weights: [w] }), (e: Error) => e instanceof RangeError && new RegExp(`Infinity at index ${17 * G + 3}`).test(e.message), `w=${w} G=${G}`);
    }
});

test.run();
