// float64 reference of spec §4-§6 (grpoLoss), written from the spec and TRL's GRPOTrainer
// expressions, independently of the kernels: it evaluates the loss the way TRL builds its
// tensor graph (coef_1, coef_2, min, dual-clip, masks, aggregation) and then back-propagates
// through that graph op by op with torch's gradient rules (torch.minimum splits a tie in half;
// torch.clamp passes the gradient where its input is within the bounds, inclusive).
//
// Shapes: S = advantages.length sequences of T tokens, row n = i·T + t. Masked-out tokens
// (mask 0) are treated as absent: their inputs are never read.
//
// Also used by the fused-from-logits tests: feed it ℓ/entropy computed from logits in float64.
import type { GrpoLossConfig, GrpoMetrics } from '../../lib/ops/grpo_loss';
import { refKl } from './kl_penalty';

export interface RefGrpoInputs {
  logp: ArrayLike<number>;
  oldLogp?: ArrayLike<number>;
  refLogp?: ArrayLike<number>;
  advantages: ArrayLike<number>;
  /** 0/1 per token; default all 1. */
  mask?: ArrayLike<number | boolean>;
  entropy?: ArrayLike<number>;
  /** The sampler's log-probs (rolloutImportanceSamplingMode). */
  rolloutLogp?: ArrayLike<number>;
  /**
   * ℓ held fixed (detached) where the loss takes ℓ.detach(): the rollout IS weights' ℓ_train when
   * no oldLogp is given. Default: logp (finite differences pass the base point).
   */
  detachedLogp?: ArrayLike<number>;
}

export interface RefGrpoResult {
  loss: number;
  /** L[n] = emask·P + β·D (0 where mask is 0). */
  perTokenLoss: Float64Array;
  /** ∂loss/∂ℓ[n]. */
  gradLogp: Float64Array;
  /** ∂loss/∂H[n] (the entropy bonus; 0 without it). */
  gradEntropy: Float64Array;
  metrics: GrpoMetrics;
  /** 1 where the policy term was kept by the top-entropy selection. */
  entropyMask: Float64Array;
}

/** torch.quantile(x, q) with its default linear interpolation. */
export function refQuantile(values: number[], q: number): number {
  const x = [...values].sort((a, b) => a - b);
  const pos = q * (x.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, x.length - 1);
  return x[lo] + (x[hi] - x[lo]) * (pos - lo);
}

/** The defaults of spec §4-§6 / TRL, resolved without the library's code. */
export function refResolveConfig(c: GrpoLossConfig, T: number) {
  const policyLoss = c.policyLoss ?? 'clip';
  const epsLow = c.epsilon ?? 0.2;
  return {
    level: c.importanceSamplingLevel ?? 'token',
    policyLoss,
    epsLow,
    epsHigh: c.epsilonHigh ?? (policyLoss === 'cispo' && c.cispoClip !== 'range' ? 5.0 : epsLow),
    cispoRange: c.cispoClip === 'range',
    tauPos: c.sapoTemperaturePos ?? 1.0,
    tauNeg: c.sapoTemperatureNeg ?? 1.05,
    biasCorrectionKl: c.useBiasCorrectionKl ?? false,
    delta: c.delta,
    clipC: c.clipRatioC ?? 3,
    beta: c.beta ?? 0,
    klEstimator: c.klEstimator ?? 'k3',
    clampLogRatio: c.clampLogRatio ?? true,
    lossType: c.lossType ?? 'dapo',
    numItemsInBatch: c.numItemsInBatch,
    maxCompletionLength: c.maxCompletionLength ?? T,
    q: c.topEntropyQuantile ?? 1,
    lossAggMode: c.lossAggMode,
    globalBatchSize: c.globalBatchSize,
    lossScaleFactor: c.lossScaleFactor ?? T,
    clampSeq: c.clampSequenceLogRatio ?? false,
    clipCovRatio: c.clipCovRatio ?? 2e-4,
    clipCovLb: c.clipCovLb ?? 1,
    clipCovUb: c.clipCovUb ?? 5,
    klCovRatio: c.klCovRatio ?? 2e-4,
    ppoKlCoef: c.ppoKlCoef ?? 0.1,
    vespo: { kPos: c.vespoKPos ?? 2, lPos: c.vespoLambdaPos ?? 3, kNeg: c.vespoKNeg ?? 3, lNeg: c.vespoLambdaNeg ?? 2 },
    entropyCoef: c.entropyCoef ?? 0,
    rolloutIs: c.rolloutImportanceSamplingMode,
    rolloutIsC: c.rolloutImportanceSamplingThreshold ?? 2,
  };
}

