/**
 * Reward functions. Each scores a batch of completions; a value of NaN / null / undefined is
 * "no reward" for that sample (spec §2: left out of the weighted sum). A function that throws,
 * or returns something that is not an array of the right length, gives "no reward" for the
 * whole batch, and the failure is reported (never a crash of the training run).
 *
 * Built-ins (names as ms-swift's / TRL's):
 *   accuracy    1 if the task's checker accepts the completion, else 0
 *   format      1 if the completion matches the task's format pattern (and was not truncated)
 *   cosine      length-scaled correctness (Yeo et al. 2025, ms-swift `cosine`): short correct
 *               answers get the most, short wrong ones are penalised the most
 *   repetition  −(fraction of repeated n-grams)·|maxPenalty| (ms-swift `repetition`)
 *   soft_overlong  DAPO's soft overlong punishment over the last `cacheLength` tokens
 * User functions: a JS (or, with tsx installed, TS) module exporting functions
 *   (completions: string[], ctx: RewardContext) => number[] | Promise<number[]>.
 */
import * as path from 'path';
import { Example, Task } from '../tasks/types';

export interface RewardContext {
  /** The decoded completions, one per sequence. */
  completions: string[];
  /** The prompt of each sequence. */
  prompts: string[];
  /** The example each sequence answers (answer, solution, meta). */
  examples: Example[];
  /** Completion lengths in tokens. */
  completionLengths: number[];
  /** Hit the maximum completion length without stopping. */
  truncated: boolean[];
  /** The task (for its checker and format), when there is one. */
  task?: Task;
  /** The maximum completion length of the run, in tokens. */
  maxCompletionLength: number;
}

export type RewardValue = number | null | undefined;

export interface RewardFunction {
  readonly name: string;
  compute(ctx: RewardContext): RewardValue[] | Promise<RewardValue[]>;
  /** Where the function comes from (a reward module's path), for messages. */
  readonly source?: string;
  /** Releases what the function holds (a reward module's worker thread). */
  dispose?(): Promise<void> | void;
}

/**
 * A reward function that failed in a way that stops the run: it timed out, its worker died,
 * or (with onError 'abort') it threw or returned something that is not one value per completion.
 */
export class RewardError extends Error {
  constructor(readonly rewardName: string, readonly source: string | undefined, problem: string) {
    super(`reward function '${rewardName}'${source ? ` from ${source}` : ''} ${problem}`);
    this.name = 'RewardError';
  }
}

/** A reward function's failure on one batch. */
export interface RewardFailure {
  name: string;
  /** The error message, or what was wrong with the returned value. */
  message: string;
  /** Number of samples that got no reward because of it. */
  count: number;
}

export function accuracyReward(): RewardFunction {
  return {
    name: 'accuracy',
    compute(ctx) {
      if (!ctx.task) throw new Error('accuracy reward needs a task');
      return ctx.completions.map((c, i) => (ctx.task!.isCorrect(c, ctx.examples[i]) ? 1 : 0));
    },
  };
}

export function formatReward(opts: { pattern?: RegExp } = {}): RewardFunction {
  return {
    name: 'format',
    compute(ctx) {
      const re = opts.pattern ?? ctx.task?.formatPattern;
      if (!re) throw new Error('format reward needs a pattern or a task');
      return ctx.completions.map((c, i) => (!ctx.truncated[i] && re.test(c) ? 1 : 0));
    },
  };
}

export interface CosineOptions {
  /** Reward of a correct completion of length 0 (the maximum). Default 1. */
  minLenValueCorrect?: number;
  /** Reward of a correct completion of length maxLength. Default 0.5. */
  maxLenValueCorrect?: number;
  /** Reward of a wrong completion of length 0 (the worst). Default −0.5. */
  minLenValueWrong?: number;
  /** Reward of a wrong completion of length maxLength. Default 0. */
  maxLenValueWrong?: number;
  /** Length (tokens) at which the cosine reaches its end value. Default: the run's maxCompletionLength. */
  maxLength?: number;
}

/** v(t) = end + (start − end)·(1 + cos(π·t/T))/2, t clamped to T: start at t = 0, end at t = T. */
export function cosineInterp(t: number, T: number, start: number, end: number): number {
  const x = Math.min(t, T) / T;
  return end + ((start - end) * (1 + Math.cos(Math.PI * x))) / 2;
}

