// TypeScript consumer (CommonJS output), compiled with `tsc --strict` against the package's
// .d.ts files, then run: the types must accept the documented calls and match what comes back.
import { grpoLossSync, logprobsSync, klPenaltySync, backend } from 'grpo-kernels';
import type { GrpoLossResult, LogprobsResult } from 'grpo-kernels';

const V = 3;
const logits = new Float32Array([0, 1, 2, 2, 1, 0]);
const targets = new Int32Array([2, 0]);
const lp: LogprobsResult = logprobsSync({ logits, vocabSize: V, targets });
const lse = Math.log(1 + Math.E + Math.E ** 2);
const want = 2 - lse;  // both rows pick their largest logit, 2
if (Math.abs(lp.logp[0] - want) > 1e-5 || Math.abs(lp.logp[1] - want) > 1e-5) throw new Error(`logp ${lp.logp} != ${want}`);
const kl = klPenaltySync({ logp: lp.logp, refLogp: new Float32Array([want, want]), estimator: 'k1' });
const res: GrpoLossResult = grpoLossSync({ logp: lp.logp, advantages: new Float32Array([1]), beta: 0, lossType: 'grpo' });
// one sequence, ρ = 1: L = −A = −1, ∂L/∂ℓ = −A/n = −0.5 per token
if (Math.abs(res.loss + 1) > 1e-6 || res.gradLogp === null || Math.abs(res.gradLogp[1] + 0.5) > 1e-6) throw new Error(`loss ${res.loss}`);
const cuda: boolean = backend().cuda.compiled;
console.log(`ok TypeScript (tsc --strict, CommonJS): loss ${res.loss}, kl ${kl.kl[0]}, CUDA compiled ${cuda}`);
