'use strict';
// The "simplest correct" peers: plain JavaScript loops over the spec's formulas
// (spec/grpo-math.md), float64 accumulation, no tricks. Every benchmark line of ours is also
// given as a ratio to these. They take the same typed arrays as the package's ops.
//
// Shapes: S sequences × T tokens, N = S·T rows; V vocabulary entries; row n = i·T + t.
// Loss configuration (the one every peer in the suite uses): token-level ratio, PPO clip with
// ε_low = ε_high = 0.2, β = 0 (no KL term), lossType 'dapo' with N_global = Σ mask (= bnpo),
// ℓ_old = ℓ detached when oldLogp is absent (TRL with one optimiser step per rollout batch).

// bf16 bits -> float32 through a shared scratch word.
const scratchU = new Uint32Array(1);
const scratchF = new Float32Array(scratchU.buffer);
function bf16(h) {
  scratchU[0] = h << 16;
  return scratchF[0];
}
function toBf16Bits(x) {
  scratchF[0] = x;
  const u = scratchU[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Row statistics of u = z[row]/τ: max, log-sum-exp and Σ p·u (for the entropy). */
function rowStats(z, off, V, tau, isBf16) {
  let m = -Infinity;
  for (let v = 0; v < V; v++) {
    const u = (isBf16 ? bf16(z[off + v]) : z[off + v]) / tau;
    if (u > m) m = u;
  }
  let s = 0, su = 0;
  for (let v = 0; v < V; v++) {
    const u = (isBf16 ? bf16(z[off + v]) : z[off + v]) / tau;
    const e = Math.exp(u - m);
    s += e;
    su += e * u;
  }
  const lse = m + Math.log(s);
  return { lse, entropy: lse - su / s };
}

/** Per-token clipped surrogate P and dP/dℓ (spec §4-§5, clip, β = 0, ties unclipped). */
function clipTerm(logp, oldLogp, A, eps) {
  const rho = Math.exp(logp - oldLogp);
  const c = Math.min(Math.max(rho, 1 - eps), 1 + eps);
  const l1 = rho * A, l2 = c * A;
  return l1 <= l2 ? { P: -l1, dPdl: -A * rho } : { P: -l2, dPdl: 0 };
}

/**
 * Fused loss from logits (spec §7): loss, logp, entropy and dL/dz into `grad` (Float32Array,
 * or Uint16Array of bf16 bits when z is bf16; pass z itself for in place).
 */
function grpoLossFromLogits({ logits, dtype = 'float32', targets, S, T, V, temperature = 1, advantages, mask, oldLogp, epsilon = 0.2, grad }) {
  const N = S * T, isBf16 = dtype === 'bfloat16';
  let count = 0;
  for (let n = 0; n < N; n++) count += mask[n];
  const a = 1 / Math.max(count, 1);  // dapo weight, N_global = Σ mask
  const logp = new Float32Array(N), entropy = new Float32Array(N);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const { lse, entropy: H } = rowStats(logits, off, V, temperature, isBf16);
    const y = targets[n];
    const zy = isBf16 ? bf16(logits[off + y]) : logits[off + y];
    const l = zy / temperature - lse;
    logp[n] = l;
    entropy[n] = H;
    let g = 0;
    if (mask[n]) {
      const { P, dPdl } = clipTerm(l, oldLogp ? oldLogp[n] : l, advantages[Math.floor(n / T)], epsilon);
      loss += a * P;
      g = a * dPdl;
    }
    // dL/dz_v = g·(1[v = y] − p_v)/τ
    for (let v = 0; v < V; v++) {
      const u = (isBf16 ? bf16(logits[off + v]) : logits[off + v]) / temperature;
      const d = (g * ((v === y ? 1 : 0) - Math.exp(u - lse))) / temperature;
      grad[off + v] = isBf16 ? toBf16Bits(d) : d;
    }
  }
  return { loss, logp, entropy };
}

/** Token log-probs and entropy (spec §1). */
function logprobs({ logits, dtype = 'float32', targets, N, V, temperature = 1 }) {
  const isBf16 = dtype === 'bfloat16';
  const logp = new Float32Array(N), entropy = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const { lse, entropy: H } = rowStats(logits, off, V, temperature, isBf16);
    logp[n] = (isBf16 ? bf16(logits[off + targets[n]]) : logits[off + targets[n]]) / temperature - lse;
    entropy[n] = H;
  }
  return { logp, entropy };
}

