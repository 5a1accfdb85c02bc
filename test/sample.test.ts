import { spawnSync } from 'child_process';
import * as path from 'path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { numThreads, sample, sampleSync, setNumThreads } from '../lib';
import { native } from '../lib/native';
import { close, randn, rng } from './helpers';
import { chiSquare, chiSquareCritical, refSampleRow, SampleParams } from './reference/sample';

// ---------------------------------------------------------------- helpers
function repeatRow(row: Float32Array, R: number): Float32Array {
  const out = new Float32Array(R * row.length);
  for (let r = 0; r < R; r++) out.set(row, r * row.length);
  return out;
}

function counts(tokens: Int32Array, V: number): Float64Array {
  const c = new Float64Array(V);
  for (const t of tokens) c[t]++;
  return c;
}

function bf16ToF32(h: number): number {
  const b = new Uint32Array([h << 16]);
  return new Float32Array(b.buffer)[0];
}
function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// Many independent draws of one distribution: R copies of the same row, rowIds 0..R-1.
function drawMany(row: Float32Array, p: SampleParams, R: number, seed = 1234) {
  return sampleSync({
    logits: repeatRow(row, R),
    vocabSize: row.length,
    temperature: p.temperature,
    topK: p.topK ?? 0,
    topP: p.topP ?? 1,
    minP: p.minP ?? 0,
    seed,
    step: 7,
    truncatedLogprobs: true,
  });
}

