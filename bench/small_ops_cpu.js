// CPU time (user + sys) per call of the small ops (and their plain-JS peers), 1 thread, median of 5 blocks: under a heavy
// load wall time varies 3-10x run to run, CPU time does not. Two checkouts side by side:
//   node --import tsx bench/small_ops_cpu.js <tree root> [full | compat]   (compat: a tree whose
// groupAdvantages takes only out.advantages/out.rewards). Results: bench/results/small-ops.md.
const path = require('path');
const root = process.argv[2], full = process.argv[3] === 'full';
const lib = require(path.join(root, 'lib'));
lib.setNumThreads(1);
function cpu(fn, reps) { fn(); const v = []; for (let b = 0; b < 5; b++) { const c0 = process.cpuUsage(); for (let i = 0; i < reps; i++) fn(); const c = process.cpuUsage(c0); v.push((c.user + c.system) / 1e3 / reps); } v.sort((a, b) => a - b); return +v[2].toFixed(2); }
let s = 7; const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
const n = 1 << 22;
const logp = new Float32Array(n).map(() => -rnd()), refLogp = new Float32Array(n).map(() => -rnd());
const kl = new Float32Array(n), grad = new Float32Array(n);
const src = new Float32Array(n * 2).fill(1), dst = new Float32Array(n * 2);
const r = {};
r.copy64MB = cpu(() => dst.set(src), 4);
r.kl_k1 = cpu(() => lib.klPenaltySync({ logp, refLogp, estimator: 'k1', out: { kl, grad } }), 4);
r.kl_k3 = cpu(() => lib.klPenaltySync({ logp, refLogp, estimator: 'k3', out: { kl, grad } }), 4);
const S = 1 << 20, G = 16, NG = S / G;
const rewards = new Float32Array(S).map(() => (rnd() < 0.5 ? 1 : 0));
const out = { advantages: new Float32Array(S), rewards: new Float32Array(S) };
if (full) Object.assign(out, { groupMean: new Float32Array(NG), groupStd: new Float32Array(NG), groupIds: new Int32Array(NG) });
r.ga_out = cpu(() => lib.groupAdvantagesSync({ rewards, groupSize: G, out }), 8);
r.ga_default = cpu(() => lib.groupAdvantagesSync({ rewards, groupSize: G }), 8);
const simple = require(path.join(root, 'bench/peers/simple.js'));
r.ga_simple = cpu(() => simple.groupAdvantages({ rewards, groupSize: G, advantages: out.advantages }), 8);
r.kl_simple = cpu(() => simple.klPenalty({ logp, refLogp, kl, grad }), 1);
// grpoLoss N = 1M (S = 1024, T = 1024), the bench's configuration (no oldLogp, beta 0, dapo)
const N = 1 << 20, S2 = 1024;
const lp = new Float32Array(N).map(() => -rnd() * 2), adv = new Float32Array(S2).map(() => rnd() - 0.5);
const mask = new Uint8Array(N).fill(1), gradLogp = new Float32Array(N);
r.gl = cpu(() => lib.grpoLossSync({ logp: lp, advantages: adv, mask, epsilon: 0.2, beta: 0, lossType: 'dapo', out: { gradLogp } }), 8);
r.gl_simple = cpu(() => simple.grpoLoss({ logp: lp, advantages: adv, mask, gradLogp }), 8);
console.log(path.basename(root), full ? 'all outs' : 'adv+rewards outs', JSON.stringify(r));