export function cosineReward(o: CosineOptions = {}): RewardFunction {
  const c0 = o.minLenValueCorrect ?? 1, c1 = o.maxLenValueCorrect ?? 0.5;
  const w0 = o.minLenValueWrong ?? -0.5, w1 = o.maxLenValueWrong ?? 0;
  return {
    name: 'cosine',
    compute(ctx) {
      if (!ctx.task) throw new Error('cosine reward needs a task');
      const T = o.maxLength ?? ctx.maxCompletionLength;
      return ctx.completions.map((c, i) => {
        const ok = ctx.task!.isCorrect(c, ctx.examples[i]);
        return ok ? cosineInterp(ctx.completionLengths[i], T, c0, c1) : cosineInterp(ctx.completionLengths[i], T, w0, w1);
      });
    },
  };
}

export interface RepetitionOptions {
  /** n of the n-grams. Default 3. */
  ngramSize?: number;
  /** Penalty when every n-gram is a repeat (≤ 0). Default −1. */
  maxPenalty?: number;
  /** n-grams of words (default, as ms-swift) or of characters. */
  unit?: 'word' | 'char';
}

/** −|maxPenalty|·(1 − distinct n-grams / n-grams); 0 for texts shorter than one n-gram. */
export function repetitionPenalty(text: string, o: RepetitionOptions = {}): number {
  const n = o.ngramSize ?? 3;
  const maxPenalty = o.maxPenalty ?? -1;
  const units = (o.unit ?? 'word') === 'word' ? text.toLowerCase().split(/\s+/).filter(Boolean) : [...text];
  if (units.length < n) return 0;
  const grams = new Set<string>();
  let total = 0;
  for (let i = 0; i + n <= units.length; i++) {
    grams.add(units.slice(i, i + n).join('\u0001'));
    total++;
  }
  return (1 - grams.size / total) * maxPenalty;
}

export function repetitionReward(o: RepetitionOptions = {}): RewardFunction {
  if ((o.maxPenalty ?? -1) > 0) throw new RangeError(`repetition reward: expected maxPenalty <= 0 but received ${o.maxPenalty}`);
  return { name: 'repetition', compute: (ctx) => ctx.completions.map((c) => repetitionPenalty(c, o)) };
}

export interface SoftOverlongOptions {
  /** L_max in tokens. Default: the run's maxCompletionLength. */
  maxLength?: number;
  /** L_cache: the punishment ramps over the last cacheLength tokens. Default maxLength / 4. */
  cacheLength?: number;
}

/** DAPO: 0 up to L_max − L_cache, then (L_max − L_cache − len)/L_cache down to −1 at L_max, −1 beyond. */
export function softOverlongPenalty(len: number, maxLength: number, cacheLength: number): number {
  const expected = maxLength - cacheLength;
  if (len <= expected) return 0;
  if (len <= maxLength) return (expected - len) / cacheLength;
  return -1;
}

export function softOverlongReward(o: SoftOverlongOptions = {}): RewardFunction {
  return {
    name: 'soft_overlong',
    compute(ctx) {
      const L = o.maxLength ?? ctx.maxCompletionLength;
      const cache = o.cacheLength ?? Math.max(1, Math.floor(L / 4));
      if (!(cache > 0 && cache <= L)) throw new RangeError(`soft_overlong reward: expected cacheLength in (0, ${L}] but received ${cache}`);
      return ctx.completionLengths.map((n) => softOverlongPenalty(n, L, cache));
    },
  };
}

export type BuiltinRewardName = 'accuracy' | 'format' | 'cosine' | 'repetition' | 'soft_overlong';
export const BUILTIN_REWARDS: readonly BuiltinRewardName[] = ['accuracy', 'format', 'cosine', 'repetition', 'soft_overlong'];

/** Options of every built-in, by reward name (the CLI's --cosine-*, --repetition-*, ... flags). */
export interface BuiltinRewardOptions {
  cosine?: CosineOptions;
  repetition?: RepetitionOptions;
  softOverlong?: SoftOverlongOptions;
  format?: { pattern?: RegExp };
}

export function builtinReward(name: string, o: BuiltinRewardOptions = {}): RewardFunction {
  switch (name) {
    case 'accuracy': return accuracyReward();
    case 'format': return formatReward(o.format);
    case 'cosine': return cosineReward(o.cosine);
    case 'repetition': return repetitionReward(o.repetition);
    case 'soft_overlong': return softOverlongReward(o.softOverlong);
    default:
      throw new RangeError(`unknown reward function '${name}': expected one of ${BUILTIN_REWARDS.join(', ')} (or pass --reward-module)`);
  }
}