// ---------------------------------------------------------------- Philox
test('philox 4x32-10 matches the Random123 known-answer vectors', () => {
  const philox = native().philox as (c: Uint32Array, k: Uint32Array) => Uint32Array;
  const hex = (a: Uint32Array) => Array.from(a, (x) => x.toString(16).padStart(8, '0')).join(' ');
  assert.is(hex(philox(new Uint32Array([0, 0, 0, 0]), new Uint32Array([0, 0]))), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  const f = 0xffffffff;
  assert.is(hex(philox(new Uint32Array([f, f, f, f]), new Uint32Array([f, f]))), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.is(
    hex(philox(new Uint32Array([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344]), new Uint32Array([0xa4093822, 0x299f31d0]))),
    'd16cfe09 94fdcceb 5001e420 24126ea1',
  );
  assert.throws(() => philox(new Uint32Array(3), new Uint32Array(2)), /counter/);
  assert.throws(() => philox(new Uint32Array(4), new Int32Array(2) as unknown as Uint32Array), /key/);
});

// ---------------------------------------------------------------- distribution (chi-square)
const R_DRAWS = 20000;
const cases: { name: string; V: number; p: SampleParams; wrong?: SampleParams }[] = [
  { name: 'plain temperature', V: 40, p: { temperature: 0.8 }, wrong: { temperature: 1 } },
  { name: 'plain temperature, V=300 (SIMD scan)', V: 300, p: { temperature: 1.3 }, wrong: { temperature: 1.15 } },
  { name: 'top-k', V: 40, p: { temperature: 1, topK: 7 }, wrong: { temperature: 1, topK: 8 } },
  { name: 'top-p', V: 40, p: { temperature: 1, topP: 0.7 }, wrong: { temperature: 1 } },
  { name: 'top-p, V=5000 (chunked selection)', V: 5000, p: { temperature: 0.5, topP: 0.6 }, wrong: { temperature: 0.5, topP: 0.8 } },
  { name: 'min-p', V: 40, p: { temperature: 1, minP: 0.2 }, wrong: { temperature: 1 } },
  { name: 'min-p, V=3000 (SIMD scan)', V: 3000, p: { temperature: 0.7, minP: 0.05 }, wrong: { temperature: 0.7, minP: 0.1 } },
  // the three filters compose to the strictest threshold: here top-k 50 -> 20, top-p -> 14, min-p -> 9
  { name: 'top-k + top-p + min-p', V: 50, p: { temperature: 0.9, topK: 20, topP: 0.95, minP: 0.05 }, wrong: { temperature: 0.9, topK: 20, topP: 0.95 } },
];
for (const c of cases) {
  test(`sample ${c.name}: chi-square goodness of fit against the exact truncated distribution`, () => {
    const row = randn(rng(c.V + 17), c.V, 1.5);
    const ref = refSampleRow(row, c.p);
    const got = drawMany(row, c.p, R_DRAWS);
    const obs = counts(got.tokens, c.V);
    for (let v = 0; v < c.V; v++) if (!ref.kept[v]) assert.is(obs[v], 0, `filtered token ${v} was emitted`);
    const { stat, df } = chiSquare(obs, ref.probs);
    const crit = chiSquareCritical(df);
    assert.ok(stat < crit, `chi-square ${stat.toFixed(1)} >= ${crit.toFixed(1)} (df ${df})`);
    // the test has power: the same draws fail against a deliberately wrong distribution
    const wrong = refSampleRow(row, c.wrong!);
    const w = chiSquare(obs, wrong.probs);
    assert.ok(w.stat > chiSquareCritical(w.df), `wrong distribution not rejected: ${w.stat} (df ${w.df})`);
    // log-probs of every draw: whole-vocab log-softmax and the truncated distribution
    const wantLogp = new Float64Array(R_DRAWS);
    const wantTrunc = new Float64Array(R_DRAWS);
    for (let i = 0; i < R_DRAWS; i++) {
      wantLogp[i] = ref.logSoftmax[got.tokens[i]];
      wantTrunc[i] = Math.log(ref.probs[got.tokens[i]]);
    }
    close(got.logp, wantLogp, 1e-5, 1e-6, 'logp');
    close(got.truncLogp!, wantTrunc, 1e-5, 1e-6, 'truncLogp');
  });
}

test('sample top-k keeps every entry tied with the k-th value', () => {
  const row = new Float32Array([1, 5, 3, 3, 3, -2, 0, 3, 4.5, -1]);
  const got = drawMany(row, { temperature: 3, topK: 3 }, 4000);
  const obs = counts(got.tokens, row.length);
  // kept: 5, 4.5 and all four 3s
  for (const v of [0, 5, 6, 9]) assert.is(obs[v], 0, `token ${v} is below the k-th value`);
  for (const v of [1, 2, 3, 4, 7, 8]) assert.ok(obs[v] > 0, `token ${v} (tied or above) never drawn`);
  const ref = refSampleRow(row, { temperature: 3, topK: 3 });
  const { stat, df } = chiSquare(obs, ref.probs);
  assert.ok(stat < chiSquareCritical(df), `chi-square ${stat}`);
});

test('sample top-p keeps entries tied with the last one of the prefix', () => {
  // masses (τ=1): 0 is dominant; p=0.5 is reached at the first entry of the tie {1,2,3}? no:
  // entry 0 alone has mass < 0.5, so the prefix ends inside the tie, and the whole tie is kept
  const row = new Float32Array([2, 1.5, 1.5, 1.5, -3, -3]);
  const got = drawMany(row, { temperature: 1, topP: 0.5 }, 4000);
  const obs = counts(got.tokens, row.length);
  assert.is(obs[4] + obs[5], 0);
  for (const v of [0, 1, 2, 3]) assert.ok(obs[v] > 0, `token ${v} never drawn`);
});

test('sample greedy: first index of the maximum, log-prob at τ = 1, truncLogp 0', () => {
  const V = 1000;
  const z = randn(rng(3), 3 * V);
  z[V + 10] = 9;
  z[V + 500] = 9; // tie: first index wins
  const got = sampleSync({ logits: z, vocabSize: V, temperature: 0, seed: 5, truncatedLogprobs: true, topK: 3, topP: 0.2 });
  for (let r = 0; r < 3; r++) {
    const row = z.subarray(r * V, (r + 1) * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    assert.is(got.tokens[r], best);
    const ref = refSampleRow(row, { temperature: 1 });
    close([got.logp[r]], [ref.logSoftmax[best]], 1e-5, 1e-6, 'greedy logp');
    assert.is(got.truncLogp![r], 0);
  }
  assert.is(got.tokens[1], 10);
});

// ---------------------------------------------------------------- reproducibility
function mixedBatch(R: number, V: number, seed: number) {
  const r = rng(seed);
  const logits = randn(r, R * V, 2);
  const temperature = new Float32Array(R);
  const topK = new Int32Array(R);
  const topP = new Float32Array(R);
  const minP = new Float32Array(R);
  for (let i = 0; i < R; i++) {
    temperature[i] = [0, 0.7, 1, 1.5][i % 4];
    topK[i] = [0, 1, 50, V + 3][(i >> 2) % 4];
    topP[i] = [1, 0.9, 0.3][i % 3];
    minP[i] = [0, 0.05, 0.5][(i >> 1) % 3];
  }
  return { logits, vocabSize: V, temperature, topK, topP, minP };
}

test('sample: identical tokens at 1 and 2 threads, sync and async, and for a batch split with rowIds', async () => {
  const R = 48;
  const V = 6007;
  const b = mixedBatch(R, V, 11);
  const saved = numThreads();
  try {
    setNumThreads(1);
    const one = sampleSync({ ...b, seed: 99, step: 3, truncatedLogprobs: true });
    setNumThreads(2);
    const two = sampleSync({ ...b, seed: 99, step: 3, truncatedLogprobs: true });
    const asy = await sample({ ...b, seed: 99, step: 3, truncatedLogprobs: true });
    assert.equal(Array.from(two.tokens), Array.from(one.tokens));
    assert.equal(Array.from(asy.tokens), Array.from(one.tokens));
    close(two.logp, one.logp, 1e-6, 1e-7, 'logp across threads');
    // split: rows 0..19 and 20..47 in two calls, with their original row ids
    const h = 20;
    const part = (lo: number, hi: number) =>
      sampleSync({
        logits: b.logits.subarray(lo * V, hi * V),
        vocabSize: V,
        temperature: b.temperature.subarray(lo, hi),
        topK: b.topK.subarray(lo, hi),
        topP: b.topP.subarray(lo, hi),
        minP: b.minP.subarray(lo, hi),
        seed: 99,
        step: 3,
        rowIds: Array.from({ length: hi - lo }, (_, i) => lo + i),
      }).tokens;
    assert.equal([...part(0, h), ...part(h, R)], Array.from(one.tokens));
  } finally {
    setNumThreads(saved);
  }
});

test('sample: different seeds and steps give different tokens; bigint seeds', () => {
  const V = 500;
  const R = 64;
  const logits = randn(rng(4), R * V, 0.3); // flat: almost every draw is a different token
  const base = sampleSync({ logits, vocabSize: V, seed: 1 }).tokens;
  const diff = (a: Int32Array) => a.reduce((n, t, i) => n + (t !== base[i] ? 1 : 0), 0);
  assert.ok(diff(sampleSync({ logits, vocabSize: V, seed: 2 }).tokens) > R / 2, 'seed');
  assert.ok(diff(sampleSync({ logits, vocabSize: V, seed: 1, step: 1 }).tokens) > R / 2, 'step');
  assert.ok(diff(sampleSync({ logits, vocabSize: V, seed: 1 + 2 ** 32 }).tokens) > R / 2, 'seed high word');
  assert.equal(Array.from(sampleSync({ logits, vocabSize: V, seed: 1n }).tokens), Array.from(base));
  assert.equal(
    Array.from(sampleSync({ logits, vocabSize: V, seed: 2n ** 64n - 1n }).tokens),
    Array.from(sampleSync({ logits, vocabSize: V, seed: 2n ** 64n - 1n }).tokens),
  );
  // rowIds decide the stream: the same row id twice gives the same token for the same logits
  const two = repeatRow(logits.subarray(0, V), 2);
  const t = sampleSync({ logits: two, vocabSize: V, seed: 3, rowIds: [5, 5] }).tokens;
  assert.is(t[0], t[1]);
});

test('sample: bfloat16 and float16 logits give the tokens of their float32 values', () => {
  const R = 16;
  const V = 3001;
  const r = rng(21);
  const b = mixedBatch(R, V, 22);
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const bits = new Uint16Array(R * V);
    const f32 = new Float32Array(R * V);
    for (let i = 0; i < bits.length; i++) {
      // sign, an exponent in a normal range, random mantissa
      const h =
        dtype === 'bfloat16'
          ? ((r() < 0.5 ? 0x8000 : 0) | ((124 + Math.floor(r() * 5)) << 7) | Math.floor(r() * 128))
          : ((r() < 0.5 ? 0x8000 : 0) | ((12 + Math.floor(r() * 5)) << 10) | Math.floor(r() * 1024));
      bits[i] = h;
      f32[i] = dtype === 'bfloat16' ? bf16ToF32(h) : f16ToF32(h);
    }
    const a = sampleSync({ ...b, logits: bits, dtype, seed: 8, truncatedLogprobs: true });
    const c = sampleSync({ ...b, logits: f32, seed: 8, truncatedLogprobs: true });
    assert.equal(Array.from(a.tokens), Array.from(c.tokens), dtype);
    assert.equal(Array.from(a.logp), Array.from(c.logp), dtype);
  }
});

test('sample: the generic (scalar) kernel gives the same tokens as the AVX-512 and AVX2 kernels', () => {
  // The scalar path computes every key exactly (no pruning, no selection buffers): it is the
  // algorithm as written. The child process forces it with GRPO_CPU_ISA=generic.
  const script = `
    const { sampleSync } = require(${JSON.stringify(path.resolve(__dirname, '../lib'))});
    const { rng, randn } = require(${JSON.stringify(path.resolve(__dirname, 'helpers'))});
    const out = [];
    for (const [R, V, seed] of [[40, 20011, 1], [24, 64, 2], [24, 200, 3], [8, 151936, 4], [48, 4099, 5]]) {
      const r = rng(seed);
      const logits = randn(r, R * V, seed === 4 ? 3 : 2);
      if (seed === 2 || seed === 5) for (let i = 0; i < logits.length; i++) logits[i] = Math.round(logits[i] * 2) / 2; // many ties
      if (seed === 5) for (let i = 0; i < logits.length; i += 3) logits[i] = -Infinity;
      const t = new Float32Array(R), k = new Int32Array(R), p = new Float32Array(R), m = new Float32Array(R);
      for (let i = 0; i < R; i++) { t[i] = [0, 0.6, 1, 2][i % 4]; k[i] = [0, 1, 40, 5000][(i >> 2) % 4];
        p[i] = [1, 0.95, 0.5][i % 3]; m[i] = [0, 0.02, 0.3][(i >> 1) % 3]; }
      const res = sampleSync({ logits, vocabSize: V, temperature: t, topK: k, topP: p, minP: m, seed: 77 + seed, step: seed, truncatedLogprobs: true });
      out.push(Array.from(res.tokens), Array.from(res.logp), Array.from(res.truncLogp));
    }
    process.stdout.write(JSON.stringify(out));`;
  const run = (isa: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: path.resolve(__dirname, '..'),
      encoding: 'utf8',
      env: { ...process.env, GRPO_CPU_ISA: isa },
      maxBuffer: 64 << 20,
    });
    assert.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as number[][];
  };
  const best = native().backend().cpuIsa;
  const generic = run('generic');
  for (const isa of best === 'avx512' ? ['avx512', 'avx2'] : best === 'avx2' ? ['avx2'] : []) {
    const simd = run(isa);
    for (let i = 0; i < simd.length; i += 3) {
      assert.equal(simd[i], generic[i], `tokens of case ${i / 3} (${isa} vs generic)`);
      close(simd[i + 1], generic[i + 1], 1e-6, 1e-7, `logp ${isa} vs generic`);
      close(simd[i + 2], generic[i + 2], 1e-6, 1e-7, `truncLogp ${isa} vs generic`);
    }
  }
});

