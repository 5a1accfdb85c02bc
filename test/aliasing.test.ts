// The aliasing audit: every op, host and device forms, called with one array under two argument
// names (or overlapping views of one ArrayBuffer). Inputs only read may repeat: the result equals
// the call with separate copies (the native side pins each argument; pinning one buffer twice is
// two shares of its backing store). An output over an input, or two outputs over each other, is
// a RangeError naming both (README "Outputs never alias"), thrown before native code runs: the
// arrays are unchanged afterwards. Views of one ArrayBuffer that do not overlap stay allowed and
// give the separate-array result. Async forms reject the same way; nothing crashes.
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import * as lib from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import { sharesMemory } from '../lib/validate';
import { close, randn, rng } from './helpers';

const r = rng(77);
const S = 2, T = 3, N = S * T, V = 7;
const Z = randn(r, N * V, 1.5), ZR = randn(r, N * V, 1.5);
const TARGETS = Int32Array.from({ length: N }, (_, i) => (i * 3) % V);
const ADV = new Float32Array([0.8, -0.6]);
const OLD = randn(r, N, 0.2, -2);
const MASK = new Uint8Array([1, 1, 0, 1, 1, 1]);

/** The error a call throws (sync) or rejects with (async); fails if it returns. */
async function refused(f: () => unknown, re: RegExp, what: string): Promise<void> {
  let err: unknown;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof RangeError, `${what}: expected a RangeError, got ${String(err)}`);
  assert.match((err as Error).message, re, what);
}
/** Both forms refuse; `arrays` are compared before and after (nothing written). */
async function bothRefuse(sync: () => unknown, async: () => Promise<unknown>, re: RegExp, what: string, arrays: ArrayBufferView[]): Promise<void> {
  const before = arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex'));
  await refused(sync, re, `${what} (sync)`);
  await refused(async, re, `${what} (async)`);
  arrays.forEach((a, i) => assert.is(Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex'), before[i], `${what}: argument ${i} unchanged`));
}
const bits = (a: ArrayLike<number>) => Array.from(a);

test('sharesMemory: buffer identity and byte ranges, whatever the element types', () => {
  const ab = new ArrayBuffer(64);
  assert.ok(sharesMemory(new Float32Array(ab, 0, 4), new Float32Array(ab, 12, 4)), 'bytes 12..16 shared');
  assert.not.ok(sharesMemory(new Float32Array(ab, 0, 4), new Float32Array(ab, 16, 4)), 'adjacent views');
  assert.ok(sharesMemory(new Int32Array(ab, 8, 1), new Uint8Array(ab, 11, 1)), 'mixed types');
  assert.not.ok(sharesMemory(new Float32Array(4), new Float32Array(4)), 'two buffers');
  assert.not.ok(sharesMemory(new Float32Array(ab, 0, 0), new Float32Array(ab, 0, 4)), 'an empty view shares nothing');
});

test('one buffer pinned under three names, transferred while the async op runs: the right result or a rejection naming one of them, never a crash', async () => {
  const o = { advantages: ADV, mask: MASK, beta: 0.1 };
  const want = lib.grpoLossSync({ ...o, logp: OLD, oldLogp: OLD.slice(), refLogp: OLD.slice() });
  for (let i = 0; i < 20; i++) {
    const x = OLD.slice();
    const p = lib.grpoLoss({ ...o, logp: x, oldLogp: x, refLogp: x });
    structuredClone(x.buffer, { transfer: [x.buffer] });  // x is now detached
    try {
      const got = await p;
      assert.is(got.loss, want.loss, 'pinned memory outlived the transfer');
    } catch (e) {
      assert.match(String(e), /logp|oldLogp|refLogp/, 'a rejection names an argument');
    }
  }
});

test('klPenalty: logp and refLogp the same array equal separate copies; out over an input or each other refused', async () => {
  const logp = OLD.slice();
  const same = lib.klPenaltySync({ logp, refLogp: logp });
  const sep = lib.klPenaltySync({ logp, refLogp: logp.slice() });
  assert.equal(bits(same.kl), bits(sep.kl));
  assert.equal(bits(same.grad!), bits(sep.grad!));
  assert.equal(bits((await lib.klPenalty({ logp, refLogp: logp })).kl), bits(sep.kl), 'async');
  const ref = randn(r, N);
  await bothRefuse(() => lib.klPenaltySync({ logp, refLogp: ref, out: { grad: ref } }), () => lib.klPenalty({ logp, refLogp: ref, out: { grad: ref } }), /out\.grad .*refLogp/, 'grad over refLogp', [logp, ref]);
  const buf = new Float32Array(2 * N);
  await bothRefuse(() => lib.klPenaltySync({ logp, refLogp: ref, out: { kl: buf.subarray(0, N), grad: buf.subarray(N - 1, 2 * N - 1) } }),
    () => lib.klPenalty({ logp, refLogp: ref, out: { kl: buf.subarray(0, N), grad: buf.subarray(N - 1, 2 * N - 1) } }), /out\.grad and out\.kl/, 'kl/grad one element shared', [logp, ref]);
});

test('logprobs: out over logits / targets or each other refused; adjacent views of one buffer fine', async () => {
  const z = Z.slice();
  await bothRefuse(() => lib.logprobsSync({ logits: z, vocabSize: V, targets: TARGETS, out: { logp: z.subarray(N, 2 * N) } }),
    () => lib.logprobs({ logits: z, vocabSize: V, targets: TARGETS, out: { logp: z.subarray(N, 2 * N) } }), /out\.logp .*logits/, 'logp in logits', [z]);
  const tg = new Int32Array(2 * N);
  tg.set(TARGETS);
  await bothRefuse(() => lib.logprobsSync({ logits: z, vocabSize: V, targets: tg.subarray(0, N), out: { entropy: new Float32Array(tg.buffer, 4 * (N - 1), N) } }),
    () => lib.logprobs({ logits: z, vocabSize: V, targets: tg.subarray(0, N), out: { entropy: new Float32Array(tg.buffer, 4 * (N - 1), N) } }), /out\.entropy .*targets/, 'entropy over targets', [z, tg]);
  const want = lib.logprobsSync({ logits: z, vocabSize: V, targets: TARGETS });
  const ab = new ArrayBuffer(8 * N);
  const got = lib.logprobsSync({ logits: z, vocabSize: V, targets: TARGETS, out: { logp: new Float32Array(ab, 0, N), entropy: new Float32Array(ab, 4 * N, N) } });
  assert.equal(bits(got.logp), bits(want.logp));
  assert.equal(bits(got.entropy!), bits(want.entropy!));
});

test('grpoLoss: logp = oldLogp = refLogp one array equals copies; outputs over inputs / each other refused', async () => {
  const logp = OLD.slice();
  const o = { advantages: ADV, mask: MASK, beta: 0.1, perTokenLoss: true };
  const same = lib.grpoLossSync({ ...o, logp, oldLogp: logp, refLogp: logp });
  const sep = lib.grpoLossSync({ ...o, logp, oldLogp: logp.slice(), refLogp: logp.slice() });
  assert.is(same.loss, sep.loss);
  assert.equal(bits(same.gradLogp!), bits(sep.gradLogp!));
  assert.is((await lib.grpoLoss({ ...o, logp, oldLogp: logp, refLogp: logp })).loss, sep.loss, 'async');
  const ref = OLD.slice();
  await bothRefuse(() => lib.grpoLossSync({ ...o, logp, refLogp: ref, out: { gradLogp: ref } }), () => lib.grpoLoss({ ...o, logp, refLogp: ref, out: { gradLogp: ref } }), /out\.gradLogp .*refLogp/, 'gradLogp = refLogp', [logp, ref]);
  const buf = new Float32Array(2 * N);
  await bothRefuse(() => lib.grpoLossSync({ ...o, logp, refLogp: ref, out: { gradLogp: buf.subarray(0, N), perTokenLoss: buf.subarray(2, 2 + N) } }),
    () => lib.grpoLoss({ ...o, logp, refLogp: ref, out: { gradLogp: buf.subarray(0, N), perTokenLoss: buf.subarray(2, 2 + N) } }), /out\.perTokenLoss and out\.gradLogp/, 'ptl over gradLogp', [logp, ref]);
});

test("grpoLossFromLogits: out.gradLogits = logits refused with the 'inplace' hint; adjacent views of one buffer fine; in place nothing may overlap the logits", async () => {
  const o = { vocabSize: V, targets: TARGETS, advantages: ADV, mask: MASK, oldLogp: OLD, epsilon: 0.2 };
  const z = Z.slice();
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: z, out: { gradLogits: z } }), () => lib.grpoLossFromLogits({ ...o, logits: z, out: { gradLogits: z } }),
    /out\.gradLogits to be memory apart from the input logits.*pass gradient: 'inplace'/, 'gradLogits = logits', [z]);
  const want = lib.grpoLossFromLogitsSync({ ...o, logits: Z });
  // logits and their gradient in the two halves of one ArrayBuffer: allowed (the buffer is not the test)
  const both = new Float32Array(2 * N * V);
  both.set(Z);
  const got = lib.grpoLossFromLogitsSync({ ...o, logits: both.subarray(0, N * V), out: { gradLogits: both.subarray(N * V) } });
  assert.is(got.loss, want.loss);
  assert.equal(bits(got.gradLogits as Float32Array), bits(want.gradLogits as Float32Array));
  // one row shifted: overlap, refused
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: both.subarray(0, N * V), out: { gradLogits: both.subarray(N * V - V, 2 * N * V - V) } }),
    () => lib.grpoLossFromLogits({ ...o, logits: both.subarray(0, N * V), out: { gradLogits: both.subarray(N * V - V, 2 * N * V - V) } }), /out\.gradLogits .*logits/, 'gradient one row into the logits', [both]);
  // in place: oldLogp (or targets, mask) stored inside the logits' memory would be overwritten while read
  const zo = new Float32Array(N * V + N);
  zo.set(Z);
  zo.set(OLD, N * V);
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: zo.subarray(0, N * V), oldLogp: zo.subarray(N * V - 1, N * V - 1 + N), gradient: 'inplace' }),
    () => lib.grpoLossFromLogits({ ...o, logits: zo.subarray(0, N * V), oldLogp: zo.subarray(N * V - 1, N * V - 1 + N), gradient: 'inplace' }),
    /expected logits to be memory apart from the input oldLogp.*gradient: 'inplace'/, 'in place over oldLogp', [zo]);
  // adjacent: fine, and the in-place gradient equals the separate one
  const ip = lib.grpoLossFromLogitsSync({ ...o, logits: zo.subarray(0, N * V), oldLogp: zo.subarray(N * V), gradient: 'inplace' });
  assert.is(ip.loss, want.loss);
  close(zo.subarray(0, N * V), want.gradLogits as Float32Array, 1e-6, 1e-9, 'in place with oldLogp after the logits');
  assert.equal(bits(zo.subarray(N * V)), bits(OLD), 'oldLogp untouched');
  const zt = new Float32Array(N * V + N);
  zt.set(Z);
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: zt.subarray(0, N * V), targets: new Int32Array(zt.buffer, 4 * (N * V - 2), N), gradient: 'inplace' }),
    () => lib.grpoLossFromLogits({ ...o, logits: zt.subarray(0, N * V), targets: new Int32Array(zt.buffer, 4 * (N * V - 2), N), gradient: 'inplace' }), /logits .*targets/, 'in place over targets', [zt]);
  // inputs repeated (oldLogp = refLogp one array): equal to copies
  const s1 = lib.grpoLossFromLogitsSync({ ...o, logits: Z, refLogp: OLD, beta: 0.1 });
  const s2 = lib.grpoLossFromLogitsSync({ ...o, logits: Z, oldLogp: OLD.slice(), refLogp: OLD.slice(), beta: 0.1 });
  assert.is(s1.loss, s2.loss);
  assert.equal(bits(s1.gradLogits as Float32Array), bits(s2.gradLogits as Float32Array));
});