export type UserRewardFn = (completions: string[], ctx: RewardContext) => RewardValue[] | Promise<RewardValue[]>;

/**
 * The reward functions a module exports: `module.exports = fn`, `export default fn`, an array of
 * functions, or an object of named functions (each named after its key or the function's name).
 * `.ts` modules need tsx (a dev dependency). Used in-process and by the reward worker.
 */
export function rewardModuleExports(modulePath: string): [string, UserRewardFn][] {
  const abs = path.resolve(modulePath);
  if (/\.[cm]?ts$/.test(abs)) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      require('tsx/cjs');
    } catch {
      throw new Error(`reward module ${modulePath}: loading TypeScript needs the 'tsx' package (npm install tsx), or compile it to .js`);
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  let mod = require(abs);
  if (mod && typeof mod === 'object' && 'default' in mod && Object.keys(mod).length === 1) mod = mod.default;
  const fns: [string, UserRewardFn][] = [];
  if (typeof mod === 'function') fns.push([mod.name || path.basename(abs).replace(/\.[^.]+$/, ''), mod]);
  else if (Array.isArray(mod)) mod.forEach((f, i) => typeof f === 'function' && fns.push([f.name || `reward_${i}`, f]));
  else if (mod && typeof mod === 'object') for (const [k, f] of Object.entries(mod)) if (typeof f === 'function' && k !== 'default') fns.push([k, f as UserRewardFn]);
  if (!fns.length) throw new Error(`reward module ${modulePath}: exports no function (expected a function, an array of functions or an object of them)`);
  return fns;
}

/**
 * Loads user reward functions from a module into this thread. They run on the event loop: a
 * synchronous endless loop in one cannot be stopped. The CLI uses loadRewardModuleIsolated
 * (reward/isolated.ts), which runs the module in a worker thread that a timeout can terminate.
 */
export function loadRewardModule(modulePath: string): RewardFunction[] {
  const source = path.resolve(modulePath);
  return rewardModuleExports(modulePath).map(([name, f]) => ({ name, source, compute: (ctx: RewardContext) => f(ctx.completions, ctx) }));
}

export interface ScoreRewardsOptions {
  /** Seconds a reward function may take per batch; past it the batch fails with a RewardError. Default none. */
  timeout?: number;
  /**
   * A function that throws, or returns something that is not one value per completion:
   * 'no_reward' (default here) gives no reward for the batch and reports it in `failures`;
   * 'abort' throws a RewardError naming the function.
   */
  onError?: 'abort' | 'no_reward';
}

/** Awaits `p`, failing with a RewardError when it takes longer than `seconds`. */
function withTimeout<T>(p: Promise<T>, seconds: number | undefined, f: RewardFunction): Promise<T> {
  if (seconds === undefined || !(seconds > 0) || !Number.isFinite(seconds)) return p;
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RewardError(f.name, f.source, `did not return within ${seconds} s (the reward timeout, --reward-timeout)`)), seconds * 1000);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Runs every reward function on the batch: rewards [S·K] row-major (rewards[i·K + k]), NaN for
 * "no reward", and the failures to report. A value is "no reward" when it is null, undefined,
 * NaN, not a number, outside the float32 range (e.g. 1e39: the kernels work in float32), or when
 * reading it throws (a getter); each such value is counted in `failures` under the function's name.
 */
