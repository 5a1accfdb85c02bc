// The advantage estimators beyond grpo/rloo (groupAdvantages: verl reinforce_plus_plus,
// reinforce_plus_plus_baseline, gpg, grpo_passk, opo, remax; TRL normalize_advantages) against
// the float64 reference written from the upstream formulas (test/reference/advantage_estimators.ts):
// contiguous groups and shuffled ids of unequal sizes, groups of one, all-equal rewards, "no
// reward" (NaN), known values by hand, async = sync, and bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { groupAdvantages, groupAdvantagesSync } from '../lib';
import { parseArgs } from '../lib/cli/args';
import { GrpoTrainer, resolveGrpoConfig } from '../lib/trainer/grpo';
import { rewards as trainerRewards, task, tinyConfig, tinyModel, tok } from './trainer_setup';
import type { AdvantageEstimator, GroupAdvantagesOptions } from '../lib/ops/group_advantages';
import { close, normal, rng } from './helpers';
import { refAdvantageEstimator } from './reference/advantage_estimators';

const NEW: AdvantageEstimator[] = ['reinforce_plus_plus', 'reinforce_plus_plus_baseline', 'gpg', 'grpo_passk', 'opo', 'remax'];

function rewardsOf(seed: number, S: number, groupOf: (i: number) => number, nan: boolean): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(S);
  for (let i = 0; i < S; i++) {
    x[i] = groupOf(i) === 1 ? 1 : r() < 0.4 ? Math.round(r()) : normal(r);  // group 1 all equal; binary ties
    if (nan && r() < 0.15) x[i] = NaN;
  }
  return x;
}

function check(what: string, o: GroupAdvantagesOptions, ids: ArrayLike<number>) {
  const got = groupAdvantagesSync(o);
  const estimator = o.estimator!;
  const want = refAdvantageEstimator({
    r: o.rewards, ids, estimator: estimator as never, scale: o.scale ?? (estimator === 'grpo_passk' || estimator === 'grpo' ? 'group' : 'none'),
    eps: o.eps ?? 1e-4, unbiased: o.std !== 'population', lengths: o.lengths, baselines: o.baselines, normalize: o.normalizeAdvantages,
  });
  let amax = 0;
  for (const a of want) amax = Math.max(amax, Math.abs(a));
  close(got.advantages, want, 1e-6, 1e-6 * amax, `${what} advantages`);
  for (let i = 0; i < o.rewards.length; i++) if (Number.isNaN(o.rewards[i])) assert.is(got.advantages[i], 0, `${what}: no reward -> 0`);
  return got;
}

function extras(estimator: AdvantageEstimator, S: number, seed: number, withLengths: boolean) {
  const r = rng(seed + 99);
  const o: Partial<GroupAdvantagesOptions> = {};
  if (estimator === 'opo' || (withLengths && estimator.startsWith('reinforce')))
    o.lengths = Int32Array.from({ length: S }, (_, i) => (i % 7 === 3 ? 0 : 1 + Math.floor(r() * 20)));  // some empty completions
  if (estimator === 'remax') o.baselines = Float32Array.from({ length: S }, (_, i) => (i % 9 === 4 ? NaN : Math.round(r() * 2) / 2));
  return o;
}

for (const estimator of NEW) {
  test(`groupAdvantages ${estimator} matches the float64 reference (upstream formula)`, () => {
    for (const nan of [false, true]) {
      for (const normalizeAdvantages of [false, true]) {
        for (const withLengths of [false, true]) {
          for (const G of estimator === 'grpo_passk' ? [2, 3, 8] : [1, 2, 3, 8]) {
            const S = G * 11;
            const rewards = rewardsOf(S + G, S, (i) => Math.floor(i / G), nan);
            const ids = Array.from({ length: S }, (_, i) => Math.floor(i / G));
            const what = `${estimator} G=${G} nan=${nan} normalize=${normalizeAdvantages} lengths=${withLengths}`;
            const base = { rewards, estimator, normalizeAdvantages, ...extras(estimator, S, G, withLengths) };
            const fixed = check(`${what} groupSize`, { ...base, groupSize: G }, ids);
            // the same groups by id: the general path gives the fixed path's bits
            const viaIds = groupAdvantagesSync({ ...base, groupIds: ids });
            assert.equal(Array.from(viaIds.advantages), Array.from(fixed.advantages), `${what}: groupIds = groupSize bits`);
          }
          // shuffled ids, unequal sizes (each >= 2 for pass@k)
          const S = 60;
          const r = rng(7);
          const ids = Int32Array.from({ length: S }, (_, i) => (i < 20 ? i % 10 : Math.floor(r() * 10)) * 13 - 40);
          const rewards = rewardsOf(5, S, (i) => ids[i], nan);
          if (estimator === 'grpo_passk') rewards[0] = 5;  // a unique best
          check(`${estimator} ids nan=${nan} normalize=${normalizeAdvantages}`, { rewards, groupIds: ids, estimator, normalizeAdvantages, ...extras(estimator, S, 3, withLengths) }, ids);
        }
      }
    }
  });
}

