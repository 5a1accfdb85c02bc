'use strict';
// One measured trial in its own process (better-sqlite3 style): `ours` (the package's public
// API, lib/ loaded through tsx so the bench always measures the working tree) or `simple`
// (bench/peers/simple.js). Started by bench/run.js as
//   node --import tsx bench/cases/node_trial.js '<trial JSON>'
// and prints one line "RESULT <json>" with median_ms and friends, or {skipped: why}.
//
// Timing: the big kernels (loss from logits, logprobs, sample) use a manual median-of-k loop
// after warm-up and call the async API (the form a trainer awaits); the small per-token ops
// use benchmark.js on the sync twins.

const c = require('./common');
const simple = require('../peers/simple');

const trial = JSON.parse(process.argv[2]);
const { kernel, impl } = trial;
const p = trial.params;
const reps = trial.reps ?? 5, warmup = trial.warmup ?? 1;

function loadOurs(name) {
  const lib = require('../../lib');
  if (typeof lib[name] !== 'function') return { lib, missing: `${name} is not exported by lib/ yet` };
  return { lib };
}

function lossInputs() {
  const { S, T, V } = p;
  const N = S * T;
  const r = c.rng(7);
  const logits = p.dtype === 'bfloat16' ? c.normalLogitsBf16(N * V, 1) : c.normalLogits(N * V, 1);
  return {
    N, logits,
    targets: c.randint(r, N, V),
    advantages: c.randn(r, S),
    mask: new Uint8Array(N).fill(1),  // every row a real token: every row pays full price
  };
}

