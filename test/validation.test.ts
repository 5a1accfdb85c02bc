// Argument validation of every op (issue 7, items 11-13), host and CUDA forms (the CUDA kernels
// through the emulator addon): one shared validation per op, options read exactly once,
// real typed arrays only, float32 range of float options, unknown keys with a did-you-mean,
// named errors for SharedArrayBuffers / Proxies / `out: null`, aliased outputs refused, and a
// bounded fuzz of malformed calls that must only ever produce named TypeError / RangeError.
import { useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import * as lib from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import * as adv from '../lib/ops/group_advantages';
import * as gl from '../lib/ops/grpo_loss';
import * as glf from '../lib/ops/grpo_loss_from_logits';
import * as kl from '../lib/ops/kl_penalty';
import * as lp from '../lib/ops/logprobs';
import * as smp from '../lib/ops/sample';
import { didYouMean, FLOAT32_MAX, FLOAT32_MIN_NORMAL } from '../lib/validate';
import { close, randn, rng } from './helpers';
import { refGroupAdvantages } from './reference/group_advantages';
import { refKl } from './reference/kl_penalty';
import { refLogprobs, refWiden } from './reference/logprobs';

type Opts = Record<string, unknown>;
type Form = (o: Opts) => unknown;

/** The thrown (or rejected) error of a call, or null when it succeeded. */
async function errorOf(f: () => unknown): Promise<Error | null> {
  try {
    await f();
    return null;
  } catch (e) {
    return e as Error;
  }
}
function errorOfSync(f: () => unknown): Error | null {
  try {
    f();
    return null;
  } catch (e) {
    return e as Error;
  }
}
function expectError(e: Error | null, kind: ErrorConstructor, re: RegExp, what: string): void {
  assert.ok(e !== null, `${what}: no error`);
  assert.instance(e, kind, `${what}: ${e!.constructor.name}: ${e!.message}`);
  assert.match(e!.message, re, `${what}: ${e!.message}`);
  assert.not.match(e!.message, /\(native\)/, `${what}: reached the native layer: ${e!.message}`);
}

// ---- small valid calls of every op, host and device --------------------------------------

const S = 3, T = 2, N = S * T, V = 5;
const r0 = rng(11);
const LOGP = randn(r0, N, 0.5, -2);
const OLD = randn(r0, N, 0.5, -2);
const REF = randn(r0, N, 0.5, -2);
const ENT = Float32Array.from(randn(r0, N), (x) => Math.abs(x));
const ADV = Float32Array.from([0.5, -1, 2]);
const Z = randn(r0, N * V);
const TARGETS = Int32Array.from({ length: N }, (_, i) => (i * 3) % V);
const REWARDS = Float32Array.from([1, 0, 2, 1, 0.5, 0]);

const up = (a: Float32Array | Int32Array | Uint8Array) => DeviceTensor.fromHost(a);

interface OpCase {
  name: string;
  host: Form;
  hostAsync: Form;
  device: Form;
  deviceAsync: Form;
  /** A valid host call's options (fresh arrays each time). */
  hostOpts: () => Opts;
  /** The same call with device tensors. */
  deviceOpts: () => Opts;
  /** The option keys the host form takes. */
  keys: readonly string[];
  /** Scalar / enum options shared by both forms (what item 11 compares). */
  scalars: readonly string[];
}

const OPS: OpCase[] = [
  {
    name: 'klPenalty',
    host: (o) => kl.klPenaltySync(o as never), hostAsync: (o) => kl.klPenalty(o as never),
    device: (o) => cuda.klPenaltySync(o as never), deviceAsync: (o) => cuda.klPenalty(o as never),
    hostOpts: () => ({ logp: LOGP.slice(), refLogp: REF.slice() }),
    deviceOpts: () => ({ logp: up(LOGP), refLogp: up(REF) }),
    keys: kl.KL_PENALTY_HOST_KEYS,
    scalars: ['estimator', 'clampLogRatio', 'grad'],
  },
  {
    name: 'groupAdvantages',
    host: (o) => adv.groupAdvantagesSync(o as never), hostAsync: (o) => adv.groupAdvantages(o as never),
    device: (o) => cuda.groupAdvantagesSync(o as never), deviceAsync: (o) => cuda.groupAdvantages(o as never),
    hostOpts: () => ({ rewards: REWARDS.slice(), numRewardFunctions: 2, groupSize: 3 }),
    deviceOpts: () => ({ rewards: up(REWARDS), numRewardFunctions: 2, groupSize: 3 }),
    keys: adv.GROUP_ADVANTAGES_HOST_KEYS,
    scalars: ['numRewardFunctions', 'weights', 'groupSize', 'estimator', 'scale', 'eps', 'std'],
  },
  {
    name: 'logprobs',
    host: (o) => lp.logprobsSync(o as never), hostAsync: (o) => lp.logprobs(o as never),
    device: (o) => cuda.logprobsSync(o as never), deviceAsync: (o) => cuda.logprobs(o as never),
    hostOpts: () => ({ logits: Z.slice(), vocabSize: V, targets: TARGETS.slice() }),
    deviceOpts: () => ({ logits: up(Z), vocabSize: V, targets: up(TARGETS) }),
    keys: lp.LOGPROBS_HOST_KEYS,
    scalars: ['vocabSize', 'temperature', 'entropy'],
  },
  {
    name: 'grpoLoss',
    host: (o) => gl.grpoLossSync(o as never), hostAsync: (o) => gl.grpoLoss(o as never),
    device: (o) => cuda.grpoLossSync(o as never), deviceAsync: (o) => cuda.grpoLoss(o as never),
    hostOpts: () => ({ logp: LOGP.slice(), oldLogp: OLD.slice(), refLogp: REF.slice(), entropy: ENT.slice(), advantages: ADV.slice() }),
    deviceOpts: () => ({ logp: up(LOGP), oldLogp: up(OLD), refLogp: up(REF), entropy: up(ENT), advantages: up(ADV) }),
    keys: gl.GRPO_LOSS_HOST_KEYS,
    scalars: ['grad', 'perTokenLoss', ...gl.GRPO_CONFIG_KEYS],
  },
  {
    name: 'grpoLossFromLogits',
    host: (o) => glf.grpoLossFromLogitsSync(o as never), hostAsync: (o) => glf.grpoLossFromLogits(o as never),
    device: (o) => cuda.grpoLossFromLogitsSync(o as never), deviceAsync: (o) => cuda.grpoLossFromLogits(o as never),
    hostOpts: () => ({ logits: Z.slice(), vocabSize: V, targets: TARGETS.slice(), advantages: ADV.slice(), oldLogp: OLD.slice(), refLogp: REF.slice() }),
    deviceOpts: () => ({ logits: up(Z), vocabSize: V, targets: up(TARGETS), advantages: up(ADV), oldLogp: up(OLD), refLogp: up(REF) }),
    keys: glf.GRPO_LOSS_FROM_LOGITS_HOST_KEYS,
    scalars: ['vocabSize', 'temperature', 'gradient', ...gl.GRPO_CONFIG_KEYS],
  },
  {
    name: 'sample',
    host: (o) => smp.sampleSync(o as never), hostAsync: (o) => smp.sample(o as never),
    device: (o) => cuda.sampleSync(o as never), deviceAsync: (o) => cuda.sample(o as never),
    hostOpts: () => ({ logits: Z.slice(), vocabSize: V, seed: 7 }),
    deviceOpts: () => ({ logits: up(Z), vocabSize: V, seed: 7 }),
    keys: smp.SAMPLE_HOST_KEYS,
    scalars: ['vocabSize', 'temperature', 'topK', 'topP', 'minP', 'seed', 'step', 'rowIds', 'truncatedLogprobs'],
  },
];
const op = (name: string) => OPS.find((o) => o.name === name)!;

function disposeDeep(x: unknown): void {
  if (x instanceof DeviceTensor) x.dispose();
  else if (x && typeof x === 'object' && !ArrayBuffer.isView(x)) for (const y of Object.values(x)) disposeDeep(y);
}

// ---- item 11: host and device forms accept and reject the same options -------------------

const WEIRD: unknown[] = [
  undefined, null, -1, 0, 0.5, 1, 2, 2.5, 3, 1e-46, 1e-45, FLOAT32_MIN_NORMAL, 1e39, FLOAT32_MAX, -1e39, NaN, Infinity, -Infinity,
  'k1', 'grpo', 'rloo', 'batch', 'none', 'population', 'sequence', 'dual_clip', 'cispo', 'inplace', 'x', true, false, {}, [1, 2], 2 ** 40, 10n,
];

test('item 11: cuda.groupAdvantages rejects eps < 0 like the host op (it used to accept it)', async () => {
  const o = op('groupAdvantages');
  for (const eps of [-1, -1e-4, 1e39, NaN]) {
    const h = errorOfSync(() => o.host({ ...o.hostOpts(), eps }));
    const d = errorOfSync(() => o.device({ ...o.deviceOpts(), eps }));
    expectError(h, RangeError, /^groupAdvantages: .*for eps but received/, `host eps ${eps}`);
    expectError(d, RangeError, /^cuda\.groupAdvantages: .*for eps but received/, `device eps ${eps}`);
    assert.is(d!.message, 'cuda.' + h!.message);
    expectError(await errorOf(() => o.deviceAsync({ ...o.deviceOpts(), eps })), RangeError, /eps/, `device async eps ${eps}`);
  }
  // rloo needs groups of 2 on the device too
  const d = errorOfSync(() => o.device({ ...o.deviceOpts(), numRewardFunctions: 1, groupSize: 1, estimator: 'rloo' }));
  expectError(d, RangeError, /groupSize/, 'device rloo groupSize 1');
});

test('item 11: every scalar option of every op: the device form rejects exactly what the host form rejects, with the same message', async () => {
  let compared = 0, rejected = 0;
  for (const o of OPS) {
    for (const key of o.scalars) {
      for (const val of WEIRD) {
        const h = errorOfSync(() => o.host({ ...o.hostOpts(), [key]: val }));
        let res: unknown;
        const d = errorOfSync(() => (res = o.device({ ...o.deviceOpts(), [key]: val })));
        disposeDeep(res);
        const what = `${o.name} ${key}=${String(val)}`;
        if (h === null) {
          assert.is(d, null, `${what}: host accepts, device throws ${d?.message}`);
        } else {
          assert.ok(d !== null, `${what}: host throws "${h.message}", device accepts`);
          assert.is(d!.constructor, h.constructor, what);
          assert.is(namedArgument(d!.message), namedArgument(h.message), `${what}: ${d!.message} / ${h.message}`);
          // an error about the option itself has the same text; one about a tensor it sizes
          // (targets for a changed vocabSize) differs only in how each form names tensor kinds
          if (namedArgument(h.message) === key) assert.is(d!.message.split(' but received')[0], 'cuda.' + h.message.split(' but received')[0], what);
          rejected++;
        }
        compared++;
      }
    }
  }
  assert.ok(compared > 1000 && rejected > 500, `${compared} compared, ${rejected} rejected`);
});

test('cuda.* async forms reject (never throw synchronously) on bad arguments', async () => {
  for (const o of OPS) {
    let p: unknown;
    assert.not.throws(() => { p = o.deviceAsync({ ...o.deviceOpts(), bogus: 1 }); }, `${o.name}: threw synchronously`);
    assert.instance(p, Promise);
    expectError(await errorOf(() => p), TypeError, new RegExp(`^cuda\\.${o.name}: unknown option bogus`), o.name);
    assert.not.throws(() => { p = o.deviceAsync(null as never); });
    expectError(await errorOf(() => p), TypeError, /for options but received null/, `${o.name} null`);
  }
});

// ---- item 12: options read once into a snapshot --------------------------------------------

test('item 12: an option getter that corrupts an already-checked array cannot bypass validation', async () => {
  // klPenalty used to check logp for finite values and read `grad` afterwards
  const logp = LOGP.slice();
  const o1 = { logp, refLogp: REF.slice(), get grad() { logp[2] = NaN; return true; } };
  expectError(errorOfSync(() => lib.klPenaltySync(o1)), RangeError, /^klPenalty: expected finite values for logp .*NaN at index 2/, 'klPenalty grad getter');
  // groupAdvantages used to scan rewards for ±Infinity before reading eps
  const rewards = REWARDS.slice();
  const o2 = { rewards, groupSize: 3, get eps() { rewards[4] = Infinity; return 1e-4; } };
  expectError(errorOfSync(() => lib.groupAdvantagesSync(o2)), RangeError, /for rewards .*Infinity at index 4/, 'groupAdvantages eps getter');
  // grpoLossFromLogits checked targets before reading the mask's elements (a getter on one)
  const targets = TARGETS.slice();
  const mask: number[] = [1, 1, 1, 1, 1, 1];
  Object.defineProperty(mask, 0, { get() { targets[1] = 1 << 30; return 1; } });
  const o3 = { logits: Z.slice(), vocabSize: V, targets, advantages: ADV.slice(), mask };
  expectError(errorOfSync(() => lib.grpoLossFromLogitsSync(o3)), RangeError, /ids in \[0, 5\) for targets .*1073741824 at index 1/, 'mask element getter');
  // sample checked per-row temperature values before copying rowIds (a getter on one)
  const temps = new Float32Array(N).fill(1);
  const rowIds: number[] = Array.from({ length: N }, (_, i) => i);
  Object.defineProperty(rowIds, 3, { get() { temps[0] = -5; return 3; } });
  expectError(errorOfSync(() => lib.sampleSync({ logits: Z.slice(), vocabSize: V, seed: 1, temperature: temps, rowIds })), RangeError, /for temperature .*-5 at index 0/, 'rowIds getter');
});

test('item 12: every option getter runs exactly once per call (dispatch included), and a throwing getter is a named TypeError', async () => {
  for (const o of OPS) {
    for (const form of [o.host, (x: Opts) => (lib as unknown as Record<string, Form>)[`${o.name}Sync`](x)]) {
      const base = o.hostOpts();
      const counts: Record<string, number> = {};
      const wrapped: Opts = {};
      for (const [k, val] of Object.entries(base)) {
        Object.defineProperty(wrapped, k, { enumerable: true, get() { counts[k] = (counts[k] ?? 0) + 1; return val; } });
      }
      form(wrapped);
      for (const k of Object.keys(base)) assert.is(counts[k], 1, `${o.name}: getter ${k} ran ${counts[k]} times`);
    }
    // a getter that answers differently on a second read cannot matter: there is none
    const base = o.hostOpts();
    const key = Object.keys(base)[0];
    const thrower = { ...base };
    Object.defineProperty(thrower, key, { enumerable: true, get() { throw new Error('boom'); } });
    expectError(errorOfSync(() => o.host(thrower)), TypeError, new RegExp(`^${o.name}: reading option ${key} threw: boom`), `${o.name} throwing getter`);
    expectError(await errorOf(() => o.hostAsync(thrower)), TypeError, new RegExp(`reading option ${key} threw`), `${o.name} throwing getter (async)`);
  }
  // the `out` object is read once as well
  let reads = 0;
  const out = { get kl() { reads++; return new Float32Array(N); } };
  lib.klPenaltySync({ logp: LOGP, refLogp: REF, out });
  assert.is(reads, 1);
});

test('item 12: typed-array subclasses that lie about their length are rejected (groupIds used to group wrongly)', async () => {
  class LyingInt32 extends Int32Array {
    get length() { return 3; }
  }
  // real length 6, claims 3 = S: old code took ids [0,0,1] of a "length 3" array
  const ids = new LyingInt32([0, 0, 1, 1, 2, 2]);
  expectError(errorOfSync(() => lib.groupAdvantagesSync({ rewards: Float32Array.from([1, 2, 3]), groupIds: ids })), TypeError, /for groupIds .*overridden length/, 'lying groupIds');
  class LyingF32 extends Float32Array {
    get length() { return 6; }
  }
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: new LyingF32(2), refLogp: REF })), TypeError, /for logp .*LyingF32 \(a Float32Array subclass\)\(2\) with an overridden length/, 'lying logp');
  // an own `length` property on a plain typed array lies just as well
  const own = new Float32Array(2);
  Object.defineProperty(own, 'length', { value: 6 });
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: own })), TypeError, /refLogp/, 'own length');
  // objects that only inherit the prototype, and Proxies of real arrays
  const fake = Object.create(Float32Array.prototype);
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: fake, refLogp: REF })), TypeError, /for logp but received an object inheriting Float32Array\.prototype/, 'prototype-only logp');
  const fakeIds = Object.create(Int32Array.prototype);
  expectError(errorOfSync(() => lib.groupAdvantagesSync({ rewards: Float32Array.from([1, 2, 3]), groupIds: fakeIds })), TypeError, /groupIds/, 'prototype-only groupIds');
  expectError(errorOfSync(() => lib.logprobsSync({ logits: new Proxy(Z, {}), vocabSize: V, targets: TARGETS })), TypeError, /for logits but received a Proxy/, 'Proxy logits');
  expectError(errorOfSync(() => lib.groupAdvantagesSync({ rewards: REWARDS, groupSize: 3, weights: new Proxy([1, 1], {}), numRewardFunctions: 2 })), TypeError, /weights/, 'Proxy weights');

  // an honest subclass (Buffer is a Uint8Array subclass) is fine and computes the same loss
  const mask = Buffer.from([1, 1, 0, 1, 1, 1]);
  const a = lib.grpoLossSync({ logp: LOGP, advantages: ADV, mask });
  const b = lib.grpoLossSync({ logp: LOGP, advantages: ADV, mask: Uint8Array.from(mask) });
  assert.is(a.loss, b.loss);
  // and the values are right: honest subclass of Int32Array as groupIds groups by its ids
  class Ids extends Int32Array {}
  const rw = Float32Array.from([1, 5, 2, 7]);
  const g = lib.groupAdvantagesSync({ rewards: rw, groupIds: Ids.from([9, 4, 9, 4]) as Int32Array });
  const want = refGroupAdvantages({ rewards: rw, K: 1, ids: [9, 4, 9, 4], estimator: 'grpo', scale: 'group', eps: 1e-4, unbiased: true });
  close(g.advantages, want.advantages, 1e-6, 1e-7, 'advantages');
});

