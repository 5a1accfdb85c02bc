/**
 * Small seeded generators for the JS side of the trainer (data order, task generation).
 * Token sampling does not use these: it goes through the package's Philox-based `sample` op.
 * Everything here is a pure function of its seed, so a run is reproducible from its config.
 */

/** mulberry32: a fast 32-bit seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes integers into one 32-bit seed (splitmix-style), e.g. mixSeed(seed, step, round). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
    // also mix the high bits of values above 2^32
    const hi = Math.floor(p / 4294967296) >>> 0;
    if (hi) h = Math.imul(h ^ hi, 0x27d4eb2f) >>> 0;
  }
  return h >>> 0;
}

/** Integer in [lo, hi] (inclusive). */
export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** Fisher-Yates shuffle in place. */
export function shuffle<T>(a: T[], r: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A permutation of 0..n-1 from a seed. */
export function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  return shuffle(p, mulberry32(seed));
}