/**
 * Sampling (spec §9) by sorting each row: top-k (ties at the k-th value kept), then top-p over
 * the renormalised kept set, then min-p; one draw from a seeded uniform per row.
 */
function sample({ logits, R, V, temperature = 1, topK = 0, topP = 1, minP = 0, seed = 0 }) {
  const tokens = new Int32Array(R), logp = new Float32Array(R);
  const u = new Float64Array(V);
  const idx = new Array(V);
  for (let r = 0; r < R; r++) {
    const off = r * V;
    let m = -Infinity;
    for (let v = 0; v < V; v++) {
      u[v] = logits[off + v] / temperature;
      if (u[v] > m) m = u[v];
      idx[v] = v;
    }
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(u[v] - m);
    const lse = m + Math.log(s);
    idx.sort((a, b) => u[b] - u[a]);
    let kept = V;
    if (topK > 0 && topK < V) {
      kept = topK;
      while (kept < V && u[idx[kept]] === u[idx[topK - 1]]) kept++;  // ties at the k-th kept
    }
    const p = new Float64Array(kept);
    let z = 0;
    for (let j = 0; j < kept; j++) z += (p[j] = Math.exp(u[idx[j]] - m));
    if (topP < 1) {
      let c = 0, j = 0;
      while (j < kept) {
        c += p[j++] / z;
        if (c >= topP) break;
      }
      kept = j;
    }
    if (minP > 0) {
      let j = 1;
      while (j < kept && p[j] >= minP * p[0]) j++;
      kept = j;
    }
    let mass = 0;
    for (let j = 0; j < kept; j++) mass += p[j];
    let x = rngUniform(seed, r) * mass, j = 0;
    while (j < kept - 1 && (x -= p[j]) >= 0) j++;
    tokens[r] = idx[j];
    logp[r] = u[idx[j]] - lse;
  }
  return { tokens, logp };
}

function rngUniform(seed, row) {
  let t = ((seed >>> 0) ^ Math.imul(row + 1, 0x9e3779b9)) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** The loss from per-token log-probs (spec §4-§6, configuration above) and dL/dℓ. */
function grpoLoss({ logp, oldLogp, advantages, mask, epsilon = 0.2, gradLogp }) {
  const S = advantages.length, N = logp.length, T = N / S;
  let count = 0;
  for (let n = 0; n < N; n++) count += mask[n];
  const a = 1 / Math.max(count, 1);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    if (!mask[n]) {
      gradLogp[n] = 0;
      continue;
    }
    const { P, dPdl } = clipTerm(logp[n], oldLogp ? oldLogp[n] : logp[n], advantages[Math.floor(n / T)], epsilon);
    loss += a * P;
    gradLogp[n] = a * dPdl;
  }
  return loss;
}

/** GRPO advantages over contiguous groups of G: (r − μ_g)/(σ_g + eps), σ unbiased. */
function groupAdvantages({ rewards, groupSize: G, eps = 1e-4, advantages }) {
  for (let g0 = 0; g0 < rewards.length; g0 += G) {
    let mu = 0;
    for (let j = 0; j < G; j++) mu += rewards[g0 + j];
    mu /= G;
    let v = 0;
    for (let j = 0; j < G; j++) v += (rewards[g0 + j] - mu) ** 2;
    const sd = G > 1 ? Math.sqrt(v / (G - 1)) : 0;
    for (let j = 0; j < G; j++) advantages[g0 + j] = (rewards[g0 + j] - mu) / (sd + eps);
  }
  return advantages;
}

/** k3 KL estimate with d clamped to [−20, 20]: D = exp(d) − d − 1, dD/dℓ = 1 − exp(d). */
function klPenalty({ logp, refLogp, kl, grad }) {
  for (let i = 0; i < logp.length; i++) {
    const d0 = refLogp[i] - logp[i];
    const d = Math.min(Math.max(d0, -20), 20);
    const e = Math.exp(d);
    kl[i] = e - d - 1;
    grad[i] = d0 === d ? 1 - e : 0;
  }
  return kl;
}

module.exports = { grpoLossFromLogits, logprobs, sample, grpoLoss, groupAdvantages, klPenalty, bf16, toBf16Bits };
