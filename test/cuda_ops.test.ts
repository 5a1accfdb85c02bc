// Every CUDA kernel (cuda/<op>.cu) run through the CPU emulator (cuda/emu) against the float64
// references in test/reference and against the CPU backend, at sizes that exercise partial
// blocks and warps (V < 256, V not a multiple of 32), V % 8 != 0 (unaligned rows: the scalar
// head/tail of the 16-byte loads), one row and many rows, every dtype, and the thread orders of
// the emulator (forward, reverse, shuffled between barriers).
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { groupAdvantagesSync, grpoLossFromLogitsSync, grpoLossSync, klPenaltySync, logprobsSync, KL_ESTIMATORS } from '../lib';
import { cuda, DeviceTensor, deviceMemory, opBackends } from '../lib/device';
import type { GrpoLossConfig } from '../lib/ops/grpo_loss';
import { close, randn, rng } from './helpers';
import { refAdvantageEstimator } from './reference/advantage_estimators';
import { refGroupAdvantages } from './reference/group_advantages';
import { refGrpoLoss } from './reference/grpo_loss';
import { refGrpoLossFromLogits } from './reference/grpo_loss_from_logits';
import { refKl } from './reference/kl_penalty';
import { refLogprobs, refToHalf, refWiden } from './reference/logprobs';

const up = (a: Float32Array | Int32Array | Uint8Array) => DeviceTensor.fromHost(a);
const down = (t: DeviceTensor | null) => t!.toHost() as Float32Array;
function withOrder<T>(order: number, f: () => T): T {
  setOrder(order, 17);
  try {
    return f();
  } finally {
    setOrder(0);
  }
}
function disposeAll(...ts: (DeviceTensor | null | undefined)[]) {
  for (const t of ts) t?.dispose();
}

// ---- klPenalty ----

for (const n of [1, 37, 1000]) {
  test(`cuda klPenalty n=${n}: every estimator matches the float64 reference and the CPU`, () => {
    const r = rng(n);
    const logp = randn(r, n, 2, -3);
    const refLogp = randn(r, n, 2, -3);
    if (n > 2) {
      logp[0] = -40;
      refLogp[1] = -30;
    }
    const dl = up(logp), dr = up(refLogp);
    for (const est of KL_ESTIMATORS) {
      const g = cuda.klPenaltySync({ logp: dl, refLogp: dr, estimator: est });
      assert.is(opBackends().klPenalty, 'cuda');
      const kl = down(g.kl), grad = down(g.grad);
      const want = Array.from(logp, (x, i) => refKl(x, refLogp[i], est));
      close(kl, want.map((w) => w.d), 1e-6, 1e-30, `${est} kl`);
      close(grad, want.map((w) => w.grad), 1e-6, 1e-30, `${est} grad`);
      const cpu = klPenaltySync({ logp, refLogp, estimator: est });
      assert.equal(Array.from(kl), Array.from(cpu.kl), `${est}: same bits as the CPU`);
      disposeAll(g.kl, g.grad);
    }
    disposeAll(dl, dr);
  });
}

// ---- groupAdvantages ----

for (const [S, G] of [[1, 1], [12, 4], [600, 8]] as const) {
  for (const estimator of ['grpo', 'rloo'] as const) {
    for (const scale of ['group', 'batch', 'none'] as const) {
      if (estimator === 'rloo' && G < 2) continue;
      test(`cuda groupAdvantages S=${S} G=${G} ${estimator}/${scale}: reference and CPU`, () => {
        const r = rng(S * 7 + G);
        const K = 2;
        const rewards = new Float32Array(S * K);
        for (let i = 0; i < rewards.length; i++) rewards[i] = Math.round(r() * 4) / 4;
        if (S > 4) {
          rewards[2] = NaN;  // one function gave no reward
          rewards[6] = rewards[7] = NaN;  // a sequence without any reward
        }
        const weights = [1, 0.5];
        const want = refGroupAdvantages({ rewards, K, weights, ids: Array.from({ length: S }, (_, i) => Math.floor(i / G)), estimator, scale, eps: 1e-4, unbiased: true });
        const cpu = groupAdvantagesSync({ rewards, numRewardFunctions: K, weights, groupSize: G, estimator, scale });
        const dr = up(rewards);
        for (const order of [0, 1, 2]) {
          const g = withOrder(order, () => cuda.groupAdvantagesSync({ rewards: dr, numRewardFunctions: K, weights, groupSize: G, estimator, scale }));
          const adv = down(g.advantages);
          close(adv, want.advantages, 1e-5, 1e-6, 'advantages');
          close(down(g.groupMean), want.groupMean, 1e-6, 1e-7, 'groupMean');
          close(down(g.groupStd), want.groupStd, 1e-6, 1e-7, 'groupStd');
          close(down(g.rewards), want.rewards, 0, 0, 'rewards');
          assert.equal(Array.from(adv), Array.from(cpu.advantages), 'same bits as the CPU');
          assert.is(g.numNoReward, cpu.numNoReward);
          assert.is(g.zeroStdFraction, cpu.zeroStdFraction);
          disposeAll(g.advantages, g.rewards, g.groupMean, g.groupStd);
        }
        dr.dispose();
      });
    }
  }
}

