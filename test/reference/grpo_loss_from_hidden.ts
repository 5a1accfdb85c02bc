// float64 reference of spec §8 (grpoLossFromHidden): logits z = h·Wᵀ computed in float64 from
// the (widened) inputs, then the spec §7 reference (reference/grpo_loss_from_logits.ts) on them,
// and the two products of the chain rule: ∂L/∂h = ∂L/∂z · W, ∂L/∂W = (∂L/∂z)ᵀ · h.
// Shapes: N = S·T rows, D hidden size, V vocabulary; h [N, D], W [V, D], z [N, V].
import type { GrpoLossConfig } from '../../lib/ops/grpo_loss';
import { refFusedLoss, refGrpoLossFromLogits, RefFusedResult } from './grpo_loss_from_logits';

export interface RefHiddenInputs {
  h: Float64Array;
  W: Float64Array;
  D: number;
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

export interface RefHiddenResult extends RefFusedResult {
  z: Float64Array;
  gradHidden: Float64Array;
  gradWeight: Float64Array;
}

/** z [N, V] = h [N, D] · W [V, D]ᵀ in float64. */
export function refLinear(h: Float64Array, W: Float64Array, D: number, V: number): Float64Array {
  const N = h.length / D;
  const z = new Float64Array(N * V);
  for (let n = 0; n < N; n++)
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += h[n * D + k] * W[v * D + k];
      z[n * V + v] = s;
    }
  return z;
}

export function refGrpoLossFromHidden(inp: RefHiddenInputs, cfg: GrpoLossConfig = {}): RefHiddenResult {
  const { h, W, D, V } = inp;
  const N = h.length / D;
  const z = refLinear(h, W, D, V);
  const r = refGrpoLossFromLogits({ ...inp, z, V }, cfg);
  const dz = r.gradLogits;
  const gradHidden = new Float64Array(N * D);
  const gradWeight = new Float64Array(V * D);
  for (let n = 0; n < N; n++)
    for (let v = 0; v < V; v++) {
      const g = dz[n * V + v];
      if (g === 0) continue;
      for (let k = 0; k < D; k++) {
        gradHidden[n * D + k] += g * W[v * D + k];
        gradWeight[v * D + k] += g * h[n * D + k];
      }
    }
  return { ...r, z, gradHidden, gradWeight };
}

/** Only the loss (finite differences through the whole float64 chain). */
export function refHiddenLoss(inp: RefHiddenInputs, cfg: GrpoLossConfig = {}): number {
  return refFusedLoss({ ...inp, z: refLinear(inp.h, inp.W, inp.D, inp.V), V: inp.V }, cfg);
}

/** ∂L/∂h = ∂L/∂z · W and ∂L/∂W = (∂L/∂z)ᵀ · h in float64, from a logits gradient dz [N, V]. */
export function refLinearGrads(dz: Float64Array, W: Float64Array, h: Float64Array, N: number, V: number, D: number) {
  const dh = new Float64Array(N * D), dw = new Float64Array(V * D);
  for (let n = 0; n < N; n++)
    for (let v = 0; v < V; v++)
      for (let k = 0; k < D; k++) {
        dh[n * D + k] += dz[n * V + v] * W[v * D + k];
        dw[v * D + k] += dz[n * V + v] * h[n * D + k];
      }
  return { dh, dw };
}
