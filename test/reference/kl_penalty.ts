// float64 reference of spec §3 (klPenalty), written from the spec independently of the kernels.
export type KlEst = 'k1' | 'k2' | 'k3' | 'low_var_kl' | 'abs' | 'k1+' | 'k3+' | 'low_var_kl+' | 'abs+';

export function refKl(logp: number, refLogp: number, est: KlEst, clampLogRatio = true): { d: number; grad: number } {
  // verl's straight-through forms: backward_score − backward_score.detach() + forward.detach(),
  // backward_score = ½(ℓ − ℓ_ref)²: the value of the estimator, the gradient ℓ − ℓ_ref.
  if (est.endsWith('+')) return { d: refKl(logp, refLogp, est.slice(0, -1) as KlEst, clampLogRatio).d, grad: logp - refLogp };
  let d = refLogp - logp;
  if (est === 'abs') return { d: Math.abs(logp - refLogp), grad: Math.sign(logp - refLogp) };  // torch: sign, 0 at 0
  if (est === 'k1') return { d: -d, grad: 1 };
  if (est === 'k2') return { d: 0.5 * d * d, grad: -d };
  const clamp = clampLogRatio || est === 'low_var_kl';
  let active = false;
  if (clamp && (d > 20 || d < -20)) {
    d = Math.max(-20, Math.min(20, d));
    active = true;
  }
  let D = Math.expm1(d) - d;
  if (est === 'low_var_kl' && (D > 10 || D < -10)) {
    D = Math.max(-10, Math.min(10, D));
    active = true;
  }
  return { d: D, grad: active ? 0 : -Math.expm1(d) };
}
