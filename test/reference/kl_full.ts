// float64 reference of klFull (README Math §3, `full`): KL(softmax(z/τ) ‖ softmax(zr/τ)) per row
// from the definition Σ p·(log p − log q), and its gradient wrt the policy logits z.
import { randn, rng } from '../helpers';

/** float64 KL(softmax(z/τ) ‖ softmax(zr/τ)) of row n and its gradient wrt z, from the definition. */
export function refKlRow(z: ArrayLike<number>, zr: ArrayLike<number>, V: number, n: number, tau: number): { kl: number; grad: Float64Array } {
  const u = Array.from({ length: V }, (_, v) => z[n * V + v] / tau), ur = Array.from({ length: V }, (_, v) => zr[n * V + v] / tau);
  const lse = (x: number[]) => {
    const m = Math.max(...x);
    return m + Math.log(x.reduce((a, y) => a + Math.exp(y - m), 0));
  };
  const l = lse(u), lr = lse(ur);
  const logp = u.map((x) => x - l), logq = ur.map((x) => x - lr);
  const p = logp.map(Math.exp);
  let kl = 0;
  for (let v = 0; v < V; v++) kl += p[v] * (logp[v] - logq[v]);
  // ∂KL/∂u_v = p_v·(log p_v − log q_v − KL)  (d log p_w/du_v = δ_wv − p_v)
  const grad = Float64Array.from(p, (pv, v) => (pv * (logp[v] - logq[v] - kl)) / tau);
  return { kl, grad };
}

export function refKl(z: ArrayLike<number>, zr: ArrayLike<number>, N: number, V: number, tau: number) {
  const kl = new Float64Array(N), grad = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const r = refKlRow(z, zr, V, n, tau);
    kl[n] = r.kl;
    grad.set(r.grad, n * V);
  }
  return { kl, grad };
}


/** The inputs of the grpoLossFromLogits klEstimator 'full' tests (host and device): S=2, T=3, V rows. */
export function fullKlCase(seed: number, V = 9) {
  const r = rng(seed);
  const S = 2, T = 3, N = S * T, tau = 0.8;
  const z = randn(r, N * V, 1.5), zr = randn(r, N * V, 1.5);
  const targets = Int32Array.from({ length: N }, () => Math.floor(r() * V));
  const advantages = new Float32Array([0.7, -1.1]);
  const mask = new Uint8Array([1, 1, 0, 1, 1, 1]);
  const oldLogp = randn(r, N, 0.3, -2.2);
  return { S, T, N, V, tau, z, zr, targets, advantages, mask, oldLogp };
}
/** Spec §6 weight a_n of each row for the loss types tested here. */
export function aggWeight(lossType: string, S: number, T: number, mask: Uint8Array, n: number): number {
  const i = Math.floor(n / T);
  let ni = 0, total = 0;
  for (let t = 0; t < T; t++) ni += mask[i * T + t];
  for (const m of mask) total += m;
  if (lossType === 'grpo') return 1 / (S * Math.max(ni, 1));
  if (lossType === 'dr_grpo') return 1 / (S * T);
  return 1 / Math.max(total, 1);  // bnpo, dapo without numItemsInBatch
}
