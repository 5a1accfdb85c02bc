/**
 * The worker thread behind loadRewardModuleIsolated: loads one reward module and runs its
 * functions on the batches the main thread posts. It lives in a thread of its own so that the
 * main thread can terminate it when a function overruns the reward timeout, even in a
 * synchronous endless loop.
 */
import { parentPort, workerData } from 'worker_threads';
import { makeTask, Task, TaskSpec } from '../tasks';
import { rewardModuleExports, RewardContext, UserRewardFn } from './index';

interface CallMessage {
  id: number;
  index: number;
  ctx: Omit<RewardContext, 'task'>;
}

const data = workerData as { modulePath: string; taskSpec?: TaskSpec };
const port = parentPort!;
let fns: [string, UserRewardFn][] = [];
let task: Task | undefined;

const describe = (e: unknown) => {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } catch {
    return 'an unprintable value';
  }
};

/** A copy the main thread can receive: values read one by one (a getter that throws gives null). */
function plain(vals: unknown): unknown {
  // not an array: something of the same kind that can cross threads, for the main thread's message
  if (!Array.isArray(vals) && !ArrayBuffer.isView(vals)) return vals === undefined || vals === null ? vals : typeof vals === 'object' ? {} : typeof vals === 'number' || typeof vals === 'string' || typeof vals === 'boolean' ? vals : 0n;
  const arr = vals as ArrayLike<unknown>;
  const n = arr.length;
  const out: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) {
    let x: unknown;
    try {
      x = arr[i];
    } catch {
      x = null;
    }
    out[i] = typeof x === 'number' || typeof x === 'boolean' ? x : null;
  }
  return out;
}

try {
  fns = rewardModuleExports(data.modulePath);
  port.postMessage({ type: 'ready', names: fns.map(([n]) => n) });
} catch (e) {
  port.postMessage({ type: 'loadError', message: describe(e) });
}

port.on('message', async (m: CallMessage) => {
  try {
    const ctx: RewardContext = { ...m.ctx };
    // the task (checker, format) is rebuilt here from its options, only when a function asks for it
    Object.defineProperty(ctx, 'task', {
      enumerable: true,
      get: () => (task ??= data.taskSpec ? makeTask(data.taskSpec) : undefined),
    });
    const vals = await fns[m.index][1](ctx.completions, ctx);
    let out: unknown;
    try {
      out = plain(vals);
    } catch (e) {
      port.postMessage({ id: m.id, error: `returned an array whose length cannot be read (${describe(e)})`, errorName: 'TypeError' });
      return;
    }
    port.postMessage({ id: m.id, values: out });
  } catch (e) {
    let message = 'an unprintable value', errorName = 'Error';
    try {
      message = e instanceof Error ? e.message : String(e);
      errorName = e instanceof Error ? e.name : typeof e;
    } catch {
      // keep the defaults
    }
    port.postMessage({ id: m.id, error: message, errorName });
  }
});