test('item 12: float options outside float32 range are RangeErrors naming the option (temperature 1e39 sampled uniformly, 1e-45 gave NaN)', async () => {
  const z = Z.slice();
  for (const temperature of [1e39, 1e-46, 1e-45, -1e39, 3.5e38]) {
    expectError(errorOfSync(() => lib.sampleSync({ logits: z, vocabSize: V, seed: 1, temperature })), RangeError, /^sample: .*float32 represents.* for temperature but received/, `sample τ=${temperature}`);
    expectError(errorOfSync(() => lib.logprobsSync({ logits: z, vocabSize: V, targets: TARGETS, temperature })), RangeError, /^logprobs: .*for temperature/, `logprobs τ=${temperature}`);
    expectError(errorOfSync(() => lib.grpoLossFromLogitsSync({ logits: z, vocabSize: V, targets: TARGETS, advantages: ADV, temperature })), RangeError, /temperature/, `loss τ=${temperature}`);
  }
  // per-row arrays: a denormal float32 temperature is refused the same way
  const tr = new Float32Array(N).fill(1);
  tr[4] = 1e-45;
  expectError(errorOfSync(() => lib.sampleSync({ logits: z, vocabSize: V, seed: 1, temperature: tr })), RangeError, /for temperature .*at index 4/, 'per-row denormal');
  for (const [k, val] of [['topP', 1e-46], ['minP', 1e-40], ['topP', 1e39]] as const)
    expectError(errorOfSync(() => lib.sampleSync({ logits: z, vocabSize: V, seed: 1, [k]: val })), RangeError, new RegExp(`for ${k}`), `${k} ${val}`);
  for (const [k, val] of [['eps', 1e39], ['eps', 1e-300]] as const)
    expectError(errorOfSync(() => lib.groupAdvantagesSync({ rewards: REWARDS, groupSize: 3, [k]: val })), RangeError, new RegExp(`for ${k}`), `${k} ${val}`);
  expectError(errorOfSync(() => lib.groupAdvantagesSync({ rewards: REWARDS, groupSize: 3, numRewardFunctions: 2, weights: [1, 1e39] })), RangeError, /for weights .*1e\+39 at index 1/, 'weight 1e39');
  for (const [k, val] of [['beta', 1e39], ['epsilonHigh', 1e39], ['clipRatioC', 1e39], ['delta', 1e39], ['numItemsInBatch', 1e39], ['epsilon', 1e-40]] as const)
    expectError(errorOfSync(() => lib.grpoLossSync({ logp: LOGP, advantages: ADV, refLogp: REF, [k]: val })), RangeError, new RegExp(`for ${k} but`), `${k} ${val}`);

  // the ends of the accepted range work and give the right values: τ = 1e30 is uniform in float32
  // too (z/τ rounds to ±0 or a denormal), so logp = −log V; the smallest normal τ is greedy-like
  const big = lib.logprobsSync({ logits: z, vocabSize: V, targets: TARGETS, temperature: 1e30 });
  close(big.logp, new Array(N).fill(-Math.log(V)), 1e-6, 0, 'logp at τ = 1e30');
  const want = refLogprobs(refWiden(z), V, TARGETS, 1e-3);
  close(lib.logprobsSync({ logits: z, vocabSize: V, targets: TARGETS, temperature: 1e-3 }).logp, want.logp, 1e-5, 1e-5, 'logp at τ = 1e-3');
  const s = lib.sampleSync({ logits: z, vocabSize: V, seed: 1, temperature: FLOAT32_MIN_NORMAL });
  for (let b = 0; b < N; b++) {
    const row = Array.from(z.subarray(b * V, (b + 1) * V));
    assert.is(s.tokens[b], row.indexOf(Math.max(...row)), `row ${b}: τ = 2^-126 draws the argmax`);
  }
  const u = lib.sampleSync({ logits: z, vocabSize: V, seed: 1, temperature: FLOAT32_MAX });
  for (const t of u.tokens) assert.ok(t >= 0 && t < V);
});

