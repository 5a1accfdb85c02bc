/**
 * A process group: the ranks of a data-parallel run and their collectives (Gloo over TCP for
 * host typed arrays, native/parallel/). Rank 0 serves the rendezvous store (store.ts) at
 * MASTER_ADDR:MASTER_PORT; every rank connects to it, then Gloo connects every pair of ranks.
 *
 * Every collective is async (its own driver thread in grpo_dist.node; the buffer is pinned) with
 * a *Sync twin, and bounded by `timeoutMs`: a rank that died fails the others' collective at once
 * (its sockets close), one that hangs fails it after the timeout, and the error names the rank
 * (the store knows whose connection closed, whose heartbeat stopped and how far each rank got).
 * The store server and each rank's heartbeat live in a worker thread (store_agent.ts), so a *Sync
 * collective blocking the main thread neither silences this rank nor stops rank 0's store: both
 * forms name the failing rank alike. A world of one rank needs no Gloo: its collectives are the
 * identity.
 */
import * as os from 'os';
import { distNative, type DistAddon } from './native';
import { HEARTBEAT_MS, StoreClient } from './store';
import { StoreAgent, type StoreStatus } from './store_agent';

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';
type Reducible = Float32Array | Float64Array | Int32Array;
type Any = Float32Array | Float64Array | Int32Array | Uint8Array | Uint32Array;

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Bound of every collective and of the rendezvous, ms (default 300000). */
  timeoutMs?: number;
  /** The address the other ranks reach this one at (default: 127.0.0.1 when MASTER_ADDR is a loopback address, else the host name). */
  hostname?: string;
}

/** A collective that failed; `ranks` are the ranks it names as the cause (dead or hung). */
export class DistError extends Error {
  constructor(message: string, readonly ranks: number[]) {
    super(message);
    this.name = 'DistError';
  }
}

const LOOPBACK = /^(127\.|localhost$|::1$)/;

function intIn(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    throw new RangeError(`ProcessGroup: expected an integer in [${lo}, ${hi}] for ${name} but received ${typeof v === 'number' ? v : typeof v}`);
  return v;
}

