/**
 * Countdown-style puzzle: reach a target with the given numbers and + - * /.
 * Prompt "3 5 7:22=", a correct completion "3*5+7". With `useAll` (default, as TinyZero's
 * countdown) every number must be used exactly once; otherwise each at most once.
 */
import { Example, Task } from './types';
import { mulberry32, randInt, shuffle } from './rng';

export interface CountdownOptions {
  seed?: number;
  /** How many numbers per puzzle. Default 3. */
  numbers?: number;
  /** Numbers are drawn from [1, maxNumber]. Default 10. */
  maxNumber?: number;
  /** Targets are kept in [1, maxTarget]. Default 100. */
  maxTarget?: number;
  /** Every number must be used exactly once. Default true. */
  useAll?: boolean;
  trainSize?: number;
  testSize?: number;
}

/** Evaluates an expression of integers, + - * / and parentheses; null when malformed or dividing by zero. */
export function evalExpression(src: string): { value: number; numbers: number[] } | null {
  const s = src.replace(/\s+/g, '');
  if (!/^[\d+\-*/()]+$/.test(s)) return null;
  let i = 0;
  const numbers: number[] = [];
  const expr = (): number | null => {
    let v = term();
    while (v !== null && (s[i] === '+' || s[i] === '-')) {
      const op = s[i++];
      const w = term();
      if (w === null) return null;
      v = op === '+' ? v + w : v - w;
    }
    return v;
  };
  const term = (): number | null => {
    let v = factor();
    while (v !== null && (s[i] === '*' || s[i] === '/')) {
      const op = s[i++];
      const w = factor();
      if (w === null) return null;
      if (op === '/' && w === 0) return null;
      v = op === '*' ? v * w : v / w;
    }
    return v;
  };
  const factor = (): number | null => {
    if (s[i] === '(') {
      i++;
      const v = expr();
      if (v === null || s[i] !== ')') return null;
      i++;
      return v;
    }
    const m = /^\d+/.exec(s.slice(i));
    if (!m) return null;
    i += m[0].length;
    const n = Number(m[0]);
    numbers.push(n);
    return n;
  };
  const value = expr();
  if (value === null || i !== s.length) return null;
  return { value, numbers };
}

function sameMultiset(a: number[], b: number[], exact: boolean): boolean {
  const count = new Map<number, number>();
  for (const x of b) count.set(x, (count.get(x) ?? 0) + 1);
  for (const x of a) {
    const c = count.get(x) ?? 0;
    if (c === 0) return false;
    count.set(x, c - 1);
  }
  return !exact || a.length === b.length;
}

export function countdownTask(o: CountdownOptions = {}): Task {
  const seed = o.seed ?? 0;
  const n = o.numbers ?? 3;
  const maxNumber = o.maxNumber ?? 10;
  const maxTarget = o.maxTarget ?? 100;
  const useAll = o.useAll ?? true;
  const trainSize = o.trainSize ?? 5000;
  const testSize = o.testSize ?? 200;
  if (!Number.isInteger(n) || n < 2 || n > 6) throw new RangeError(`countdownTask: expected an integer in [2, 6] for numbers but received ${n}`);
  const r = mulberry32(seed ^ 0xc0de);
  const seen = new Set<string>();
  const all: Example[] = [];
  let tries = 0;
  while (all.length < trainSize + testSize && tries++ < 50 * (trainSize + testSize)) {
    const nums = Array.from({ length: n }, () => randInt(r, 1, maxNumber));
    // a random expression over a random order of the numbers, built left to right with
    // parentheses where precedence would otherwise change the order of evaluation
    const order = shuffle([...nums], r);
    let text = String(order[0]);
    let value = order[0];
    let lastOp = '';
    for (let k = 1; k < order.length; k++) {
      const ops = ['+', '-', '*', '/'].filter((op) => op !== '/' || (order[k] !== 0 && value % order[k] === 0));
      const op = ops[randInt(r, 0, ops.length - 1)];
      const lowPrec = lastOp === '+' || lastOp === '-';
      if ((op === '*' || op === '/') && lowPrec) text = `(${text})`;
      text = `${text}${op}${order[k]}`;
      value = op === '+' ? value + order[k] : op === '-' ? value - order[k] : op === '*' ? value * order[k] : value / order[k];
      lastOp = op;
    }
    if (!Number.isInteger(value) || value < 1 || value > maxTarget) continue;
    const sorted = [...nums].sort((a, b) => a - b);
    const prompt = `${sorted.join(' ')}:${value}=`;
    if (seen.has(prompt)) continue;
    seen.add(prompt);
    all.push({ id: `countdown-${all.length}`, prompt, answer: String(value), solution: text, meta: { numbers: sorted, target: value } });
  }
  const test = all.slice(0, Math.min(testSize, Math.floor(all.length / 2)));
  const train = all.slice(test.length);
  return {
    name: 'countdown',
    train,
    test,
    formatPattern: /^[\d+\-*/() ]+$/,
    extractAnswer(c: string) {
      const e = evalExpression(c.trim());
      return e ? String(e.value) : null;
    },
    isCorrect(c: string, ex: Example) {
      const e = evalExpression(c.trim());
      if (!e) return false;
      const meta = ex.meta as { numbers: number[]; target: number } | undefined;
      const target = meta ? meta.target : Number(ex.answer);
      const nums = meta?.numbers;
      if (Math.abs(e.value - target) > 1e-9) return false;
      return nums ? sameMultiset(e.numbers, nums, useAll) : true;
    },
  };
}