test('cuda groupAdvantages: group ids in any order (segmented by id)', () => {
  const S = 40, G = 6;
  const r = rng(3);
  const rewards = new Float32Array(S).map(() => Math.round(r() * 8));
  const ids = new Int32Array(S).map(() => Math.floor(r() * G));
  for (let j = 0; j < G; j++) ids[j] = j;  // dense: every id appears, first appearance in order
  const cpu = groupAdvantagesSync({ rewards, groupIds: ids });
  const dr = up(rewards), di = up(ids);
  const g = cuda.groupAdvantagesSync({ rewards: dr, groupIds: di, numGroups: G });
  assert.equal(Array.from(down(g.advantages)), Array.from(cpu.advantages));
  assert.equal(Array.from(down(g.groupStd)), Array.from(cpu.groupStd));
  disposeAll(dr, di, g.advantages, g.rewards, g.groupMean, g.groupStd);
});

test('cuda groupAdvantages: every other estimator (+ normalizeAdvantages) gives the CPU bits and the reference', () => {
  const S = 48, G = 4;
  const r = rng(21);
  const rewards = new Float32Array(S).map((_, i) => (i % 11 === 5 ? NaN : i < 8 ? 1 : r() < 0.4 ? Math.round(r()) : randn(r, 1, 1, 0)[0]));
  const lengths = Float32Array.from({ length: S }, (_, i) => (i % 13 === 2 ? 0 : 1 + Math.floor(r() * 30)));
  const baselines = Float32Array.from({ length: S }, (_, i) => (i % 7 === 1 ? NaN : Math.round(r() * 4) / 4));
  const ids = Array.from({ length: S }, (_, i) => Math.floor(i / G));
  const dr = up(rewards), dl = up(lengths);
  for (const estimator of ['reinforce_plus_plus', 'reinforce_plus_plus_baseline', 'gpg', 'grpo_passk', 'opo', 'remax', 'rloo'] as const) {
    for (const normalizeAdvantages of [false, true]) {
      const extra = {
        ...(estimator === 'opo' || estimator.startsWith('reinforce') ? { lengths } : {}),
        ...(estimator === 'remax' ? { baselines } : {}),
      };
      const cpu = groupAdvantagesSync({ rewards, groupSize: G, estimator, normalizeAdvantages, ...extra });
      const want = refAdvantageEstimator({ r: rewards, ids, estimator, scale: estimator === 'grpo_passk' ? 'group' : 'none', eps: 1e-4, unbiased: true, normalize: normalizeAdvantages, ...extra });
      for (const order of [0, 2]) {
        // lengths once as a device tensor, once as host numbers (uploaded)
        const devExtra = { ...extra, ...('lengths' in extra ? { lengths: order === 0 ? dl : lengths } : {}) };
        const g = withOrder(order, () => cuda.groupAdvantagesSync({ rewards: dr, groupSize: G, estimator, normalizeAdvantages, ...devExtra }));
        const adv = down(g.advantages);
        let amax = 0;
        for (const a of want) amax = Math.max(amax, Math.abs(a));
        close(adv, want, 1e-5, 1e-6 * amax, `${estimator} normalize=${normalizeAdvantages}`);
        assert.equal(Array.from(adv), Array.from(cpu.advantages), `${estimator} normalize=${normalizeAdvantages}: same bits as the CPU`);
        disposeAll(g.advantages, g.rewards, g.groupMean, g.groupStd);
      }
    }
  }
  disposeAll(dr, dl);
});