// ---- item 13: unknown keys, SAB / Proxy / null out named, aliased outputs ------------------

test('item 13: unknown option keys are TypeErrors with a did-you-mean (losType / epsilonhigh used to give the default loss)', async () => {
  const base = { logp: LOGP, advantages: ADV, mask: Uint8Array.from([1, 1, 1, 0, 1, 1]) };
  expectError(errorOfSync(() => lib.grpoLossSync({ ...base, losType: 'grpo' } as never)), TypeError, /^grpoLoss: unknown option losType \(did you mean lossType\?\)/, 'losType');
  expectError(errorOfSync(() => lib.grpoLossSync({ ...base, epsilonhigh: 0.28 } as never)), TypeError, /unknown option epsilonhigh \(did you mean epsilonHigh\?\)/, 'epsilonhigh');
  expectError(await errorOf(() => lib.grpoLoss({ ...base, epsilonhigh: 0.28 } as never)), TypeError, /did you mean epsilonHigh/, 'async');
  expectError(errorOfSync(() => lib.sampleSync({ logits: Z, vocabSize: V, seed: 1, top_p: 0.9 } as never)), TypeError, /unknown option top_p \(did you mean topP\?\)/, 'top_p');
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: REF, out: { kll: new Float32Array(N) } } as never)), TypeError, /unknown option out\.kll \(did you mean out\.kl\?\)/, 'out.kll');
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: REF, zzzzzz: 1 } as never)), TypeError, /unknown option zzzzzz; expected one of logp, refLogp/, 'no near key');
  // device forms too, and out is a host-only option
  const dl = up(LOGP), da = up(ADV);
  expectError(errorOfSync(() => cuda.grpoLossSync({ logp: dl, advantages: da, epsilonhigh: 0.28 } as never)), TypeError, /did you mean epsilonHigh/, 'device epsilonhigh');
  expectError(errorOfSync(() => cuda.grpoLossSync({ logp: dl, advantages: da, losType: 'grpo' } as never)), TypeError, /^cuda\.grpoLoss: unknown option losType \(did you mean lossType\?\)/, 'device losType');
  expectError(errorOfSync(() => lib.grpoLossSync({ logp: dl, advantages: da, out: {} } as never)), TypeError, /unknown option out/, 'device out');
  disposeDeep([dl, da]);
  // the loss really differs when the key is right: the old silent default was a wrong answer
  const g = lib.grpoLossSync({ ...base, lossType: 'grpo' });
  const d = lib.grpoLossSync(base);
  assert.ok(g.loss !== d.loss);
  assert.is(didYouMean('EPSILON', ['epsilon', 'epsilonHigh']), 'epsilon');
  assert.is(didYouMean('completelyDifferent', ['epsilon']), undefined);
});

