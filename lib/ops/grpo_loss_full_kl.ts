/**
 * grpoLossFromLogits with `klEstimator: 'full'` (README Math §3): the KL term is the exact
 * KL(π‖π_ref) of every masked row, from the policy's and the reference's logits (`refLogits`),
 * instead of an estimate from the sampled token's log-probs:
 *   L = L_policy + β·Σ_n a_n·m_n·KL_n,   ∂L/∂z = ∂L_policy/∂z + β·a_n·m_n·∂KL_n/∂z
 * a_n the aggregation weight of row n (lossType etc.). Composed from three kernels:
 *   1. the fused loss with β = 0 (policy term, ℓ, H, its gradient),
 *   2. grpoLoss on those ℓ with A = 0, β = 1 and k1 (∂D/∂ℓ = 1): its ∂L/∂ℓ is exactly a_n·m_n,
 *      so the weights come from the loss kernel's own aggregation code, whatever lossType,
 *   3. klFull over both logits rows: KL_n, and β·a_n·m_n·∂KL_n/∂z added into the gradient.
 * With `gradient: 'inplace'` the loss gradient would overwrite the policy logits the KL gradient
 * needs, so the order changes: 1. the fused loss without a gradient (ℓ, H, loss, metrics), then
 * grpoLoss on those ℓ, H with the policy options (its ∂L/∂ℓ and ∂L/∂H, the numbers the fused
 * kernel's gradient pass uses), 2. the weights as above, 3. one klFull pass per row that writes
 * β·a_n·m_n·∂KL_n/∂z plus the policy term g_n·(1[v=y] − p_v)/τ − g_H·(p_v/τ)(log p_v + H) over
 * the logits (each element read, then written). No N·V scratch. `gradLogp` is the policy term's
 * ∂L/∂ℓ (the full KL has no gradient through ℓ alone). The CUDA form (lib/device.ts,
 * cuda.grpoLossFromLogits) composes the same steps on device tensors.
 * Aliasing: refLogits may be the logits array itself with a separate gradient (both only read:
 * KL = 0), never an output; in place, refLogits may not overlap the logits at all (rows run in
 * parallel, so a row written could be another row's reference before it is read).
 */
import { native } from '../native';
import * as v from '../validate';
import { GRPO_CONFIG_KEYS, grpoLoss, grpoLossSync } from './grpo_loss';
import type { GrpoLossOptions, GrpoLossResult } from './grpo_loss';
import {
  GRPO_LOSS_FROM_LOGITS_HOST_KEYS, GRPO_LOSS_FROM_LOGITS_OUT_KEYS, grpoLossFromLogits, grpoLossFromLogitsSync,
} from './grpo_loss_from_logits';
import type { GrpoLossFromLogitsOptions, GrpoLossFromLogitsResult, LogitsArray } from './grpo_loss_from_logits';
import { klFull, klFullSync } from './kl_full';
import type { KlFullOptions, KlFullResult } from './kl_full';
import { logitsTensor, rowsOf, temperatureOption } from './logprobs';

const OP = 'grpoLossFromLogits';
/** Loss options of the policy term only: not part of the KL term's weights a_n·m_n. */
export const POLICY_ONLY: ReadonlySet<string> = new Set(['entropyCoef', 'rolloutImportanceSamplingMode', 'rolloutImportanceSamplingThreshold']);
/** The loss options (GRPO_CONFIG_KEYS) a call set, less `skip`: what the composed steps pass on (host and device forms). */
export function lossConfigOf(opts: Record<string, unknown>, skip?: ReadonlySet<string>): Record<string, unknown> {
  const w: Record<string, unknown> = {};
  for (const k of GRPO_CONFIG_KEYS) if (!skip?.has(k) && opts[k] !== undefined) w[k] = opts[k];
  return w;
}

/** Whether a grpoLossFromLogits call asks for the full KL (checked before any validation). */
export function wantsFullKl(o: unknown): boolean {
  return typeof o === 'object' && o !== null && (o as { klEstimator?: unknown }).klEstimator === 'full';
}