// ---- logprobs ----

const SHAPES = [
  { N: 1, V: 1 },
  { N: 1, V: 1000 },  // one row, partial last chunk
  { N: 5, V: 37 },  // partial warps, V % 8 != 0: every row starts unaligned
  { N: 33, V: 264 },  // many rows, V % 8 == 0 but V % 256 != 0
  { N: 3, V: 2051 },
  { N: 2, V: 151936 },  // the real vocabulary size
];

for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
  for (const { N, V } of SHAPES) {
    test(`cuda logprobs ${dtype} N=${N} V=${V}: reference and CPU`, () => {
      const r = rng(N * 1000 + V);
      const z32 = randn(r, N * V, 3);
      if (V > 4) z32[2] = -Infinity;  // a masked vocabulary entry
      const targets = new Int32Array(N).map(() => Math.floor(r() * V));
      const host = dtype === 'float32' ? z32 : refToHalf(z32, dtype);
      const tau = 0.7;
      const want = refLogprobs(refWiden(host, dtype), V, targets, tau);
      const cpu = logprobsSync({ logits: host, dtype, vocabSize: V, targets, temperature: tau });
      const dz = DeviceTensor.fromHost(host, { dtype, shape: [N, V] }), dt = up(targets);
      for (const order of [0, 1, 2]) {
        const g = withOrder(order, () => cuda.logprobsSync({ logits: dz, vocabSize: V, targets: dt, temperature: tau }));
        const logp = down(g.logp), ent = down(g.entropy);
        close(logp, want.logp, 2e-6, 2e-6, 'logp');
        close(ent, want.entropy, 2e-6, 2e-6, 'entropy');
        close(logp, cpu.logp, 1e-6, 1e-6, 'logp vs CPU');
        close(ent, cpu.entropy!, 1e-6, 1e-6, 'entropy vs CPU');
        disposeAll(g.logp, g.entropy);
      }
      disposeAll(dz, dt);
    });
  }
}

// Near-deterministic rows (issue 8): H >= 0, independent of the target, relative-accurate.
test('cuda logprobs: entropy of peaked rows is >= 0, target-independent and matches float64 and the CPU', () => {
  const r = rng(808);
  const rows: number[][] = [[20, 0], [21.5117, -0.42284]];
  for (let k = 0; k < 40; k++) {
    const V = 2 + Math.floor(r() * 300);
    const row = Array.from(randn(r, V, 1));
    row[Math.floor(r() * V)] += 8 + 32 * r();
    rows.push(row);
  }
  for (const row of rows) {
    const V = row.length, N = Math.min(V, 6);
    const z = new Float32Array(N * V);
    for (let n = 0; n < N; n++) z.set(row, n * V);
    const targets = new Int32Array(N).map((_, n) => (n === 0 ? row.indexOf(Math.max(...row)) : Math.floor(r() * V)));
    const tau = 0.6;
    const want = refLogprobs(refWiden(z), V, targets, Math.fround(tau));
    const cpu = logprobsSync({ logits: z, vocabSize: V, targets, temperature: tau });
    const dz = DeviceTensor.fromHost(z, { shape: [N, V] }), dt = up(targets);
    const g = withOrder(2, () => cuda.logprobsSync({ logits: dz, vocabSize: V, targets: dt, temperature: tau }));
    const ent = down(g.entropy), lp = down(g.logp);
    disposeAll(g.logp, g.entropy, dz, dt);
    // (rows at different offsets split into 16-byte vectors differently: the same sums in another
    // order, so equal to float rounding, not bitwise; what matters is that nothing cancels)
    for (let n = 0; n < N; n++) {
      if (!(ent[n] >= 0)) assert.unreachable(`entropy ${ent[n]} < 0 (V=${V}, target ${targets[n]})`);
      if (!(Math.abs(ent[n] - ent[0]) <= 1e-5 * ent[0])) assert.unreachable(`entropy ${ent[n]} for target ${targets[n]} vs ${ent[0]} (V=${V})`);
    }
    close(ent, want.entropy, 2e-5, 0, `entropy V=${V}`);
    close(ent, cpu.entropy!, 2e-5, 0, `entropy vs CPU V=${V}`);
    close(lp, want.logp, 1e-5, 1e-6, `logp V=${V}`);
  }
});