test('groupAdvantages new estimators: scale and eps options against the reference', () => {
  const S = 24, G = 4;
  const rewards = rewardsOf(11, S, (i) => Math.floor(i / G), true);
  const ids = Array.from({ length: S }, (_, i) => Math.floor(i / G));
  for (const scale of ['group', 'batch', 'none'] as const)
    for (const std of ['unbiased', 'population'] as const)
      check(`grpo_passk ${scale}/${std}`, { rewards, groupSize: G, estimator: 'grpo_passk', scale, std, eps: 1e-6 }, ids);
  for (const estimator of ['grpo', 'rloo'] as const)
    check(`${estimator} normalizeAdvantages`, { rewards, groupSize: G, estimator, normalizeAdvantages: true }, ids);
});

test('groupAdvantages new estimators: known values', () => {
  const rewards = new Float32Array([1, 0, 0.5, 2, 2, 0]);
  // pass@k: group [1, 0, 0.5] → only the best: (1 − 0.5) / (std + eps); group [2, 2, 0] has a tied best → 0
  const pk = groupAdvantagesSync({ rewards, groupSize: 3, estimator: 'grpo_passk', eps: 0 });
  assert.ok(Math.abs(pk.advantages[0] - 0.5 / 0.5) < 1e-6, `passk ${pk.advantages[0]}`);  // std [1, 0, 0.5] = 0.5
  assert.equal(Array.from(pk.advantages.slice(1)), [0, 0, 0, 0, 0]);
  // opo: baseline Σ len·r / Σ len = (1·1 + 3·0 + 4·0.5) / 8 = 0.375
  const opo = groupAdvantagesSync({ rewards: rewards.slice(0, 3), groupSize: 3, estimator: 'opo', lengths: [1, 3, 4] });
  close(opo.advantages, [0.625, -0.375, 0.125], 1e-6, 0, 'opo');
  // remax: r − greedy reward
  const rm = groupAdvantagesSync({ rewards: rewards.slice(0, 3), groupSize: 1, estimator: 'remax', baselines: [0.5, 0.5, NaN] });
  close(rm.advantages, [0.5, -0.5, 0], 1e-7, 0, 'remax');
  // gpg: alpha = 6 sequences / 4 non-zero rewards = 1.5; group means 0.5 and 4/3
  const gpg = groupAdvantagesSync({ rewards, groupSize: 3, estimator: 'gpg' });
  close(gpg.advantages, [0.75, -0.75, 0, 1, 1, -2], 1e-6, 1e-7, 'gpg');
  // reinforce++ with one sequence per group: whitened rewards, mean 0 and unbiased std 1
  const rpp = groupAdvantagesSync({ rewards, groupSize: 1, estimator: 'reinforce_plus_plus' });
  let m = 0, q = 0;
  for (const a of rpp.advantages) m += a / 6;
  for (const a of rpp.advantages) q += (a - m) ** 2 / 5;
  assert.ok(Math.abs(m) < 1e-6 && Math.abs(q - 1) < 1e-5, `whitened: mean ${m} var ${q}`);
  // the baseline form with groups of 1: verl's baseline 0, so the same as plain reinforce++
  const rppb = groupAdvantagesSync({ rewards, groupSize: 1, estimator: 'reinforce_plus_plus_baseline' });
  assert.equal(Array.from(rppb.advantages), Array.from(rpp.advantages));
  // all-equal rewards: every centred estimator gives 0
  const eq = new Float32Array(8).fill(0.75);
  for (const estimator of ['gpg', 'grpo_passk', 'opo'] as const) {
    const g = groupAdvantagesSync({ rewards: eq, groupSize: 4, estimator, ...(estimator === 'opo' ? { lengths: [1, 2, 3, 4, 5, 6, 7, 8] } : {}) });
    assert.equal(Array.from(g.advantages), new Array(8).fill(0), estimator);
  }
});

