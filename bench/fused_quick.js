'use strict';
// Quick timing of the CPU logprobs / grpoLossFromLogits kernels at one size (default the
// headline case, f32 N=2048 V=151936), for the kernel author's before/after checks; the full
// suite is bench/run.js. Median of REPS runs. Usage (from the repo root):
//   node --import tsx bench/fused_quick.js [N] [V] [dtype] [reps]
// GRPO_KERNELS_ADDON picks a build, GRPO_CPU_ISA a lower ISA, GRPO_NUM_THREADS the threads.
const lib = require('../lib');

const N = +(process.argv[2] || 2048), V = +(process.argv[3] || 151936);
const dtype = process.argv[4] || 'float32', REPS = +(process.argv[5] || 7);
const half = dtype !== 'float32';

// Pseudo-random logits in [−4, 4): one 1M-element chunk, copied over the buffer (fast to set up).
function fill(n) {
  const a = half ? new Uint16Array(n) : new Float32Array(n);
  const chunk = a.subarray(0, Math.min(n, 1 << 20));
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  let s = 12345;
  for (let i = 0; i < chunk.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const x = (s / 4294967296) * 8 - 4;
    if (!half) chunk[i] = x;
    else { f[0] = x; chunk[i] = dtype === 'bfloat16' ? u[0] >>> 16 : 0x3c00; }
  }
  for (let i = chunk.length; i < n; i += chunk.length) a.set(chunk.subarray(0, Math.min(chunk.length, n - i)), i);
  return a;
}
function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }
// Wall ms and CPU ms (user + system, all threads) per call: on a shared machine the CPU time
// shows the kernel's own cost when other processes steal the cores.
function time(fn) {
  const t = [], c = [];
  fn();  // warm-up (page faults of fresh outputs, thread start)
  for (let r = 0; r < REPS; r++) {
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const dc = process.cpuUsage(c0);
    c.push((dc.user + dc.system) / 1e3);
  }
  return [median(t), median(c), Math.min(...t)];
}

const logits = fill(N * V);
const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
const S = 16, T = N / S;
const advantages = new Float32Array(S).map((_, i) => (i % 3) - 1);
const oldLogp = new Float32Array(N).fill(-11.5);
const gradLogits = half ? new Uint16Array(N * V) : new Float32Array(N * V);
const bytes = N * V * (half ? 2 : 4);
const out = { logp: new Float32Array(N), entropy: new Float32Array(N) };
const common = { logits, dtype, vocabSize: V, targets, advantages, oldLogp, out };
const cases = [
  ['logprobs (1 read)', 1, () => lib.logprobsSync({ logits, dtype, vocabSize: V, targets, out })],
  ['fused gradient none (1 read)', 1, () => lib.grpoLossFromLogitsSync({ ...common, gradient: 'none' })],
  ['fused separate, token (1 read + 1 write)', 2, () => lib.grpoLossFromLogitsSync({ ...common, gradient: 'separate', out: { ...out, gradLogits } })],
  ['fused inplace, token (1 read + 1 write)', 2, () => lib.grpoLossFromLogitsSync({ ...common, gradient: 'inplace' })],
  ['fused separate, sequence (2 reads + 1 write)', 3, () => lib.grpoLossFromLogitsSync({ ...common, importanceSamplingLevel: 'sequence', gradient: 'separate', out: { ...out, gradLogits } })],
];
const only = process.env.CASES ? process.env.CASES.split(',').map(Number) : null;
console.log(`N=${N} V=${V} ${dtype}, ${lib.backend().cpuIsa}, ${lib.numThreads()} threads, median of ${REPS}`);
cases.forEach(([name, passes, fn], k) => {
  if (only && !only.includes(k)) return;
  const [ms, cpu, best] = time(fn);
  console.log(`${name.padEnd(46)} ${ms.toFixed(1).padStart(8)} ms  ${((passes * bytes) / ms / 1e6).toFixed(1).padStart(6)} GB/s  cpu ${cpu.toFixed(0)} ms  (min ${best.toFixed(1)} ms)`);
});
