// Shared by the rollout-worker fault tests: comparing rollouts, waiting, and killing what a test left.
import * as assert from 'uvu/assert';
import type { Rollout } from '../lib/trainer/rollout';

/** Bitwise the same tokens, log-probs, truncation and texts. */
export const same = (a: Rollout, b: Rollout) => {
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]));
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]));
  assert.equal(a.truncated, b.truncated);
  assert.equal(a.texts, b.texts);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** Polls `cond` every 20 ms for up to 20 s. */
export async function until(cond: () => boolean, what: string) {
  for (let t = 0; t < 1000; t++) {
    if (cond()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}
/** Kills what a test stopped or left (a stopped process dies of SIGKILL too). */
export const reap = (pids: number[]) => pids.forEach((p) => alive(p) && process.kill(p, 'SIGKILL'));
