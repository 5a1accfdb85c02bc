/**
 * Evaluation on a task's held-out split: k samples per prompt; pass@1 and pass@k (the unbiased
 * estimator, spec §10), maj@k, mean reward, format rate, mean completion length, and the
 * reasoning-efficiency measures (README, "Evaluating an endpoint"): over the correct completions,
 * tokens until the first correct answer T̂ (the shortest prefix the task already judges correct),
 * tokens spent after it T − T̂, and token efficiency mean(T̂ / T). The samples come from a model in
 * this process (evaluate) or from any rollout engine, e.g. a remote endpoint (evaluateEngine).
 */
import type { PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import { Example, Task } from '../tasks/types';
import { RewardFunction, scoreRewards } from '../rewards';
import { rollout, Rollout, SamplingOptions } from '../trainer/rollout';
import type { RolloutEngine } from '../rollout/engine';

/** Unbiased pass@k for n samples with c correct: 1 − C(n−c, k)/C(n, k) = 1 − Π_{j=n−c+1..n} (1 − k/j). */
export function passAtK(n: number, c: number, k: number): number {
  if (!(Number.isInteger(n) && Number.isInteger(c) && Number.isInteger(k)) || n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw new RangeError(`passAtK: expected integers 0 <= c <= n, 1 <= k <= n but received n=${n}, c=${c}, k=${k}`);
  if (n - c < k) return 1;
  let prod = 1;
  for (let j = n - c + 1; j <= n; j++) prod *= 1 - k / j;
  return 1 - prod;
}

/** The most frequent non-null answer (ties: the one seen first), or null. */
export function majorityAnswer(answers: (string | null)[]): string | null {
  const count = new Map<string, number>(); // insertion order = order of first appearance
  for (const a of answers) if (a !== null) count.set(a, (count.get(a) ?? 0) + 1);
  let best: string | null = null;
  let bestN = 0;
  for (const [a, n] of count) if (n > bestN) [best, bestN] = [a, n];
  return best;
}

export interface EvalOptions extends SamplingOptions {
  /** Samples per prompt (n in pass@k). Default 8. */
  k?: number;
  /** How many held-out prompts (the first N). Default all. */
  limit?: number;
  seed: number;
  /** Reward functions and weights for the mean reward (optional). */
  rewardFunctions?: RewardFunction[];
  rewardWeights?: number[];
  /** Seconds a reward function may take per batch (default none); past it evaluation fails with a RewardError. */
  rewardTimeout?: number;
  /** A reward function that throws: fail ('abort') or leave it out of the mean ('no_reward', default). */
  rewardErrors?: 'abort' | 'no_reward';
  /** Also report pass@j for these j ≤ k. Default [1, k]. */
  passAt?: number[];
}

export interface EvalResult {
  task: string;
  prompts: number;
  k: number;
  temperature: number;
  /** pass@j by j. */
  passAt: Record<string, number>;
  'pass@1': number;
  'pass@k': number;
  'maj@k': number;
  meanReward: number;
  formatRate: number;
  meanLength: number;
  /** Mean completion length in tokens (EOS included when emitted) = meanLength. */
  tokensPerCompletion: number;
  /** Completions judged correct (not truncated, task.isCorrect). */
  correctCompletions: number;
  /** Over correct completions: mean T̂, the tokens of the shortest prefix the task already judges correct (NaN: none correct). */
  tokensToFirstCorrect: number;
  /** Over correct completions: mean T − T̂, the tokens generated after the answer was already right. */
  tokensAfterFirstCorrect: number;
  /** Over correct completions: mean T̂ / T (1 = nothing after the answer). */
  tokenEfficiency: number;
  truncatedRate: number;
  seconds: number;
  /** A few samples for the report: prompt, completion, correct. */
  samples: { prompt: string; completion: string; correct: boolean }[];
}

export async function evaluate(model: PolicyModel, tok: Tokenizer, task: Task, o: EvalOptions, examples?: Example[]): Promise<EvalResult> {
  const t0 = Date.now();
  const k = o.k ?? 8;
  const exs = (examples ?? task.test).slice(0, o.limit ?? Infinity);
  const r = await rollout(model, tok, exs, k, { ...o, maxBatch: 512 });
  return scoreEvaluation(task, exs, r, k, o, tok, t0);
}

/**
 * {@link evaluate} with the samples from a rollout engine (a RemoteEngine: `grpo eval --endpoint`);
 * `tok` decodes the completions' prefixes for the efficiency measures.
 */
export async function evaluateEngine(engine: RolloutEngine, tok: Tokenizer, task: Task, o: EvalOptions, examples?: Example[]): Promise<EvalResult> {
  const t0 = Date.now();
  const k = o.k ?? 8;
  const exs = (examples ?? task.test).slice(0, o.limit ?? Infinity);
  const r = await engine.generate(exs, k, o);
  return scoreEvaluation(task, exs, r, k, o, tok, t0);
}

/** T̂: the length of the shortest prefix of `ids` that the task judges correct (ids.length when only the whole is). */
export function tokensToFirstCorrect(tok: Tokenizer, task: Task, ex: Example, ids: ArrayLike<number>): number {
  for (let t = 1; t < ids.length; t++) if (task.isCorrect(tok.decode(Array.prototype.slice.call(ids, 0, t)), ex)) return t;
  return ids.length;
}

async function scoreEvaluation(task: Task, exs: Example[], r: Rollout, k: number, o: EvalOptions, tok: Tokenizer, t0: number): Promise<EvalResult> {
  const P = exs.length;
  let nCorrect = 0, sumFirst = 0, sumAfter = 0, sumEff = 0;
  const js = [...new Set([1, ...(o.passAt ?? []), k])].filter((j) => j <= k).sort((a, b) => a - b);
  const passSum: Record<string, number> = Object.fromEntries(js.map((j) => [`pass@${j}`, 0]));
  let maj = 0, fmt = 0, len = 0, trunc = 0;
  const samples: EvalResult['samples'] = [];
  for (let p = 0; p < P; p++) {
    let c = 0;
    const answers: (string | null)[] = [];
    const firstWithAnswer = new Map<string, number>();
    for (let j = 0; j < k; j++) {
      const i = p * k + j;
      const text = r.texts[i];
      const ok = !r.truncated[i] && task.isCorrect(text, exs[p]);
      if (ok) {
        c++;
        const T = r.tokens[i].length;
        const first = tokensToFirstCorrect(tok, task, exs[p], r.tokens[i]);
        nCorrect++;
        sumFirst += first;
        sumAfter += T - first;
        sumEff += T > 0 ? first / T : 1;
      }
      const a = r.truncated[i] ? null : task.extractAnswer(text);
      answers.push(a);
      if (a !== null && !firstWithAnswer.has(a)) firstWithAnswer.set(a, i);
      if (!r.truncated[i] && task.formatPattern.test(text)) fmt++;
      len += r.tokens[i].length;
      if (r.truncated[i]) trunc++;
      if (j === 0 && samples.length < 12) samples.push({ prompt: exs[p].prompt, completion: text, correct: ok });
    }
    for (const j of js) passSum[`pass@${j}`] += passAtK(k, c, j);
    const m = majorityAnswer(answers);
    if (m !== null && task.isCorrect(r.texts[firstWithAnswer.get(m)!], exs[p])) maj++;
  }
  let meanReward = NaN;
  if (o.rewardFunctions && o.rewardFunctions.length) {
    const K = o.rewardFunctions.length;
    const w = o.rewardWeights ?? new Array(K).fill(1);
    const { rewards } = await scoreRewards(o.rewardFunctions, {
      completions: r.texts,
      prompts: exs.flatMap((e) => new Array(k).fill(e.prompt)),
      examples: exs.flatMap((e) => new Array(k).fill(e)),
      completionLengths: r.tokens.map((t) => t.length),
      truncated: r.truncated,
      task,
      maxCompletionLength: o.maxCompletionLength,
    }, { timeout: o.rewardTimeout, onError: o.rewardErrors });
    let sum = 0, n = 0;
    for (let i = 0; i < P * k; i++) {
      let s = 0, any = false;
      for (let q = 0; q < K; q++) {
        const x = rewards[i * K + q];
        if (!Number.isNaN(x)) {
          s += w[q] * x;
          any = true;
        }
      }
      if (any) {
        sum += s;
        n++;
      }
    }
    meanReward = n ? sum / n : NaN;
  }
  const S = P * k;
  const passAt = Object.fromEntries(js.map((j) => [`pass@${j}`, passSum[`pass@${j}`] / P]));
  return {
    task: task.name,
    prompts: P,
    k,
    temperature: o.temperature ?? 1,
    passAt,
    'pass@1': passAt['pass@1'],
    'pass@k': passAt[`pass@${k}`],
    'maj@k': maj / P,
    meanReward,
    formatRate: fmt / S,
    meanLength: len / S,
    tokensPerCompletion: len / S,
    correctCompletions: nCorrect,
    tokensToFirstCorrect: nCorrect ? sumFirst / nCorrect : NaN,
    tokensAfterFirstCorrect: nCorrect ? sumAfter / nCorrect : NaN,
    tokenEfficiency: nCorrect ? sumEff / nCorrect : NaN,
    truncatedRate: trunc / S,
    seconds: (Date.now() - t0) / 1000,
    samples,
  };
}

const fixed = (x: number | undefined, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/** The result as a printable table. */
export function formatEvalTable(r: EvalResult): string {
  const pct = (x: number) => (Number.isNaN(x) ? '   n/a' : `${(100 * x).toFixed(1).padStart(5)}%`);
  const rows: [string, string][] = [
    ['task', r.task],
    ['prompts × samples', `${r.prompts} × ${r.k} (temperature ${r.temperature})`],
    ...Object.entries(r.passAt).map(([k, v]) => [k, pct(v)] as [string, string]),
    [`maj@${r.k}`, pct(r['maj@k'])],
    ['mean reward', Number.isNaN(r.meanReward) ? 'n/a' : r.meanReward.toFixed(4)],
    ['format rate', pct(r.formatRate)],
    ['mean length (tokens)', r.meanLength.toFixed(2)],
    // n/a: no correct completion (or a result from before these measures existed)
    ['tokens to first correct answer', fixed(r.tokensToFirstCorrect, 2)],
    ['tokens after it', fixed(r.tokensAfterFirstCorrect, 2)],
    ['token efficiency', fixed(r.tokenEfficiency, 4)],
    ['truncated', pct(r.truncatedRate)],
    ['time', `${r.seconds.toFixed(1)} s`],
  ];
  const w = Math.max(...rows.map(([a]) => a.length));
  const line = '─'.repeat(w + 2) + '┼' + '─'.repeat(Math.max(...rows.map(([, b]) => b.length)) + 2);
  return [line, ...rows.map(([a, b]) => ` ${a.padEnd(w)} │ ${b}`), line].join('\n');
}
