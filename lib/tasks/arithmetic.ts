/**
 * Integer arithmetic with verifiable answers: prompts like "47+38=", completion "85".
 * Difficulty: operand digits, operators, whether results may be negative. Generated from a seed;
 * the held-out split is disjoint from train (by problem text).
 */
import { Example, Task } from './types';
import { mulberry32, randInt, shuffle } from './rng';

export type ArithmeticOp = '+' | '-' | '*';

export interface ArithmeticOptions {
  /** Seed for generation and the split. Default 0. */
  seed?: number;
  /** Digits of each operand: operands are drawn from [10^(d−1), 10^d − 1] (d = 1 includes 0). Default 2. */
  digits?: number;
  /** Operators to draw from. Default ['+', '-']. */
  ops?: ArithmeticOp[];
  /** Allow negative results for '-' (otherwise operands are ordered so a ≥ b). Default false. */
  allowNegative?: boolean;
  /** Number of training examples (capped by how many distinct problems exist). Default 5000. */
  trainSize?: number;
  /** Number of held-out examples. Default 200. */
  testSize?: number;
}

function compute(a: number, op: ArithmeticOp, b: number): number {
  return op === '+' ? a + b : op === '-' ? a - b : a * b;
}

export function arithmeticTask(o: ArithmeticOptions = {}): Task {
  const seed = o.seed ?? 0;
  const digits = o.digits ?? 2;
  const ops = o.ops ?? ['+', '-'];
  const trainSize = o.trainSize ?? 5000;
  const testSize = o.testSize ?? 200;
  if (!Number.isInteger(digits) || digits < 1 || digits > 7) throw new RangeError(`arithmeticTask: expected an integer in [1, 7] for digits but received ${digits}`);
  if (!ops.length || ops.some((x) => !['+', '-', '*'].includes(x))) throw new RangeError(`arithmeticTask: expected ops from '+', '-', '*' but received ${JSON.stringify(ops)}`);
  const lo = digits === 1 ? 0 : 10 ** (digits - 1);
  const hi = 10 ** digits - 1;
  const span = hi - lo + 1;
  const total = span * span * ops.length; // an upper bound when '-' keeps a ≥ b
  const want = Math.min(total, trainSize + testSize);
  const r = mulberry32(seed ^ 0x5eed);
  let problems: [number, ArithmeticOp, number][];
  if (total <= 200_000) {
    // enumerate and shuffle: every problem at most once
    problems = [];
    for (const op of ops)
      for (let a = lo; a <= hi; a++)
        for (let b = lo; b <= hi; b++) if (op !== '-' || o.allowNegative || a >= b) problems.push([a, op, b]);
    shuffle(problems, r);
    problems = problems.slice(0, want);
  } else {
    const seen = new Set<string>();
    problems = [];
    while (problems.length < want) {
      const op = ops[randInt(r, 0, ops.length - 1)];
      let a = randInt(r, lo, hi);
      let b = randInt(r, lo, hi);
      if (op === '-' && !o.allowNegative && a < b) [a, b] = [b, a];
      const k = `${a}${op}${b}`;
      if (seen.has(k)) continue;
      seen.add(k);
      problems.push([a, op, b]);
    }
  }
  const toExample = ([a, op, b]: [number, ArithmeticOp, number], i: number): Example => {
    const ans = String(compute(a, op, b));
    return { id: `arith-${i}`, prompt: `${a}${op}${b}=`, answer: ans, solution: ans, meta: { a, op, b } };
  };
  const uniq = problems.map(toExample);
  const test = uniq.slice(0, Math.min(testSize, Math.floor(uniq.length / 2)));
  const train = uniq.slice(test.length, test.length + trainSize);
  return {
    name: 'arithmetic',
    train,
    test,
    formatPattern: /^-?\d+$/,
    extractAnswer(c: string) {
      const m = c.match(/-?\d+/g);
      return m ? m[m.length - 1] : null;
    },
    isCorrect(c: string, ex: Example) {
      // exactly the integer: "85" is right, "850" or "85 85" is not
      return c.trim() === ex.answer;
    },
  };
}
