// float64 reference of spec §7 (grpoLossFromLogits): §1 on the logits (reference/logprobs.ts),
// §4-§6 on the resulting ℓ and H (reference/grpo_loss.ts, the grpoLoss reference), and the chain
// rule ∂L/∂z_v = (∂L/∂ℓ)·(1[v = y] − p_v)/τ. Shapes: S = advantages.length sequences of T
// tokens, N = S·T rows of V logits.
import type { GrpoLossConfig } from '../../lib/ops/grpo_loss';
import { refGrpoLoss, RefGrpoResult } from './grpo_loss';
import { refGradLogits, refLogprobRow, refLogprobs } from './logprobs';

export interface RefFusedInputs {
  /** logits widened to float64 (refWiden) */
  z: Float64Array;
  V: number;
  targets: ArrayLike<number>;
  advantages: ArrayLike<number>;
  mask?: ArrayLike<number>;
  oldLogp?: ArrayLike<number>;
  refLogp?: ArrayLike<number>;
  rolloutLogp?: ArrayLike<number>;
  /** ℓ held fixed where the loss takes ℓ.detach() (see RefGrpoInputs.detachedLogp). */
  detachedLogp?: ArrayLike<number>;
  temperature?: number;
}

export interface RefFusedResult extends RefGrpoResult {
  logp: Float64Array;
  entropy: Float64Array;
  gradLogits: Float64Array;
}

export function refGrpoLossFromLogits(inp: RefFusedInputs, cfg: GrpoLossConfig = {}): RefFusedResult {
  const tau = inp.temperature ?? 1;
  const { logp, entropy } = refLogprobs(inp.z, inp.V, inp.targets, tau);
  const r = refGrpoLoss({ logp, entropy, oldLogp: inp.oldLogp, refLogp: inp.refLogp, advantages: inp.advantages, mask: inp.mask, rolloutLogp: inp.rolloutLogp, detachedLogp: inp.detachedLogp }, cfg);
  const gradLogits = refGradLogits(inp.z, inp.V, inp.targets, r.gradLogp, tau);
  // the entropy bonus: ∂H/∂z_v = −(p_v/τ)·(log p_v + H) per row
  for (let n = 0; n < logp.length; n++) {
    const gh = r.gradEntropy[n];
    if (gh === 0) continue;
    const { p } = refLogprobRow(inp.z.subarray(n * inp.V, (n + 1) * inp.V), inp.targets[n], tau);
    for (let v = 0; v < inp.V; v++) if (p[v] > 0) gradLogits[n * inp.V + v] += (gh * -(p[v] / tau) * (Math.log(p[v]) + entropy[n]));
  }
  return { ...r, logp, entropy, gradLogits };
}

/** Only the loss (for finite differences through the whole float64 chain). */
export function refFusedLoss(inp: RefFusedInputs, cfg: GrpoLossConfig = {}): number {
  const tau = inp.temperature ?? 1;
  const { logp, entropy } = refLogprobs(inp.z, inp.V, inp.targets, tau);
  return refGrpoLoss({ logp, entropy, oldLogp: inp.oldLogp, refLogp: inp.refLogp, advantages: inp.advantages, mask: inp.mask, rolloutLogp: inp.rolloutLogp, detachedLogp: inp.detachedLogp }, cfg).loss;
}
