'use strict';
// Throughput of the built-in transformer (native/model/) for the model author's before/after
// checks (not a test): forward+backward+AdamW step of a training batch, eval forward, and
// KV-cache generation. Median of REPS runs per case, wall ms, and tokens/s.
// Usage (from the repo root): node --import tsx bench/model_quick.js [dModel] [nLayers] [nHeads] [L] [B] [reps]
// GRPO_KERNELS_ADDON picks a build, GRPO_CPU_ISA a lower ISA, GRPO_NUM_THREADS the threads.
const lib = require('../lib');

const d = +(process.argv[2] || 128), nL = +(process.argv[3] || 3), H = +(process.argv[4] || 4);
const L = +(process.argv[5] || 32), B = +(process.argv[6] || 64), REPS = +(process.argv[7] || 7);
const V = 101;
const cfg = { vocabSize: V, dModel: d, nLayers: nL, nHeads: H, dFF: 4 * d, maxSeqLen: Math.max(64, L), seed: 1 };

function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }
// Median wall ms, and median process CPU ms (all threads): on a shared machine the CPU time is
// the steadier number of the two (it does not count time spent waiting for a core).
async function time(fn) {
  await fn();  // warm-up (buffers grow on the first call)
  const ts = [], cs = [];
  for (let i = 0; i < REPS; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cs.push((c.user + c.system) / 1e3);
  }
  return { wall: median(ts), cpu: median(cs) };
}

(async () => {
  const m = lib.createTransformer(cfg);
  const N = B * L;
  const tokens = Int32Array.from({ length: N }, (_, i) => (i * 7919) % V);
  const grad = new Float32Array(N * V).fill(1e-4);
  const logits = new Float32Array(N * V);
  const info = lib.backend();
  console.log(`model: dModel ${d}, ${nL} layers, ${H} heads, dFF ${4 * d}, V ${V}, ${m.numParameters} params; batch ${B} x ${L}; ` +
    `${info.threads} threads, ${info.cpuIsa}`);
  const fwd = await time(() => m.forward(tokens, B, L, { out: logits }));
  const train = await time(async () => {
    m.zeroGrad();
    await m.forward(tokens, B, L, { train: true, out: logits });
    await m.backward(grad);
    m.step({ lr: 1e-4, maxGradNorm: 1 });
  });
  const bwd = await time(async () => { await m.backward(grad); });
  const stepMs = await time(async () => { m.step({ lr: 1e-4, maxGradNorm: 1 }); });
  const prompts = Array.from({ length: B }, (_, b) => Array.from({ length: 8 + (b % 8) }, (_, i) => (b + i * 3) % V));
  const newTok = Math.min(24, cfg.maxSeqLen - 16);
  const gen = await time(() => m.generate(prompts, { maxNewTokens: newTok, seed: 1, temperature: 1 }));
  const row = (name, t, toks) => console.log(`${name.padEnd(34)} ${t.wall.toFixed(1).padStart(8)} ms  ${Math.round(toks / (t.wall / 1000)).toString().padStart(9)} tokens/s` +
    `   (cpu ${t.cpu.toFixed(1)} ms)`);
  row('forward (eval)', fwd, N);
  row('backward', bwd, N);
  row('AdamW step', stepMs, N);
  row('train step (fwd+bwd+AdamW)', train, N);
  row(`generate ${B} x ${newTok} new (KV cache)`, gen, B * newTok);
  m.dispose();
})();
