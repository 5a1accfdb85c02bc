'use strict';
// Two builds of the addon side by side in one process (before/after checks of the binding and
// async layer): the raw logprobs, sample and fused-loss (separate gradient) calls, sync and
// async, alternating A and B each repetition (order flipped every other one). Median wall ms.
// Usage: node bench/ab_addons.js A.node B.node [N] [V] [reps]
const path = require('path');
const oldA = require(path.resolve(process.argv[2]));
const newA = require(path.resolve(process.argv[3]));
const [N, V, REPS] = [+(process.argv[4] || 256), +(process.argv[5] || 151936), +(process.argv[6] || 15)];
const logits = new Float32Array(N * V); for (let i = 0; i < logits.length; i += 7) logits[i] = (i % 17) - 8;
const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
const logp = new Float32Array(N), entropy = new Float32Array(N);
const la = { N, V, logits, logitsDtype: 'float32', targets, temperature: 1, logp, entropy };
const R = N, rowIds = new Uint32Array(R).map((_, i) => i);
const sa = { R, V, logits, logitsDtype: 'float32', temperature: new Float32Array(R).fill(1), topK: new Int32Array(R).fill(50), topP: new Float32Array(R).fill(0.9), minP: new Float32Array(R), seedLo: 1, seedHi: 2, step: 0, rowIds, tokens: new Int32Array(R), logp: new Float32Array(R), truncLogp: new Float32Array(R) };
const S = 4, T = N / 4, gl = new Float32Array(N * V);
const fa = { S, T, V, logits, logitsDtype: 'float32', targets, temperature: 1, advantages: new Float32Array(S).fill(1), mask: new Uint8Array(N).fill(1), level: 0, policyLoss: 0, epsilonLow: 0.2, epsilonHigh: 0.2, clipRatioC: 3, beta: 0, klEstimator: 3, clampLogRatio: true, lossType: 2, gradMode: 1, gradLogits: gl, gradLogitsDtype: 'float32', logp: new Float32Array(N), entropy: new Float32Array(N), gradLogp: new Float32Array(N) };
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
(async () => {
for (const [name, f, args] of [['logprobs', 'logprobs', la], ['sample', 'sample', sa], ['fused separate', 'grpoLossFromLogits', fa]]) {
  for (const async of [false, true]) {
    const t = { A: [], B: [] };
    for (let r = 0; r < REPS; r++) for (const [k, A] of (r % 2 ? [['A', oldA], ['B', newA]] : [['B', newA], ['A', oldA]])) {
      const t0 = performance.now(); await A[f](args, async); t[k].push(performance.now() - t0);
    }
    console.log(`${(name + (async ? ' async' : ' sync')).padEnd(22)} A ${med(t.A).toFixed(3)} ms  B ${med(t.B).toFixed(3)} ms  B/A ${(med(t.B) / med(t.A)).toFixed(3)}`);
  }
}
})();
