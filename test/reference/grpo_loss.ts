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
}

export interface RefGrpoResult {
  loss: number;
  /** L[n] = emask·P + β·D (0 where mask is 0). */
  perTokenLoss: Float64Array;
  /** ∂loss/∂ℓ[n]. */
  gradLogp: Float64Array;
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
  const logW = new Float64Array(N);
  for (let i = 0; i < S; i++) {
    let seq = 0;
    for (let t = 0; t < T; t++) seq += m[i * T + t] * (l[i * T + t] - old[i * T + t]);
    seq /= Math.max(nSeq[i], 1);
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

  // §6 aggregation weights.
  const weight = (i: number) => {
    switch (c.lossType) {
      case 'grpo': return 1 / (S * Math.max(nSeq[i], 1));
      case 'bnpo': return 1 / Math.max(nBatch, 1);
      case 'dapo': return 1 / Math.max(c.numItemsInBatch ?? nBatch, 1);
      case 'dr_grpo': return 1 / (S * c.maxCompletionLength);
      case 'seq_sum': return 1 / S;
    }
  };

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
      geoPg[i] = -aEff * geoRatio[i];
      for (let t = 0; t < T; t++) geoDm[i * T + t] *= -aEff * geoRatio[i] / denom / S;  // now ∂loss/∂ℓ
    }
  }

  const perTokenLoss = new Float64Array(N);
  const dLogW = new Float64Array(N);  // ∂loss/∂logW
  const grad = new Float64Array(N);   // direct terms of ∂loss/∂ℓ
  let loss = 0, klSum = 0, entSum = 0, ratioSum = 0, low = 0, high = 0, region = 0;
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
    }
    let D = 0, dD = 0;
    if (inp.refLogp) {
      const k = refKl(l[n], inp.refLogp[n], c.klEstimator, c.clampLogRatio);
      D = k.d;
      dD = k.grad;
    }
    // TRL use_bias_correction_kl: per_token_kl = D·coef_1 (coef_1 not detached)
    const klW = c.biasCorrectionKl ? coef1 : 1;
    const L = emask[n] * P + c.beta * D * klW;
    perTokenLoss[n] = L;
    const a = weight(i);
    loss += a * L;
    // backward: ∂loss/∂L = a (m = 1 here)
    dLogW[n] = a * (emask[n] * dP_dcoef1 + (c.biasCorrectionKl ? c.beta * D : 0)) * coef1;  // ∂coef1/∂logW = coef1
    grad[n] = a * (emask[n] * dP_dl + c.beta * dD * klW);
    // metrics (TRL's logged clip ratios)
    klSum += D * klW;
    entSum += inp.entropy ? inp.entropy[n] : 0;
    ratioSum += geo ? geoRatio[i] : coef1;
    // cispo 'range' (verl): clipped = outside the range, whatever A's sign; sapo clips nothing
    const isLow = c.policyLoss === 'sapo' ? false : c.policyLoss === 'cispo' ? c.cispoRange && coef1 < lo : coef1 < lo && A < 0;
    const isHigh = c.policyLoss === 'sapo' ? false : c.policyLoss === 'cispo' ? (c.cispoRange ? coef1 > hi : coef1 > c.epsHigh && A > 0) : coef1 > hi && A > 0;
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
    },
  };
}
