'use strict';
// Two builds of the addon side by side in one process for the small ops: klPenalty (k3, k1) at
// n = 4M and groupAdvantages at S = 1M, G = 16 (every output given), each the raw native call
// with the arguments lib/ builds, A and B alternating (order flipped every other repetition).
// Prints the median wall ms and the median CPU ms (user + sys) per call, at 1 and 2 threads,
// and whether A and B wrote the same bits.
// Usage: node --import tsx bench/ab_small_ops.js A.node B.node [reps]
const path = require('path');
const A = require(path.resolve(process.argv[2]));
const B = require(path.resolve(process.argv[3]));
const REPS = +(process.argv[4] || 21);
const lib = require(path.resolve(__dirname, '../lib'));
const { native } = require(path.resolve(__dirname, '../lib/native'));

// the raw arguments lib/ passes to the addon: record one call through a patched addon
function capture(name, call) {
  const addon = native(), orig = addon[name];
  let args;
  addon[name] = (a, async) => { args = a; return orig.call(addon, a, async); };
  try { call(); } finally { addon[name] = orig; }
  return args;
}
let s = 7; const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
const n = 1 << 22;
const logp = new Float32Array(n).map(() => -rnd()), refLogp = new Float32Array(n).map(() => -rnd());
const kl = new Float32Array(n), grad = new Float32Array(n);
const S = 1 << 20, G = 16, NG = S / G;
const rewards = new Float32Array(S).map(() => (rnd() < 0.5 ? 1 : 0));
const out = { advantages: new Float32Array(S), rewards: new Float32Array(S), groupMean: new Float32Array(NG), groupStd: new Float32Array(NG), groupIds: new Int32Array(NG) };
const cases = [
  ['klPenalty k3 n=4M', 'klPenalty', capture('klPenalty', () => lib.klPenaltySync({ logp, refLogp, estimator: 'k3', out: { kl, grad } })), [kl, grad]],
  ['klPenalty k1 n=4M', 'klPenalty', capture('klPenalty', () => lib.klPenaltySync({ logp, refLogp, estimator: 'k1', out: { kl, grad } })), [kl, grad]],
  ['groupAdvantages S=1M G=16', 'groupAdvantages', capture('groupAdvantages', () => lib.groupAdvantagesSync({ rewards, groupSize: G, out })), [out.advantages, out.rewards, out.groupMean, out.groupStd]],
];
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const snap = (outs) => outs.map((o) => Buffer.from(new Uint8Array(o.buffer, o.byteOffset, o.byteLength)));
for (const threads of [1, 2]) {
  A.setNumThreads(threads); B.setNumThreads(threads);
  for (const [label, f, args, outs] of cases) {
    A[f](args, false); const ra = snap(outs); B[f](args, false); const rb = snap(outs);
    const same = ra.every((x, i) => x.equals(rb[i]));
    const t = { A: [], B: [] }, c = { A: [], B: [] };
    for (let r = 0; r < REPS; r++) for (const [k, X] of (r % 2 ? [['A', A], ['B', B]] : [['B', B], ['A', A]])) {
      const c0 = process.cpuUsage(), t0 = performance.now();
      X[f](args, false);
      t[k].push(performance.now() - t0); const cu = process.cpuUsage(c0); c[k].push((cu.user + cu.system) / 1e3);
    }
    console.log(`${threads} thr ${label.padEnd(26)} wall A ${med(t.A).toFixed(3)} B ${med(t.B).toFixed(3)} B/A ${(med(t.B) / med(t.A)).toFixed(3)} | cpu A ${med(c.A).toFixed(3)} B ${med(c.B).toFixed(3)} B/A ${(med(c.B) / med(c.A)).toFixed(3)} | same bits ${same}`);
  }
}