test('item 13: SharedArrayBuffer-backed arrays, resizable buffers, Proxies and out: null get errors naming the argument', async () => {
  const sab = new Float32Array(new SharedArrayBuffer(4 * N));
  sab.set(LOGP);
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: sab, refLogp: REF })), TypeError, /^klPenalty: .*not a SharedArrayBuffer for logp but received Float32Array\(6\) on a SharedArrayBuffer/, 'SAB logp');
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: REF, out: { kl: new Float32Array(new SharedArrayBuffer(4 * N)) } })), TypeError, /out\.kl/, 'SAB out.kl');
  expectError(errorOfSync(() => lib.logprobsSync({ logits: Z, vocabSize: V, targets: new Int32Array(new SharedArrayBuffer(4 * N)) })), TypeError, /targets/, 'SAB targets');
  const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(4 * N, { maxByteLength: 8 * N });
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: new Float32Array(rab), refLogp: REF })), TypeError, /logp .*resizable/, 'resizable logp');
  expectError(errorOfSync(() => lib.klPenaltySync(new Proxy({ logp: LOGP, refLogp: REF }, {}))), TypeError, /for options but received a Proxy/, 'Proxy options');
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: REF, out: new Proxy({}, {}) })), TypeError, /for out but received a Proxy/, 'Proxy out');
  for (const o of OPS) {
    expectError(errorOfSync(() => o.host({ ...o.hostOpts(), out: null })), TypeError, new RegExp(`^${o.name}: expected an options object for out but received null`), `${o.name} out: null`);
    const outKey = { klPenalty: 'kl', groupAdvantages: 'advantages', logprobs: 'logp', grpoLoss: 'gradLogp', grpoLossFromLogits: 'logp', sample: 'logp' }[o.name]!;
    expectError(errorOfSync(() => o.host({ ...o.hostOpts(), out: { [outKey]: null } })), TypeError, new RegExp(`for out\\.${outKey} but received null`), `${o.name} out.${outKey}: null`);
  }
  // DeviceTensor look-alikes are not device tensors
  const dt = up(LOGP);
  const look = Object.create(DeviceTensor.prototype);
  expectError(errorOfSync(() => cuda.klPenaltySync({ logp: look, refLogp: dt })), TypeError, /for logp but received/, 'prototype-only DeviceTensor');
  expectError(errorOfSync(() => cuda.klPenaltySync({ logp: new Proxy(dt, {}), refLogp: dt })), TypeError, /for logp but received a Proxy/, 'Proxy DeviceTensor');
  try {
    (dt as unknown as { numel: number }).numel = 1;
  } catch {
    // strict mode throws; sloppy mode ignores the write
  }
  assert.is(dt.numel, N, 'numel is not writable');
  dt.dispose();
});

