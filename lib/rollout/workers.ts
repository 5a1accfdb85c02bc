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
 * global Philox row ids, and generate's result for a row does not depend on the other rows, nor on
 * which worker samples it (so a share retried on another worker gives the same tokens).
 *
 * Weights: syncWeights copies the trained weights once into one flat Float32Array (a snapshot:
 * training may go on updating the model while workers sample); the next generate sends it to every
 * worker whose copy is older, before its rows, so a run with μ updates per step transfers the
 * weights once per generation, not μ times. Each worker reports the version it sampled with.
 *
 * Faults, as the remote engine (remote.ts) handles a server: a share whose worker exits, is
 * killed, does not answer within `timeout` seconds, reports an error, or answers garbage (wrong row
 * count, token ids outside the vocabulary, log-probs not finite or > 0, a count of log-probs other
 * than of tokens, another weight version; checked with remote.ts's validateSequence) is retried on
 * the next live worker, up to `retries` times. A worker that failed a request in any of these ways
 * is killed and a replacement started in the background with the engine's current weight snapshot;
 * it takes rows once ready, so the pool recovers for later steps (until then the live workers take
 * its share; a call with no live worker waits for the replacements). A retry only goes to a worker
 * live at that moment: after the retries, or with no live worker left, the call fails with an
 * error naming the engine, every worker tried with its reason, and the request (rows, seed, policy
 * version), never a silent gap or a half-filled rollout.
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
import { shown, validateSequence } from './remote';

export interface WorkerEngineOptions {
  /** Number of worker processes (>= 1). */
  workers: number;
  /**
   * Seconds one request (a weight update, a share of a generate call) may take before its worker is
   * killed and the share retried on another. Default 600. Starting a worker gets at least 120 s.
   */
  timeout?: number;
  /** Retries of a failed share of a generate call, each on the next live worker. Default 2 (as the remote engine). */
  retries?: number;
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

/** A request to one worker failed: `worker` names it (index, pid), `reason` says what happened. */
export class WorkerRequestError extends Error {
  constructor(readonly worker: string, readonly reason: string, what: string) {
    super(`${worker} ${reason} during ${what}`);
    this.name = 'WorkerRequestError';
  }
}

/** One worker process and its outstanding requests. */
class WorkerProc {
  readonly child: ChildProcess;
  /** Why the worker can no longer be used (it exited, was killed, hung, answered garbage), or null. */
  failed: string | null = null;
  /** Initialised with weights: only then does it take rows, and only then is it replaced when it fails. */
  ready = false;
  /** The weight version this worker holds (after its queued messages). */
  version = -1;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  private pending = new Map<number, Pending>();
  private nextId = 1;

  /** `spawn`: 0 for the first process of this index, k for its k-th replacement. `onFail` runs once, on the first failure. */
  constructor(readonly index: number, spawn: number, private timeoutMs: number, threads: number, private onFail: (p: WorkerProc) => void) {
    const ts = __filename.endsWith('.ts');
    const entry = path.join(__dirname, ts ? 'rollout_worker.ts' : 'rollout_worker.js');
    this.child = fork(entry, [], {
      execArgv: ts ? ['--require', require.resolve('tsx/cjs')] : [],
      serialization: 'advanced',
      // index and spawn count: read only by the test-only fault switch (rollout_worker.ts)
      env: { ...process.env, GRPO_NUM_THREADS: String(threads), GRPO_ROLLOUT_WORKER_INDEX: String(index), GRPO_ROLLOUT_WORKER_SPAWN: String(spawn) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = new Promise((r) => {
      this.child.once('exit', () => r());
      // a process that never started emits no 'exit'
      this.child.once('error', () => this.child.pid === undefined && r());
    });
    this.child.on('message', (m: { id: number; error?: string; result?: unknown }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error === undefined) return p.resolve(m.result);
      // an exception inside the worker leaves its state unknown: it is replaced, as a dead one
      const why = `failed (${m.error})`;
      p.reject(new WorkerRequestError(this.label, why, p.what));
      this.fail(why);
    });
    this.child.on('error', (e) => this.fail(`could not run (${e.message})`));
    this.child.on('exit', (code, signal) => this.fail(signal ? `was killed (${signal})` : `exited (code ${code})`));
  }

  get label(): string {
    return `worker ${this.index} (pid ${this.child.pid})`;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Marks the worker failed (the first reason stays), fails its outstanding requests and kills the
   * process: a hung or garbage-answering worker must not answer late into a later request.
   */
  fail(why: string) {
    const first = this.failed === null;
    this.failed ??= why;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new WorkerRequestError(this.label, why, p.what));
    }
    if (this.alive) this.child.kill('SIGKILL');
    if (first) this.onFail(this);
  }

  /** Sends one request; its answer, or a WorkerRequestError naming this worker and `what`. */
  request<T>(msg: Record<string, unknown>, what: string, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.failed) return Promise.reject(new WorkerRequestError(this.label, `is unusable (it ${this.failed})`, what));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(`did not answer within ${timeoutMs / 1000} s`), timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, what, timer });
      try {
        this.child.send({ ...msg, id });
      } catch (e) {
        this.fail(`could not be sent ${what} (${(e as Error).message})`);
      }
    });
  }
}


