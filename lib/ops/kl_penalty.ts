/**
 * klPenalty — spec §3 (KL penalty estimators). Per token, with d = refLogp − logp:
 *   k1: D = −d; k2: D = ½d²; k3 (default): D = exp(d) − d − 1; low_var_kl: k3 with d clamped to
 *   [−20, 20] and D clamped to [−10, 10] (this is what verl calls both "k3" and "low_var_kl");
 *   abs (verl): D = |d|. The straight-through forms `k1+`, `k3+`, `low_var_kl+`, `abs+` (verl)
 *   take the value of the named estimator and the gradient of k2 (ℓ − ℓ_ref).
 * Returns D and dD/dlogp per token.
 */
import { native } from '../native';
import * as v from '../validate';

export type KlEstimator = 'k1' | 'k2' | 'k3' | 'low_var_kl' | 'abs' | 'k1+' | 'k3+' | 'low_var_kl+' | 'abs+';
/** Native enum order (native/common/formulas.h `KlEstimator`). */
export const KL_ESTIMATORS: readonly KlEstimator[] = ['k1', 'k2', 'k3', 'low_var_kl', 'abs', 'k1+', 'k3+', 'low_var_kl+', 'abs+'];

export interface KlPenaltyOptions {
  /** Policy log-probs ℓ, one per token. */
  logp: Float32Array;
  /** Reference-model log-probs ℓ_ref, same length. */
  refLogp: Float32Array;
  /**
   * Estimator; default 'k3' (TRL, ms-swift: exp(d) − d − 1; verl's "k3" is our 'low_var_kl').
   * 'abs', and the straight-through 'k1+' | 'k3+' | 'low_var_kl+' | 'abs+' (value of the
   * estimator, gradient of k2) as verl names them; verl's "k3+" is our 'low_var_kl+'.
   */
  estimator?: KlEstimator;
  /**
   * Clamp d to [−20, 20] before exp (default true) so exp never overflows in float32; the
   * gradient is zero where the clamp is active. false reproduces TRL exactly. k1 and k2 never
   * exponentiate and ignore it.
   */
  clampLogRatio?: boolean;
  /** Compute dD/dlogp (default true). */
  grad?: boolean;
  /** Optional preallocated outputs. */
  out?: { kl?: Float32Array; grad?: Float32Array };
}

export interface KlPenaltyResult {
  /** D per token. */
  kl: Float32Array;
  /** dD/dlogp per token, or null when `grad: false`. */
  grad: Float32Array | null;
}

const OP = 'klPenalty';

/** Option keys every form of klPenalty takes (the CUDA form: these and no others). */
export const KL_PENALTY_KEYS = ['logp', 'refLogp', 'estimator', 'clampLogRatio', 'grad'] as const;
/** The host form's keys, and its `out` keys. */
export const KL_PENALTY_HOST_KEYS = [...KL_PENALTY_KEYS, 'out'] as const;
export const KL_PENALTY_OUT_KEYS = ['kl', 'grad'] as const;

/** The non-tensor options, validated the same way for the host op and its CUDA form. */
export function klPenaltyConfig(op: string, s: Record<string, unknown>) {
  return {
    estimator: v.oneOf(op, 'estimator', s.estimator, KL_ESTIMATORS, 'k3'),
    clampLogRatio: v.boolean(op, 'clampLogRatio', s.clampLogRatio, true),
    wantGrad: v.boolean(op, 'grad', s.grad, true),
  };
}

function prepare(o: KlPenaltyOptions) {
  const opts = v.snapshot(OP, o, KL_PENALTY_HOST_KEYS, { out: KL_PENALTY_OUT_KEYS });
  const logp = v.float32Array(OP, 'logp', opts.logp);
  const n = logp.length;
  const refLogp = v.float32Array(OP, 'refLogp', opts.refLogp, n);
  const { estimator, clampLogRatio, wantGrad } = klPenaltyConfig(OP, opts);
  const out = (opts.out ?? v.NO_OUT) as Record<string, unknown>;
  const kl = v.outFloat32(OP, 'out.kl', out.kl, n);
  const grad = wantGrad ? v.outFloat32(OP, 'out.grad', out.grad, n) : null;
  if (opts.out !== undefined) v.noAliases(OP, { 'out.kl': kl, 'out.grad': grad }, { logp, refLogp });
  const args = { n, logp, refLogp, estimator: KL_ESTIMATORS.indexOf(estimator), clampLogRatio, kl, grad };
  // The kernel checks that logp and refLogp are finite in its own pass (a scan here would read
  // both once more: at 4M tokens that was most of the op's time); on a non-finite input the
  // outputs have been written and the call throws, naming the first bad element.
  const result = (finite: boolean): KlPenaltyResult => {
    if (!finite) {
      v.allFinite(OP, 'logp', logp);
      v.allFinite(OP, 'refLogp', refLogp);
      // the kernel saw one, the scan does not: the caller changed the arrays during an async call
      throw v.rangeError(OP, 'logp/refLogp', 'finite values (unchanged during the call)', 'a non-finite value the kernel read');
    }
    return { kl, grad };
  };
  return { args, result };
}

/** KL penalty per token (async: runs on the native thread pool). */
export async function klPenalty(o: KlPenaltyOptions): Promise<KlPenaltyResult> {
  const p = prepare(o);
  return p.result(await native().klPenalty(p.args, true));
}

/** Synchronous twin of {@link klPenalty}. */
export function klPenaltySync(o: KlPenaltyOptions): KlPenaltyResult {
  const p = prepare(o);
  return p.result(native().klPenalty(p.args, false));
}
