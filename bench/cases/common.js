'use strict';
// Shared by the Node trial processes: seeded input data and the two timing loops.
//
// Shapes (as in spec/grpo-math.md): S sequences of T tokens, N = S·T rows, V vocabulary
// entries, R sampling rows. Logits are N(0, σ²) with σ = 2 (LOGIT_SCALE), the same
// distribution the torch peers draw (their values differ: each process makes its own).

const Benchmark = require('benchmark');

const LOGIT_SCALE = 2;

/** mulberry32: small, fast, seeded (the same generator the tests use). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randn(r, n, scale = 1) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12), w = 2 * Math.PI * r();
    const m = Math.sqrt(-2 * Math.log(u)) * scale;
    a[i] = m * Math.cos(w);
    if (i + 1 < n) a[i + 1] = m * Math.sin(w);
  }
  return a;
}

// A prime-length block of normals tiled over the big tensor: 2 s instead of 30 s of
// Box-Muller for 311 M logits, and no two rows of a [N, 151936] tensor are equal.
const BLOCK = 1000003;

/** Float32Array [n] of N(0, scale²) values. */
function normalLogits(n, seed, scale = LOGIT_SCALE) {
  const block = randn(rng(seed), Math.min(n, BLOCK), scale);
  const out = new Float32Array(n);
  for (let off = 0; off < n; off += block.length) out.set(block.subarray(0, Math.min(block.length, n - off)), off);
  return out;
}

/** float32 -> bfloat16 bits, round to nearest even (finite inputs). */
function toBf16(f32) {
  const u32 = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < u32.length; i++) {
    const x = u32[i];
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bf16 logits [n], tiled like normalLogits (converting 311 M floats one by one is slow). */
function normalLogitsBf16(n, seed, scale = LOGIT_SCALE) {
  const block = toBf16(randn(rng(seed), Math.min(n, BLOCK), scale));
  const out = new Uint16Array(n);
  for (let off = 0; off < n; off += block.length) out.set(block.subarray(0, Math.min(block.length, n - off)), off);
  return out;
}

function randint(r, n, hi) {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * hi);
  return a;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;  // ms

function summary(samplesMs, method) {
  const s = [...samplesMs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median_ms: median, min_ms: s[0], max_ms: s[s.length - 1], samples: s.length, method };
}

/**
 * The big kernels: `warmup` untimed calls, then `reps` timed calls, median. `fn` may return a
 * Promise (it is awaited inside the timed region). `before` runs untimed before each call
 * (e.g. restoring logits that an in-place call overwrote).
 */
async function medianOfK(fn, { warmup = 1, reps = 5, before } = {}) {
  const t = [];
  for (let i = 0; i < warmup + reps; i++) {
    if (before) before();
    const t0 = now();
    const r = fn();
    if (r && typeof r.then === 'function') await r;
    const dt = now() - t0;
    if (i >= warmup) t.push(dt);
  }
  return summary(t, `median of ${reps} after ${warmup} warm-up`);
}

/** The small ops: benchmark.js (sync function), median of its per-call samples. */
function benchmarkJs(fn, { maxTime = 2 } = {}) {
  const b = new Benchmark('case', fn, { maxTime, minSamples: 10 });
  b.run({ async: false });
  if (b.error) throw b.error;
  const ms = b.stats.sample.map((x) => x * 1e3);
  return summary(ms, `benchmark.js, ${ms.length} samples of ${b.count} calls`);
}

module.exports = { LOGIT_SCALE, rng, randn, normalLogits, normalLogitsBf16, toBf16, randint, medianOfK, benchmarkJs, now };