test('item 13: aliased or overlapping outputs, and outputs over inputs, are RangeErrors naming both', async () => {
  const buf = new Float32Array(N);
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: REF, out: { kl: buf, grad: buf } })), RangeError, /^klPenalty: expected out\.grad and out\.kl to be separate memory/, 'kl === grad');
  const ab = new ArrayBuffer(4 * (2 * N));
  expectError(errorOfSync(() => lib.klPenaltySync({ logp: LOGP, refLogp: REF, out: { kl: new Float32Array(ab, 0, N), grad: new Float32Array(ab, 4 * (N - 1), N) } })), RangeError, /out\.grad and out\.kl .*overlap/, 'overlapping views');
  const logp = LOGP.slice();
  expectError(errorOfSync(() => lib.klPenaltySync({ logp, refLogp: REF, out: { kl: logp } })), RangeError, /out\.kl to be memory apart from the input logp/, 'kl over logp');
  // bytes of different types count too: sample's Int32 tokens over its Float32 logp
  const ab2 = new ArrayBuffer(4 * N);
  expectError(errorOfSync(() => lib.sampleSync({ logits: Z, vocabSize: V, seed: 1, out: { tokens: new Int32Array(ab2), logp: new Float32Array(ab2) } })), RangeError, /out\.logp and out\.tokens/, 'tokens/logp');
  expectError(errorOfSync(() => lib.grpoLossSync({ logp, advantages: ADV, perTokenLoss: true, out: { gradLogp: new Float32Array(N), perTokenLoss: logp } })), RangeError, /out\.perTokenLoss to be memory apart from the input logp/, 'ptl over logp');
  const adv2 = REWARDS.slice(0, 6);
  expectError(errorOfSync(() => lib.groupAdvantagesSync({ rewards: adv2, groupSize: 3, out: { advantages: adv2 } })), RangeError, /out\.advantages .*rewards/, 'advantages over rewards');
  const zz = Z.slice();
  expectError(errorOfSync(() => lib.logprobsSync({ logits: zz, vocabSize: V, targets: TARGETS, out: { logp: zz.subarray(0, N) } })), RangeError, /out\.logp .*logits/, 'logp over logits');
  const shared = new Float32Array(N + S);
  expectError(errorOfSync(() => lib.grpoLossFromLogitsSync({ logits: zz, vocabSize: V, targets: TARGETS, advantages: shared.subarray(N), out: { gradLogp: shared.subarray(2, 2 + N) } })), RangeError, /out\.gradLogp to be memory apart from the input advantages/, 'gradLogp over advantages');

  // separate views of one ArrayBuffer that do not overlap are fine, and right
  const kAb = new ArrayBuffer(4 * 2 * N);
  const r = lib.klPenaltySync({ logp: LOGP, refLogp: REF, out: { kl: new Float32Array(kAb, 0, N), grad: new Float32Array(kAb, 4 * N, N) } });
  const want = Array.from(LOGP, (x, i) => refKl(x, REF[i], 'k3'));
  close(r.kl, want.map((w) => w.d), 1e-6, 1e-12, 'kl');
  close(r.grad!, want.map((w) => w.grad), 1e-6, 1e-12, 'grad');
  // gradient: 'inplace' overwrites the logits by design and stays allowed
  const g = lib.grpoLossFromLogitsSync({ logits: Z.slice(), vocabSize: V, targets: TARGETS, advantages: ADV, gradient: 'inplace' });
  assert.ok(g.gradLogits !== null);
});

