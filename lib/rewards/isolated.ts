/**
 * User reward modules in a worker thread. A user's function may hang (a promise that never
 * settles, a synchronous endless loop); in the main thread that would hang or silently end the
 * run. Here each module gets one worker; every call has a deadline, and a function that overruns
 * it has its worker terminated and fails with a RewardError naming the module and the function.
 * The built-in rewards stay in-process (they are fast and cannot hang).
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { TaskSpec } from '../tasks';
import { RewardContext, RewardError, RewardFunction, RewardValue } from './index';

export interface IsolatedRewardOptions {
  /** Seconds a call may take (loading the module: this, and at least 30). Default 120. */
  timeout?: number;
  /** The options of the run's task: rebuilt in the worker for functions that read ctx.task. */
  taskSpec?: TaskSpec;
}

/** The worker entry: the compiled .js, or the .ts source under tsx (tests, development). */
function workerSource(): { code: string; data: Record<string, unknown> } {
  const ts = __filename.endsWith('.ts');
  const entry = path.join(__dirname, ts ? 'reward_worker.ts' : 'reward_worker.js');
  const register = ts ? require.resolve('tsx/cjs') : undefined;
  return {
    code: `const { workerData } = require('worker_threads'); if (workerData.register) require(workerData.register); require(workerData.entry);`,
    data: { entry, register },
  };
}

/** Plain data of the context (the worker rebuilds the task itself). */
function cloneableContext(ctx: RewardContext) {
  const { task, ...rest } = ctx;
  return rest;
}

/**
 * Loads a reward module in a worker thread; resolves to one RewardFunction per exported
 * function. Call `dispose()` on any of them (or let the process exit: the worker does not keep
 * it alive) to stop the worker.
 */
export async function loadRewardModuleIsolated(modulePath: string, o: IsolatedRewardOptions = {}): Promise<RewardFunction[]> {
  const timeout = o.timeout ?? 120;
  if (!(timeout > 0) || !Number.isFinite(timeout)) throw new RangeError(`reward timeout: expected a number of seconds > 0 but received ${timeout}`);
  const source = path.resolve(modulePath);
  const w = workerSource();
  const worker = new Worker(w.code, { eval: true, workerData: { ...w.data, modulePath: source, taskSpec: o.taskSpec }, stdout: false, stderr: false });
  worker.unref();
  let dead: string | null = null;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; name: string }>();
  let nextId = 1;
  const failAll = (why: string) => {
    dead ??= why;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(new RewardError(p.name, source, why));
    }
  };
  let onLoad: ((m: { type: string; names?: string[]; message?: string }) => void) | null = null;
  worker.on('message', (m: { type?: string; id?: number; values?: unknown; error?: string; errorName?: string; names?: string[]; message?: string }) => {
    if (m.type) return onLoad?.(m as { type: string });
    const p = pending.get(m.id!);
    if (!p) return;
    pending.delete(m.id!);
    if (m.error !== undefined) p.reject(Object.assign(new Error(m.error), { name: m.errorName ?? 'Error' }));
    else p.resolve(m.values);
  });
  worker.on('error', (e) => {
    const why = `crashed its worker thread (${e?.message ?? e})`;
    onLoad?.({ type: 'loadError', message: why });
    failAll(why);
  });
  worker.on('exit', (code) => {
    const why = `stopped: its worker thread exited (code ${code})`;
    onLoad?.({ type: 'loadError', message: why });
    failAll(why);
  });
  const dispose = async () => {
    if (dead) return;
    dead = 'was disposed';
    await worker.terminate();
  };

  // starting a thread and loading the module (through tsx for .ts) can take seconds on a busy
  // machine: loading gets at least 30 s, calls get the timeout itself
  const loadTimeout = Math.max(timeout, 30);
  const names = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new RewardError('(module)', source, `did not finish loading within ${loadTimeout} s (the reward timeout, --reward-timeout, and at least 30 s)`));
      void dispose();
    }, loadTimeout * 1000);
    onLoad = (m) => {
      clearTimeout(timer);
      onLoad = null;
      if (m.type === 'ready') resolve(m.names!);
      else {
        reject(new Error(`reward module ${modulePath}: ${m.message}`));
        void dispose();
      }
    };
  });

  const call = (index: number, name: string, ctx: RewardContext): Promise<RewardValue[]> => {
    if (dead) return Promise.reject(new RewardError(name, source, `cannot run: the module's worker ${dead}`));
    const id = nextId++;
    return new Promise<RewardValue[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        // the only way to stop a synchronous endless loop: terminate the whole worker
        dead = `was terminated after '${name}' overran the reward timeout`;
        void worker.terminate();
        failAll(dead);
        reject(new RewardError(name, source, `did not return within ${timeout} s (the reward timeout, --reward-timeout)`));
      }, timeout * 1000);
      pending.set(id, {
        name,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as RewardValue[]);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        worker.postMessage({ id, index, ctx: cloneableContext(ctx) });
      } catch (e) {
        pending.delete(id);
        clearTimeout(timer);
        reject(new RewardError(name, source, `cannot be given the batch: ${(e as Error).message}`));
      }
    });
  };
  return names.map((name, index) => ({ name, source, compute: (ctx: RewardContext) => call(index, name, ctx), dispose }));
}
