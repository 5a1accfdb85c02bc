// float64 reference of the advantage estimators beyond grpo/rloo (groupAdvantages, README Math
// §2), written from the upstream formulas (verl trainer/ppo/core_algos.py compute_*_outcome_advantage,
// verl_F.masked_whiten; TRL RLOOTrainer normalize_advantages), literally: groups are lists of
// members, REINFORCE++'s whitening runs over an explicit token list (each sequence repeated once
// per completion token, as verl's response mask does), pass@k picks the top two by sorting.
// The package's NaN convention is applied on top: a sequence without any reward is left out of
// every statistic and gets advantage 0.

export interface RefEstimatorInput {
  /** Combined reward per sequence (NaN = no reward). */
  r: ArrayLike<number>;
  /** Group id per sequence. */
  ids: ArrayLike<number>;
  estimator: 'reinforce_plus_plus' | 'reinforce_plus_plus_baseline' | 'gpg' | 'grpo_passk' | 'opo' | 'remax' | 'grpo' | 'rloo';
  scale: 'group' | 'batch' | 'none';
  eps: number;
  unbiased: boolean;
  /** Integer completion lengths (opo, reinforce++); undefined: one token per sequence. */
  lengths?: ArrayLike<number>;
  /** remax: the greedy rollout's reward per sequence. */
  baselines?: ArrayLike<number>;
  /** TRL normalize_advantages. */
  normalize?: boolean;
}

const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
/** torch.std (unbiased) or the population std; 0 for fewer than 2 values. */
function std(x: number[], unbiased: boolean): number {
  if (x.length < 2) return 0;
  const m = mean(x);
  return Math.sqrt(x.reduce((a, y) => a + (y - m) ** 2, 0) / (unbiased ? x.length - 1 : x.length));
}

/** verl_F.masked_whiten over a flat token list with mask 1 everywhere (the list holds only masked tokens). */
function maskedWhiten(tokens: number[]): (x: number) => number {
  const n = tokens.length;
  const mu = tokens.reduce((a, b) => a + b, 0) / (n + 1e-8);
  let variance = tokens.reduce((a, t) => a + (t - mu) ** 2, 0) / (n + 1e-8);
  if (n > 1) variance *= n / (n - 1);  // verl raises for n <= 1; the package skips Bessel there
  return (x) => (x - mu) / Math.sqrt(variance + 1e-8);
}

export function refAdvantageEstimator(o: RefEstimatorInput): Float64Array {
  const S = o.r.length;
  const has = (i: number) => !Number.isNaN(o.r[i]);
  const groups = new Map<number, number[]>();
  for (let i = 0; i < S; i++) {
    if (!groups.has(o.ids[i])) groups.set(o.ids[i], []);
    if (has(i)) groups.get(o.ids[i])!.push(i);
  }
  const allRewarded = Array.from({ length: S }, (_, i) => i).filter(has);
  const batchStd = std(allRewarded.map((i) => o.r[i]), o.unbiased);
  const div = (a: number, members: number[]) =>
    o.scale === 'group' ? a / ((members.length && new Set(members.map((j) => o.r[j])).size > 1 ? std(members.map((j) => o.r[j]), o.unbiased) : 0) + o.eps)
      : o.scale === 'batch' ? a / (batchStd + o.eps) : a;
  const A = new Float64Array(S);
  // GPG: alpha = bsz / count_nonzero(scores), over the rewarded sequences
  const nonzero = allRewarded.filter((i) => o.r[i] !== 0).length;
  const alpha = allRewarded.length / Math.max(nonzero, 1);
  for (const members of groups.values()) {
    const rs = members.map((i) => o.r[i]);
    const lone = members.length <= 1;
    const m = rs.length ? mean(rs) : NaN;
    for (const i of members) {
      const r = o.r[i];
      switch (o.estimator) {
        case 'grpo': A[i] = div(r - m, members); break;
        case 'rloo': {
          const others = members.filter((j) => j !== i).map((j) => o.r[j]);
          A[i] = div(others.length ? r - mean(others) : 0, members);
          break;
        }
        case 'reinforce_plus_plus': A[i] = r; break;
        case 'reinforce_plus_plus_baseline': A[i] = r - (lone ? 0 : m); break;
        case 'gpg': A[i] = alpha * (r - (lone ? 0 : m)); break;
        case 'opo': {
          const len = members.map((j) => o.lengths![j]);
          const ls = len.reduce((a, b) => a + b, 0);
          const bsl = lone ? 0 : ls > 0 ? members.reduce((a, j, k) => a + len[k] * o.r[j], 0) / ls : m;
          A[i] = r - bsl;
          break;
        }
        case 'remax': A[i] = Number.isNaN(o.baselines![i]) ? 0 : r - o.baselines![i]; break;
        case 'grpo_passk': {
          // torch.topk(rewards, 2): the best and the second best; the best's first index gets the gap
          const sorted = [...rs].sort((a, b) => b - a);
          const best = members[rs.indexOf(sorted[0])];
          A[i] = members.length >= 2 && i === best && sorted[0] !== sorted[1] ? div(sorted[0] - sorted[1], members) : 0;
          break;
        }
      }
    }
  }
  if (o.estimator === 'reinforce_plus_plus' || o.estimator === 'reinforce_plus_plus_baseline') {
    const tokens: number[] = [];
    for (const i of allRewarded) for (let t = 0; t < (o.lengths ? o.lengths[i] : 1); t++) tokens.push(A[i]);
    const w = maskedWhiten(tokens);
    for (const i of allRewarded) A[i] = w(A[i]);
  }
  if (o.normalize) {
    const a = allRewarded.map((i) => A[i]);
    const mu = a.length ? mean(a) : 0, sd = std(a, o.unbiased);
    for (const i of allRewarded) A[i] = (A[i] - mu) / (sd + o.eps);
  }
  for (let i = 0; i < S; i++) if (!has(i)) A[i] = 0;
  return A;
}
