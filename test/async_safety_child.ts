// One hostile scenario against the async ops, run in its own process by
// test/async_safety.test.ts (a native crash then fails that test instead of killing the runner).
// Usage: node --expose-gc --import tsx test/async_safety_child.ts <scenario> [iterations]
// Prints "SCENARIO <name> OK" at the end; any failed check throws (exit 1).
import * as path from 'path';
import { MessageChannel, Worker } from 'worker_threads';

import { grpoLossFromLogits, groupAdvantages, klPenalty, logprobs } from '../lib';
import { native } from '../lib/native';
import { refLogprobs, refWiden } from './reference/logprobs';
import { refKl } from './reference/kl_penalty';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const ops = require('./async_safety_ops.js');

type Args = Record<string, any>;
interface Case {
  name: string;
  model?: () => any;
  prepare?: (m: any, a: Args) => void;
  make: (seed: number) => Args;
  outputs: string[];
  ids: Record<string, number>;
  read?: (m: any) => Float32Array;
  call: (a: Args, async: boolean, m?: any) => any;
}

const addon = native() as any;
const gc = (globalThis as any).gc as () => void;
if (typeof gc !== 'function') throw new Error('run with --expose-gc');
const scenario = process.argv[2];
const iterations = Number(process.argv[3] || 0);
// GRPO_SAFETY_SCALE < 1 shrinks the arrays (the suite's time budget); 1 = sizes that outlast a gc().
const CASES: Case[] = ops.cases(addon, Number(process.env.GRPO_SAFETY_SCALE || 1));

function fail(msg: string): never {
  throw new Error(msg);
}