test('cuda logprobs: a target out of range gives NaN, never a read out of bounds', () => {
  const dz = up(new Float32Array(8)), dt = up(new Int32Array([0, 4]));
  const g = cuda.logprobsSync({ logits: dz, vocabSize: 4, targets: dt });
  const lp = down(g.logp);
  assert.ok(Math.abs(lp[0] + Math.log(4)) < 1e-6);
  assert.ok(Number.isNaN(lp[1]));
  disposeAll(dz, dt, g.logp, g.entropy);
});

test('cuda logprobs async resolves with the same values', async () => {
  const r = rng(4);
  const z = randn(r, 3 * 50);
  const dz = up(z), dt = up(new Int32Array([1, 2, 3]));
  const a = cuda.logprobsSync({ logits: dz, vocabSize: 50, targets: dt });
  const b = await cuda.logprobs({ logits: dz, vocabSize: 50, targets: dt });
  assert.equal(Array.from(down(b.logp)), Array.from(down(a.logp)));
  disposeAll(dz, dt, a.logp, a.entropy, b.logp, b.entropy);
});

// ---- grpoLossFromLogits ----

const LOSS_CONFIGS: [string, GrpoLossConfig][] = [
  ['defaults (dapo, token)', {}],
  ['grpo + k3 beta', { lossType: 'grpo', beta: 0.04 }],
  ['sequence level (GSPO)', { importanceSamplingLevel: 'sequence', lossType: 'grpo' }],
  ['dual_clip + bnpo', { policyLoss: 'dual_clip', lossType: 'bnpo', epsilonHigh: 0.28 }],
  ['cispo + dr_grpo', { policyLoss: 'cispo', lossType: 'dr_grpo' }],
  ['top entropy 0.5 + seq_sum', { topEntropyQuantile: 0.5, lossType: 'seq_sum', beta: 0.1, klEstimator: 'low_var_kl' }],
  ['sapo + grpo (TRL loss_type sapo)', { policyLoss: 'sapo', lossType: 'grpo', sapoTemperaturePos: 1.5, sapoTemperatureNeg: 0.7 }],
  ['sapo, sequence level', { policyLoss: 'sapo', importanceSamplingLevel: 'sequence', lossType: 'grpo' }],
  ['cispo range (verl)', { policyLoss: 'cispo', cispoClip: 'range', epsilonHigh: 0.28 }],
  ['bias-corrected k3 + abs metric', { beta: 0.1, useBiasCorrectionKl: true }],
  ['bias-corrected KL, sequence level', { beta: 0.1, useBiasCorrectionKl: true, importanceSamplingLevel: 'sequence' }],
  ['k3+ (straight through)', { beta: 0.2, klEstimator: 'k3+' }],
  ['abs KL', { beta: 0.2, klEstimator: 'abs', lossType: 'bnpo' }],
  ['geo_mean (GMPO)', { policyLoss: 'geo_mean', epsilon: 0.4, epsilonHigh: 0.4, beta: 0.04 }],
  ['vespo (TRL)', { policyLoss: 'vespo', beta: 0.04 }],
  ['clip_cov (verl), wide bounds', { policyLoss: 'clip_cov', clipCovRatio: 0.2, clipCovLb: -10, clipCovUb: 10 }],
  ['kl_cov (verl)', { policyLoss: 'kl_cov', klCovRatio: 0.2, ppoKlCoef: 0.5, lossType: 'bnpo' }],
  ['luspo (TRL), sequence level', { lossType: 'luspo', importanceSamplingLevel: 'sequence', beta: 0.04 }],
  ['seq-mean-token-mean (verl)', { lossAggMode: 'seq-mean-token-mean', beta: 0.04 }],
  ['seq-mean-token-sum-norm (verl)', { lossAggMode: 'seq-mean-token-sum-norm', lossScaleFactor: 16 }],
  ['GSPO, verl clamp', { importanceSamplingLevel: 'sequence', clampSequenceLogRatio: true, lossType: 'grpo' }],
  ['entropy bonus', { entropyCoef: 0.1, beta: 0.04 }],
];

