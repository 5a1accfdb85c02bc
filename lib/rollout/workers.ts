/**
 * Local rollout workers: N child processes, each holding its own copy of the policy (the built-in
 * transformer or an HF model, rebuilt from its config and state dict), sampling a contiguous share
 * of every generate call's rows. Child processes rather than worker threads because the native
 * kernels' thread pool is per process (calls from several threads of one process are serialised),
 * so only separate processes sample in parallel; each worker gets its share of the cores through
 * GRPO_NUM_THREADS.
 *
 * Same tokens as in-process: the prompts are tokenised, and completions cut at stop strings and
 * decoded, here (rolloutWith); a worker runs only the model's generate on its rows with their
 * global Philox row ids, and generate's result for a row does not depend on the other rows.
 *
 * Weights: syncWeights copies the trained weights once into one flat Float32Array (a snapshot:
 * training may go on updating the model while workers sample); the next generate sends it to every
 * worker whose copy is older, before its rows, so a run with μ updates per step transfers the
 * weights once per generation, not μ times. Each worker reports the version it sampled with.
 *
 * Faults: a worker that exits, is killed, crashes or does not answer within `timeout` seconds
 * fails the call with an error naming the engine, the worker (index, pid) and the request (rows,
 * seed, policy version); a failed worker stays failed (no silent gap, no half-filled rollout).
 */
import { fork, type ChildProcess } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import type { Generation, GenerateOptions, PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import { Transformer } from '../models/transformer';
import { HfCausalLM } from '../models/hf/model';
import { rolloutWith, type PromptInput, type Rollout, type SamplingOptions } from '../trainer/rollout';
import type { RolloutEngine } from './engine';

export interface WorkerEngineOptions {
  /** Number of worker processes (>= 1). */
  workers: number;
  /** Seconds one request (loading, a weight update, a share of a generate call) may take. Default 600. */
  timeout?: number;
  /** CPU threads of each worker's kernels (default: the machine's cores / workers, at least 1). */
  threadsPerWorker?: number;
}

/** How a worker rebuilds the model: its kind and config (weights follow separately). */
export type ModelSpec =
  | { kind: 'transformer'; config: object }
  | { kind: 'hf'; config: object; maxSeqLen: number; lora: { r: number; alpha: number; targetModules: string[]; seed: number } | null };

/** The spec of a model a worker can rebuild, or an error naming what it received. */
export function modelSpec(model: PolicyModel): ModelSpec {
  if (model instanceof Transformer) return { kind: 'transformer', config: { ...model.config } };
  if (model instanceof HfCausalLM) {
    const l = model.lora;
    return { kind: 'hf', config: { ...model.config, raw: undefined }, maxSeqLen: model.maxSeqLen, lora: l ? { r: l.r, alpha: l.alpha, targetModules: l.targets, seed: l.seed } : null };
  }
  throw new TypeError(`WorkerEngine: model: expected the built-in transformer or an HF model (HfCausalLM) but received ${model?.constructor?.name ?? typeof model}`);
}

/** Names and shapes of a state dict in its order, and its tensors in one flat buffer. */
export function flattenStateDict(sd: Map<string, { shape: number[]; data: Float32Array }>): { layout: { name: string; shape: number[] }[]; flat: Float32Array } {
  let n = 0;
  for (const t of sd.values()) n += t.data.length;
  const flat = new Float32Array(n);
  const layout: { name: string; shape: number[] }[] = [];
  let o = 0;
  for (const [name, t] of sd) {
    layout.push({ name, shape: t.shape.slice() });
    flat.set(t.data, o);
    o += t.data.length;
  }
  return { layout, flat };
}

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  what: string;
  timer: NodeJS.Timeout;
}

