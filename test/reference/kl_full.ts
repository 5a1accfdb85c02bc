// float64 reference of klFull (README Math §3, `full`): KL(softmax(z/τ) ‖ softmax(zr/τ)) per row
// from the definition Σ p·(log p − log q), and its gradient wrt the policy logits z.
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