function lossInputs(S: number, T: number, V: number, seed: number) {
  const r = rng(seed);
  const N = S * T;
  const z = randn(r, N * V, 2);
  const targets = new Int32Array(N).map(() => Math.floor(r() * V));
  const advantages = randn(r, S);
  const mask = new Uint8Array(N).fill(1);
  for (let i = 0; i < S; i++) for (let t = T - (i % 3); t < T; t++) mask[i * T + t] = 0;  // padding
  const ref = refLogprobs(refWiden(z), V, targets);
  const oldLogp = Float32Array.from(ref.logp, (x) => x + 0.3 * (r() - 0.5));
  const refLogp = Float32Array.from(ref.logp, (x) => x + 0.5 * (r() - 0.5));
  return { z, targets, advantages, mask, oldLogp, refLogp };
}

for (const [name, cfg] of LOSS_CONFIGS) {
  for (const { S, T, V } of [{ S: 2, T: 3, V: 37 }, { S: 3, T: 4, V: 300 }]) {
    test(`cuda grpoLossFromLogits ${name} S=${S} T=${T} V=${V}: reference and CPU`, () => {
      const inp = lossInputs(S, T, V, S * T * V);
      const want = refGrpoLossFromLogits({ z: refWiden(inp.z), V, targets: inp.targets, advantages: inp.advantages, mask: inp.mask, oldLogp: inp.oldLogp, refLogp: inp.refLogp }, cfg);
      const cpu = grpoLossFromLogitsSync({ logits: inp.z, vocabSize: V, targets: inp.targets, advantages: inp.advantages, mask: inp.mask, oldLogp: inp.oldLogp, refLogp: inp.refLogp, ...cfg });
      const d = { z: up(inp.z), targets: up(inp.targets), advantages: up(inp.advantages), mask: up(inp.mask), oldLogp: up(inp.oldLogp), refLogp: up(inp.refLogp) };
      for (const order of [0, 1, 2]) {
        const g = withOrder(order, () => cuda.grpoLossFromLogitsSync({ logits: d.z, vocabSize: V, targets: d.targets, advantages: d.advantages, mask: d.mask, oldLogp: d.oldLogp, refLogp: d.refLogp, ...cfg }));
        close([g.loss], [want.loss], 1e-5, 1e-7, 'loss');
        close(down(g.logp), want.logp, 2e-6, 2e-6, 'logp');
        close(down(g.gradLogp), want.gradLogp, 1e-4, 1e-6, 'gradLogp');
        close(down(g.gradLogits), want.gradLogits, 1e-4, 1e-7, 'gradLogits');
        close([g.loss], [cpu.loss], 1e-6, 1e-8, 'loss vs CPU');
        close(down(g.gradLogits), cpu.gradLogits as Float32Array, 1e-5, 1e-8, 'gradLogits vs CPU');
        for (const k of ['kl', 'entropy', 'clipLow', 'clipHigh', 'clipRegion', 'ratio', 'maskedTokens'] as const)
          close([g.metrics[k]], [cpu.metrics[k]], 1e-6, 1e-8, `metrics.${k} vs CPU`);
        disposeAll(g.logp, g.entropy, g.gradLogp, g.gradLogits);
      }
      disposeAll(...Object.values(d));
    });
  }
}

// ---- grpoLoss (per-token inputs): the same per-sequence code as the CPU, so the same bits ----