export async function scoreRewards(fns: RewardFunction[], ctx: RewardContext, opts: ScoreRewardsOptions = {}): Promise<{ rewards: Float32Array; failures: RewardFailure[] }> {
  const S = ctx.completions.length;
  const K = fns.length;
  const rewards = new Float32Array(S * K).fill(NaN);
  const failures: RewardFailure[] = [];
  const batchFailure = (f: RewardFunction, message: string) => {
    if (opts.onError === 'abort') throw new RewardError(f.name, f.source, message);
    failures.push({ name: f.name, message, count: S });
  };
  for (let k = 0; k < K; k++) {
    const f = fns[k];
    let vals: unknown;
    try {
      vals = await withTimeout(Promise.resolve().then(() => f.compute(ctx)), opts.timeout, f);
    } catch (e) {
      if (e instanceof RewardError) throw e;
      batchFailure(f, `threw: ${describeError(e)}`);
      continue;
    }
    let arr: ArrayLike<unknown>;
    let n: number;
    try {
      if (!Array.isArray(vals) && !ArrayBuffer.isView(vals)) {
        batchFailure(f, `returned ${vals === undefined ? 'nothing' : vals === null ? 'null' : typeof vals} instead of an array`);
        continue;
      }
      arr = vals as ArrayLike<unknown>;
      n = arr.length;
    } catch (e) {
      if (e instanceof RewardError) throw e;
      batchFailure(f, `returned an array whose length cannot be read (${describeError(e)})`);
      continue;
    }
    if (n !== S) {
      batchFailure(f, `returned ${n} values for ${S} completions`);
      continue;
    }
    let missing = 0, unreadable = 0, outOfRange = 0;
    for (let i = 0; i < S; i++) {
      let x: unknown;
      try {
        x = arr[i];
      } catch {
        unreadable++;
        continue;
      }
      const v = typeof x === 'number' ? x : typeof x === 'boolean' ? (x ? 1 : 0) : NaN;
      if (Number.isNaN(v)) missing++;
      else if (!Number.isFinite(Math.fround(v))) outOfRange++;
      else rewards[i * K + k] = v;
    }
    const parts: string[] = [];
    if (missing) parts.push(`${missing} null, undefined, NaN or non-number`);
    if (outOfRange) parts.push(`${outOfRange} outside the float32 range (|r| > 3.4e38)`);
    if (unreadable) parts.push(`${unreadable} whose read threw`);
    const bad = missing + outOfRange + unreadable;
    if (bad) failures.push({ name: f.name, message: `gave no reward for ${bad} of ${S} completions: ${parts.join(', ')}`, count: bad });
  }
  return { rewards, failures };
}

/**
 * A lower bound on the length (in characters) of any string `re` matches: literals and character
 * classes count 1, `*` `?` `{0,}` count 0, `+` and `{n,}` n times their operand, alternatives the
 * shortest, anchors and lookarounds 0. Used to tell before training that a format pattern cannot
 * fit in maxCompletionLength (a reward that can never score gives no signal, silently).
 * Anything it does not understand counts 0, so it never over-estimates.
 */
