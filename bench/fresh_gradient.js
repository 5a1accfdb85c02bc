'use strict';
// grpoLossFromLogits with the default gradient (issue 7 item 19), side by side in one run:
//   fresh   - a new N×V gradient per call (what the default did before: new Float32Array(N·V)),
//   default - no out.gradLogits: the library's pool (native/common/buffer_pool.cc) hands back
//             the memory of an earlier default gradient once the caller has dropped it,
//   reused  - the caller passes the same out.gradLogits every call (the fastest possible).
// Each call's result is dropped before the next, as a training loop does. Per variant: median
// wall ms of the async form, and the longest event-loop stall seen by a 1 ms interval while it
// ran. Usage: node --import tsx bench/fresh_gradient.js [N] [V] [reps]
const lib = require('../lib');
const { native } = require('../lib/native');

const N = +(process.argv[2] || 256), V = +(process.argv[3] || 151936), REPS = +(process.argv[4] || 5);
const S = 16;
const logits = new Float32Array(N * V);
{
  let s = 12345;
  const chunk = Math.min(logits.length, 1 << 20);
  for (let i = 0; i < chunk; i++) logits[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296) * 8 - 4;
  for (let i = chunk; i < logits.length; i += chunk) logits.set(logits.subarray(0, Math.min(chunk, logits.length - i)), i);
}
const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
const advantages = new Float32Array(S).map((_, i) => (i % 3) - 1);
const oldLogp = new Float32Array(N).fill(-11.5);
const common = { logits, vocabSize: V, targets, advantages, oldLogp };
const kept = new Float32Array(N * V);
const variants = {
  fresh: () => lib.grpoLossFromLogits({ ...common, out: { gradLogits: new Float32Array(N * V) } }),
  default: () => lib.grpoLossFromLogits(common),
  reused: () => lib.grpoLossFromLogits({ ...common, out: { gradLogits: kept } }),
};

async function timed(fn) {
  let last = performance.now(), stall = 0;
  const iv = setInterval(() => {
    const t = performance.now();
    stall = Math.max(stall, t - last);
    last = t;
  }, 1);
  const t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  clearInterval(iv);
  return { ms, stall, loss: r.loss };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

(async () => {
  const os = require('os');
  console.log(`N=${N} V=${V} float32 (${((N * V * 4) / 2 ** 20).toFixed(0)} MiB gradient), ${lib.backend().cpuIsa}, ${lib.numThreads()} threads, median of ${REPS} after 1 warm-up, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const res = { fresh: [], default: [], reused: [] };
  for (const k of Object.keys(variants)) await timed(variants[k]);  // warm-up
  for (let r = 0; r < REPS; r++)
    for (const k of Object.keys(variants)) res[k].push(await timed(variants[k]));  // interleaved
  const loss = res.reused[0].loss;
  for (const k of Object.keys(res)) {
    const ms = median(res[k].map((x) => x.ms)), stall = Math.max(...res[k].map((x) => x.stall));
    const same = res[k].every((x) => x.loss === loss) ? 'same loss' : 'LOSS DIFFERS';
    console.log(`${k.padEnd(8)} ${ms.toFixed(0).padStart(7)} ms  (${(ms / median(res.reused.map((x) => x.ms))).toFixed(2)}× reused)  max event-loop stall ${stall.toFixed(0)} ms  ${same}`);
  }
  console.log('pool:', JSON.stringify(native().pooledMemory()), `load at end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
})();
