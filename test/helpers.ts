// Shared test helpers: a seeded PRNG (tests must be reproducible), random inputs, and
// tolerance checks that print the worst index on failure.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal via Box-Muller. */
export function normal(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

export function randn(r: () => number, n: number, scale = 1, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = normal(r) * scale + shift;
  return a;
}

/**
 * |got - want| <= atol + rtol * |want| elementwise; the message names the worst element.
 */
export function close(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol = 0, what = 'value'): void {
  assert.is(got.length, want.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    const err = Math.abs(g - w);
    const tol = atol + rtol * Math.abs(w);
    if (!(err <= tol)) {
      const excess = Number.isFinite(err) ? err / (tol || 1e-300) : Infinity;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (worst >= 0) assert.unreachable(`${what}[${worst}]: got ${got[worst]}, want ${want[worst]} (rtol ${rtol}, atol ${atol})`);
}

export function closeScalar(got: number, want: number, rtol: number, atol = 0, what = 'value'): void {
  close([got], [want], rtol, atol, what);
}

/**
 * Central differences (f(x + h·e_n) − f(x − h·e_n)) / 2h of a float64 function of x, for every n
 * that `skip` does not exclude (0 there).
 */
export function centralDiff(x: ArrayLike<number>, f: (x: Float64Array) => number, h: number, skip: (n: number) => boolean = () => false): Float64Array {
  const fd = new Float64Array(x.length);
  for (let n = 0; n < fd.length; n++) {
    if (skip(n)) continue;
    const p = Float64Array.from(x), m = Float64Array.from(x);
    p[n] += h;
    m[n] -= h;
    fd[n] = (f(p) - f(m)) / (2 * h);
  }
  return fd;
}

/** Every file under dir (relative path -> bytes, base64), to show that a run left nothing changed. */
export function dirSnapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), fs.readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}