// ---------------------------------------------------------------- non-finite logits
test('sample: NaN and infinite logits are deterministic and never out of range', () => {
  const V = 130;
  const rows: Float32Array[] = [];
  rows.push(new Float32Array(V).fill(-Infinity)); // all -inf
  rows.push(new Float32Array(V).fill(NaN)); // all NaN
  const withInf = randn(rng(1), V);
  withInf[77] = Infinity;
  withInf[99] = Infinity;
  rows.push(withInf);
  const someNaN = randn(rng(2), V);
  for (let v = 0; v < V; v += 2) someNaN[v] = NaN;
  rows.push(someNaN);
  const logits = new Float32Array(rows.length * V);
  rows.forEach((r, i) => logits.set(r, i * V));
  for (const opts of [{}, { topK: 5 }, { topP: 0.5 }, { minP: 0.1 }, { temperature: 0 }]) {
    for (let s = 0; s < 20; s++) {
      const got = sampleSync({ logits, vocabSize: V, seed: s, truncatedLogprobs: true, ...opts });
      assert.is(got.tokens[0], 0);
      assert.is(got.tokens[1], 0);
      assert.ok(Number.isNaN(got.logp[0]) && Number.isNaN(got.logp[1]));
      assert.is(got.tokens[2], 77);
      assert.is(got.tokens[3] % 2, 1, 'a NaN entry was drawn');
      assert.ok(Number.isFinite(got.logp[3]));
    }
  }
});