test("grpoLossFromLogits klEstimator 'full': refLogits = logits fine with a separate gradient, refused in place; no output over refLogits", async () => {
  const o = { vocabSize: V, targets: TARGETS, advantages: ADV, mask: MASK, oldLogp: OLD, beta: 0.2, klEstimator: 'full' as const };
  const z = Z.slice();
  const same = lib.grpoLossFromLogitsSync({ ...o, logits: z, refLogits: z });
  const copy = lib.grpoLossFromLogitsSync({ ...o, logits: z, refLogits: z.slice() });
  assert.is(same.loss, copy.loss);
  assert.is(same.metrics.kl, 0);
  assert.equal(bits(same.gradLogits as Float32Array), bits(copy.gradLogits as Float32Array));
  assert.equal(bits(z), bits(Z), 'logits untouched');
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: z, refLogits: z, gradient: 'inplace' }), () => lib.grpoLossFromLogits({ ...o, logits: z, refLogits: z, gradient: 'inplace' }),
    /expected logits to be memory apart from the input refLogits/, 'in place, refLogits = logits', [z]);
  // one row apart in one buffer: row n's gradient would be row n+1's reference
  const zz = new Float32Array((N + 1) * V);
  zz.set(Z);
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: zz.subarray(0, N * V), refLogits: zz.subarray(V), gradient: 'inplace' }),
    () => lib.grpoLossFromLogits({ ...o, logits: zz.subarray(0, N * V), refLogits: zz.subarray(V), gradient: 'inplace' }), /logits .*refLogits/, 'in place, shifted refLogits', [zz]);
  // a separate gradient (or ℓ) written over refLogits before klFull reads it
  const zr = ZR.slice();
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: z, refLogits: zr, out: { gradLogits: zr } }), () => lib.grpoLossFromLogits({ ...o, logits: z, refLogits: zr, out: { gradLogits: zr } }),
    /out\.gradLogits .*refLogits/, 'gradLogits = refLogits', [z, zr]);
  await bothRefuse(() => lib.grpoLossFromLogitsSync({ ...o, logits: z, refLogits: zr, out: { logp: zr.subarray(3, 3 + N) } }), () => lib.grpoLossFromLogits({ ...o, logits: z, refLogits: zr, out: { logp: zr.subarray(3, 3 + N) } }),
    /out\.logp .*refLogits/, 'logp inside refLogits', [z, zr]);
  // logits and refLogits as adjacent halves of one buffer, in place: allowed and right
  const half = new Float32Array(2 * N * V);
  half.set(Z);
  half.set(ZR, N * V);
  const want = lib.grpoLossFromLogitsSync({ ...o, logits: Z, refLogits: ZR });
  const ip = lib.grpoLossFromLogitsSync({ ...o, logits: half.subarray(0, N * V), refLogits: half.subarray(N * V), gradient: 'inplace' });
  assert.is(ip.loss, want.loss);
  close(half.subarray(0, N * V), want.gradLogits as Float32Array, 1e-6, 1e-9, 'in place next to refLogits');
  assert.equal(bits(half.subarray(N * V)), bits(ZR), 'refLogits untouched');
});

