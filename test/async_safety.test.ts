// Native memory safety across the async boundary (issue 7 items 1-3): every async op keeps the
// caller's buffers alive and in place while it runs, copies the ids it indexes with, refuses
// buffers it cannot pin, and survives worker teardown. Each hostile scenario runs in a child
// process (test/async_safety_child.ts, with --expose-gc): a native crash fails the test with the
// signal instead of killing the runner. Results are compared with the sync twin on pristine
// copies (each op's own test checks the sync twin against a float64 reference) and, in the
// `api` scenario, with the float64 references of test/reference directly.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import * as v8 from 'v8';
import * as vm from 'vm';

import { grpoLossFromLogits, grpoLossFromLogitsSync } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import { useEmulatorAddon } from './cuda_emu_addon';
import { native } from '../lib/native';
import { refGradLogits, refLogprobs, refWiden } from './reference/logprobs';

const root = path.resolve(__dirname, '..');

function scenario(name: string, iterations: number, scale: number, timeoutMs: number, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'async_safety_child.ts'), name, String(iterations)], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, GRPO_SAFETY_SCALE: String(scale), ...env },
    timeout: timeoutMs,
    maxBuffer: 16 << 20,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.is(r.signal, null, `scenario ${name} died with ${r.signal}:\n${out.slice(-3000)}`);
  assert.is(r.status, 0, `scenario ${name} failed:\n${out.slice(-3000)}`);
  assert.ok(out.includes(`SCENARIO ${name} OK`), `scenario ${name} did not finish:\n${out.slice(-3000)}`);
}

test('transfer (structuredClone, postMessage) of any input or output during every async op rejects naming it; no crash', () => {
  scenario('transfer', 1, 0.25, 240_000);
});

test('inputs referenced only by in-flight async ops survive gc(): every op gives the sync twin\'s exact results', () => {
  scenario('collect', 1, 0.25, 240_000);
});

test('resizable, SharedArrayBuffer, growable-shared and detached buffers are refused by the native layer with a TypeError naming the argument', () => {
  scenario('refuse', 0, 0.25, 240_000);
});

test('id arrays overwritten with out-of-range values after the async call: results are those of the original ids', () => {
  scenario('ids', 2, 0.25, 240_000);
});

test('public API: ids mutated, inputs transferred or collected, resizable input: float64-reference results or a named rejection', () => {
  scenario('api', 0, 1, 240_000);
});

test('worker.terminate() during in-flight async ops of every kind, 50 times: the process survives and the addon still works', () => {
  scenario('workers', 50, 1, 300_000);
});

test('cuda.* async forms reject (never throw synchronously) on bad input', async () => {
  const bad = { logits: new Float32Array(4), logp: 'x', rewards: null } as never;
  const forms = [cuda.klPenalty, cuda.groupAdvantages, cuda.logprobs, cuda.grpoLoss, cuda.grpoLossFromLogits, cuda.sample] as ((o: never) => Promise<unknown>)[];
  for (const f of forms) {
    let p: Promise<unknown> | undefined;
    try {
      p = f(bad);
    } catch (e) {
      assert.unreachable(`threw synchronously: ${String(e)}`);
    }
    assert.instance(p, Promise);
    try {
      await p;
      assert.unreachable('resolved on bad input');
    } catch (e) {
      assert.instance(e, Error);
      assert.ok(!(e as Error).message.includes('resolved on bad input'), (e as Error).message);
    }
  }
  // and DeviceTensor.upload with a non-array
  let up: Promise<unknown> | undefined;
  try {
    up = DeviceTensor.upload('nope' as never);
  } catch (e) {
    assert.unreachable(`upload threw synchronously: ${String(e)}`);
  }
  await up!.then(
    () => assert.unreachable('upload resolved'),
    (e: unknown) => assert.instance(e, Error),
  );
});

// grpoLossFromLogits' default gradient comes from a pool (native/common/buffer_pool.cc): memory of
// an earlier default gradient is reused once no ArrayBuffer covers it any more, never while a
// caller holds (or transferred) it.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

async function settleGc() {
  for (let k = 0; k < 4; k++) {
    gc();
    await new Promise((res) => setImmediate(res));
  }
}

test('default gradient: pooled memory is reused after the caller drops it, never while kept or transferred', async () => {
  const S = 2, T = 8, V = 4099, N = S * T;
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296) * 8 - 4;
  const logits = new Float32Array(N * V).map(rnd);
  const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
  const advantages = new Float32Array([1, -0.5]);
  const opts = { logits, vocabSize: V, targets, advantages };
  // float64 reference of dL/dlogits (dapo, rho = 1: g = A/n_masked per token)
  const z = refWiden(logits);
  const g = Array.from({ length: N }, (_, n) => advantages[Math.floor(n / T)] * -1 / N);
  const want = refGradLogits(z, V, targets, g);
  const wantLogp = refLogprobs(z, V, targets).logp;
  const close = (got: Float32Array, what: string) => {
    for (let i = 0; i < want.length; i++)
      if (Math.abs(got[i] - want[i]) > 1e-6 + 1e-4 * Math.abs(want[i])) assert.unreachable(`${what}[${i}] ${got[i]} vs ${want[i]}`);
  };
  const m0 = native().pooledMemory();
  // kept results never share memory
  const kept = [grpoLossFromLogitsSync(opts), await grpoLossFromLogits(opts), grpoLossFromLogitsSync(opts)];
  const bufs = new Set(kept.map((r) => r.gradLogits!.buffer));
  assert.is(bufs.size, 3, 'three kept results, three buffers');
  kept.forEach((r, k) => close(r.gradLogits as Float32Array, `kept ${k}`));
  for (let i = 0; i < N; i++) assert.ok(Math.abs(kept[0].logp[i] - wantLogp[i]) < 1e-4, 'logp');
  // a transferred one: its memory lives on in the receiver and must not be handed out again
  let moved: ArrayBuffer | null = structuredClone(kept[1].gradLogits!.buffer as ArrayBuffer, { transfer: [kept[1].gradLogits!.buffer as ArrayBuffer] });
  const movedView = new Float32Array(moved, 0, N * V);
  const movedCopy = movedView.slice();
  kept.length = 0;
  await settleGc();
  // dropped ones are reused (within a few calls, once the GC has collected them)
  let reused = false;
  for (let k = 0; k < 6 && !reused; k++) {
    const before = native().pooledMemory().reused;
    const r = grpoLossFromLogitsSync(opts);
    close(r.gradLogits as Float32Array, `call ${k}`);
    assert.ok(r.gradLogits!.buffer !== moved, 'the receiver buffer is not handed out');
    reused = native().pooledMemory().reused > before;
    await settleGc();
  }
  assert.ok(reused, `no reuse: ${JSON.stringify(native().pooledMemory())}, before ${JSON.stringify(m0)}`);
  for (let i = 0; i < movedCopy.length; i += 97) assert.is(movedView[i], movedCopy[i], 'transferred gradient unchanged');
  moved = null;
});

// Last: useEmulatorAddon() points this process's lib/native at the emulator addon.
test('device ops (CUDA emulator addon): a transferred deviceCopy host buffer rejects by name; worker.terminate() with device ops in flight is safe', () => {
  const emu = useEmulatorAddon();
  if (!emu) return;  // on a real GPU the default scenarios above already use the device build
  const env = { GRPO_KERNELS_ADDON: emu, GRPO_SAFETY_DEVICE: '1' };
  scenario('transfer', 1, 0.05, 300_000, env);
  scenario('workers', 20, 0.05, 300_000, env);
});

test.run();
