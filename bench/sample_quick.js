'use strict';
// Quick timing of the CPU sample kernel (spec §9) for the kernel author's before/after checks
// (not a test; the full suite is bench/run.js). Median of REPS runs per case, wall ms.
// Usage (from the repo root): node --import tsx bench/sample_quick.js [R] [V] [reps] [scale]
// GRPO_KERNELS_ADDON picks a build, GRPO_CPU_ISA a lower ISA, GRPO_NUM_THREADS the threads.
// CASE=<prefix> runs only the cases whose name starts with it. The torch peer (vLLM's sort-based
// top-k/top-p fallback) is bench/peers/torch_peers.py, e.g.
//   python3 bench/peers/torch_peers.py '{"kernel":"sample","impl":"torch_vllm","params":
//     {"R":64,"V":151936,"temperature":1,"topK":50,"topP":0.9,"scale":3}}'
const lib = require('../lib');

const R = +(process.argv[2] || 64), V = +(process.argv[3] || 151936), REPS = +(process.argv[4] || 15);
const SCALE = +(process.argv[5] || 3);  // logit std: ~3 is typical of LM heads at τ = 1

function randn(n, scale) {
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next())), t = 2 * Math.PI * next();
    a[i] = r * Math.cos(t) * scale;
    if (i + 1 < n) a[i + 1] = r * Math.sin(t) * scale;
  }
  return a;
}
function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }

const logits = randn(R * V, SCALE);
const out = { tokens: new Int32Array(R), logp: new Float32Array(R) };
const cases = [
  ['top-k 50 + top-p 0.9', { topK: 50, topP: 0.9 }],
  ['plain temperature 1', {}],
  ['top-p 0.9', { topP: 0.9 }],
  ['top-p 0.95, τ 0.7', { topP: 0.95, temperature: 0.7 }],
  ['min-p 0.1', { minP: 0.1 }],
  ['top-k 50', { topK: 50 }],
  ['greedy', { temperature: 0 }],
];
console.log(`sample: R=${R} V=${V} f32, logit std ${SCALE}, ${lib.numThreads()} threads, isa ${lib.backend().cpuIsa}, median of ${REPS}`);
const results = {};
for (const [name, o] of cases.filter(([n]) => !process.env.CASE || n.startsWith(process.env.CASE))) {
  const args = { logits, vocabSize: V, seed: 42, out, ...o };
  lib.sampleSync(args);
  const t = [], c = [];
  for (let i = 0; i < REPS; i++) {
    args.step = i;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    lib.sampleSync(args);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const dc = process.cpuUsage(c0);
    c.push((dc.user + dc.system) / 1e3);
  }
  results[name] = median(t);
  const gbs = (R * V * 4) / (results[name] * 1e6);
  // CPU ms (all threads): on a shared machine it shows the kernel's own cost
  console.log(`  ${name.padEnd(24)} ${results[name].toFixed(2).padStart(8)} ms wall  ${median(c).toFixed(1).padStart(8)} ms cpu  (${gbs.toFixed(1)} GB/s of logits)`);
}