const STORE_LOST = { text: 'rank 0 exited or hung (its rendezvous store does not answer)', ranks: [0] };
const nobody = (op: string) => ({ text: `no rank is known to have failed (${op} timed out or a connection broke)`, ranks: [] as number[] });

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  private comm: unknown = null;
  private native: DistAddon | null = null;
  private store: StoreClient | null = null;
  private agent: StoreAgent | null = null;
  private seq = 0;
  private closed = false;

  private constructor(rank: number, worldSize: number, timeoutMs: number) {
    this.rank = rank;
    this.worldSize = worldSize;
    this.timeoutMs = timeoutMs;
  }

  /** Rendezvous of all ranks; resolves when every pair is connected. */
  static async init(o: ProcessGroupOptions): Promise<ProcessGroup> {
    const world = intIn('worldSize', o.worldSize, 1, 1 << 20);
    const rank = intIn('rank', o.rank, 0, world - 1);
    const timeoutMs = intIn('timeoutMs', o.timeoutMs ?? 300000, 1, 2 ** 31 - 1);
    const pg = new ProcessGroup(rank, world, timeoutMs);
    if (world === 1) return pg;
    // the addon first: a missing Gloo is reported before any socket opens
    const native = distNative();
    if (typeof o.masterAddr !== 'string' || !o.masterAddr) throw new RangeError(`ProcessGroup: expected a host name for masterAddr (MASTER_ADDR) but received ${JSON.stringify(o.masterAddr)}`);
    const port = intIn('masterPort', o.masterPort, 1, 65535);
    try {
      // rank 0's server and this rank's hello + heartbeat, on the agent's thread
      pg.agent = await StoreAgent.start({ rank, host: o.masterAddr, port, timeoutMs, listen: rank === 0 ? (LOOPBACK.test(o.masterAddr) ? o.masterAddr : '0.0.0.0') : undefined });
      pg.store = await StoreClient.connect(o.masterAddr, port, timeoutMs);
      const hostname = o.hostname ?? (LOOPBACK.test(o.masterAddr) ? '127.0.0.1' : os.hostname());
      pg.comm = await native.init({ rank, size: world, host: o.masterAddr, port, prefix: 'gloo/', timeoutMs, hostname }, true);
      pg.native = native;
    } catch (e) {
      await pg.close();
      throw e;
    }
    return pg;
  }

  /** In place: every rank's `data` becomes the element-wise reduction over ranks. */
  allReduce(data: Reducible, op: ReduceOp = 'sum'): Promise<void> {
    return this.run('allReduce', { data, op }, true) as Promise<void>;
  }
  allReduceSync(data: Reducible, op: ReduceOp = 'sum'): void {
    this.run('allReduce', { data, op }, false);
  }

  /** In place: root's `data` into every rank's (same length on every rank). */
  broadcast(data: Any, root = 0): Promise<void> {
    return this.run('broadcast', { data, root }, true) as Promise<void>;
  }
  broadcastSync(data: Any, root = 0): void {
    this.run('broadcast', { data, root }, false);
  }

  /** Every rank's `input` (same length on every rank), concatenated in rank order. */
  async allGather<T extends Any>(input: T): Promise<T> {
    const output = new (input.constructor as new (n: number) => T)(input.length * this.worldSize);
    if (this.worldSize === 1) output.set(input);
    else await this.run('allGather', { input, output }, true);
    return output;
  }
  allGatherSync<T extends Any>(input: T): T {
    const output = new (input.constructor as new (n: number) => T)(input.length * this.worldSize);
    if (this.worldSize === 1) output.set(input);
    else this.run('allGather', { input, output }, false);
    return output;
  }

  /** Waits for every rank; timeoutMs overrides the group's bound (e.g. while rank 0 evaluates). */
  barrier(timeoutMs?: number): Promise<void> {
    return this.run('barrier', { timeoutMs }, true) as Promise<void>;
  }
  barrierSync(timeoutMs?: number): void {
    this.run('barrier', { timeoutMs }, false);
  }

  /** A value set by one rank and read by the others through the store (e.g. NCCL's unique id). */
  async exchange(key: string, value?: Buffer): Promise<Buffer> {
    if (this.worldSize === 1) {
      if (!value) throw new Error(`ProcessGroup.exchange: no rank set '${key}'`);
      return value;
    }
    if (value) await this.store!.set(`user/${key}`, value);
    return this.store!.get(`user/${key}`, this.timeoutMs);
  }

  private run(op: 'allReduce' | 'broadcast' | 'allGather' | 'barrier', args: Record<string, unknown>, async: boolean): Promise<void> | void {
    if (this.closed) throw new Error(`ProcessGroup.${op}: the group is closed`);
    if (op === 'allReduce') {
      const d = args.data;
      if (!(d instanceof Float32Array || d instanceof Float64Array || d instanceof Int32Array))
        throw new TypeError(`ProcessGroup.allReduce: expected a Float32Array, Float64Array or Int32Array for data but received ${(d as object)?.constructor?.name ?? typeof d}`);
      if (!['sum', 'avg', 'max', 'min'].includes(args.op as string))
        throw new RangeError(`ProcessGroup.allReduce: expected op 'sum', 'avg', 'max' or 'min' but received ${JSON.stringify(args.op)}`);
      if (args.op === 'avg' && d instanceof Int32Array) throw new TypeError("ProcessGroup.allReduce: op 'avg' needs a Float32Array or Float64Array (an Int32Array cannot hold the mean)");
    }
    if (op === 'broadcast') intIn('root', args.root, 0, this.worldSize - 1);
    if (args.timeoutMs === undefined) delete args.timeoutMs;
    else intIn('timeoutMs', args.timeoutMs, 1, 2 ** 31 - 1);
    if (this.worldSize === 1) return async ? Promise.resolve() : undefined;
    const seq = ++this.seq;
    // where this rank is, for the diagnosis of a failure on another rank (sent by the agent's
    // thread, in call order, even while a *Sync collective blocks this one)
    this.agent!.progress(`${seq} ${op}`);
    const a = { ...args, comm: this.comm };
    if (!async) {
      try {
        this.native![op](a, false);
      } catch (e) {
        // a refused argument (thrown before any rank was waited for, as the async form throws it) is no fault of a peer
        if (e instanceof TypeError || e instanceof RangeError) throw e;
        const { text, ranks } = this.diagnoseSync(seq, op);
        throw new DistError(`rank ${this.rank}: collective #${seq} (${op}) failed: ${text} [${(e as Error).message}]`, ranks);
      }
      return;
    }
    return (this.native![op](a, true) as Promise<void>).catch(async (e) => {
      const { text, ranks } = await this.diagnose(seq, op);
      throw new DistError(`rank ${this.rank}: collective #${seq} (${op}) failed: ${text} [${(e as Error).message}]`, ranks);
    });
  }

  // A peer's death reaches Gloo (a closed socket) and the store (a closed connection) at about
  // the same moment: both forms ask the store a few times, 100 ms apart.
  private static readonly TRIES = 10;

  /** Which rank made collective #seq fail: one whose store connection closed, one silent, or one behind. */
  private async diagnose(seq: number, op: string): Promise<{ text: string; ranks: number[] }> {
    for (let i = 0; i < ProcessGroup.TRIES; i++) {
      let st: StoreStatus;
      try {
        st = await this.agent!.status();
      } catch {
        return STORE_LOST;
      }
      const v = this.judge(st, seq, i);
      if (v) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
    return nobody(op);
  }

  /** diagnose() for the *Sync forms: the same questions, this thread blocked while the agent asks. */
  private diagnoseSync(seq: number, op: string): { text: string; ranks: number[] } {
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < ProcessGroup.TRIES; i++) {
      let st: StoreStatus;
      try {
        st = this.agent!.statusSync();
      } catch {
        return STORE_LOST;
      }
      const v = this.judge(st, seq, i);
      if (v) return v;
      Atomics.wait(nap, 0, 0, 100);
    }
    return nobody(op);
  }

  /** The verdict of one status reply at try i, or null to ask again. */
  private judge(st: StoreStatus, seq: number, i: number): { text: string; ranks: number[] } | null {
    const gone = st.gone.filter((r) => r !== this.rank);
    if (gone.length) return { text: `rank ${gone.join(', rank ')} exited (its connection to the store closed)`, ranks: gone };
    const behind: number[] = [];
    for (let r = 0; r < this.worldSize; r++) {
      const p = Number((st.progress[String(r)] ?? '0').split(' ')[0]);
      if (r !== this.rank && p < seq) behind.push(r);
    }
    // stopped or stuck: its heartbeat went silent (several beats missed) while its sockets stay open
    const silent = Object.entries(st.silentMs ?? {}).filter(([r, ms]) => Number(r) !== this.rank && ms > 6 * HEARTBEAT_MS).map(([r]) => Number(r));
    if (silent.length && i >= 2)
      return { text: `rank ${silent.join(', rank ')} stopped responding (no heartbeat for ${silent.map((r) => `${(st.silentMs[String(r)] / 1000).toFixed(1)} s`).join(', ')}: hung or stopped)`, ranks: silent };
    if (behind.length && i >= 2)
      return {
        text: `rank ${behind.join(', rank ')} did not reach it within ${this.timeoutMs} ms (hung, or slower than --dist-timeout; last at ${behind.map((r) => `#${st.progress[String(r)] ?? 'none'}`).join(', ')})`,
        ranks: behind,
      };
    return null;
  }

  /** Closes the connections (and rank 0's store). Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.comm && this.native) this.native.close({ comm: this.comm });
    this.comm = null;
    this.store?.close();
    // rank 0's agent serves the store: callers end with a barrier first, so no rank still needs it
    await this.agent?.close();
  }
}