// ---- the fuzz: ~1000 malformed calls across every op and form -----------------------------

/** The argument an error message names, from the message shapes of lib/validate.ts and lib/device.ts. */
function namedArgument(msg: string): string | undefined {
  const pats = [
    /^[\w.]+: expected .* for ([\w./]+) but received/s,
    /^[\w.]+: unknown option ([\w.]+)/,
    /^[\w.]+: reading option ([\w.]+) threw/,
    /^[\w.]+: expected ([\w.]+) and ([\w.]+) to be separate memory/,
    /^[\w.]+: expected ([\w.]+) to be memory apart from the input (\w+)/,
    /^[\w.]+: (\w+) is a DeviceTensor but (\w+) is a host array/,
    /^[\w.]+: the device tensor was disposed/,
  ];
  for (const p of pats) {
    const m = p.exec(msg);
    if (m) return m[1] ?? 'disposed';
  }
  return undefined;
}

test('fuzz: 1000+ malformed calls of every op (host sync/async, dispatch, device) give only TypeError/RangeError naming a real argument', async () => {
  const r = rng(20261202);
  const pick = <X>(a: readonly X[]): X => a[Math.floor(r() * a.length)];
  const sab = () => new Float32Array(new SharedArrayBuffer(4 * N));
  class Liar extends Float32Array { get length() { return N; } }
  class IntLiar extends Int32Array { get length() { return N; } }
  const junk = (): unknown => {
    switch (Math.floor(r() * 26)) {
      case 0: return undefined;
      case 1: return null;
      case 2: return NaN;
      case 3: return -1;
      case 4: return pick([1e39, 1e-46, -1e-45, 3.5e38, 2 ** 53, 1e300]);
      case 5: return pick(['grpo', 'k3', 'x', '', 'bfloat16']);
      case 6: return {};
      case 7: return [1, 0, 1];
      case 8: return new Float32Array(Math.floor(r() * 40));
      case 9: return new Int32Array(Math.floor(r() * 12)).map(() => Math.floor(r() * 9 - 2));
      case 10: return new Uint8Array(Math.floor(r() * 12));
      case 11: return new Proxy(new Float32Array(N), {});
      case 12: return new Proxy({}, { get() { throw new Error('trap'); } });
      case 13: return sab();
      case 14: return new Liar(2);
      case 15: return new IntLiar(3);
      case 16: return Object.create(Float32Array.prototype);
      case 17: return Object.create(Int32Array.prototype);
      case 18: return Symbol('s');
      case 19: return 10n;
      case 20: return true;
      case 21: return { get kl() { throw new Error('getter'); } };
      case 22: return new Float64Array(N);
      case 23: return pick([0, 0.5, 1, 2, 3, 5]);
      case 24: return new Uint16Array(N * V);
      default: return new Uint32Array(N);
    }
  };
  let calls = 0, errors = 0, ok = 0;
  const check = (e: Error | null, o: OpCase, what: string) => {
    calls++;
    if (e === null) {
      ok++;
      return;
    }
    errors++;
    assert.ok(e instanceof TypeError || e instanceof RangeError, `${what}: ${e.constructor.name}: ${e.message}`);
    assert.not.match(e.message, /\(native\)/, `${what}: reached the native layer: ${e.message}`);
    assert.ok(e.message.startsWith(`${o.name}: `) || e.message.startsWith(`cuda.${o.name}: `), `${what}: message names the op: ${e.message}`);
    const arg = namedArgument(e.message);
    assert.ok(arg !== undefined, `${what}: message names no argument: ${e.message}`);
    const root = arg!.split('.')[0];
    const known = [...o.keys, 'options', 'groupSize/groupIds', 'numGroups', 'bogusKey', 'disposed'];
    assert.ok(known.includes(root), `${what}: names '${arg}', not an option of ${o.name}: ${e.message}`);
  };
  for (let it = 0; it < 130; it++) {
    for (const o of OPS) {
      const device = r() < 0.25;
      const base = device ? o.deviceOpts() : o.hostOpts();
      const keys = [...o.keys, 'numGroups', 'bogusKey', 'out'];
      const nbad = 1 + Math.floor(r() * 3);
      const call: Opts = { ...base };
      for (let j = 0; j < nbad; j++) {
        const k = pick(keys);
        if (k === 'out' && !device && r() < 0.7) call.out = { [pick([...Object.keys(base), 'kl', 'grad', 'logp', 'entropy', 'gradLogp', 'advantages', 'tokens'])]: junk() };
        else call[k] = junk();
      }
      if (r() < 0.1) Object.defineProperty(call, pick(Object.keys(base)), { enumerable: true, get: () => junk() });
      const what = `iteration ${it} ${device ? 'cuda.' : ''}${o.name}`;
      let res: unknown;
      if (device) {
        check(errorOfSync(() => (res = o.device(call))), o, what);
        disposeDeep(res);
        check(await errorOf(async () => (res = await o.deviceAsync(call))), o, what + ' async');
        disposeDeep(res);
      } else {
        check(errorOfSync(() => o.host(call)), o, what);
        check(await errorOf(() => o.hostAsync(call)), o, what + ' async');
        check(errorOfSync(() => (lib as unknown as Record<string, Form>)[`${o.name}Sync`](call)), o, what + ' dispatch');
      }
      disposeDeep(base);
    }
  }
  assert.ok(calls >= 1000 && errors > 700 && ok > 20, `${calls} calls, ${errors} errors, ${ok} successes`);
});

test.run();