test('klFull: out.grad = logits or refLogits, out.kl over coef refused; refLogits = logits gives 0', async () => {
  const z = Z.slice(), zr = ZR.slice(), coef = new Float32Array(N).fill(0.5);
  await bothRefuse(() => lib.klFullSync({ logits: z, refLogits: zr, vocabSize: V, out: { grad: zr } }), () => lib.klFull({ logits: z, refLogits: zr, vocabSize: V, out: { grad: zr } }), /out\.grad .*refLogits/, 'grad = refLogits', [z, zr]);
  await bothRefuse(() => lib.klFullSync({ logits: z, refLogits: zr, vocabSize: V, coef, out: { kl: coef } }), () => lib.klFull({ logits: z, refLogits: zr, vocabSize: V, coef, out: { kl: coef } }), /out\.kl .*coef/, 'kl = coef', [z, zr, coef]);
  const k = lib.klFullSync({ logits: z, refLogits: z, vocabSize: V });
  assert.equal(bits(k.kl), new Array(N).fill(0));
  assert.ok(k.grad!.every((x) => x === 0));
});

test('grpoLossFromHidden: every output (out.*, gradWeight) apart from every input and each other', async () => {
  const D = 4;
  const hidden = randn(r, N * D), weight = randn(r, V * D, 0.5);
  const o = { hidden, weight, hiddenSize: D, vocabSize: V, targets: TARGETS, advantages: ADV, mask: MASK, oldLogp: OLD };
  const old = OLD.slice();
  await bothRefuse(() => lib.grpoLossFromHiddenSync({ ...o, oldLogp: old, out: { logp: old } }), () => lib.grpoLossFromHidden({ ...o, oldLogp: old, out: { logp: old } }), /out\.logp .*oldLogp/, 'logp = oldLogp', [old]);
  const gw = new Float32Array(V * D + N);
  gw.set(OLD, V * D - 2);
  await bothRefuse(() => lib.grpoLossFromHiddenSync({ ...o, oldLogp: gw.subarray(V * D - 2, V * D - 2 + N), gradWeight: gw.subarray(0, V * D) }),
    () => lib.grpoLossFromHidden({ ...o, oldLogp: gw.subarray(V * D - 2, V * D - 2 + N), gradWeight: gw.subarray(0, V * D) }), /gradWeight .*oldLogp/, 'gradWeight over oldLogp', [gw]);
  const buf = new Float32Array(2 * N);
  await bothRefuse(() => lib.grpoLossFromHiddenSync({ ...o, out: { entropy: buf.subarray(0, N), gradLogp: buf.subarray(1, 1 + N) } }),
    () => lib.grpoLossFromHidden({ ...o, out: { entropy: buf.subarray(0, N), gradLogp: buf.subarray(1, 1 + N) } }), /out\.gradLogp and out\.entropy/, 'entropy/gradLogp', []);
  await bothRefuse(() => lib.grpoLossFromHiddenSync({ ...o, gradWeight: weight }), () => lib.grpoLossFromHidden({ ...o, gradWeight: weight }), /gradWeight/, 'gradWeight = weight', [weight]);
  // oldLogp = refLogp one array: equals copies
  const a = lib.grpoLossFromHiddenSync({ ...o, refLogp: OLD, beta: 0.1 });
  const b = lib.grpoLossFromHiddenSync({ ...o, oldLogp: OLD.slice(), refLogp: OLD.slice(), beta: 0.1 });
  assert.is(a.loss, b.loss);
  assert.equal(bits(a.gradHidden!), bits(b.gradHidden!));
});

