// Cost of the argument validation layer (lib/validate.ts: options snapshot, typed-array
// identity checks, alias checks, float32 ranges) on small calls, where it is most of the call,
// and on large ones, where it must not show. Compares this checkout's lib/ with another copy
// of the package built from another commit, in one process, the two alternating per round, on
// the same native addon. Both are the tsc output (dist/), as users run it:
//   npm run build:ts
//   git archive <commit> lib tsconfig.json | tar -x -C /tmp/old && (cd /tmp/old && npx tsc -p .)
//   node bench/validation_overhead.js dist /tmp/old/dist
// Prints a markdown table of the minimum and the median over rounds (µs per sync call, each
// round the mean of `reps` calls) and new/old ratios of both: on a loaded machine the minimum
// is the better estimate of the cost itself, the median shows the spread.
'use strict';
const os = require('os');
const path = require('path');

// --stub-native: the addon's op functions are replaced by no-ops (both builds load the same
// addon object), so a call costs only the JS layer: validation, dispatch, output allocation.
// That isolates the validation cost from the kernels and from most of the machine's noise.
const args = process.argv.slice(2);
const stub = args.includes('--stub-native');
const [newDir = 'dist', otherDir] = args.filter((a) => !a.startsWith('--'));
process.env.GRPO_KERNELS_ADDON ??= path.resolve(__dirname, '..', 'build', 'Release', 'grpo_kernels.node');
const libs = [['new', require(path.resolve(newDir))]];
if (otherDir) libs.push(['old', require(path.resolve(otherDir))]);
if (stub) {
  const addon = require(path.resolve(newDir, 'native')).native();
  const metrics = { loss: 0, kl: 0, entropy: 0, clipLow: 0, clipHigh: 0, clipRegion: 0, ratio: 1, maskedTokens: 1 };
  addon.klPenalty = addon.logprobs = addon.sample = () => undefined;
  addon.groupAdvantages = () => ({ zeroStdFraction: 0, numNoReward: 0 });
  addon.grpoLoss = addon.grpoLossFromLogits = () => metrics;
}

function randn(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * 4;
  }
  return a;
}

function cases() {
  const out = [];
  for (const [label, n, reps] of [['small', 64, 2000], ['large', 1 << 20, 20]]) {
    const S = 16, T = n / S, V = label === 'small' ? 16 : 4096, Nl = label === 'small' ? 64 : 256;
    const logp = randn(n, 1).map((x) => x - 3), ref = randn(n, 2).map((x) => x - 3), old = randn(n, 3).map((x) => x - 3);
    const adv = randn(S, 4), mask = new Uint8Array(n).fill(1);
    const gradOut = new Float32Array(n), klOut = new Float32Array(n), klGrad = new Float32Array(n);
    const z = randn(Nl * V, 5), targets = Int32Array.from({ length: Nl }, (_, i) => (i * 7) % V);
    const gl = new Float32Array(Nl * V);
    const rewards = randn(label === 'small' ? 64 : 65536, 6);
    out.push({ name: `klPenalty n=${n}`, reps, call: (l) => l.klPenaltySync({ logp, refLogp: ref, out: { kl: klOut, grad: klGrad } }) });
    out.push({ name: `grpoLoss N=${n}`, reps, call: (l) => l.grpoLossSync({ logp, oldLogp: old, refLogp: ref, advantages: adv, mask, beta: 0.04, epsilonHigh: 0.28, out: { gradLogp: gradOut } }) });
    out.push({ name: `groupAdvantages S=${rewards.length}`, reps, call: (l) => l.groupAdvantagesSync({ rewards, groupSize: 8 }) });
    out.push({ name: `logprobs ${Nl}x${V}`, reps: Math.max(5, reps >> 2), call: (l) => l.logprobsSync({ logits: z, vocabSize: V, targets }) });
    out.push({ name: `grpoLossFromLogits ${Nl}x${V}`, reps: Math.max(5, reps >> 2), call: (l) => l.grpoLossFromLogitsSync({ logits: z, vocabSize: V, targets, advantages: adv.subarray(0, Nl / 16), out: { gradLogits: gl } }) });
    out.push({ name: `sample ${Nl}x${V}`, reps: Math.max(5, reps >> 2), call: (l) => l.sampleSync({ logits: z, vocabSize: V, seed: 1, temperature: 0.8, topP: 0.95 }) });
  }
  return out;
}

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1];
}

const rounds = 15;
const rows = [];
for (const c of cases()) {
  const times = {};
  for (const [name, l] of libs) for (let i = 0; i < 3; i++) c.call(l);  // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const [name, l] of r % 2 ? [...libs].reverse() : libs) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < c.reps; i++) c.call(l);
      (times[name] ??= []).push(Number(process.hrtime.bigint() - t0) / 1e3 / c.reps);
    }
  }
  const f = (x) => (Number.isNaN(x) ? '-' : x.toFixed(2));
  const mn = Math.min(...times.new), mo = times.old ? Math.min(...times.old) : NaN;
  const nw = median(times.new), od = times.old ? median(times.old) : NaN;
  rows.push(`| ${c.name} | ${f(mn)} | ${f(mo)} | ${Number.isNaN(mo) ? '-' : (mn / mo).toFixed(3)} | ${f(nw)} | ${f(od)} | ${Number.isNaN(od) ? '-' : (nw / od).toFixed(3)} |`);
  console.error(rows[rows.length - 1]);
}
console.log(`Machine: ${os.cpus()[0].model}, ${os.cpus().length} CPUs; node ${process.version}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end; ${new Date().toISOString()}`);
console.log(`Command: node bench/validation_overhead.js ${args.join(' ')}; ${rounds} rounds, the two libs alternating each round${stub ? '; native ops stubbed (JS layer only)' : ''}.\n`);
console.log('| case (sync call) | new min µs | old min µs | new/old (min) | new median µs | old median µs | new/old (median) |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