// torch.minimum(a, b) backward: the gradient goes to the smaller operand, half each on a tie.
function minGrad(a: number, b: number): [number, number] {
  return a < b ? [1, 0] : a > b ? [0, 1] : [0.5, 0.5];
}
const clampPass = (x: number, lo: number, hi: number) => (x >= lo && x <= hi ? 1 : 0);

/** Loss, per-token loss, ∂loss/∂ℓ and metrics of spec §4-§6 in float64. */
export function refGrpoLoss(inp: RefGrpoInputs, cfg: GrpoLossConfig = {}): RefGrpoResult {
  const S = inp.advantages.length;
  const N = inp.logp.length;
  const T = N / S;
  const c = refResolveConfig(cfg, T);
  const m = new Float64Array(N);
  for (let n = 0; n < N; n++) m[n] = inp.mask ? Number(inp.mask[n]) : 1;
  // Read an input only where the mask is 1 (padding may hold NaN).
  const at = (a: ArrayLike<number> | undefined, n: number, dflt: number) => (m[n] && a ? a[n] : dflt);
  const l = new Float64Array(N), old = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    l[n] = at(inp.logp, n, 0);
    old[n] = inp.oldLogp ? at(inp.oldLogp, n, 0) : l[n];  // absent: ℓ.detach()
  }
  const nSeq = new Float64Array(S);
  let nBatch = 0;
  for (let n = 0; n < N; n++) {
    nSeq[Math.floor(n / T)] += m[n];
    nBatch += m[n];
  }

  // §4: log importance weights (token, or GSPO's sequence mean), coef_1 = exp(·).
  // verl GSPO: torch.clamp(log ratio, max=10), gradient 0 where it binds (seqClamped).
  const logW = new Float64Array(N);
  const seqClamped = new Uint8Array(S);
  for (let i = 0; i < S; i++) {
    let seq = 0;
    for (let t = 0; t < T; t++) if (m[i * T + t]) seq += l[i * T + t] - old[i * T + t];
    seq /= Math.max(nSeq[i], 1);
    if (c.clampSeq && seq > 10) {
      seq = 10;
      seqClamped[i] = 1;
    }
    for (let t = 0; t < T; t++) {
      const n = i * T + t;
      logW[n] = c.level === 'sequence' ? seq : l[n] - old[n];
    }
  }

  // Top-entropy selection (TRL): keep entropy >= quantile(masked entropies, 1 - q).
  const emask = new Float64Array(N).fill(1);
  if (c.q < 1 && nBatch > 0) {
    const ents: number[] = [];
    for (let n = 0; n < N; n++) if (m[n]) ents.push(inp.entropy![n]);
    const thr = refQuantile(ents, 1 - c.q);
    for (let n = 0; n < N; n++) emask[n] = m[n] && inp.entropy![n] >= thr ? 1 : 0;
  }

  // §6 aggregation weights; verl agg_loss modes and TRL luspo.
  let nActive = 0;
  for (let i = 0; i < S; i++) nActive += nSeq[i] > 0 ? 1 : 0;
  const G = c.globalBatchSize ?? nActive;
  const weight = (i: number) => {
    if (c.lossAggMode === 'token-mean') return 1 / (c.numItemsInBatch ?? nBatch);
    if (c.lossAggMode === 'seq-mean-token-sum') return 1 / G;
    if (c.lossAggMode === 'seq-mean-token-mean') return 1 / ((nSeq[i] + 1e-8) * G);
    if (c.lossAggMode === 'seq-mean-token-sum-norm') return 1 / c.lossScaleFactor;
    switch (c.lossType) {
      // TRL luspo: (per_token_loss · n_i).mean() over (S, 1) at sequence level, (S, T) at token level
      case 'luspo': return c.level === 'sequence' ? 1 / S : nSeq[i] / (S * T);
      case 'grpo': return 1 / (S * Math.max(nSeq[i], 1));
      case 'bnpo': return 1 / Math.max(nBatch, 1);
      case 'dapo': return 1 / Math.max(c.numItemsInBatch ?? nBatch, 1);
      case 'dr_grpo': return 1 / (S * c.maxCompletionLength);
      case 'seq_sum': return 1 / S;
    }
  };

  // Rollout IS correction (ms-swift's modes), detached: lr = clamp(ℓ_train − ℓ_roll, ±20), ℓ_train =
  // ℓ_old when given else ℓ detached; r = exp(lr), R_i = exp(Σ m·lr / max(n_i, 1)). The weight w
  // multiplies the policy term only. geo_mean (verl): W_i = exp(Σ m·log(w + 1e-10) / (n_i + 1e-8)).
  const wIs = new Float64Array(N).fill(1), seqWIs = new Float64Array(S).fill(1);
  let isClipped = 0;
  if (c.rolloutIs) {
    const C = c.rolloutIsC;
    const clampLr = (x: number) => Math.min(20, Math.max(-20, x));
    for (let i = 0; i < S; i++) {
      const lr = new Float64Array(T);
      let sum = 0;
      for (let t = 0; t < T; t++) {
        const n = i * T + t;
        if (!m[n]) continue;
        const train = inp.oldLogp ? inp.oldLogp[n] : (inp.detachedLogp ?? inp.logp)[n];
        lr[t] = clampLr(train - inp.rolloutLogp![n]);
        sum += lr[t];
      }
      const R = Math.exp(sum / Math.max(nSeq[i], 1));
      if (c.rolloutIs.startsWith('sequence') && R > C) isClipped += 1 / S;
      let logSum = 0;
      for (let t = 0; t < T; t++) {
        const n = i * T + t;
        if (!m[n]) continue;
        const r = Math.exp(lr[t]);
        if (c.rolloutIs.startsWith('token') && r > C) isClipped += 1 / nBatch;
        wIs[n] = c.rolloutIs === 'token_truncate' ? Math.min(r, C)
          : c.rolloutIs === 'token_mask' ? (r <= C ? r : 0)
          : c.rolloutIs === 'sequence_truncate' ? Math.min(R, C)
          : (R <= C ? r : 0);
        logSum += Math.log(wIs[n] + 1e-10);
      }
      seqWIs[i] = Math.exp(logSum / (nSeq[i] + 1e-8));
    }
  }

  // verl geo_mean (GMPO), per sequence: m_t = sgn(A)·min(sgn(A)·lr_t, sgn(A)·clamp(lr_t, −ε_low,
  // ε_high)), ratio_i = exp(Σ m_t / (n_i + 1e-8)), pg_i = −A·n_i/(n_i + 1e-8)·ratio_i, loss term
  // mean_i pg_i (verl's torch.mean); backward through torch.min (ties split, clamp passes inside).
  const geo = c.policyLoss === 'geo_mean';
  const geoRatio = new Float64Array(S), geoPg = new Float64Array(S), geoDm = new Float64Array(N);
  if (geo) {
    for (let i = 0; i < S; i++) {
      const A = inp.advantages[i], sg = Math.sign(A);
      let msum = 0;
      for (let t = 0; t < T; t++) {
        const n = i * T + t;
        if (!m[n]) continue;
        const lr = l[n] - old[n];
        const cl = Math.min(Math.max(lr, -c.epsLow), c.epsHigh);
        const [ga, gb] = minGrad(sg * lr, sg * cl);
        msum += sg * Math.min(sg * lr, sg * cl);
        geoDm[n] = sg * (ga * sg + gb * sg * clampPass(lr, -c.epsLow, c.epsHigh));
      }
      const denom = nSeq[i] + 1e-8;
      geoRatio[i] = Math.exp(msum / denom);
      const aEff = (A * nSeq[i]) / denom;
      geoPg[i] = -aEff * geoRatio[i] * seqWIs[i];
      for (let t = 0; t < T; t++) geoDm[i * T + t] *= -aEff * geoRatio[i] * seqWIs[i] / denom / S;  // now ∂loss/∂ℓ
    }
  }

  // TRL luspo at sequence level: per_token_loss + β·kl broadcasts to (S, T); each KL token n_i/(S·T).
  const klWeight = (i: number) => (c.lossType === 'luspo' && !c.lossAggMode ? nSeq[i] / (S * T) : weight(i));

  // TRL vespo gamma weight φ_i (detached).
  const phi = new Float64Array(S);
  if (c.policyLoss === 'vespo') {
    for (let i = 0; i < S; i++) {
      let sum = 0;
      for (let t = 0; t < T; t++) if (m[i * T + t]) sum += Math.min(Math.max(l[i * T + t] - old[i * T + t], -20), 20);
      const logw = Math.min(Math.max(sum, Math.log(1e-8)), 20);
      const A = inp.advantages[i];
      const k = A >= 0 ? c.vespo.kPos : c.vespo.kNeg;
      const lam = Math.max(A >= 0 ? c.vespo.lPos : c.vespo.lNeg, 1e-4);
      const p = Math.exp(lam + k * logw - lam * Math.exp(logw));
      phi[i] = Number.isFinite(p) ? p : 0;
    }
  }

  // verl clip_cov / kl_cov token selection, ties broken by the kernels' documented rule
  // (largest covariance first, then lower row index) where upstream is random / unspecified.
  const picked = new Uint8Array(N);
  if (c.policyLoss === 'clip_cov' || c.policyLoss === 'kl_cov') {
    const clip = c.policyLoss === 'clip_cov';
    let sa = 0, sl = 0;
    for (let n = 0; n < N; n++) if (m[n]) { sa += inp.advantages[Math.floor(n / T)]; sl += l[n]; }
    const den = clip ? nBatch + 1e-8 : nBatch;
    const ma = sa / den, ml = sl / den;
    const cand: [number, number][] = [];
    for (let n = 0; n < N; n++) {
      if (!m[n]) continue;
      const A = inp.advantages[Math.floor(n / T)];
      const cov = (A - ma) * (l[n] - ml);
      if (clip) {
        const ratio = Math.exp(l[n] - old[n]);
        const pg1 = -A * ratio, pg2 = -A * Math.min(Math.max(ratio, 1 - c.epsLow), 1 + c.epsHigh);
        if (pg2 > pg1) continue;
        if (!(cov > c.clipCovLb && cov < c.clipCovUb)) continue;
      }
      cand.push([cov, n]);
    }
    cand.sort((x, y) => (y[0] - x[0]) || (x[1] - y[1]));
    const k = Math.min(Math.max(1, Math.floor((clip ? c.clipCovRatio : c.klCovRatio) * nBatch)), cand.length);
    for (let j = 0; j < k; j++) picked[cand[j][1]] = 1;
  }

  const perTokenLoss = new Float64Array(N);
  const gradEntropy = new Float64Array(N);
  const dLogW = new Float64Array(N);  // ∂loss/∂logW
  const grad = new Float64Array(N);   // direct terms of ∂loss/∂ℓ
  let loss = 0, klSum = 0, entSum = 0, ratioSum = 0, low = 0, high = 0, region = 0, isWeightSum = 0;
  const lo = 1 - c.epsLow, hi = 1 + c.epsHigh;
  for (let n = 0; n < N; n++) {
    if (!m[n]) continue;
    const i = Math.floor(n / T);
    const A = inp.advantages[i];
    const coef1 = Math.exp(logW[n]);
    // forward of the policy term P and its local gradients
    let P: number, dP_dcoef1 = 0, dP_dl = 0;
    if (geo) {
      P = 0;  // per sequence, added below
    } else if (c.policyLoss === 'vespo') {
      P = -phi[i] * A * l[n];  // −φ·A·logp, φ detached
      dP_dl = -phi[i] * A;
    } else if (c.policyLoss === 'kl_cov') {
      // verl: pg_losses1 = −A·ratio; on picked tokens + ppo_kl_coef·|log ratio| (abs: gradient sign)
      P = -A * coef1;
      dP_dcoef1 = -A;
      if (picked[n]) {
        const lr = l[n] - old[n];
        P += c.ppoKlCoef * Math.abs(lr);
        dP_dl = c.ppoKlCoef * Math.sign(lr);
      }
    } else if (c.policyLoss === 'cispo') {
      // TRL: clamp(coef_1, max=ε_high).detach(); verl: clamp(ratio, 1 − ε_low, 1 + ε_high).detach()
      const capped = c.cispoRange ? Math.min(Math.max(coef1, lo), hi) : Math.min(coef1, c.epsHigh);
      P = -capped * A * l[n];
      dP_dl = -capped * A;
    } else if (c.policyLoss === 'sapo') {
      // TRL / verl: sigmoid(τ(coef_1 − 1))·4/τ, τ = τ_pos where A > 0; P = −gate·A
      const tau = A > 0 ? c.tauPos : c.tauNeg;
      const sig = 1 / (1 + Math.exp(-tau * (coef1 - 1)));
      P = -sig * (4 / tau) * A;
      dP_dcoef1 = -A * 4 * sig * (1 - sig);  // d/dx sigmoid = σ(1 − σ), times τ, times 4/τ
    } else {
      const coef2 = Math.min(Math.max(coef1, lo), hi);
      const coef1d = c.delta !== undefined ? Math.min(coef1, c.delta) : coef1;
      const l1 = coef1d * A, l2 = coef2 * A;
      const [g1, g2] = minGrad(l1, l2);
      let Ppre = -Math.min(l1, l2);
      // dPpre/dcoef1 through both branches
      let dPpre = -(g1 * A * (c.delta !== undefined ? clampPass(coef1, -Infinity, c.delta) : 1) + g2 * A * clampPass(coef1, lo, hi));
      if (c.policyLoss === 'dual_clip' && A < 0) {
        const bound = -c.clipC * A;
        const [gp] = minGrad(Ppre, bound);
        Ppre = Math.min(Ppre, bound);
        dPpre *= gp;
      }
      P = Ppre;
      dP_dcoef1 = dPpre;
      if (c.policyLoss === 'clip_cov' && picked[n]) P = dP_dcoef1 = 0;  // verl: corr = 0
    }
    if (!geo) {  // the rollout IS weight (1 when off), detached: it scales P and its gradients
      P *= wIs[n];
      dP_dcoef1 *= wIs[n];
      dP_dl *= wIs[n];
    }
    isWeightSum += geo ? seqWIs[i] : wIs[n];
    let D = 0, dD = 0;
    if (inp.refLogp) {
      const k = refKl(l[n], inp.refLogp[n], c.klEstimator, c.clampLogRatio);
      D = k.d;
      dD = k.grad;
    }
    // TRL use_bias_correction_kl: per_token_kl = D·coef_1 (coef_1 not detached)
    const klW = c.biasCorrectionKl ? coef1 : 1;
    // entropy bonus (verl entropy_coeff: loss −= coef·agg_loss(H); TRL: on the top-entropy tokens)
    const E = c.entropyCoef !== 0 ? -c.entropyCoef * emask[n] * inp.entropy![n] : 0;
    const L = emask[n] * P + c.beta * D * klW + E;
    perTokenLoss[n] = L;
    const a = weight(i), ak = klWeight(i);
    loss += a * emask[n] * P + ak * (c.beta * D * klW + E);
    gradEntropy[n] = ak * -c.entropyCoef * emask[n];
    // backward: ∂loss/∂(policy term) = a, ∂loss/∂(KL term) = ak (m = 1 here)
    dLogW[n] = (a * emask[n] * dP_dcoef1 + ak * (c.biasCorrectionKl ? c.beta * D : 0)) * coef1;  // ∂coef1/∂logW = coef1
    if (c.level === 'sequence' && seqClamped[i]) dLogW[n] = 0;  // clamp binds: no gradient through s_i
    grad[n] = a * emask[n] * dP_dl + ak * c.beta * dD * klW;
    // metrics (TRL's logged clip ratios)
    klSum += D * klW;
    entSum += inp.entropy ? inp.entropy[n] : 0;
    ratioSum += geo ? geoRatio[i] : coef1;
    // cispo 'range' (verl): clipped = outside the range, whatever A's sign; sapo clips nothing
    const noClip = c.policyLoss === 'sapo' || c.policyLoss === 'vespo' || c.policyLoss === 'kl_cov';
    const isLow = noClip ? false : c.policyLoss === 'cispo' ? c.cispoRange && coef1 < lo : coef1 < lo && A < 0;
    const isHigh = noClip ? false : c.policyLoss === 'cispo' ? (c.cispoRange ? coef1 > hi : coef1 > c.epsHigh && A > 0) : coef1 > hi && A > 0;
    const geoClipped = geo && Math.min(Math.max(l[n] - old[n], -c.epsLow), c.epsHigh) !== l[n] - old[n];
    const low1 = geo ? geoClipped && A < 0 : isLow, high1 = geo ? geoClipped && A > 0 : isHigh;
    low += +low1;
    high += +high1;
    region += +(low1 || high1);
    if (geo) {
      perTokenLoss[n] += geoPg[i] / Math.max(nSeq[i], 1);
      grad[n] += geoDm[n];
    }
  }
  if (geo) for (let i = 0; i < S; i++) loss += geoPg[i] / S;
  // ∂logW/∂ℓ: token level 1 on the same token; sequence level m[i,t]/max(n_i, 1) for every token.
  for (let i = 0; i < S; i++) {
    let seqSum = 0;
    for (let t = 0; t < T; t++) seqSum += dLogW[i * T + t];
    for (let t = 0; t < T; t++) {
      const n = i * T + t;
      if (!m[n]) continue;
      grad[n] += c.level === 'sequence' ? (seqSum * m[n]) / Math.max(nSeq[i], 1) : dLogW[n];
    }
  }
  const d = Math.max(nBatch, 1);
  const maskedMean = (x: number) => (nBatch > 0 ? x / d : 0);
  return {
    loss,
    perTokenLoss,
    gradLogp: grad,
    gradEntropy,
    entropyMask: emask,
    metrics: {
      loss,
      kl: maskedMean(klSum),
      entropy: maskedMean(entSum),
      clipLow: maskedMean(low),
      clipHigh: maskedMean(high),
      clipRegion: maskedMean(region),
      ratio: maskedMean(ratioSum),
      maskedTokens: nBatch,
      isWeightMean: maskedMean(isWeightSum),
      isClippedFrac: isClipped,
    },
  };
}