/**
 * Checks a worker's answer for `rows` rows of at most `maxTokens` tokens in a vocabulary of V,
 * sampled with weights `version`: the problem (field: what), or null when it is sound.
 */
export function checkWorkerAnswer(r: unknown, rows: number, maxTokens: number, V: number, version: number): string | null {
  const fail = (field: string, what: string) => new Error(`${field}: ${what}`);
  try {
    const a = r as Partial<Generation & { version: number }> | null;
    if (!a || typeof a !== 'object') throw fail('answer', `expected an object but received ${shown(a)}`);
    for (const k of ['tokens', 'logprobs', 'truncated'] as const) {
      const v = a[k];
      if (!Array.isArray(v)) throw fail(k, `expected an array but received ${shown(v)}`);
      if (v.length !== rows) throw fail(k, `expected ${rows} rows but received ${v.length}`);
    }
    for (let i = 0; i < rows; i++) {
      const ids = a.tokens![i], lp = a.logprobs![i];
      if (!(ids instanceof Int32Array)) throw fail(`tokens[${i}]`, `expected an Int32Array but received ${shown(ids)}`);
      if (!(lp instanceof Float32Array)) throw fail(`logprobs[${i}]`, `expected a Float32Array but received ${shown(lp)}`);
      validateSequence(ids, lp, maxTokens, V, { ids: `tokens[${i}]`, logprobs: `logprobs[${i}]` }, fail);
      if (typeof a.truncated![i] !== 'boolean') throw fail(`truncated[${i}]`, `expected a boolean but received ${shown(a.truncated![i])}`);
    }
    if (a.version !== version) throw fail('version', `expected weights version ${version} (the snapshot it was sent) but received ${shown(a.version)}`);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** N local rollout worker processes; see the file comment. Create with {@link WorkerEngine.create}. */
export class WorkerEngine implements RolloutEngine {
  readonly name: string;
  /** The current process of each worker index (a failed one until its replacement is started). */
  private procs: WorkerProc[] = [];
  /** Every process started and not yet exited (close() waits for all of them). */
  private running = new Set<WorkerProc>();
  /** Replacements still initialising, by index. */
  private starting = new Map<number, Promise<void>>();
  private spawns: number[] = [];
  /** The last process of each index that failed while serving (named when no worker is left). */
  private lost: (WorkerProc | undefined)[] = [];
  private snapshot: { version: number; flat: Float32Array };
  private closed = false;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly threads: number;
  private readonly V: number;
  /** Requests sent (shares of generate calls, retries included), retries, worker processes started to replace failed ones, and each failure's text. */
  readonly stats = { requests: 0, retries: 0, respawns: 0, failures: [] as string[] };

  private constructor(
    private spec: ModelSpec, private layout: { name: string; shape: number[] }[], private tokenizer: Tokenizer, private maxSeqLen: number,
    o: { workers: number; timeout: number; retries: number; threads: number; vocabSize: number }, snapshot: { version: number; flat: Float32Array },
  ) {
    this.name = `workers:${o.workers}`;
    this.snapshot = snapshot;
    this.timeoutMs = o.timeout * 1000;
    this.retries = o.retries;
    this.threads = o.threads;
    this.V = o.vocabSize;
    this.spawns = new Array(o.workers).fill(0);
  }

  /** Starts the workers with a copy of `model` (policy version `version`, default 0). */
  static async create(model: PolicyModel, tokenizer: Tokenizer, o: WorkerEngineOptions, version = 0): Promise<WorkerEngine> {
    const n = o?.workers;
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`WorkerEngine: expected an integer in [1, 256] for workers but received ${n}`);
    const timeout = o.timeout ?? 600;
    if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) throw new RangeError(`WorkerEngine: expected a number of seconds > 0 for timeout but received ${timeout}`);
    const retries = o.retries ?? 2;
    if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`WorkerEngine: expected an integer >= 0 for retries but received ${retries}`);
    const threads = o.threadsPerWorker ?? Math.max(1, Math.floor(os.availableParallelism() / n));
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerEngine: expected an integer >= 1 for threadsPerWorker but received ${threads}`);
    const spec = modelSpec(model);
    const { layout, flat } = flattenStateDict(model.stateDict());
    const eng = new WorkerEngine(spec, layout, tokenizer, model.maxSeqLen, { workers: n, timeout, retries, threads, vocabSize: model.vocabSize }, { version, flat });
    try {
      for (let i = 0; i < n; i++) eng.start(i);
      await Promise.all(eng.starting.values());
      const bad = eng.procs.filter((p) => !p.ready);
      if (bad.length) throw new Error(`rollout engine ${eng.name}: could not start ${bad.map((p) => `${p.label} (it ${p.failed})`).join(', ')}`);
    } catch (e) {
      await eng.close();
      throw e;
    }
    return eng;
  }

  /**
   * Resolves once no replacement worker is still starting: each then serves, or (its start failed)
   * stays dead until the next generate starts it again. generate does not wait for this while
   * some worker is live; tests and benchmarks do, to see the whole pool again.
   */
  async ready(): Promise<void> {
    while (this.starting.size) await Promise.all(this.starting.values());
  }

  /** The current worker processes' ids, by index (tests kill one to check recovery). */
  get pids(): number[] {
    return this.procs.map((p) => p.child.pid!);
  }

  /**
   * Starts the process of worker `i` and loads the current weight snapshot into it, in the
   * background (the promise is in `starting` until it is ready or has failed).
   */
  private start(i: number) {
    const snap = this.snapshot;
    const p = new WorkerProc(i, this.spawns[i]++, this.timeoutMs, this.threads, (f) => this.onFail(f));
    this.procs[i] = p;
    this.running.add(p);
    p.exited.then(() => this.running.delete(p));
    // starting a process (and tsx under tests) takes seconds: init gets at least 2 minutes
    const init = p
      .request({ type: 'init', spec: this.spec, layout: this.layout, flat: snap.flat, version: snap.version }, `init (building the model, weights version ${snap.version})`, Math.max(this.timeoutMs, 120000))
      .then(
        () => {
          p.version = snap.version;
          p.ready = true;
        },
        () => {},  // p.failed says why; the slot stays dead until the next generate starts it again
      )
      .finally(() => {
        if (this.starting.get(i) === init) this.starting.delete(i);
      });
    this.starting.set(i, init);
  }

  /** A worker failed: a worker that was serving is replaced at once (one that failed to start is started again by the next generate). */
  private onFail(p: WorkerProc) {
    if (this.closed || !p.ready || this.procs[p.index] !== p) return;
    this.lost[p.index] = p;
    this.stats.respawns++;
    this.start(p.index);
  }

  /** The first live worker at index k, k+1, … (cyclically), or null. */
  private live(k: number): WorkerProc | null {
    const W = this.procs.length;
    for (let j = 0; j < W; j++) {
      const p = this.procs[(k + j) % W];
      if (p.ready && !p.failed) return p;
    }
    return null;
  }

  /** One share's rows on worker p: its weights brought to `snap` first, the answer checked. */
  private async sample(p: WorkerProc, prompts: number[][], g: GenerateOptions, snap: { version: number; flat: Float32Array }, what: string): Promise<Generation & { version: number }> {
    let loaded: Promise<unknown> = Promise.resolve();
    if (p.version !== snap.version) {
      // the flat buffer is structured-cloned per worker; sent once per version, not per update
      p.version = snap.version;
      loaded = p.request({ type: 'weights', version: snap.version, flat: snap.flat }, `weight update to version ${snap.version}`);
      loaded.catch(() => {});
    }
    const sampled = p.request<Generation & { version: number }>({ type: 'generate', prompts, opts: g }, what);
    sampled.catch(() => {});
    try {
      await loaded;
    } catch (e) {
      p.version = -1;  // resend next time; these rows would be from old weights
      throw e;
    }
    const r = await sampled;
    const bad = checkWorkerAnswer(r, prompts.length, g.maxNewTokens, this.V, snap.version);
    if (bad) {
      const why = `answered garbage (${bad})`;
      p.fail(why);
      throw new WorkerRequestError(p.label, why, what);
    }
    return r;
  }

  /** A share on worker k, then on the next live ones until it succeeds or the retries are spent. */
  private async share(k: number, prompts: number[][], g: GenerateOptions, snap: { version: number; flat: Float32Array }, what: string) {
    const tried: string[] = [];
    let next = k;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      const p = this.live(next);
      if (!p) break;
      next = p.index + 1;
      this.stats.requests++;
      if (attempt > 0) this.stats.retries++;
      try {
        return await this.sample(p, prompts, g, snap, what);
      } catch (e) {
        if (this.closed) throw new Error(`rollout engine ${this.name}: closed during ${what}`);
        const msg = e instanceof WorkerRequestError ? `${e.worker} ${e.reason}` : `${p.label} ${(e as Error).message}`;
        tried.push(msg);
        this.stats.failures.push(msg);
      }
    }
    const n = tried.length;
    let why = `failed after ${n} attempt${n === 1 ? '' : 's'}: ${tried.join('; ')}`;
    if (n <= this.retries) {
      // stopped early: every worker is dead or still being replaced
      const dead = this.procs.map((p) => {
        if (p.failed) return `${p.label} (it ${p.failed})`;
        const q = this.lost[p.index];
        return q ? `${q.label} (it ${q.failed}; its replacement pid ${p.child.pid} is starting)` : `${p.label} (starting)`;
      });
      why = `${n ? `${why}; then ` : ''}no live worker left to run it: ${dead.join(', ')}`;
    }
    throw new Error(`rollout engine ${this.name}: ${what} ${why}`);
  }

  async generate(prompts: PromptInput[], repeat: number, o: SamplingOptions & { seed: number }): Promise<Rollout> {
    if (this.closed) throw new Error(`rollout engine ${this.name}: generate after close()`);
    // a worker whose replacement failed to start is started again, once per call
    for (const p of this.procs) {
      if (!p.failed || this.starting.has(p.index)) continue;
      this.stats.respawns++;
      this.start(p.index);
    }
    // the shares go to the workers live now (a replacement joins once it is ready, so a step never
    // stalls on a slow start); only with none live does the call wait for those starting
    if (!this.procs.some((p) => p.ready && !p.failed)) await this.ready();
    if (this.closed) throw new Error(`rollout engine ${this.name}: generate after close()`);
    const versions: number[] = [];
    const gen = async (ids: number[][], g: GenerateOptions): Promise<Generation> => {
      const snap = this.snapshot;
      const rows = g.rowIds!;
      const n = ids.length;
      const W = this.procs.length;
      const parts = await Promise.all(Array.from({ length: W }, async (_, w) => {
        const a = Math.floor((w * n) / W), b = Math.floor(((w + 1) * n) / W);
        if (a === b) return null;
        const what = `generate rows ${rows[a]}..${rows[b - 1]} (seed ${String(g.seed)}, policy version ${snap.version})`;
        const r = await this.share(w, ids.slice(a, b), { ...g, rowIds: rows.slice(a, b), ...(g.media ? { media: g.media.slice(a, b) } : {}) }, snap, what);
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

  /** Takes a snapshot of the weights now; workers (and replacements) load it before their next rows. */
  async syncWeights(model: PolicyModel, version: number): Promise<void> {
    if (this.closed) throw new Error(`rollout engine ${this.name}: syncWeights after close()`);
    const { flat } = flattenStateDict(model.stateDict());
    if (flat.length !== this.snapshot.flat.length)
      throw new RangeError(`rollout engine ${this.name}: syncWeights: expected a model with ${this.snapshot.flat.length} weights (the workers' model) but received ${flat.length}`);
    this.snapshot = { version, flat };
  }

  /** Kills every worker process (replacements included) and waits until all have exited. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.running];
    for (const p of all) p.fail('was closed');
    await Promise.all(all.map((p) => p.exited));
  }
}