test("groupAdvantages: outputs over rewards / the caller's lengths or groupIds / each other refused; rewards = lengths fine", async () => {
  const rewards = new Float32Array([1, 0, 2, 3]);
  const lengths = new Float32Array([5, 6, 7, 8]);
  await bothRefuse(() => lib.groupAdvantagesSync({ rewards, groupSize: 2, estimator: 'opo', lengths, out: { advantages: lengths } }),
    () => lib.groupAdvantages({ rewards, groupSize: 2, estimator: 'opo', lengths, out: { advantages: lengths } }), /out\.advantages .*lengths/, 'advantages = lengths', [rewards, lengths]);
  const ids = new Int32Array([4, 4, 9, 9]);
  await bothRefuse(() => lib.groupAdvantagesSync({ rewards, groupIds: ids, out: { groupIds: ids.subarray(0, 2) } }),
    () => lib.groupAdvantages({ rewards, groupIds: ids, out: { groupIds: ids.subarray(0, 2) } }), /out\.groupIds .*groupIds/, 'groupIds out over in', [ids]);
  const g = new Float32Array(3);
  await bothRefuse(() => lib.groupAdvantagesSync({ rewards, groupSize: 2, out: { groupMean: g.subarray(0, 2), groupStd: g.subarray(1, 3) } }),
    () => lib.groupAdvantages({ rewards, groupSize: 2, out: { groupMean: g.subarray(0, 2), groupStd: g.subarray(1, 3) } }), /out\.groupStd and out\.groupMean/, 'mean/std', [rewards]);
  const a = lib.groupAdvantagesSync({ rewards, groupSize: 2, estimator: 'opo', lengths: rewards });
  const b = lib.groupAdvantagesSync({ rewards, groupSize: 2, estimator: 'opo', lengths: rewards.slice() });
  assert.equal(bits(a.advantages), bits(b.advantages));
});

