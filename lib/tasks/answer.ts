/**
 * Answer extraction and comparison shared by the built-in tasks and user datasets.
 *
 * extractAnswer, in order of preference: the content of the last <answer>...</answer>, the last
 * \boxed{...}, the text after the last "####" (GSM8K style), the last number (1,000 / .5 / -3 /
 * 1/2 / \frac{1}{2} / 1e3), and otherwise the whole text, trimmed: a text answer ("yes", "cba")
 * is an answer too (null only for an empty completion).
 *
 * answersMatch follows what math_verify (TRL's accuracy_reward) does for the cases a small model
 * meets: two numbers match when they agree after rounding to 6 decimal places (math_verify's
 * default float_rounding), computed exactly on rationals (0.5 = 1/2 = .50 = \frac{1}{2},
 * 1,000 = 1000, -0 = 0, 1e3 = 1000, 0.333333 = 1/3 but 0.333 ≠ 1/3; `decimals: Infinity` asks
 * for exact equality); anything else is compared as text, by default trimmed, with runs of whitespace
 * collapsed, a trailing full stop dropped and case ignored (each configurable: `exact: true` is
 * plain string equality).
 */

// A number as it appears in text: thousands groups only with exactly 3 digits per group.
const NUM = String.raw`(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?`;
// A sign counts only where it cannot be a binary minus ("5-3" ends in 3, "x=-3" in -3).
const SIGNED = String.raw`(?:(?<![\w)\]}])[-+])?`;
const FRAC = String.raw`\\[dt]?frac\{\s*-?${NUM}\s*\}\{\s*-?${NUM}\s*\}`;
const NUMBER_IN_TEXT = new RegExp(`${SIGNED}(?:${FRAC}|${NUM}(?:\\s*/\\s*${NUM})?)`, 'g');

export function extractAnswer(text: string): string | null {
  const tag = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  if (tag.length) return tag[tag.length - 1][1].trim();
  const boxed = text.lastIndexOf('\\boxed{');
  if (boxed >= 0) {
    let depth = 0;
    for (let i = boxed + 7; i < text.length; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}') {
        if (depth === 0) return text.slice(boxed + 7, i).trim();
        depth--;
      }
    }
  }
  const hashes = text.lastIndexOf('####');
  if (hashes >= 0) return text.slice(hashes + 4).trim();
  const nums = text.match(NUMBER_IN_TEXT);
  if (nums) return nums[nums.length - 1].replace(/\s+/g, '');
  const whole = text.trim();
  return whole ? whole : null;
}

/** A reduced fraction: den > 0, gcd(|num|, den) = 1; zero is 0/1 (so -0 = 0). */
interface Rational {
  num: bigint;
  den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  while (b) [a, b] = [b, a % b];
  return a;
}

function reduce(num: bigint, den: bigint): Rational | null {
  if (den === 0n) return null;
  if (den < 0n) [num, den] = [-num, -den];
  const g = gcd(num, den) || 1n;
  return { num: num / g, den: den / g };
}

const DECIMAL = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;

/** An exact decimal ("-1,000.50", ".5", "2e-3") as a rational; null when it is not one. */
function decimal(s: string): Rational | null {
  const t = /^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$/.test(s) ? s.replace(/,/g, '') : s;
  const m = DECIMAL.exec(t);
  if (!m || (!m[2] && !m[3])) return null;
  const frac = m[3] ?? '';
  const exp = m[4] ? Number(m[4]) : 0;
  if (Math.abs(exp) > 1000) return null; // 1e99999 is not a number a task answers with
  let num = BigInt((m[2] || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  if (exp > 0) num *= 10n ** BigInt(exp);
  else if (exp < 0) den *= 10n ** BigInt(-exp);
  if (m[1] === '-') num = -num;
  return reduce(num, den);
}

/** The exact value of a numeric answer (decimal, a/b, \frac{a}{b}, with $…$ and spaces around), or null. */
export function parseNumber(s: string): Rational | null {
  const t = s.trim().replace(/^\$+|\$+$/g, '').trim().replace(/\s+/g, '').replace(/\u2212/g, '-');
  let sign = 1n;
  const frac = /^([-+]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$/.exec(t);
  let a: Rational | null, b: Rational | null;
  if (frac) {
    if (frac[1] === '-') sign = -1n;
    a = decimal(frac[2]);
    b = decimal(frac[3]);
  } else {
    const slash = t.indexOf('/');
    if (slash < 0) return decimal(t);
    a = decimal(t.slice(0, slash));
    b = decimal(t.slice(slash + 1));
  }
  if (!a || !b || b.num === 0n) return null;
  return reduce(sign * a.num * b.den, a.den * b.num);
}

/** round(x·10^d), halves away from zero, exactly. */
function roundTo(x: Rational, d: number): bigint {
  const scaled = x.num * 10n ** BigInt(Math.max(0, Math.floor(d)));
  const neg = scaled < 0n;
  const q = ((neg ? -scaled : scaled) * 2n + x.den) / (2n * x.den); // den > 0: floor((2|s| + den) / 2den)
  return neg ? -q : q;
}

export interface AnswerMatchOptions {
  /** Plain string equality, nothing normalised (overrides the options below). Default false. */
  exact?: boolean;
  /** Compare numbers by value (0.5 = 1/2 = .50, 1,000 = 1000, -0 = 0). Default true. */
  numeric?: boolean;
  /** Numbers match when equal after rounding to this many decimal places (math_verify: 6); Infinity = exactly. Default 6. */
  decimals?: number;
  /** Compare text case-insensitively. Default true. */
  ignoreCase?: boolean;
  /** Trim, collapse runs of whitespace and drop a trailing full stop. Default true. */
  normalizeWhitespace?: boolean;
}

/** Whether an extracted answer `got` matches the reference `want` (see the top of this file). */
export function answersMatch(got: string | null, want: string, o: AnswerMatchOptions = {}): boolean {
  if (got === null) return false;
  if (o.exact) return got === want;
  if (o.numeric ?? true) {
    const a = parseNumber(got);
    const b = parseNumber(want);
    if (a && b) {
      if (a.num === b.num && a.den === b.den) return true;
      const d = o.decimals ?? 6;
      return Number.isFinite(d) && roundTo(a, d) === roundTo(b, d);
    }
  }
  let x = got, y = want;
  if (o.normalizeWhitespace ?? true) {
    const norm = (s: string) => s.trim().replace(/\s+/g, ' ').replace(/\.$/, '').trim();
    x = norm(x);
    y = norm(y);
  }
  if (o.ignoreCase ?? true) {
    x = x.toLowerCase();
    y = y.toLowerCase();
  }
  return x === y;
}
