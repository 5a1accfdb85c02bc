// float64 reference of spec §2 (groupAdvantages), written from the spec independently of the
// kernel: rewards are combined per sequence, groups are collected as lists of members, and
// every statistic is computed the plain way (rloo literally as r_i minus the mean of the others).
// Sequences without any reward (all NaN) are left out of every statistic and get advantage 0.

export interface RefGroupAdvantagesInput {
  /** [S·K] row-major. */
  rewards: ArrayLike<number>;
  K: number;
  weights?: ArrayLike<number>;
  /** Group id per sequence (any values). */
  ids: ArrayLike<number>;
  estimator: 'grpo' | 'rloo';
  scale: 'group' | 'batch' | 'none';
  eps: number;
  unbiased: boolean;
}

export interface RefGroupAdvantagesResult {
  advantages: Float64Array;
  rewards: Float64Array;
  /** Per distinct id, in order of first appearance. */
  groupIds: number[];
  groupMean: Float64Array;
  groupStd: Float64Array;
  zeroStdFraction: number;
  numNoReward: number;
}

function mean(x: number[]): number {
  return x.reduce((a, b) => a + b, 0) / x.length;
}

/** Sample std (n − 1) or population std (n); 0 for fewer than 2 values or all-equal values. */
export function refStd(x: number[], unbiased: boolean): number {
  if (x.length < 2 || x.every((y) => y === x[0])) return 0;
  const mu = mean(x);
  const ss = x.reduce((a, y) => a + (y - mu) ** 2, 0);
  return Math.sqrt(ss / (unbiased ? x.length - 1 : x.length));
}

export function refGroupAdvantages(o: RefGroupAdvantagesInput): RefGroupAdvantagesResult {
  const S = o.rewards.length / o.K;
  const r = new Float64Array(S);
  let numNoReward = 0;
  for (let i = 0; i < S; i++) {
    let sum = 0, any = false;
    for (let k = 0; k < o.K; k++) {
      const x = o.rewards[i * o.K + k];
      if (Number.isNaN(x)) continue;
      sum += (o.weights ? o.weights[k] : 1) * x;
      any = true;
    }
    r[i] = any ? sum : NaN;
    if (!any) numNoReward++;
  }
  const groupIds: number[] = [];
  const members = new Map<number, number[]>();
  for (let i = 0; i < S; i++) {
    if (!members.has(o.ids[i])) {
      members.set(o.ids[i], []);
      groupIds.push(o.ids[i]);
    }
    members.get(o.ids[i])!.push(i);
  }
  const rewarded = (id: number) => members.get(id)!.filter((i) => !Number.isNaN(r[i])).map((i) => r[i]);
  const groupMean = Float64Array.from(groupIds, (id) => (rewarded(id).length ? mean(rewarded(id)) : NaN));
  const groupStd = Float64Array.from(groupIds, (id) => (rewarded(id).length ? refStd(rewarded(id), o.unbiased) : NaN));
  const all = Array.from(r).filter((x) => !Number.isNaN(x));
  const batchStd = refStd(all, o.unbiased);
  const advantages = new Float64Array(S);
  groupIds.forEach((id, g) => {
    for (const i of members.get(id)!) {
      if (Number.isNaN(r[i])) continue;
      let a: number;
      if (o.estimator === 'rloo') {
        const others = members.get(id)!.filter((j) => j !== i && !Number.isNaN(r[j])).map((j) => r[j]);
        a = others.length ? r[i] - mean(others) : 0;
      } else {
        a = r[i] - groupMean[g];
      }
      if (o.scale === 'group') a /= groupStd[g] + o.eps;
      if (o.scale === 'batch') a /= batchStd + o.eps;
      advantages[i] = a;
    }
  });
  const zero = Array.from(groupStd).filter((s) => s === 0).length;
  return {
    advantages,
    rewards: r,
    groupIds,
    groupMean,
    groupStd,
    zeroStdFraction: groupIds.length ? zero / groupIds.length : 0,
    numNoReward,
  };
}
