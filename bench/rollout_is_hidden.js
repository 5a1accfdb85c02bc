'use strict';
// What the rollout IS correction costs in grpoLossFromHidden (CPU): the same call without it
// (token level, clip: the one-forward route, 3 matmuls per chunk) and with it (token_truncate:
// the loss core needs every row's ℓ first, so the two-pass route, 4 matmuls per chunk), side by
// side in one process, interleaved, single thread, CPU time (process.cpuUsage: robust to the load
// of a shared box). Before this change a trainer run with IS correction left the hidden path for
// the logits path (N×V logits materialised); the hidden path with IS keeps the chunked memory.
// Usage (repo root): node --import tsx bench/rollout_is_hidden.js [N] [V] [D] [reps]
//   defaults 128 16384 256 7; prints a markdown section (appended to bench/results/rollout_is_hidden.md by hand).
const os = require('os');
const { grpoLossFromHiddenSync, setNumThreads } = require('../lib');

const [N, V, D, reps] = [128, 16384, 256, 7].map((d, i) => (process.argv[2 + i] ? +process.argv[2 + i] : d));
const S = 8, T = N / S;
let s = 12345;
const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
const hidden = Float32Array.from({ length: N * D }, () => rnd());
const weight = Float32Array.from({ length: V * D }, () => 0.1 * rnd());
const targets = Int32Array.from({ length: N }, () => Math.floor((rnd() + 0.5) * V) % V);
const advantages = Float32Array.from({ length: S }, () => rnd());
const base = { hidden, weight, hiddenSize: D, vocabSize: V, targets, advantages, gradWeight: new Float32Array(V * D) };
const lp = grpoLossFromHiddenSync({ ...base, gradHidden: false, gradWeight: false }).logp;
const oldLogp = Float32Array.from(lp, (x) => x + 0.1 * rnd());
const rolloutLogp = Float32Array.from(oldLogp, (x) => x + 0.5 * rnd());
const variants = {
  'no IS (one forward)': { oldLogp },
  'token_truncate IS (two passes)': { oldLogp, rolloutLogp, rolloutImportanceSamplingMode: 'token_truncate' },
};
setNumThreads(1);
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const load0 = os.loadavg()[0];
for (let r = 0; r < reps + 1; r++) {
  for (const [k, o] of Object.entries(variants)) {
    const c0 = process.cpuUsage();
    grpoLossFromHiddenSync({ ...base, ...o });
    const c = process.cpuUsage(c0);
    if (r > 0) times[k].push((c.user + c.system) / 1e3);  // the first round warms up
  }
}
const load1 = os.loadavg()[0];
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ref = median(times['no IS (one forward)']);
console.log(`\n## ${new Date().toISOString().slice(0, 10)}: N=${N}, V=${V}, D=${D}, float32, 1 thread, ${reps} reps\n`);
console.log(`Machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; load average ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at end.`);
console.log(`Command: node --import tsx bench/rollout_is_hidden.js ${N} ${V} ${D} ${reps}\n`);
console.log('| variant | median CPU ms | ratio |');
console.log('|---|---|---|');
for (const [k, t] of Object.entries(times)) console.log(`| ${k} | ${median(t).toFixed(0)} | ${(median(t) / ref).toFixed(2)} |`);
