'use strict';
// Every kernel once on tiny inputs, against a float64 reference written here from
// spec/grpo-math.md (§1 logprobs, §2 group advantages, §3 KL, §4–§6 loss, §7 fused, §9 sampling).
// Used by scripts/check-pack.js from a consumer project that installed the npm tarball:
// run(api, mode) takes the package's exports (from require() or import) and calls the Sync
// forms (mode 'sync') or the async ones ('async'). Prints "ok <name>" / "FAIL <name>: why".

const S = 2, T = 3, N = S * T, V = 7, TAU = 0.9;
const logits = new Float32Array(N * V).map((_, i) => 3 * Math.sin(1.3 * Math.floor(i / V) + 0.7 * (i % V)));
const targets = Int32Array.from({ length: N }, (_, n) => (3 * n + 1) % V);
const advantages = new Float32Array([0.5, -1]);
const mask = new Uint8Array([1, 1, 0, 1, 1, 1]);
const shift = [0.05, -0.3, 0.1, 0.4, -0.02, 0.25];  // ℓ_old = ℓ + shift: ratios 0.67..1.35, some clipped

// §1: u = z/τ, lse, ℓ = u_y − lse, H = lse − Σ p·u (float64)
function refRow(n, tau) {
  const u = Array.from({ length: V }, (_, v) => logits[n * V + v] / tau);
  const m = Math.max(...u);
  const lse = m + Math.log(u.reduce((s, x) => s + Math.exp(x - m), 0));
  const p = u.map((x) => Math.exp(x - lse));
  return { u, p, lse, H: lse - p.reduce((s, pv, v) => s + pv * u[v], 0) };
}
const ref = Array.from({ length: N }, (_, n) => refRow(n, TAU));
const refLogp = ref.map((r, n) => r.u[targets[n]] - r.lse);
const logp32 = Float32Array.from(refLogp);
const oldLogp = Float32Array.from(logp32, (x, n) => x + shift[n]);

// §4–§6, token level, clip ε = 0.2, β = 0, lossType 'grpo': a = 1/(S·n_i), P = −min(ρA, clip(ρ)A)
function refLoss(lp) {
  let loss = 0;
  const g = new Float64Array(N);
  for (let i = 0; i < S; i++) {
    let ni = 0;
    for (let t = 0; t < T; t++) ni += mask[i * T + t];
    const a = 1 / (S * Math.max(ni, 1)), A = advantages[i];
    for (let t = 0; t < T; t++) {
      const n = i * T + t;
      if (!mask[n]) continue;
      const rho = Math.exp(lp[n] - oldLogp[n]);
      const c = Math.min(Math.max(rho, 0.8), 1.2);
      const unclipped = rho * A <= c * A;  // ties count as unclipped
      loss += a * -Math.min(rho * A, c * A);
      g[n] = unclipped ? a * -A * rho : 0;
    }
  }
  return { loss, g };
}

function close(what, got, want, tol) {
  const g = typeof got === 'number' ? [got] : got, w = typeof want === 'number' ? [want] : want;
  if (!g || g.length !== w.length) throw new Error(`${what}: expected ${w.length} values, got ${g && g.length}`);
  for (let i = 0; i < w.length; i++) {
    if (!(Math.abs(g[i] - w[i]) <= tol * (1 + Math.abs(w[i])))) throw new Error(`${what}[${i}] = ${g[i]}, reference ${w[i]}`);
  }
}