test('sample: outputs over logits or per-row parameters refused', async () => {
  const z = Z.slice(), temps = new Float32Array(N).fill(0.9);
  await bothRefuse(() => lib.sampleSync({ logits: z, vocabSize: V, seed: 3, temperature: temps, out: { logp: temps } }),
    () => lib.sample({ logits: z, vocabSize: V, seed: 3, temperature: temps, out: { logp: temps } }), /out\.logp .*temperature/, 'logp = temperature', [z, temps]);
  await bothRefuse(() => lib.sampleSync({ logits: z, vocabSize: V, seed: 3, out: { tokens: new Int32Array(z.buffer, 0, N) } }),
    () => lib.sample({ logits: z, vocabSize: V, seed: 3, out: { tokens: new Int32Array(z.buffer, 0, N) } }), /out\.tokens .*logits/, 'tokens in logits', [z]);
});

test('device forms: the only caller-owned outputs (logits in place, gradWeight) refuse an input tensor; repeated inputs equal copies', async () => {
  setOrder(0);
  // V = 1 float32 logits have oldLogp's shape: one tensor as both, in place
  const z1 = DeviceTensor.fromHost(OLD.slice()), t0 = DeviceTensor.fromHost(new Int32Array(N)), adv = DeviceTensor.fromHost(ADV);
  const o1 = { vocabSize: 1, targets: t0, advantages: adv, gradient: 'inplace' as const };
  await bothRefuse(() => cuda.grpoLossFromLogitsSync({ ...o1, logits: z1, oldLogp: z1 }), () => cuda.grpoLossFromLogits({ ...o1, logits: z1, oldLogp: z1 }),
    /expected logits to be memory apart from the input oldLogp but they are the same DeviceTensor/, 'cuda in place over oldLogp', []);
  assert.equal(bits(z1.toHost() as Float32Array), bits(OLD), 'logits unchanged');
  // oldLogp = refLogp one tensor: equals separate tensors
  const dz = DeviceTensor.fromHost(Z), dt = DeviceTensor.fromHost(TARGETS), dold = DeviceTensor.fromHost(OLD), dold2 = DeviceTensor.fromHost(OLD);
  const o = { logits: dz, vocabSize: V, targets: dt, advantages: adv, beta: 0.1 };
  const a = cuda.grpoLossFromLogitsSync({ ...o, oldLogp: dold, refLogp: dold });
  const b = cuda.grpoLossFromLogitsSync({ ...o, oldLogp: dold, refLogp: dold2 });
  assert.is(a.loss, b.loss);
  assert.equal(bits(a.gradLogits!.toHost() as Float32Array), bits(b.gradLogits!.toHost() as Float32Array));
  // gradWeight [V·D] the same tensor as oldLogp [N] (V·D = N)
  const D = 3, Vh = 2;
  const hid = DeviceTensor.fromHost(randn(r, N * D)), w = DeviceTensor.fromHost(randn(r, Vh * D)), th = DeviceTensor.fromHost(new Int32Array(N));
  const gwo = DeviceTensor.fromHost(OLD.slice());
  await bothRefuse(() => cuda.grpoLossFromHiddenSync({ hidden: hid, weight: w, hiddenSize: D, vocabSize: Vh, targets: th, advantages: adv, oldLogp: gwo, gradWeight: gwo }),
    () => cuda.grpoLossFromHidden({ hidden: hid, weight: w, hiddenSize: D, vocabSize: Vh, targets: th, advantages: adv, oldLogp: gwo, gradWeight: gwo }),
    /expected gradWeight to be memory apart from the input oldLogp/, 'cuda gradWeight = oldLogp', []);
  for (const x of [a, b]) for (const t of [x.logp, x.entropy, x.gradLogp, x.gradLogits]) t?.dispose();
  for (const t of [z1, t0, adv, dz, dt, dold, dold2, hid, w, th, gwo]) t.dispose();
});

test.run();