/** One worker process and its outstanding requests. */
class WorkerProc {
  readonly child: ChildProcess;
  failed: string | null = null;
  /** The weight version this worker holds (after its queued messages). */
  version = -1;
  private pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(readonly index: number, private engineName: string, private timeoutMs: number, threads: number) {
    const ts = __filename.endsWith('.ts');
    const entry = path.join(__dirname, ts ? 'rollout_worker.ts' : 'rollout_worker.js');
    this.child = fork(entry, [], {
      execArgv: ts ? ['--require', require.resolve('tsx/cjs')] : [],
      serialization: 'advanced',
      env: { ...process.env, GRPO_NUM_THREADS: String(threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: { id: number; error?: string; result?: unknown }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new Error(`${this.label} failed ${p.what}: ${m.error}`));
      else p.resolve(m.result);
    });
    this.child.on('error', (e) => this.fail(`could not run (${e.message})`));
    this.child.on('exit', (code, signal) => this.fail(signal ? `was killed (${signal})` : `exited (code ${code})`));
  }

  get label(): string {
    return `rollout engine ${this.engineName}: worker ${this.index} (pid ${this.child.pid})`;
  }

  private fail(why: string) {
    this.failed ??= why;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new Error(`${this.label} ${why} during ${p.what}`));
    }
  }

  /** Sends one request; its answer, or an error naming this worker and `what`. */
  request<T>(msg: Record<string, unknown>, what: string, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.failed) return Promise.reject(new Error(`${this.label} is unusable (it ${this.failed}); cannot run ${what}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // a hung worker is stopped so that it cannot answer late into a later request
        this.fail(`did not answer within ${timeoutMs / 1000} s`);
        this.child.kill('SIGKILL');
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, what, timer });
      try {
        this.child.send({ ...msg, id });
      } catch (e) {
        this.fail(`could not be sent ${what} (${(e as Error).message})`);
      }
    });
  }

  kill() {
    this.fail('was closed');
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** N local rollout worker processes; see the file comment. Create with {@link WorkerEngine.create}. */
export class WorkerEngine implements RolloutEngine {
  readonly name: string;
  private procs: WorkerProc[];
  private snapshot: { version: number; flat: Float32Array };
  private closed = false;

  private constructor(private spec: ModelSpec, private tokenizer: Tokenizer, private maxSeqLen: number, procs: WorkerProc[], snapshot: { version: number; flat: Float32Array }, name: string) {
    this.procs = procs;
    this.snapshot = snapshot;
    this.name = name;
  }

  /** Starts the workers with a copy of `model` (policy version `version`, default 0). */
  static async create(model: PolicyModel, tokenizer: Tokenizer, o: WorkerEngineOptions, version = 0): Promise<WorkerEngine> {
    const n = o?.workers;
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`WorkerEngine: expected an integer in [1, 256] for workers but received ${n}`);
    const timeout = o.timeout ?? 600;
    if (!(timeout > 0) || !Number.isFinite(timeout)) throw new RangeError(`WorkerEngine: expected a number of seconds > 0 for timeout but received ${timeout}`);
    const threads = o.threadsPerWorker ?? Math.max(1, Math.floor(os.availableParallelism() / n));
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerEngine: expected an integer >= 1 for threadsPerWorker but received ${threads}`);
    const spec = modelSpec(model);
    const { layout, flat } = flattenStateDict(model.stateDict());
    const name = `workers:${n}`;
    const procs = Array.from({ length: n }, (_, i) => new WorkerProc(i, name, timeout * 1000, threads));
    const eng = new WorkerEngine(spec, tokenizer, model.maxSeqLen, procs, { version, flat }, name);
    try {
      // starting a process (and tsx under tests) takes seconds: init gets at least 2 minutes
      await Promise.all(procs.map((p) => p.request({ type: 'init', spec, layout, flat, version }, `init (building the model, weights version ${version})`, Math.max(timeout, 120) * 1000)));
      for (const p of procs) p.version = version;
    } catch (e) {
      await eng.close();
      throw e;
    }
    return eng;
  }

  /** The worker processes' ids (tests kill one to check the error). */
  get pids(): number[] {
    return this.procs.map((p) => p.child.pid!);
  }

  async generate(prompts: PromptInput[], repeat: number, o: SamplingOptions & { seed: number }): Promise<Rollout> {
    if (this.closed) throw new Error(`rollout engine ${this.name}: generate after close()`);
    const versions: number[] = [];
    const gen = async (ids: number[][], g: GenerateOptions): Promise<Generation> => {
      const snap = this.snapshot;
      const rows = g.rowIds!;
      const n = ids.length;
      const W = this.procs.length;
      const parts = await Promise.all(this.procs.map(async (p, w) => {
        const a = Math.floor((w * n) / W), b = Math.floor(((w + 1) * n) / W);
        if (a === b) return null;
        let loaded: Promise<unknown> = Promise.resolve();
        if (p.version !== snap.version) {
          // the flat buffer is structured-cloned per worker; sent once per version, not per update
          p.version = snap.version;
          loaded = p.request({ type: 'weights', version: snap.version, flat: snap.flat }, `weight update to version ${snap.version}`);
          loaded.catch(() => {});
        }
        const what = `generate rows ${rows[a]}..${rows[b - 1]} (seed ${String(g.seed)}, policy version ${snap.version})`;
        // per-row options (row ids, media) are cut to this worker's rows: the model checks media.length against its rows
        const opts: GenerateOptions = { ...g, rowIds: rows.slice(a, b), ...(g.media ? { media: g.media.slice(a, b) } : {}) };
        const sampled = p.request<Generation & { version: number }>({ type: 'generate', prompts: ids.slice(a, b), opts }, what);
        sampled.catch(() => {});
        try {
          await loaded;
        } catch (e) {
          p.version = -1;  // resend next time; this call fails: its rows would be from old weights
          throw e;
        }
        const r = await sampled;
        if (r.tokens.length !== b - a) throw new Error(`rollout engine ${this.name}: worker ${w} answered ${r.tokens.length} rows for ${what}`);
        return { a, r };
      }));
      const out: Generation = { tokens: new Array(n), logprobs: new Array(n), truncated: new Array(n) };
      for (const part of parts) {
        if (!part) continue;
        const { a, r } = part;
        for (let i = 0; i < r.tokens.length; i++) {
          out.tokens[a + i] = r.tokens[i];
          out.logprobs[a + i] = r.logprobs[i];
          out.truncated[a + i] = r.truncated[i];
          versions[rows[a + i]] = r.version;
        }
      }
      return out;
    };
    const ro = await rolloutWith(gen, this.maxSeqLen, this.tokenizer, prompts, repeat, o);
    ro.policyVersion = ro.tokens.map((_, s) => versions[s]);
    return ro;
  }

  /** Takes a snapshot of the weights now; workers load it before their next rows. */
  async syncWeights(model: PolicyModel, version: number): Promise<void> {
    if (this.closed) throw new Error(`rollout engine ${this.name}: syncWeights after close()`);
    const { flat } = flattenStateDict(model.stateDict());
    if (flat.length !== this.snapshot.flat.length)
      throw new RangeError(`rollout engine ${this.name}: syncWeights: expected a model with ${this.snapshot.flat.length} weights (the workers' model) but received ${flat.length}`);
    this.snapshot = { version, flat };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const exits = this.procs.map((p) => (p.child.exitCode !== null || p.child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.child.once('exit', () => r()))));
    for (const p of this.procs) p.kill();
    await Promise.all(exits);
  }
}
