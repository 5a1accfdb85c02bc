// Reward functions on crafted inputs, "no reward" handling, user reward modules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  accuracyReward, formatReward, cosineReward, cosineInterp, repetitionPenalty, repetitionReward,
  softOverlongPenalty, softOverlongReward, scoreRewards, loadRewardModule, builtinReward, RewardContext, RewardFunction,
  minMatchLength, checkFormatRewardFits, ConstantRewardMonitor,
} from '../lib/rewards';
import { arithmeticTask, datasetTask } from '../lib/tasks';

const task = arithmeticTask({ seed: 0, trainSize: 10, testSize: 10 });
const ex = { id: 'a', prompt: '47+38=', answer: '85' };

function ctx(completions: string[], extra: Partial<RewardContext> = {}): RewardContext {
  return {
    completions,
    prompts: completions.map(() => ex.prompt),
    examples: completions.map(() => ex),
    completionLengths: completions.map((c) => c.length + 1),
    truncated: completions.map(() => false),
    task,
    maxCompletionLength: 8,
    ...extra,
  };
}

test('accuracy: 1 for the exact answer, 0 otherwise', async () => {
  assert.equal(await accuracyReward().compute(ctx(['85', '84', '085x', ''])), [1, 0, 0, 0]);
});

test('format: pattern match, truncated completions get 0, custom pattern', async () => {
  assert.equal(await formatReward().compute(ctx(['85', '8 5', 'abc', '12'], { truncated: [false, false, false, true] })), [1, 0, 0, 0]);
  assert.equal(await formatReward({ pattern: /^<answer>.*<\/answer>$/ }).compute(ctx(['<answer>1</answer>', '1'])), [1, 0]);
});

test('cosine: endpoints and monotonicity (short correct best, short wrong worst)', async () => {
  assert.ok(Math.abs(cosineInterp(0, 10, 1, 0.5) - 1) < 1e-12);
  assert.ok(Math.abs(cosineInterp(10, 10, 1, 0.5) - 0.5) < 1e-12);
  assert.ok(Math.abs(cosineInterp(5, 10, 1, 0.5) - 0.75) < 1e-12);
  assert.ok(Math.abs(cosineInterp(50, 10, 1, 0.5) - 0.5) < 1e-12, 'clamped past the end');
  const r = (await cosineReward({ maxLength: 10 }).compute(ctx(['85', '85', '84', '84'], { completionLengths: [0, 10, 0, 10] }))) as number[];
  assert.ok(Math.abs(r[0] - 1) < 1e-12);
  assert.ok(Math.abs(r[1] - 0.5) < 1e-12);
  assert.ok(Math.abs(r[2] + 0.5) < 1e-12);
  assert.ok(Math.abs(r[3] - 0) < 1e-12);
  const mid = (await cosineReward({ maxLength: 10 }).compute(ctx(['85', '85'], { completionLengths: [2, 6] }))) as number[];
  assert.ok(mid[0] > mid[1], 'shorter correct answers are rewarded more');
});

test('repetition: no repeats 0, all repeats = maxPenalty, words and characters', async () => {
  assert.is(repetitionPenalty('the cat sat on the mat'), 0);
  assert.is(repetitionPenalty('a b'), 0, 'shorter than one n-gram');
  // "a a a a a" has 3 trigrams all equal: 1 − 1/3 distinct
  assert.ok(Math.abs(repetitionPenalty('a a a a a') - -(1 - 1 / 3)) < 1e-12);
  assert.ok(Math.abs(repetitionPenalty('abababab', { unit: 'char', ngramSize: 2, maxPenalty: -0.5 }) - -0.5 * (1 - 2 / 7)) < 1e-12);
  assert.equal(await repetitionReward().compute(ctx(['x y z', 'x x x x'])), [0, -0.5]);
  assert.throws(() => repetitionReward({ maxPenalty: 1 }), /maxPenalty/);
});

test('soft overlong: 0, linear ramp, −1 (DAPO)', async () => {
  assert.is(softOverlongPenalty(6, 8, 2), 0);
  assert.is(softOverlongPenalty(7, 8, 2), -0.5);
  assert.is(softOverlongPenalty(8, 8, 2), -1);
  assert.is(softOverlongPenalty(9, 8, 2), -1);
  assert.equal(await softOverlongReward({ cacheLength: 2 }).compute(ctx(['a', 'b', 'c'], { completionLengths: [3, 7, 8] })), [0, -0.5, -1]);
});