export function minMatchLength(re: RegExp): number {
  const src = re.source;
  let i = 0;
  const atom = (): number => {
    const c = src[i];
    if (c === '\\') {
      const d = src[i + 1];
      i += 2;
      if (d === 'b' || d === 'B' || /[1-9]/.test(d ?? '')) return 0; // word boundary, backreference (may be empty)
      if (d === 'k' && src[i] === '<') {
        i = src.indexOf('>', i) + 1 || src.length;
        return 0;
      }
      if (d === 'u' && src[i] === '{') i = src.indexOf('}', i) + 1 || src.length;
      else if (d === 'u') i += 4;
      else if (d === 'x') i += 2;
      else if (d === 'c') i += 1;
      else if ((d === 'p' || d === 'P') && src[i] === '{') i = src.indexOf('}', i) + 1 || src.length;
      return 1;
    }
    if (c === '[') {
      i++;
      if (src[i] === '^') i++;
      if (src[i] === ']') i++;
      while (i < src.length && src[i] !== ']') i += src[i] === '\\' ? 2 : 1;
      i++;
      return 1;
    }
    if (c === '(') {
      i++;
      let look = false;
      if (src[i] === '?') {
        if (src[i + 1] === ':') i += 2;
        else if (src[i + 1] === '=' || src[i + 1] === '!') (i += 2), (look = true);
        else if (src[i + 1] === '<' && (src[i + 2] === '=' || src[i + 2] === '!')) (i += 3), (look = true);
        else if (src[i + 1] === '<') i = src.indexOf('>', i) + 1;
      }
      const n = alternation();
      i++; // ')'
      return look ? 0 : n;
    }
    i++;
    if (c === '^' || c === '$') return 0;
    return 1; // a literal or '.'
  };
  const quantified = (): number => {
    const n = atom();
    let times = 1;
    const q = src[i];
    if (q === '*' || q === '?') (times = 0), i++;
    else if (q === '+') i++;
    else if (q === '{') {
      const m = /^\{(\d+)(,\d*)?\}/.exec(src.slice(i));
      if (m) {
        times = Number(m[1]);
        i += m[0].length;
      }
    }
    if (times !== 1 && src[i] === '?') i++; // lazy
    else if (q === '+' && src[i] === '?') i++;
    return n * times;
  };
  const sequence = (): number => {
    let n = 0;
    while (i < src.length && src[i] !== '|' && src[i] !== ')') n += quantified();
    return n;
  };
  const alternation = (): number => {
    let best = sequence();
    while (src[i] === '|') {
      i++;
      best = Math.min(best, sequence());
    }
    return best;
  };
  try {
    const n = alternation();
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * Throws when the `format` reward is on and the task's format pattern needs more characters than
 * a completion can have (`maxChars`: maxCompletionLength × the tokenizer's longest token; 1 char
 * per token for the built-in character tokenizer): such a reward is 0 on every completion.
 */
export function checkFormatRewardFits(fns: RewardFunction[], task: Task, maxChars: number, flags = { maxLen: '--max-completion-length', pattern: '--format-pattern' }): void {
  if (!fns.some((f) => f.name === 'format')) return;
  const need = minMatchLength(task.formatPattern);
  if (need > maxChars)
    throw new RangeError(
      `format reward: the format pattern /${task.formatPattern.source}/ of task '${task.name}' needs at least ${need} characters ` +
        `but a completion has at most ${maxChars}, so it could never score: raise ${flags.maxLen} (and the model's context), ` +
        `give a shorter ${flags.pattern}, or leave 'format' out of the reward functions`,
    );
}

/** What ConstantRewardMonitor reports per reward function after a step. */
export interface ConstantRewardState {
  name: string;
  /** The value every completion got, when they all agreed this step (NaN otherwise). */
  value: number;
  /** Consecutive steps (ending with this one) on which every completion got `value`. */
  steps: number;
  /** steps ≥ the monitor's threshold. */
  stuck: boolean;
  /** True on the step the threshold is reached (warn once, not every step). */
  newlyStuck: boolean;
}

export interface ConstantRewardSnapshot {
  value: (number | null)[];
  steps: number[];
}

/**
 * Watches each reward function for being constant: the same value for every completion, step
 * after step. Such a function contributes nothing to any advantage (a typical cause: a format
 * pattern or answer form the model cannot produce), which no loss curve shows.
 */
export class ConstantRewardMonitor {
  private value: number[];
  private steps: number[];
  constructor(readonly names: string[], readonly threshold = 20) {
    if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError(`ConstantRewardMonitor: expected an integer >= 1 for threshold but received ${threshold}`);
    this.value = names.map(() => NaN);
    this.steps = names.map(() => 0);
  }

  /** The counters, JSON-safe (a checkpoint stores them so a resumed run counts on). */
  snapshot(): ConstantRewardSnapshot {
    return { value: this.value.map((v) => (Number.isNaN(v) ? null : v)), steps: [...this.steps] };
  }

  /** Continues from a snapshot (ignored when it is absent or for other reward functions). */
  restore(s: ConstantRewardSnapshot | undefined): void {
    if (!s || !Array.isArray(s.value) || !Array.isArray(s.steps) || s.value.length !== this.names.length || s.steps.length !== this.names.length) return;
    this.value = s.value.map((v) => (typeof v === 'number' ? v : NaN));
    this.steps = s.steps.map((n) => (Number.isInteger(n) && n >= 0 ? n : 0));
  }

  /** Feeds one step's rewards [S·K] (rewards[i·K + k], NaN = no reward). */
  update(rewards: ArrayLike<number>): ConstantRewardState[] {
    const K = this.names.length;
    const S = Math.floor(rewards.length / K);
    return this.names.map((name, k) => {
      let v = NaN;
      let constant = true;
      for (let i = 0; i < S && constant; i++) {
        const x = rewards[i * K + k];
        if (Number.isNaN(x)) continue;
        if (Number.isNaN(v)) v = x;
        else if (x !== v) constant = false;
      }
      if (!constant || Number.isNaN(v)) {
        this.steps[k] = 0;
        this.value[k] = NaN;
        return { name, value: NaN, steps: 0, stuck: false, newlyStuck: false };
      }
      this.steps[k] = v === this.value[k] ? this.steps[k] + 1 : 1;
      this.value[k] = v;
      const steps = this.steps[k];
      return { name, value: v, steps, stuck: steps >= this.threshold, newlyStuck: steps === this.threshold };
    });
  }
}

function describeError(e: unknown): string {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } catch {
    return 'an unprintable value';
  }
}
export * from './isolated';
