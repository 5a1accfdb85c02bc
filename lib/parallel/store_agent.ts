/**
 * A rank's store agent: a worker thread (store_agent_worker.ts) that holds rank 0's rendezvous
 * store server and every rank's own hello/heartbeat connection to it, off the main thread.
 *
 * Why a thread: a `*Sync` collective blocks the main thread for as long as it waits for a peer
 * (up to the timeout). With the store on rank 0's main event loop, a blocked rank 0 could not
 * answer the other ranks' "who failed?" query, and a blocked rank stopped beating, so it looked
 * hung to the others. In the worker both keep going, and the `*Sync` failure path asks the store
 * synchronously (`statusSync`: the worker answers into a SharedArrayBuffer the main thread waits
 * on with Atomics.wait), so both forms name the dead or hung rank.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';

export interface StoreStatus {
  gone: number[];
  progress: Record<string, string>;
  silentMs: Record<string, number>;
}

/** How long a status query may take before the store counts as unreachable (rank 0 dead or hung). */
export const STATUS_TIMEOUT_MS = 2500;
const SAB_BYTES = 1 << 20;

/** The worker entry: the compiled .js, or the .ts source under tsx (tests, development). */
function workerSource(): { code: string; entry: string; register?: string } {
  const ts = __filename.endsWith('.ts');
  return {
    code: `const { workerData } = require('worker_threads'); if (workerData.register) require(workerData.register); require(workerData.entry);`,
    entry: path.join(__dirname, ts ? 'store_agent_worker.ts' : 'store_agent_worker.js'),
    register: ts ? require.resolve('tsx/cjs') : undefined,
  };
}

export class StoreAgent {
  private nextId = 1;
  private pending = new Map<number, { resolve: (s: StoreStatus) => void; reject: (e: Error) => void }>();
  private dead: string | null = null;
  private ctrl: Int32Array;
  private bytes: Uint8Array;

  private constructor(private worker: Worker, sab: SharedArrayBuffer) {
    this.ctrl = new Int32Array(sab, 0, 4);
    this.bytes = new Uint8Array(sab, 16);
  }

  /**
   * Starts the worker: on rank 0 (`listen` = the address to bind) it serves the store first;
   * then it connects to host:port, says hello as `rank` and beats. Resolves once that is done.
   */
  static start(o: { rank: number; host: string; port: number; timeoutMs: number; listen?: string }): Promise<StoreAgent> {
    const src = workerSource();
    const sab = new SharedArrayBuffer(16 + SAB_BYTES);
    const worker = new Worker(src.code, { eval: true, workerData: { ...o, sab, entry: src.entry, register: src.register } });
    // held while starting (the caller awaits it); after that it never keeps the process alive:
    // close() ends it, and process exit ends it too
    const agent = new StoreAgent(worker, sab);
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (m: { type: string; id?: number; ok?: boolean; text?: string; message?: string }) => {
        if (m.type === 'ready') {
          started = true;
          worker.unref();
          resolve(agent);
        } else if (m.type === 'error') {
          agent.dead = m.message!;
          worker.terminate();
          reject(new Error(m.message));
        } else if (m.type === 'status') {
          const p = agent.pending.get(m.id!);
          agent.pending.delete(m.id!);
          if (!p) return;
          if (m.ok) p.resolve(JSON.parse(m.text!));
          else p.reject(new Error(m.text));
        }
      });
      const fail = (why: string) => {
        agent.dead ??= why;
        for (const p of agent.pending.values()) p.reject(new Error(agent.dead));
        agent.pending.clear();
        if (!started) reject(new Error(agent.dead));
      };
      worker.on('error', (e) => fail(`data-parallel store agent failed: ${e.message}`));
      worker.on('exit', () => fail('data-parallel store agent exited'));
    });
  }

  /** Records how far this rank got (`progress/<rank>`), sent from the worker in call order. */
  progress(value: string): void {
    if (!this.dead) this.worker.postMessage({ type: 'progress', value });
  }

  /** The store's view of the ranks (async form). */
  status(): Promise<StoreStatus> {
    if (this.dead) return Promise.reject(new Error(this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'status', id });
      const t = setTimeout(() => {
        if (this.pending.delete(id)) reject(new Error('store did not answer'));
      }, STATUS_TIMEOUT_MS);
      t.unref();
    });
  }

  /** The store's view of the ranks, blocking this thread (at most STATUS_TIMEOUT_MS) while the worker asks. */
  statusSync(): StoreStatus {
    if (this.dead) throw new Error(this.dead);
    const id = this.nextId++;
    this.worker.postMessage({ type: 'status', id, sync: true });
    const deadline = Date.now() + STATUS_TIMEOUT_MS;
    for (;;) {
      const seen = Atomics.load(this.ctrl, 0);
      if (seen === id) {
        const n = Atomics.load(this.ctrl, 1);
        const ok = Atomics.load(this.ctrl, 2) === 1;
        const text = Buffer.from(this.bytes.subarray(0, n)).toString();
        if (Atomics.load(this.ctrl, 0) === id) {
          if (ok) return JSON.parse(text);
          throw new Error(text);
        }
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('store did not answer');
      Atomics.wait(this.ctrl, 0, seen, left);
    }
  }

  /** Stops the heartbeat and (rank 0) the server; resolves when the worker has ended. */
  async close(): Promise<void> {
    if (this.dead) return;
    this.dead = 'data-parallel store agent closed';
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    // the caller awaits the worker's end: hold the process open until then
    this.worker.ref();
    this.worker.postMessage({ type: 'close' });
    // a worker that does not wind down in time is ended
    const t = setTimeout(() => this.worker.terminate(), 5000);
    t.unref();
    await exited;
    clearTimeout(t);
  }
}