test('scoreRewards: [S·K] row-major; throwing / returning nothing / wrong length / non-numbers = NaN and reported', async () => {
  const good: RewardFunction = { name: 'good', compute: (c) => c.completions.map((_, i) => i) };
  const thrower: RewardFunction = { name: 'thrower', compute: () => { throw new Error('boom'); } };
  const nothing: RewardFunction = { name: 'nothing', compute: () => undefined as unknown as number[] };
  const short: RewardFunction = { name: 'short', compute: () => [1] };
  const partial: RewardFunction = { name: 'partial', compute: () => [1, null, NaN] };
  const asyncFail: RewardFunction = { name: 'async', compute: async () => { throw new Error('later'); } };
  const { rewards, failures } = await scoreRewards([good, thrower, nothing, short, partial, asyncFail], ctx(['1', '2', '3']));
  const K = 6;
  assert.equal([rewards[0 * K], rewards[1 * K], rewards[2 * K]], [0, 1, 2]);
  for (let i = 0; i < 3; i++) for (const k of [1, 2, 3, 5]) assert.ok(Number.isNaN(rewards[i * K + k]));
  assert.is(rewards[0 * K + 4], 1);
  assert.ok(Number.isNaN(rewards[1 * K + 4]) && Number.isNaN(rewards[2 * K + 4]));
  assert.equal(failures.map((f) => [f.name, f.count]), [['thrower', 3], ['nothing', 3], ['short', 3], ['partial', 2], ['async', 3]]);
  assert.match(failures[0].message, /boom/);
  assert.match(failures[1].message, /nothing/);
});

test('builtinReward by name; unknown names are errors', () => {
  for (const n of ['accuracy', 'format', 'cosine', 'repetition', 'soft_overlong']) assert.is(builtinReward(n).name, n);
  assert.throws(() => builtinReward('nope'), /unknown reward function 'nope'/);
});

test('user reward modules: a function, an object of functions, TypeScript, no function', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-rw-'));
  fs.writeFileSync(path.join(dir, 'one.js'), 'module.exports = function lengthy(completions) { return completions.map((c) => c.length); };');
  fs.writeFileSync(path.join(dir, 'many.js'), 'exports.a = (c) => c.map(() => 1); exports.b = async (c, ctx) => c.map((_, i) => ctx.examples[i].answer === "85" ? 2 : 0);');
  fs.writeFileSync(path.join(dir, 'typed.ts'), 'export default function typed(c: string[]): number[] { return c.map((x: string) => x === "85" ? 1 : 0); }');
  fs.writeFileSync(path.join(dir, 'none.js'), 'module.exports = { x: 1 };');
  const one = loadRewardModule(path.join(dir, 'one.js'));
  assert.equal(one.map((f) => f.name), ['lengthy']);
  assert.equal(await one[0].compute(ctx(['ab', 'c'])), [2, 1]);
  const many = loadRewardModule(path.join(dir, 'many.js'));
  assert.equal(many.map((f) => f.name), ['a', 'b']);
  assert.equal(await many[1].compute(ctx(['x'])), [2]);
  const typed = loadRewardModule(path.join(dir, 'typed.ts'));
  assert.equal(await typed[0].compute(ctx(['85', '1'])), [1, 0]);
  assert.throws(() => loadRewardModule(path.join(dir, 'none.js')), /exports no function/);
});