function plan(o: GrpoLossFromLogitsOptions) {
  const opts = v.snapshot(OP, o, GRPO_LOSS_FROM_LOGITS_HOST_KEYS, { out: GRPO_LOSS_FROM_LOGITS_OUT_KEYS });
  const { V, N } = rowsOf(OP, opts.logits, opts.vocabSize);
  // refLogits checked here, before any kernel runs: the same type, dtype and length as logits
  v.floatTensor(OP, 'refLogits', opts.refLogits, opts.dtype, N * V);
  if (opts.refLogp !== undefined) throw v.typeError(OP, 'refLogp', "undefined with klEstimator 'full' (the KL comes from refLogits)", opts.refLogp);
  if (opts.useBiasCorrectionKl === true) throw v.typeError(OP, 'useBiasCorrectionKl', "false with klEstimator 'full' (not offered)", true);
  const inplace = opts.gradient === 'inplace';
  // refLogits is read by the last kernel, after the fused loss wrote its outputs (and, in place,
  // the gradient over the logits): none of them may overlap it. Checked here, before any kernel
  // runs (the steps' own checks do not see refLogits); the fused loss checks the rest.
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  const ta = (x: unknown) => (v.typedArrayKind(x) !== undefined ? (x as ArrayBufferView) : null);
  v.noAliases(
    OP,
    {
      'out.gradLogits': opts.gradient === 'none' || inplace ? null : ta(out.gradLogits), logits: inplace ? ta(opts.logits) : null,
      'out.logp': ta(out.logp), 'out.entropy': ta(out.entropy), 'out.gradLogp': ta(out.gradLogp),
    },
    { refLogits: ta(opts.refLogits) },
    { 'logits|refLogits': "gradient: 'inplace' writes the gradient over logits while refLogits is read" },
  );
  const beta = v.float(OP, 'beta', opts.beta, 0, Infinity, 0);
  const policy: Record<string, unknown> = { ...opts, beta: 0 };
  delete policy.klEstimator;
  delete policy.refLogits;
  if (inplace) {
    if ((opts.out as { gradLogits?: unknown } | undefined)?.gradLogits !== undefined)
      throw v.typeError(OP, 'out.gradLogits', "undefined with gradient: 'inplace'", (opts.out as { gradLogits?: unknown }).gradLogits);
    policy.gradient = 'none';  // ℓ, H, loss and metrics first; the gradient is klFull's fused pass
  }
  // in place: the policy term's ∂L/∂ℓ and ∂L/∂H from the loss core on the fused pass's ℓ, H
  const policyGrads = (r: GrpoLossFromLogitsResult): GrpoLossOptions => {
    return {
      ...lossConfigOf(opts), beta: 0, klEstimator: undefined, logp: r.logp, entropy: r.entropy, oldLogp: opts.oldLogp as never, advantages: opts.advantages as never,
      mask: opts.mask as never, rolloutLogp: opts.rolloutLogp as never, out: { gradLogp: r.gradLogp },
    } as GrpoLossOptions;
  };
  // the weights a_n·m_n: every aggregation option of the call, the policy and KL options fixed
  const weights = (r: GrpoLossFromLogitsResult, S: number): GrpoLossOptions => {
    // (an entropy bonus and the rollout IS weight are policy-side terms, the KL is added after
    // them unweighted as in TRL: left at their defaults)
    return {
      ...lossConfigOf(opts, POLICY_ONLY), beta: 1, klEstimator: 'k1', useBiasCorrectionKl: false, clampLogRatio: true,
      logp: r.logp, oldLogp: r.logp, refLogp: r.logp, entropy: r.entropy, advantages: new Float32Array(S), mask: opts.mask as never,
    } as GrpoLossOptions;
  };
  const kl = (r: GrpoLossFromLogitsResult, wr: GrpoLossResult): KlFullOptions => {
    const coef = new Float32Array(N);
    const a = wr.gradLogp!;
    for (let n = 0; n < N; n++) coef[n] = beta * a[n];
    return {
      logits: opts.logits as LogitsArray, refLogits: opts.refLogits as LogitsArray, dtype: opts.dtype as never, vocabSize: V,
      temperature: opts.temperature as number | undefined, grad: r.gradLogits !== null, coef, accumulate: r.gradLogits !== null,
      out: r.gradLogits !== null ? { grad: r.gradLogits } : undefined,
    };
  };
  const finish = (r: GrpoLossFromLogitsResult, wr: GrpoLossResult, k: KlFullResult): GrpoLossFromLogitsResult => {
    let loss = 0, klSum = 0, count = 0;
    const a = wr.gradLogp!;
    for (let n = 0; n < N; n++) {
      loss += a[n] * k.kl[n];
      if (isMasked(opts.mask, n)) {
        klSum += k.kl[n];
        count++;
      }
    }
    const total = r.loss + beta * loss;
    return { ...r, loss: total, metrics: { ...r.metrics, loss: total, kl: count ? klSum / count : 0 } };
  };
  // in place: klFull's native pass with the policy term fused in, over the logits
  const klInPlace = (r: GrpoLossFromLogitsResult, pr: GrpoLossResult, wr: GrpoLossResult) => {
    const lt = logitsTensor(OP, opts.logits, opts.dtype, N * V);
    const rt = v.floatTensor(OP, 'refLogits', opts.refLogits, opts.dtype, N * V);
    const coef = new Float32Array(N);
    const a = wr.gradLogp!;
    for (let n = 0; n < N; n++) coef[n] = beta * a[n];
    const kl = new Float32Array(N);
    const args = {
      N, V, logits: lt.data, logitsDtype: lt.dtype, refLogits: rt.data, refLogitsDtype: rt.dtype, temperature: temperatureOption(OP, opts.temperature),
      coef, kl, gradInPlace: true, accumulate: false, policyGrad: pr.gradLogp!, policyGradEntropy: pr.gradEntropy ?? undefined,
      entropy: r.entropy, targets: opts.targets as Int32Array,
    };
    const result = (): { r: GrpoLossFromLogitsResult; k: KlFullResult } => ({ r: { ...r, gradLogits: lt.data, gradLogp: pr.gradLogp! }, k: { kl, grad: null } });
    return { args, result };
  };
  return { policy: policy as unknown as GrpoLossFromLogitsOptions, weights, kl, finish, inplace, policyGrads, klInPlace, S: (opts.advantages as Float32Array).length };
}