test('groupAdvantages new estimators: async equals sync', async () => {
  const S = 40;
  const rewards = rewardsOf(3, S, (i) => Math.floor(i / 4), true);
  for (const estimator of NEW) {
    const o = { rewards, groupSize: 4, estimator, normalizeAdvantages: true, ...extras(estimator, S, 1, true) };
    const a = await groupAdvantages(o);
    const s = groupAdvantagesSync(o);
    assert.equal(Array.from(a.advantages), Array.from(s.advantages), estimator);
  }
});

test('groupAdvantages new estimators reject bad input with the argument named', () => {
  const rewards = new Float32Array(6);
  const bad: [Partial<GroupAdvantagesOptions>, RegExp][] = [
    [{ estimator: 'opo' }, /lengths/],
    [{ estimator: 'remax' }, /baselines/],
    [{ estimator: 'gpg', scale: 'group' }, /scale/],
    [{ estimator: 'reinforce_plus_plus', scale: 'batch' }, /scale/],
    [{ estimator: 'grpo', lengths: [1, 1, 1, 1, 1, 1] }, /lengths/],
    [{ estimator: 'opo', baselines: [1, 1, 1, 1, 1, 1], lengths: [1, 1, 1, 1, 1, 1] }, /baselines/],
    [{ estimator: 'opo', lengths: [1, 1, -1, 1, 1, 1] }, /lengths.*-1 at index 2/],
    [{ estimator: 'opo', lengths: [1, 1, NaN, 1, 1, 1] }, /lengths/],
    [{ estimator: 'opo', lengths: [1, 1, 1] }, /lengths/],
    [{ estimator: 'remax', baselines: [1, 1, Infinity, 1, 1, 1] }, /baselines/],
    [{ estimator: 'grpo_passk', groupSize: 1 }, /groupSize/],
    [{ estimator: 'gpg', normalizeAdvantages: 1 as never }, /normalizeAdvantages/],
  ];
  for (const [o, re] of bad) assert.throws(() => groupAdvantagesSync({ rewards, groupSize: 2, ...o }), re, JSON.stringify(o));
  assert.throws(() => groupAdvantagesSync({ rewards, groupIds: [0, 0, 1, 2, 2, 2], estimator: 'grpo_passk' }), /groupIds.*group of 1/);
});

test('trainer and CLI: verl adv_estimator names and TRL normalize_advantages', () => {
  const a = parseArgs(['train', '--adv-estimator', 'opo', '--normalize-advantages']);
  assert.equal(a.options, { advantageEstimator: 'opo', normalizeAdvantages: true });
  assert.is(parseArgs(['train', '--advantage-estimator=reinforce_plus_plus_baseline']).options.advantageEstimator, 'reinforce_plus_plus_baseline');
  assert.throws(() => parseArgs(['train', '--adv-estimator', 'ppo']), /advantageEstimator|adv-estimator/);
  assert.is(resolveGrpoConfig({ advantageEstimator: 'remax' }).advantageEstimator, 'remax');
  assert.throws(() => resolveGrpoConfig({ advantageEstimator: 'grpo_passk', numGenerations: 1 }), /grpo_passk.*numGenerations/);
  assert.throws(() => resolveGrpoConfig({ advantageEstimator: 'bogus' as never }), /advantageEstimator/);
});

test('trainer: a step with every new estimator (opo gets lengths, remax a greedy baseline)', async () => {
  for (const advantageEstimator of NEW) {
    for (const normalizeAdvantages of [false, true]) {
      const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: trainerRewards(), config: tinyConfig({ advantageEstimator, normalizeAdvantages }) });
      const m = await tr.step();
      assert.ok(Number.isFinite(m.loss as number) && Number.isFinite(m.grad_norm as number), `${advantageEstimator}: loss ${m.loss}`);
    }
  }
});

test.run();