test('minMatchLength: a lower bound that is exact on the shapes format patterns take', () => {
  const cases: [RegExp, number][] = [
    [/^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>\s*$/, 32],
    [/^-?\d+$/, 1], [/^[\d+\-*/() ]+$/, 1], [/abc/, 3], [/a|bcd/, 1], [/(?:ab){3}/, 6], [/(ab){2,}c?/, 4],
    [/x(?=yyyy)/, 1], [/[\]x]{2}/, 2], [/\u0041\x41\d\./, 4], [/(?<n>ab)\k<n>/, 2], [/a+?b*?/, 1], [/^$/, 0],
  ];
  for (const [re, n] of cases) assert.is(minMatchLength(re), n, String(re));
  // a lower bound: no string shorter than it matches (checked by brute force over a small alphabet)
  const alphabet = ['a', 'b', '1', '<', '>'];
  for (const re of [/a|bcd/, /(?:ab){3}/, /^-?\d+$/, /<a>[\s\S]*<\/a>/, /(ab){2,}c?/]) {
    const n = minMatchLength(re);
    const words = (len: number): string[] => (len === 0 ? [''] : words(len - 1).flatMap((w) => alphabet.map((c) => w + c)));
    for (let len = 0; len < Math.min(n, 5); len++) for (const w of words(len)) assert.not.ok(new RegExp(`^(?:${re.source})$`).test(w), `${re} matched ${w}`);
  }
});

test('checkFormatRewardFits: the default dataset format pattern does not fit 8 tokens; the error says what to change', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-fits-'));
  const file = path.join(dir, 'd.jsonl');
  fs.writeFileSync(file, JSON.stringify({ prompt: 'p', solution: 'yes' }) + '\n' + JSON.stringify({ prompt: 'q', solution: 'no' }) + '\n');
  const ds = datasetTask({ train: file, test: file });
  assert.throws(() => checkFormatRewardFits([formatReward()], ds, 8), (e: Error) => /needs at least 32 characters but a completion has at most 8/.test(e.message) && /--max-completion-length/.test(e.message));
  checkFormatRewardFits([formatReward()], ds, 32);
  checkFormatRewardFits([accuracyReward()], ds, 8); // no format reward: nothing to check
  checkFormatRewardFits([formatReward()], task, 8); // arithmetic: /^-?\d+$/ needs 1
  fs.rmSync(dir, { recursive: true });
});

test('ConstantRewardMonitor: counts consecutive steps with one value for every completion; flags the threshold once', () => {
  const m = new ConstantRewardMonitor(['a', 'b'], 3);
  // [S·K] = 3 completions × 2 functions: a is always 0, b varies on step 2
  const steps = [
    [0, 1, 0, 1, 0, 1],
    [0, 1, 0, 0, 0, 1],
    [0, 1, 0, 1, 0, 1],
    [0, 1, NaN, 1, 0, 1],
    [0, 1, 0, 1, 0, 1],
  ];
  const got = steps.map((r) => m.update(Float32Array.from(r)));
  assert.equal(got.map((g) => g[0].steps), [1, 2, 3, 4, 5]);
  assert.equal(got.map((g) => g[0].newlyStuck), [false, false, true, false, false]);
  assert.equal(got.map((g) => g[0].stuck), [false, false, true, true, true]);
  assert.equal(got.map((g) => g[1].steps), [1, 0, 1, 2, 3]);
  assert.equal(got.map((g) => g[1].newlyStuck), [false, false, false, false, true]);
  assert.is(got[4][1].value, 1);
  // a change of the constant value restarts the count
  const m2 = new ConstantRewardMonitor(['a'], 2);
  assert.equal([[1, 1], [1, 1], [0, 0], [0, 0]].map((r) => m2.update(r)[0].steps), [1, 2, 1, 2]);
  // all "no reward": not a constant value
  assert.is(m2.update([NaN, NaN])[0].steps, 0);
  assert.throws(() => new ConstantRewardMonitor(['a'], 0), /threshold/);
  // a snapshot (JSON, as a checkpoint keeps it) continues the count in a new monitor
  const m3 = new ConstantRewardMonitor(['a', 'b'], 3);
  m3.update([1, 0, 1, 2]);
  m3.update([1, 5, 1, 5]);
  const snap = JSON.parse(JSON.stringify(m3.snapshot()));
  assert.equal(snap, { value: [1, 5], steps: [2, 1] });
  const m4 = new ConstantRewardMonitor(['a', 'b'], 3);
  m4.restore(snap);
  const next = m4.update([1, 5, 1, 5]);
  assert.equal(next.map((x) => [x.steps, x.newlyStuck]), [[3, true], [2, false]]);
  m4.restore({ value: [null], steps: [9] }); // for other reward functions: ignored
  assert.is(m4.update([1, 5, 1, 5])[0].steps, 4);
});

test.run();