/** mask[n] != 0 (no mask: every row). */
function isMasked(mask: unknown, n: number): boolean {
  if (mask === undefined) return true;
  const x = (mask as ArrayLike<unknown>)[n];
  return x === true || (typeof x === 'number' && x !== 0);
}

export async function fullKlLossFromLogits(o: GrpoLossFromLogitsOptions): Promise<GrpoLossFromLogitsResult> {
  const p = plan(o);
  const r = await grpoLossFromLogits(p.policy);
  const wr = await grpoLoss(p.weights(r, p.S));
  if (p.inplace) {
    const k = p.klInPlace(r, await grpoLoss(p.policyGrads(r)), wr);
    await native().klFull(k.args, true);
    const x = k.result();
    return p.finish(x.r, wr, x.k);
  }
  return p.finish(r, wr, await klFull(p.kl(r, wr)));
}

export function fullKlLossFromLogitsSync(o: GrpoLossFromLogitsOptions): GrpoLossFromLogitsResult {
  const p = plan(o);
  const r = grpoLossFromLogitsSync(p.policy);
  const wr = grpoLossSync(p.weights(r, p.S));
  if (p.inplace) {
    const k = p.klInPlace(r, grpoLossSync(p.policyGrads(r)), wr);
    native().klFull(k.args, false);
    const x = k.result();
    return p.finish(x.r, wr, x.k);
  }
  return p.finish(r, wr, klFullSync(p.kl(r, wr)));
}
