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

import { cuda, DeviceTensor } from '../lib/device';

const root = path.resolve(__dirname, '..');

function scenario(name: string, iterations: number, scale: number, timeoutMs: number) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'async_safety_child.ts'), name, String(iterations)], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, GRPO_SAFETY_SCALE: String(scale) },
    timeout: timeoutMs,
    maxBuffer: 16 << 20,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.is(r.signal, null, `scenario ${name} died with ${r.signal}:\n${out.slice(-3000)}`);
  assert.is(r.status, 0, `scenario ${name} failed:\n${out.slice(-3000)}`);
  assert.ok(out.includes(`SCENARIO ${name} OK`), `scenario ${name} did not finish:\n${out.slice(-3000)}`);
}

test('transfer (structuredClone, postMessage) of any input or output during every async op rejects naming it; no crash', () => {
  scenario('transfer', 1, 0.5, 240_000);
});

test('inputs referenced only by in-flight async ops survive gc(): every op gives the sync twin\'s exact results', () => {
  scenario('collect', 1, 1, 240_000);
});

test('resizable, SharedArrayBuffer, growable-shared and detached buffers are refused by the native layer with a TypeError naming the argument', () => {
  scenario('refuse', 0, 0.25, 240_000);
});

test('id arrays overwritten with out-of-range values after the async call: results are those of the original ids', () => {
  scenario('ids', 2, 1, 240_000);
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

test.run();