function cases(api, sync) {
  const call = (name, o) => (sync ? api[name + 'Sync'](o) : api[name](o));
  return {
    async logprobs() {
      const r = await call('logprobs', { logits, vocabSize: V, targets, temperature: TAU });
      close('logp', r.logp, refLogp, 1e-5);
      close('entropy', r.entropy, ref.map((x) => x.H), 1e-5);
    },
    async groupAdvantages() {
      const rewards = new Float32Array([1, 0, 0.5, 2, 3, 3, 1, 0]);
      const r = await call('groupAdvantages', { rewards, groupSize: 4 });
      const want = [];
      for (let g = 0; g < 2; g++) {
        const x = Array.from(rewards.subarray(4 * g, 4 * g + 4));
        const mu = x.reduce((s, v) => s + v, 0) / 4;
        const sd = Math.sqrt(x.reduce((s, v) => s + (v - mu) ** 2, 0) / 3);  // unbiased, ε = 1e-4
        want.push(...x.map((v) => (v - mu) / (sd + 1e-4)));
      }
      close('advantages', r.advantages, want, 1e-5);
    },
    async klPenalty() {
      const r = await call('klPenalty', { logp: logp32, refLogp: oldLogp, estimator: 'k3' });
      const d = Array.from(oldLogp, (x, n) => x - logp32[n]);
      close('kl', r.kl, d.map((x) => Math.exp(x) - x - 1), 1e-5);
      close('grad', r.grad, d.map((x) => 1 - Math.exp(x)), 1e-5);
    },
    async grpoLoss() {
      const r = await call('grpoLoss', { logp: logp32, oldLogp, advantages, mask, beta: 0, epsilon: 0.2, lossType: 'grpo' });
      const want = refLoss(logp32);
      close('loss', r.loss, want.loss, 1e-5);
      close('gradLogp', r.gradLogp, Array.from(want.g), 1e-5);
    },
    async grpoLossFromLogits() {
      const r = await call('grpoLossFromLogits', {
        logits, vocabSize: V, targets, advantages, mask, oldLogp, temperature: TAU, beta: 0, epsilon: 0.2, lossType: 'grpo',
      });
      const want = refLoss(refLogp);
      close('loss', r.loss, want.loss, 1e-5);
      close('logp', r.logp, refLogp, 1e-5);
      // §1: ∂L/∂z_v = g·(1[v = y] − p_v)/τ
      const gz = [];
      for (let n = 0; n < N; n++) for (let v = 0; v < V; v++) gz.push((want.g[n] * ((v === targets[n] ? 1 : 0) - ref[n].p[v])) / TAU);
      close('gradLogits', r.gradLogits, gz, 1e-5);
    },
    async sample() {
      const ref1 = Array.from({ length: N }, (_, n) => refRow(n, 1));
      const greedy = await call('sample', { logits, vocabSize: V, temperature: 0, seed: 1 });
      const argmax = ref1.map((r) => r.u.indexOf(Math.max(...r.u)));
      close('greedy tokens', greedy.tokens, argmax, 0);
      close('greedy logp', greedy.logp, argmax.map((y, n) => ref1[n].u[y] - ref1[n].lse), 1e-5);  // under τ = 1
      const a = await call('sample', { logits, vocabSize: V, temperature: 1, seed: 1234, step: 3 });
      const b = await call('sample', { logits, vocabSize: V, temperature: 1, seed: 1234, step: 3 });
      close('same seed, same tokens', a.tokens, Array.from(b.tokens), 0);
      for (let n = 0; n < N; n++) if (!(a.tokens[n] >= 0 && a.tokens[n] < V)) throw new Error(`token ${a.tokens[n]} out of [0, ${V})`);
      close('sampled logp', a.logp, Array.from(a.tokens, (y, n) => ref1[n].u[y] - ref1[n].lse), 1e-5);
      const k1 = await call('sample', { logits, vocabSize: V, temperature: 1, topK: 1, seed: 9 });
      close('topK 1 tokens', k1.tokens, argmax, 0);
    },
  };
}

async function run(api, mode) {
  let failed = 0;
  for (const [name, fn] of Object.entries(cases(api, mode === 'sync'))) {
    const label = `${mode === 'sync' ? name + 'Sync' : name}`;
    try {
      await fn();
      console.log(`ok ${label} matches the float64 reference`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${label}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
    }
  }
  return failed;
}

module.exports = { run };