const cases = {
  async loss() {
    const { S, T, V, dtype, mode } = p;
    const d = lossInputs();
    const pristine = mode === 'inplace' ? d.logits.slice() : null;
    const before = pristine ? () => d.logits.set(pristine) : undefined;
    if (impl === 'simple') {
      const grad = mode === 'inplace' ? d.logits : new d.logits.constructor(d.logits.length);
      let out;
      const t = await c.medianOfK(() => { out = simple.grpoLossFromLogits({ ...d, dtype, S, T, V, temperature: p.temperature, grad }); }, { warmup, reps, before });
      return { ...t, check: { loss: out.loss, logp0: out.logp[0] } };
    }
    const { lib, missing } = loadOurs('grpoLossFromLogits');
    if (missing) return { skipped: missing };
    const grad = mode === 'inplace' ? undefined : new d.logits.constructor(d.logits.length);
    const opts = {
      logits: d.logits, dtype, vocabSize: V, targets: d.targets, advantages: d.advantages, mask: d.mask,
      temperature: p.temperature, epsilon: 0.2, beta: 0, lossType: 'dapo', gradient: mode,
      out: { ...(grad ? { gradLogits: grad } : {}), logp: new Float32Array(d.N), entropy: new Float32Array(d.N), gradLogp: new Float32Array(d.N) },
    };
    let out;
    const t = await c.medianOfK(async () => { out = await lib.grpoLossFromLogits(opts); }, { warmup, reps, before });
    return { ...t, check: { loss: out.loss, logp0: out.logp ? out.logp[0] : null } };
  },

  async logprobs() {
    const { N, V, dtype } = p;
    const r = c.rng(7);
    const logits = dtype === 'bfloat16' ? c.normalLogitsBf16(N * V, 1) : c.normalLogits(N * V, 1);
    const targets = c.randint(r, N, V);
    if (impl === 'simple') {
      let out;
      const t = await c.medianOfK(() => { out = simple.logprobs({ logits, dtype, targets, N, V, temperature: p.temperature }); }, { warmup, reps });
      return { ...t, check: { logp0: out.logp[0] } };
    }
    const { lib, missing } = loadOurs('logprobs');
    if (missing) return { skipped: missing };
    const opts = { logits, dtype, vocabSize: V, targets, temperature: p.temperature, entropy: !!p.entropy, out: { logp: new Float32Array(N) } };
    let out;
    const t = await c.medianOfK(async () => { out = await lib.logprobs(opts); }, { warmup, reps });
    return { ...t, check: { logp0: out.logp[0] } };
  },

  async sample() {
    const { R, V } = p;
    const logits = c.normalLogits(R * V, 3, p.scale ?? c.LOGIT_SCALE);
    if (impl === 'simple') {
      let out;
      const t = await c.medianOfK(() => { out = simple.sample({ logits, R, V, temperature: p.temperature, topK: p.topK, topP: p.topP, seed: 1 }); }, { warmup, reps });
      return { ...t, check: { token0: out.tokens[0] } };
    }
    const { lib, missing } = loadOurs('sample');
    if (missing) return { skipped: missing };
    const opts = { logits, vocabSize: V, temperature: p.temperature, topK: p.topK, topP: p.topP, seed: 1, out: { tokens: new Int32Array(R), logp: new Float32Array(R) } };
    let out;
    let step = 0;
    const t = await c.medianOfK(async () => { out = await lib.sample({ ...opts, step: step++ }); }, { warmup, reps });
    return { ...t, check: { token0: out.tokens[0] } };
  },

  async grpoLoss() {
    const { S, T } = p;
    const N = S * T, r = c.rng(7);
    const logp = c.randn(r, N, 1);
    for (let i = 0; i < N; i++) logp[i] = -Math.abs(logp[i]);
    const advantages = c.randn(r, S);
    const mask = new Uint8Array(N).fill(1);
    const gradLogp = new Float32Array(N);
    if (impl === 'simple') {
      let loss;
      const t = c.benchmarkJs(() => { loss = simple.grpoLoss({ logp, advantages, mask, gradLogp }); });
      return { ...t, check: { loss } };
    }
    const { lib, missing } = loadOurs('grpoLossSync');
    if (missing) return { skipped: missing };
    const opts = { logp, advantages, mask, epsilon: 0.2, beta: 0, lossType: 'dapo', out: { gradLogp } };
    let out;
    const t = c.benchmarkJs(() => { out = lib.grpoLossSync(opts); });
    return { ...t, check: { loss: out.loss } };
  },

  async groupAdvantages() {
    const { S, G } = p;
    const r = c.rng(7);
    const rewards = new Float32Array(S);
    for (let i = 0; i < S; i++) rewards[i] = r() < 0.5 ? 1 : 0;
    const advantages = new Float32Array(S);
    if (impl === 'simple') {
      const t = c.benchmarkJs(() => simple.groupAdvantages({ rewards, groupSize: G, advantages }));
      return { ...t, check: { a0: advantages[0] } };
    }
    const { lib, missing } = loadOurs('groupAdvantagesSync');
    if (missing) return { skipped: missing };
    // every output given (the simple peer, too, writes into a given array and allocates nothing)
    const opts = { rewards, groupSize: G, out: { advantages, rewards: new Float32Array(S), groupMean: new Float32Array(S / G), groupStd: new Float32Array(S / G), groupIds: new Int32Array(S / G) } };
    const t = c.benchmarkJs(() => lib.groupAdvantagesSync(opts));
    return { ...t, check: { a0: advantages[0] } };
  },

  async klPenalty() {
    const { n } = p;
    const r = c.rng(7);
    const logp = c.randn(r, n, 0.5), refLogp = c.randn(r, n, 0.5);
    const kl = new Float32Array(n), grad = new Float32Array(n);
    if (impl === 'simple') {
      const t = c.benchmarkJs(() => simple.klPenalty({ logp, refLogp, kl, grad }));
      return { ...t, check: { kl0: kl[0] } };
    }
    const { lib, missing } = loadOurs('klPenaltySync');
    if (missing) return { skipped: missing };
    const opts = { logp, refLogp, estimator: 'k3', out: { kl, grad } };
    const t = c.benchmarkJs(() => lib.klPenaltySync(opts));
    return { ...t, check: { kl0: kl[0] } };
  },
};

(async () => {
  if (!cases[kernel]) throw new Error(`node_trial: unknown kernel ${kernel}`);
  const res = await cases[kernel]();
  if (impl === 'ours' && !res.skipped) {
    const lib = require('../../lib');
    res.backend = { cpuIsa: lib.backend().cpuIsa, threads: lib.numThreads() };
  }
  res.rss_mb = Math.round(process.memoryUsage().rss / 2 ** 20);
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
})().catch((e) => {
  process.stdout.write(`RESULT ${JSON.stringify({ error: String(e && e.stack ? e.stack : e) })}\n`);
  process.exit(1);
});
