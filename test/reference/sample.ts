// float64 reference of spec §9 (sample): the kept set and the truncated distribution of one row,
// written from the spec with a full sort (slow and obvious), independently of the kernel.
export interface SampleParams {
  temperature: number; // > 0 (greedy is tested separately)
  topK?: number; // 0 = off
  topP?: number; // 1 = off
  minP?: number; // 0 = off
}

export interface RefRow {
  /** u = z/τ rounded to float32, as the kernel computes it. */
  u: Float64Array;
  /** log softmax(u) over the whole vocab. */
  logSoftmax: Float64Array;
  /** Kept-set membership after top-k, top-p, min-p. */
  kept: boolean[];
  /** The renormalised kept distribution (0 outside the kept set). */
  probs: Float64Array;
}

export function refSampleRow(z: ArrayLike<number>, p: SampleParams): RefRow {
  const V = z.length;
  const tau = Math.fround(p.temperature);
  const u = new Float64Array(V);
  // float32 division: the double quotient of two floats rounded once to float is exact IEEE
  for (let v = 0; v < V; v++) u[v] = Math.fround(Math.fround(z[v]) / tau);
  let M = -Infinity;
  for (let v = 0; v < V; v++) M = Math.max(M, u[v]);
  let S = 0;
  for (let v = 0; v < V; v++) S += Math.exp(u[v] - M);
  const logSoftmax = new Float64Array(V);
  for (let v = 0; v < V; v++) logSoftmax[v] = u[v] - M - Math.log(S);

  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => u[b] - u[a] || a - b);
  let kept = new Array<boolean>(V).fill(true);
  // top-k: keep u >= the k-th largest (all ties kept)
  const k = p.topK ?? 0;
  if (k > 0 && k < V) {
    const t = u[order[k - 1]];
    for (let v = 0; v < V; v++) kept[v] = u[v] >= t;
  }
  // top-p over the kept set, renormalised: smallest descending prefix reaching p (ties kept)
  const topP = Math.fround(p.topP ?? 1);
  if (topP < 1) {
    const list = order.filter((v) => kept[v]);
    let S1 = 0;
    for (const v of list) S1 += Math.exp(u[v] - M);
    let c = 0;
    let t = u[list[list.length - 1]];
    for (const v of list) {
      c += Math.exp(u[v] - M);
      if (c >= topP * S1) {
        t = u[v];
        break;
      }
    }
    kept = kept.map((kv, v) => kv && u[v] >= t);
  }
  // min-p: drop p_v < minP * p_max (p_max is exp(0) up to the common normaliser)
  const minP = Math.fround(p.minP ?? 0);
  if (minP > 0) kept = kept.map((kv, v) => kv && Math.exp(u[v] - M) >= minP);

  const probs = new Float64Array(V);
  let Sk = 0;
  for (let v = 0; v < V; v++) if (kept[v]) Sk += Math.exp(u[v] - M);
  for (let v = 0; v < V; v++) probs[v] = kept[v] ? Math.exp(u[v] - M) / Sk : 0;
  return { u, logSoftmax, kept, probs };
}

/**
 * Pearson chi-square statistic of observed counts against expected probabilities; cells with
 * expected count < 5 are pooled (smallest first) into one cell. Returns the statistic and the
 * degrees of freedom. A count in a cell of probability 0 makes the statistic Infinity.
 */
export function chiSquare(counts: ArrayLike<number>, probs: ArrayLike<number>): { stat: number; df: number } {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  const cells: { o: number; e: number }[] = [];
  let pool = { o: 0, e: 0 };
  let stat = 0;
  for (let i = 0; i < counts.length; i++) {
    const e = probs[i] * n;
    if (e === 0) {
      if (counts[i] > 0) stat = Infinity;
      continue;
    }
    if (e < 5) {
      pool.o += counts[i];
      pool.e += e;
    } else cells.push({ o: counts[i], e });
  }
  if (pool.e > 0) cells.push(pool);
  for (const c of cells) stat += ((c.o - c.e) * (c.o - c.e)) / c.e;
  return { stat, df: Math.max(1, cells.length - 1) };
}

/** Upper critical value of chi-square with df degrees of freedom at the given normal quantile
 * (3.0902 = 99.9%), Wilson–Hilferty. */
export function chiSquareCritical(df: number, z = 3.0902): number {
  const a = 2 / (9 * df);
  return df * Math.pow(1 - a + z * Math.sqrt(a), 3);
}