// ---------------------------------------------------------------- bad input
test('sample rejects bad input with named arguments', async () => {
  const logits = new Float32Array(20);
  const ok = { logits, vocabSize: 10, seed: 1 };
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ vocabSize: 3 }, /logits/],
    [{ vocabSize: 0 }, /vocabSize/],
    [{ vocabSize: 2.5 }, /vocabSize/],
    [{ logits: [1, 2] }, /logits/],
    // the option is `dtype` (messages used to name an internal 'logitsDtype')
    [{ logits: new Uint16Array(20) }, /for dtype but/],
    [{ logits: new Uint16Array(20), dtype: 'float32' }, /logits/],
    [{ dtype: 'int8' }, /for dtype but/],
    [{ temperature: -1 }, /temperature/],
    [{ temperature: NaN }, /temperature/],
    [{ temperature: new Float32Array(3) }, /temperature/],
    [{ temperature: new Float32Array([1, -0.5]) }, /temperature/],
    [{ topK: -1 }, /topK/],
    [{ topK: 1.5 }, /topK/],
    [{ topK: new Float32Array(2) }, /topK/],
    [{ topP: 0 }, /topP/],
    [{ topP: 1.01 }, /topP/],
    [{ topP: new Float32Array([0.5, NaN]) }, /topP/],
    [{ minP: -0.1 }, /minP/],
    [{ minP: 2 }, /minP/],
    [{ seed: -1 }, /seed/],
    [{ seed: 1.5 }, /seed/],
    [{ seed: 2 ** 53 }, /seed/],
    [{ seed: 2n ** 64n }, /seed/],
    [{ seed: '1' }, /seed/],
    [{ seed: undefined }, /seed/],
    [{ step: -1 }, /step/],
    [{ step: 2 ** 32 }, /step/],
    [{ rowIds: [1] }, /rowIds/],
    [{ rowIds: [1, -1] }, /rowIds/],
    [{ rowIds: new Int32Array(2) }, /rowIds/],
    [{ truncatedLogprobs: 1 }, /truncatedLogprobs/],
    [{ out: { tokens: new Int32Array(3) } }, /out\.tokens/],
    [{ out: { logp: new Float64Array(2) } }, /out\.logp/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => sampleSync({ ...ok, ...patch } as never), re, JSON.stringify(Object.keys(patch)));
  }
  assert.throws(() => sampleSync(null as never), /options/);
  let rejected = false;
  await sample({ ...ok, topP: 2 }).catch((e) => {
    rejected = e instanceof RangeError && /topP/.test(e.message);
  });
  assert.ok(rejected, 'async form rejects');
});