function sameArray(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  if (got.length !== want.length) fail(`${what}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w) ? !Number.isNaN(g) : g !== w) fail(`${what}[${i}] = ${g}, want ${w} (the sync twin on pristine copies)`);
  }
}

/** The sync twin of case c on pristine copies of `args`: what the async op must give. */
function reference(c: Case, args: Args) {
  const ref = ops.cloneArgs(args);
  const m = c.model?.();
  c.prepare?.(m, ref);
  const ret = c.call(ref, false, m);
  const outs: Record<string, ArrayLike<number>> = {};
  for (const o of c.outputs) outs[o] = ref[o];
  if (c.read) outs.__model = c.read(m);
  return { ret, outs };
}

function check(c: Case, want: ReturnType<typeof reference>, args: Args, ret: unknown, m: any) {
  for (const o of c.outputs) sameArray(args[o], want.outs[o], `${c.name}: ${o}`);
  if (c.read) sameArray(c.read(m), want.outs.__model, `${c.name}: model gradients`);
  if (want.ret && typeof want.ret === 'object')
    for (const [k, v] of Object.entries(want.ret as Record<string, number>)) {
      const g = (ret as Record<string, number>)[k];
      if (!(Number.isNaN(v) ? Number.isNaN(g) : g === v)) fail(`${c.name}: result.${k} = ${g}, want ${v}`);
    }
}

/** Fills the memory just freed, so a kernel still using it would see (or overwrite) garbage. */
function churn(bytes: number) {
  const junk: Float32Array[] = [];
  for (let i = 0; i < 4; i++) junk.push(new Float32Array(Math.max(1, bytes >> 2)).fill(1e30));
  return junk.length;
}

async function expectReject(p: Promise<unknown>, re: RegExp[], what: string) {
  try {
    await p;
  } catch (e) {
    const msg = String((e as Error).message);
    for (const r of re) if (!r.test(msg)) fail(`${what}: rejected with "${msg}", expected it to match ${r}`);
    return;
  }
  fail(`${what}: resolved, expected a rejection`);
}

function expectThrow(f: () => unknown, re: RegExp[], what: string) {
  try {
    f();
  } catch (e) {
    const msg = String((e as Error).message);
    if (!(e instanceof TypeError)) fail(`${what}: threw ${String(e)}, expected a TypeError`);
    for (const r of re) if (!r.test(msg)) fail(`${what}: threw "${msg}", expected it to match ${r}`);
    return;
  }
  fail(`${what}: did not throw`);
}

// Transfer (structuredClone / postMessage) each typed-array argument, one per run, right after
// the async call, drop the receiver and collect: the op must reject naming that argument.
async function transfer() {
  const n = iterations || 2;
  let seed = 1;
  for (const c of CASES) {
    const names = ops.arraysOf(c.make(0)) as string[];
    for (let it = 0; it < n; it++)
      for (const name of names) {
        const args = c.make(seed++);
        const m = c.model?.();
        c.prepare?.(m, args);
        const p = c.call(args, true, m);
        const victim: ArrayBufferView = args[name];
        const bytes = victim.byteLength;
        if ((it + seed) % 2 === 0) {
          let moved: ArrayBuffer | null = structuredClone(victim.buffer, { transfer: [victim.buffer as ArrayBuffer] });
          if (moved.byteLength !== bytes) fail('structuredClone did not move the buffer');
          moved = null;
        } else {
          const ch = new MessageChannel();
          ch.port1.postMessage(victim.buffer, [victim.buffer as ArrayBuffer]);
          ch.port1.close();
          ch.port2.close();
        }
        if (victim.byteLength !== 0) fail('the transfer did not detach the buffer');
        gc();
        churn(bytes);
        await expectReject(p, [new RegExp(`argument ${name}\\b`), /detached/], `${c.name} with ${name} transferred`);
      }
  }
  // and the addon still computes correctly afterwards
  for (const c of CASES) {
    const args = c.make(999);
    const want = reference(c, args);
    const m = c.model?.();
    c.prepare?.(m, args);
    check(c, want, args, await c.call(args, true, m), m);
  }
}

// Inputs referenced only by the pending op; collect hard while it runs: results must be exact.
async function collect() {
  const n = iterations || 3;
  let seed = 100;
  for (let it = 0; it < n; it++)
    for (const c of CASES) {
      let args: Args | null = c.make(seed++);
      const want = reference(c, args);
      const m = c.model?.();
      c.prepare?.(m, args);
      const keep: Args = {};
      for (const o of c.outputs) keep[o] = args[o];
      const p = c.call(args, true, m);
      args = null;  // the op's inputs are now only referenced by the op
      gc();
      churn(1 << 22);
      gc();
      const ret = await p;
      check(c, want, keep, ret, m);
    }
}

// Buffers that cannot be pinned are refused by the native layer at call time with a TypeError
// naming the argument (checked through the raw addon, which the TS layer cannot shield); a
// shrink of the refused buffer afterwards is harmless.
async function refuse() {
  for (const c of CASES) {
    const base = c.make(7);
    const names = ops.arraysOf(base) as string[];
    for (const name of names) {
      for (const kind of ['resizable', 'shared', 'growable', 'detached'] as const) {
        const args = ops.cloneArgs(base);
        const m = c.model?.();
        c.prepare?.(m, args);
        const v: any = args[name];
        const Ctor = v.constructor;
        let buf: ArrayBuffer | SharedArrayBuffer;
        if (kind === 'resizable') buf = new (ArrayBuffer as any)(v.byteLength, { maxByteLength: v.byteLength * 2 + 8 });
        else if (kind === 'shared') buf = new SharedArrayBuffer(v.byteLength);
        else if (kind === 'growable') buf = new (SharedArrayBuffer as any)(v.byteLength, { maxByteLength: v.byteLength * 2 + 8 });
        else buf = v.buffer;
        if (kind !== 'detached') {
          const w = new Ctor(buf);
          w.set(v);
          args[name] = w;
        } else {
          structuredClone(buf, { transfer: [buf as ArrayBuffer] });
        }
        const re =
          kind === 'resizable' ? [/resizable/] : kind === 'detached' ? [/detached|length/] : [/SharedArrayBuffer/];
        for (const async of [true, false])
          expectThrow(() => c.call(args, async, m), [new RegExp(`argument ${name}\\b`), ...re], `${c.name}: ${name} ${kind} (async=${async})`);
        if (kind === 'resizable') (buf as any).resize(0);
      }
    }
  }
  // resizing an unrelated resizable buffer during a legal op changes nothing
  const c = CASES[0];
  const args = c.make(3);
  const want = reference(c, args);
  const rab = new (ArrayBuffer as any)(1 << 20, { maxByteLength: 1 << 21 });
  const p = c.call(args, true);
  rab.resize(0);
  check(c, want, args, await p, undefined);
}

// Id arrays overwritten with out-of-range values right after the async call: the kernel uses
// the ids of the call (copied then), so results are those of the original ids.
async function ids() {
  const n = iterations || 3;
  const bad = [0x7fffffff, -0x80000000, -1, 1 << 30];
  let seed = 500;
  for (let it = 0; it < n; it++)
    for (const c of CASES) {
      const idNames = Object.keys(c.ids);
      if (!idNames.length) continue;
      const args = c.make(seed++);
      const want = reference(c, args);
      const m = c.model?.();
      c.prepare?.(m, args);
      const p = c.call(args, true, m);
      for (const k of idNames) (args[k] as Int32Array).fill(bad[(it + k.length) % bad.length]);
      const ret = await p;
      check(c, want, args, ret, m);
    }
}

// The same through the public API, against float64 references from the spec.
async function api() {
  const r = ops.rng(42);
  const N = 64, V = 32768;
  const logits = new Float32Array(N * V);
  for (let i = 0; i < logits.length; i++) logits[i] = (r() * 2 - 1) * 4;
  const targets = new Int32Array(N);
  for (let i = 0; i < N; i++) targets[i] = Math.floor(r() * V);
  const want = refLogprobs(refWiden(logits), V, targets.slice());
  // ids changed after the call: results for the original ids
  const p = logprobs({ logits, vocabSize: V, targets, entropy: true });
  targets.fill(-0x80000000);
  const got = await p;
  for (let i = 0; i < N; i++) {
    if (Math.abs(got.logp[i] - want.logp[i]) > 1e-4 * Math.max(1, Math.abs(want.logp[i]))) fail(`api logprobs logp[${i}] ${got.logp[i]} vs ${want.logp[i]}`);
    if (Math.abs(got.entropy![i] - want.entropy[i]) > 1e-4 * Math.max(1, want.entropy[i])) fail(`api logprobs entropy[${i}]`);
  }
  // an input transferred during the op: a rejection naming it
  const logits2 = logits.slice();
  const targets2 = new Int32Array(N);
  const p2 = logprobs({ logits: logits2, vocabSize: V, targets: targets2 });
  structuredClone(logits2.buffer, { transfer: [logits2.buffer] });
  gc();
  await expectReject(p2, [/argument logits\b/, /detached/], 'api logprobs with logits transferred');
  // klPenalty: an output transferred
  const n = 1 << 21;
  const a = new Float32Array(n).map(() => r() * 4 - 6), b = new Float32Array(n).map(() => r() * 4 - 6);
  const kl = new Float32Array(n);
  const p3 = klPenalty({ logp: a, refLogp: b, out: { kl } });
  structuredClone(kl.buffer, { transfer: [kl.buffer] });
  gc();
  await expectReject(p3, [/argument kl\b/, /detached/], 'api klPenalty with out.kl transferred');
  // klPenalty: inputs dropped and collected, results against the float64 formula
  const keepA = a.slice(0, 1000), keepB = b.slice(0, 1000);
  const p4 = klPenalty({ logp: a.slice(), refLogp: b.slice(), estimator: 'k3' });
  gc();
  const r4 = await p4;
  for (let i = 0; i < 1000; i++) {
    const w = refKl(keepA[i], keepB[i], 'k3', true).d;
    if (Math.abs(r4.kl[i] - w) > 1e-5 * Math.max(1, Math.abs(w))) fail(`api klPenalty kl[${i}] ${r4.kl[i]} vs ${w}`);
  }
  // a resizable input through the public async API: a rejection (not a throw) naming it
  const rab = new (ArrayBuffer as any)(4 * 8, { maxByteLength: 64 });
  const rl = new Float32Array(rab);
  let threw = false;
  let p5: Promise<unknown> | undefined;
  try {
    p5 = klPenalty({ logp: rl, refLogp: new Float32Array(8) });
  } catch {
    threw = true;
  }
  if (threw || !p5) fail('api klPenalty threw synchronously instead of rejecting');
  await expectReject(p5, [/logp/], 'api klPenalty with a resizable logp');
  // groupAdvantages: group ids overwritten after the call
  const S = 1 << 16;
  const rewards = new Float32Array(S).map(() => r());
  const gid = new Int32Array(S).map((_, i) => i >> 2);
  const pg = groupAdvantages({ rewards, groupIds: gid });
  gid.fill(0x7fffffff);
  const rg = await pg;
  for (let g = 0; g < 8; g++) {
    const xs = [0, 1, 2, 3].map((j) => rewards[4 * g + j]);
    const mean = xs.reduce((s, x) => s + x, 0) / 4;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / 3);
    for (let j = 0; j < 4; j++) {
      const w = (xs[j] - mean) / (sd + 1e-4);
      if (Math.abs(rg.advantages[4 * g + j] - w) > 1e-4 * Math.max(1, Math.abs(w))) fail(`api groupAdvantages advantages[${4 * g + j}] ${rg.advantages[4 * g + j]} vs ${w}`);
    }
  }
  // grpoLossFromLogits: targets overwritten after the call; logp matches the reference
  const S2 = 4, T2 = N / 4;
  const t3 = new Int32Array(N).map(() => Math.floor(r() * V));
  const want3 = refLogprobs(refWiden(logits), V, t3.slice());
  const pf = grpoLossFromLogits({ logits: logits.slice(), vocabSize: V, targets: t3, advantages: new Float32Array(S2).fill(1) });
  t3.fill(-5);
  const rf = await pf;
  if (T2 * S2 !== N) fail('shape');
  for (let i = 0; i < N; i++)
    if (Math.abs(rf.logp[i] - want3.logp[i]) > 1e-4 * Math.max(1, Math.abs(want3.logp[i]))) fail(`api grpoLossFromLogits logp[${i}]`);
}

// worker.terminate() while a worker's async ops (every kind) are in flight, many times; then
// the main thread's addon must still compute correctly.
async function workers() {
  const n = iterations || 50;
  const addonPath = process.env.GRPO_KERNELS_ADDON
    ? path.resolve(process.env.GRPO_KERNELS_ADDON)
    : (require('node-gyp-build') as { path(dir: string): string }).path(path.resolve(__dirname, '..'));
  const r = ops.rng(9);
  let started = 0;
  // five workers at a time (their teardowns overlap each other's ops), n in all
  const one = async (i: number) => {
    const w = new Worker(path.join(__dirname, 'async_safety_worker.js'), { workerData: { addonPath, seed: i }, stdout: true, stderr: true });
    const ready = new Promise<void>((res) => w.once('message', () => res()));
    const exited = new Promise<void>((res) => w.once('exit', () => res()));
    w.on('error', (e) => fail(`worker ${i} failed: ${String(e)}`));
    // mostly once its ops are in flight, sometimes while it is still loading
    if (i % 5 !== 0) {
      await ready;
      started++;
    }
    await new Promise((res) => setTimeout(res, Math.floor(r() * 40)));
    await w.terminate();
    await exited;
  };
  for (let i = 0; i < n; i += 5) await Promise.all([0, 1, 2, 3, 4].filter((k) => i + k < n).map((k) => one(i + k)));
  if (started === 0) fail('no worker got its ops in flight');
  for (const c of CASES) {
    const args = c.make(4242);
    const want = reference(c, args);
    const m = c.model?.();
    c.prepare?.(m, args);
    check(c, want, args, await c.call(args, true, m), m);
  }
}

const scenarios: Record<string, () => Promise<void>> = { transfer, collect, refuse, ids, api, workers };
(async () => {
  const f = scenarios[scenario];
  if (!f) throw new Error(`unknown scenario ${scenario}`);
  await f();
  console.log(`SCENARIO ${scenario} OK`);
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
