// float64 reference of spec §3 (klPenalty), written from the spec independently of the kernels.
export type KlEst = 'k1' | 'k2' | 'k3' | 'low_var_kl';

export function refKl(logp: number, refLogp: number, est: KlEst, clampLogRatio = true): { d: number; grad: number } {
  let d = refLogp - logp;
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