test('sample: malformed native calls and random option objects never crash', () => {
  const n = native();
  const good = () => ({
    R: 2, V: 5, logits: new Float32Array(10), logitsDtype: 'float32',
    temperature: new Float32Array([1, 1]), topK: new Int32Array(2), topP: new Float32Array([1, 1]),
    minP: new Float32Array(2), seedLo: 0, seedHi: 0, step: 0, tokens: new Int32Array(2), logp: new Float32Array(2),
  });
  const r = rng(5);
  const junk = [undefined, null, -1, 0, 1e12, NaN, 'x', [], {}, new Float32Array(1), new Int32Array(10), new Uint16Array(10), new Uint32Array(2)];
  const keys = Object.keys(good()).concat(['rowIds', 'truncLogp']);
  for (let i = 0; i < 3000; i++) {
    const a: Record<string, unknown> = good();
    const nk = 1 + Math.floor(r() * 3);
    for (let j = 0; j < nk; j++) a[keys[Math.floor(r() * keys.length)]] = junk[Math.floor(r() * junk.length)];
    try {
      n.sample(a, false);
    } catch (e) {
      assert.ok(e instanceof Error);
    }
    const o: Record<string, unknown> = { logits: new Float32Array(10), vocabSize: 5, seed: 1 };
    o[['logits', 'vocabSize', 'seed', 'temperature', 'topK', 'topP', 'minP', 'step', 'rowIds', 'dtype', 'out'][Math.floor(r() * 11)]] =
      junk[Math.floor(r() * junk.length)];
    try {
      const res = sampleSync(o as never);
      for (const t of res.tokens) assert.ok(t >= 0 && t < 5);
    } catch (e) {
      assert.ok(e instanceof TypeError || e instanceof RangeError, String(e));
    }
  }
  // extreme but valid option values
  const z = randn(rng(6), 4 * 100);
  for (const opts of [{ topK: 2 ** 31 - 1 }, { topP: 1e-30 }, { minP: 1 }, { temperature: 1e-30 }, { temperature: 1e30 }]) {
    const res = sampleSync({ logits: z, vocabSize: 100, seed: 3, truncatedLogprobs: true, ...opts });
    for (const t of res.tokens) assert.ok(t >= 0 && t < 100);
  }
});

test.run();