for (const [name, cfg] of LOSS_CONFIGS) {
  test(`cuda grpoLoss ${name}: the CPU's bits and the float64 reference`, () => {
    const S = 5, T = 7, N = S * T;
    const r = rng(N + name.length);
    const logp = randn(r, N, 1, -3);
    const oldLogp = Float32Array.from(logp, (x) => x + 0.3 * (r() - 0.5));
    const refLogp = Float32Array.from(logp, (x) => x + 0.5 * (r() - 0.5));
    const entropy = Float32Array.from({ length: N }, () => 3 * r());
    const advantages = randn(r, S);
    const mask = new Uint8Array(N).map((_, n) => (n % T < T - (Math.floor(n / T) % 3) ? 1 : 0));
    const cpu = grpoLossSync({ logp, oldLogp, refLogp, entropy, advantages, mask, perTokenLoss: true, ...cfg });
    const want = refGrpoLoss({ logp, oldLogp, refLogp, entropy, advantages, mask }, cfg);
    const d = { logp: up(logp), oldLogp: up(oldLogp), refLogp: up(refLogp), entropy: up(entropy), advantages: up(advantages), mask: up(mask) };
    for (const order of [0, 2]) {
      const g = withOrder(order, () => cuda.grpoLossSync({ ...d, perTokenLoss: true, ...cfg }));
      assert.is(g.loss, cpu.loss, 'loss bits');
      assert.equal(g.metrics, cpu.metrics, 'metrics');
      assert.equal(Array.from(down(g.gradLogp)), Array.from(cpu.gradLogp!), 'gradLogp bits');
      assert.equal(Array.from(down(g.perTokenLoss)), Array.from(cpu.perTokenLoss!), 'perTokenLoss bits');
      close([g.loss], [want.loss], 1e-6, 1e-9, 'loss vs reference');
      close(down(g.gradLogp), want.gradLogp, 1e-5, 1e-8, 'gradLogp vs reference');
      if (cfg.entropyCoef) assert.equal(Array.from(down(g.gradEntropy)), Array.from(cpu.gradEntropy!), 'gradEntropy bits');
      else assert.is(g.gradEntropy, null);
      disposeAll(g.gradLogp, g.perTokenLoss, g.gradEntropy);
    }
    disposeAll(...Object.values(d));
  });
}

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`cuda grpoLossFromLogits ${dtype}, gradient in place, matches the CPU`, () => {
    const S = 2, T = 2, V = 131;
    const inp = lossInputs(S, T, V, 99);
    const host = refToHalf(inp.z, dtype);
    const cpu = grpoLossFromLogitsSync({ logits: host, dtype, vocabSize: V, targets: inp.targets, advantages: inp.advantages, mask: inp.mask, oldLogp: inp.oldLogp, beta: 0 });
    const dz = DeviceTensor.fromHost(host, { dtype }), dt = up(inp.targets), da = up(inp.advantages), dm = up(inp.mask), dold = up(inp.oldLogp);
    const g = cuda.grpoLossFromLogitsSync({ logits: dz, vocabSize: V, targets: dt, advantages: da, mask: dm, oldLogp: dold, gradient: 'inplace' });
    assert.is(g.gradLogits, dz);
    close([g.loss], [cpu.loss], 1e-6, 1e-8, 'loss');
    const got = refWiden(dz.toHost() as Uint16Array, dtype), want = refWiden(cpu.gradLogits as Uint16Array, dtype);
    close(got, want, dtype === 'bfloat16' ? 1e-2 : 1e-3, 1e-6, 'gradLogits');
    disposeAll(dz, dt, da, dm, dold, g.logp, g.entropy, g.gradLogp);
  });
}

test('cuda ops leave no device memory behind', () => {
  // every test above disposed what it made; temporary uploads (weights, default mask) too
  assert.is(deviceMemory().liveBuffers, 0);
});

test('the package ops dispatch on where their tensors are; backend().ops tells which ran', async () => {
  const lib = await import('../lib');
  const logp = new Float32Array([-1, -2, -3]), refLogp = new Float32Array([-1.5, -2, -2.5]);
  const host = lib.klPenaltySync({ logp, refLogp });
  assert.is(lib.backend().ops.klPenalty, 'cpu');
  const dl = up(logp), dr = up(refLogp);
  const dres = lib.klPenaltySync({ logp: dl, refLogp: dr });
  assert.ok(dres.kl instanceof DeviceTensor, 'outputs stay on the device');
  assert.equal(Array.from(down(dres.kl)), Array.from(host.kl));
  assert.is(lib.backend().ops.klPenalty, 'cuda');
  const a = await lib.klPenalty({ logp: dl, refLogp: dr });
  assert.equal(Array.from(await a.kl.download()), Array.from(host.kl));
  assert.throws(() => lib.klPenaltySync({ logp: dl, refLogp } as never), /logp is a DeviceTensor but refLogp is a host array/);
  await lib.klPenalty({ logp, refLogp: dr } as never).then(
    () => assert.unreachable('mixed inputs must reject'),
    (e: Error) => assert.match(e.message, /DeviceTensor/),
  );
  disposeAll(dl, dr, dres.kl, dres.grad, a.kl, a.grad);
});

test('mixing host and device inputs is rejected by the device forms', () => {
  const dl = up(new Float32Array(3));
  assert.throws(() => cuda.klPenaltySync({ logp: dl, refLogp: new Float32Array(3) as never }), /refLogp/);
  dl.dispose();
});

test.run();
