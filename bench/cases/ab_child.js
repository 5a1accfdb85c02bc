'use strict';
// One A/B measurement in its own process (started by bench/ab.js): loads the package's lib/ from
// the given tree (so two checkouts, e.g. before and after a change, can be timed alternately in
// one run), times one op, and times its memory-traffic floor in the same process right before:
// a TypedArray copy moving the op's bytes (read + write). Prints "RESULT <json>".
//   node --import tsx bench/cases/ab_child.js <tree root> '<case JSON>'
const path = require('path');
const c = require('./common');

const root = process.argv[2];
const k = JSON.parse(process.argv[3]);
const lib = require(path.join(root, 'lib'));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
// Median of `reps` timed calls after one warm-up (the small ops run a few ms: enough reps that a
// preempted call does not move the median).
async function time(fn, reps) {
  await fn();
  const t = [];
  for (let i = 0; i < reps; i++) {
    const t0 = c.now();
    await fn();
    t.push(c.now() - t0);
  }
  return median(t);
}
// Floor: copy `bytes` (half read, half written) with TypedArray.set, as the op moves them.
async function floorMs(bytes, reps) {
  const n = Math.max(1, Math.floor(bytes / 8));
  const src = new Float32Array(n).fill(1), dst = new Float32Array(n);
  return time(() => dst.set(src), reps);
}

async function main() {
  const r = c.rng(7);
  let fn, bytes;
  const reps = k.reps ?? 21;
  if (k.op === 'klPenalty') {
    const logp = c.randn(r, k.n, 2), refLogp = c.randn(r, k.n, 2);
    const out = { kl: new Float32Array(k.n), grad: new Float32Array(k.n) };
    fn = () => lib.klPenaltySync({ logp, refLogp, estimator: 'k3', out });
    bytes = k.n * 16;  // 2 reads + 2 writes of float32
  } else if (k.op === 'groupAdvantages') {
    const rewards = c.randn(r, k.S, 1);
    const NG = k.S / k.G;
    const out = { advantages: new Float32Array(k.S), rewards: new Float32Array(k.S), groupMean: new Float32Array(NG), groupStd: new Float32Array(NG), groupIds: new Int32Array(NG) };
    fn = () => lib.groupAdvantagesSync({ rewards, groupSize: k.G, out });
    bytes = k.S * 12;  // rewards in; advantages and the summed rewards out
  } else if (k.op === 'grpoLoss') {
    const N = k.S * k.T;
    const logp = c.randn(r, N, 1).map((x) => -Math.abs(x)), advantages = c.randn(r, k.S, 1);
    const oldLogp = logp.map((x, i) => x + 0.1 * Math.sin(i)), mask = new Uint8Array(N).fill(1);
    const gradLogp = new Float32Array(N);
    fn = () => lib.grpoLossSync({ logp, oldLogp, advantages, mask, out: { gradLogp } });
    bytes = N * 13;  // logp, oldLogp, mask in; gradLogp out
  } else if (k.op === 'fused' || k.op === 'logprobs') {
    const N = k.N, V = k.V;
    const logits = c.normalLogits(N * V, 7);
    const targets = c.randint(r, N, V);
    if (k.op === 'logprobs') {
      const out = { logp: new Float32Array(N), entropy: new Float32Array(N) };
      fn = () => lib.logprobs({ logits, vocabSize: V, targets, out });
      bytes = 2 * N * V * 4;  // one read of the logits, counted as read + write of half of it
    } else {
      const grad = new Float32Array(N * V);
      const opts = { logits, vocabSize: V, targets, advantages: c.randn(r, N, 1), mask: new Uint8Array(N).fill(1), gradient: 'separate',
        out: { gradLogits: grad, logp: new Float32Array(N), entropy: new Float32Array(N), gradLogp: new Float32Array(N) } };
      fn = () => lib.grpoLossFromLogits(opts);
      bytes = 3 * N * V * 4;  // the three-pass floor (read, read, write) — copy moves read + write
    }
  } else {
    throw new Error(`unknown op ${k.op}`);
  }
  const floor = await floorMs(bytes, reps);
  const ms = await time(fn, reps);
  console.log('RESULT ' + JSON.stringify({ ms, floor_ms: floor, gbps_floor: bytes / floor / 1e6 }));
}
main().catch((e) => { console.log('RESULT ' + JSON.stringify({ error: String(e && e.stack || e) })); process.exitCode = 1; });
