'use strict';
// grpoLoss from two builds of the addon in one process, the bench's N = 1M configuration
// (S = 1024, T = 1024, dapo, gradLogp out) with and without oldLogp / refLogp (beta 0.04, k3):
// CPU time (user + sys) per call at 1 thread (GRPO_NUM_THREADS=1, set here before either addon
// loads; the box is shared, CPU time is steadier than wall time), median of 7 blocks, A and B
// alternating block by block. The native arguments are the ones lib/ builds (captured from one
// grpoLossSync call through the tree's addon), so both builds get the same call.
// Usage: node --import tsx bench/ab_grpo_loss.js A.node B.node   (results: bench/results/small-ops.md)
process.env.GRPO_NUM_THREADS = '1';
const path = require('path');
const A = require(path.resolve(process.argv[2]));
const B = require(path.resolve(process.argv[3]));
const lib = require(path.resolve(__dirname, '..', 'lib'));
const addon = require(path.resolve(__dirname, '..', 'lib', 'native.ts')).native();
let s = 7; const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
const N = 1 << 20, S = 1024;
const logp = new Float32Array(N).map(() => -rnd() * 2), adv = new Float32Array(S).map(() => rnd() - 0.5);
const oldLogp = logp.map((x) => x + (rnd() - 0.5) * 0.4), refLogp = logp.map((x) => x + (rnd() - 0.5) * 0.4);
const mask = new Uint8Array(N).fill(1), gradLogp = new Float32Array(N);
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
function cpu(f, reps) { const c0 = process.cpuUsage(); for (let i = 0; i < reps; i++) f(); const c = process.cpuUsage(c0); return (c.user + c.system) / 1e3 / reps; }
for (const [name, extra] of [['plain', {}], ['oldLogp', { oldLogp }], ['refLogp k3', { refLogp, beta: 0.04 }], ['old+ref', { oldLogp, refLogp, beta: 0.04 }]]) {
  let args = null;
  const orig = addon.grpoLoss;
  addon.grpoLoss = (a, async) => { args = a; return orig.call(addon, a, async); };
  lib.grpoLossSync({ logp, advantages: adv, mask, epsilon: 0.2, lossType: 'dapo', ...extra, out: { gradLogp } });
  addon.grpoLoss = orig;
  const la = A.grpoLoss(args, false).loss, lb = B.grpoLoss(args, false).loss;
  const t = { A: [], B: [] };
  for (let r = 0; r < 7; r++) for (const [k, X] of (r % 2 ? [['A', A], ['B', B]] : [['B', B], ['A', A]])) t[k].push(cpu(() => X.grpoLoss(args, false), 6));
  console.log(`${name.padEnd(11)} A ${med(t.A).toFixed(2)} ms  B ${med(t.B).toFixed(2)} ms  B/A ${(med(t.B) / med(t.A)).toFixed(3)}  loss A ${la} B ${lb}${la === lb ? ' (same)' : ' (DIFFERENT)'}`);
}
