// float64 reference of spec §1 (logprobs): per row, with u = z/τ, lse = log Σ exp(u) (max
// subtracted first), ℓ = u_y − lse, p = exp(u − lse), H = lse − Σ p·u (a −∞ logit has p = 0 and
// contributes 0 to Σ p·u; H is formed relative to the max so that it keeps its digits when tiny).
// Also the chain rule of §1 for the fused tests: ∂L/∂z_v = g·(1[v = y] − p_v)/τ. Shapes: N rows
// of V logits, row n at [n·V, (n+1)·V).
// Written from the spec, independently of the kernels.

/** Logits as float64, widening bfloat16 / float16 bits exactly. */
export function refWiden(logits: Float32Array | Uint16Array, dtype: 'float32' | 'bfloat16' | 'float16' = 'float32'): Float64Array {
  const out = new Float64Array(logits.length);
  if (dtype === 'float32') {
    for (let i = 0; i < logits.length; i++) out[i] = logits[i];
  } else if (dtype === 'bfloat16') {
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let i = 0; i < logits.length; i++) { u[0] = logits[i] << 16; out[i] = f[0]; }
  } else {
    for (let i = 0; i < logits.length; i++) out[i] = refF16ToNumber(logits[i]);
  }
  return out;
}

export function refF16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Round float32 values to bfloat16 / float16 bits (nearest even), for building test inputs. */
export function refToHalf(x: Float32Array, dtype: 'bfloat16' | 'float16'): Uint16Array {
  const out = new Uint16Array(x.length);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < x.length; i++) {
    if (dtype === 'bfloat16') {
      f[0] = x[i];
      const b = u[0];
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    } else {
      out[i] = refNumberToF16(x[i]);
    }
  }
  return out;
}

function refNumberToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundEven(a * 2 ** 24);  // subnormal (may round up to the min normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  let m = roundEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) { m = 0; e += 1; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}
function roundEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

export interface RefRow {
  logp: number;
  entropy: number;
  /** softmax probabilities of the row */
  p: Float64Array;
}

/** One row z[0..V) (float64) with target y and temperature τ. */
export function refLogprobRow(z: ArrayLike<number>, y: number, tau = 1): RefRow {
  const V = z.length;
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, z[v] / tau);
  // Relative to the max, d_v = u_v − m <= 0: L = log Σ exp(d) = log1p(Σ exp(d) − 1) with the max
  // terms' exact 1s left out of the float64 sum, so a peaked row keeps the digits of L; then
  // ℓ = d_y − L and H = L − Σ p·d, both terms >= 0 (no cancellation: H is exact to float64
  // rounding also when it is 1e-13).
  let small = 0, ties = 0;
  for (let v = 0; v < V; v++) {
    const d = z[v] / tau - m;
    if (d === 0) ties++;
    else small += Math.exp(d);
  }
  const L = Math.log1p(small + (ties - 1));
  const p = new Float64Array(V);
  let pd = 0;
  for (let v = 0; v < V; v++) {
    const d = z[v] / tau - m;
    p[v] = Math.exp(d - L);
    if (p[v] > 0) pd += p[v] * d;
  }
  return { logp: z[y] / tau - m - L, entropy: L - pd, p };
}

/** All rows: ℓ and H as Float64Array [N]. */
export function refLogprobs(z: Float64Array, V: number, targets: ArrayLike<number>, tau = 1): { logp: Float64Array; entropy: Float64Array } {
  const N = z.length / V;
  const logp = new Float64Array(N), entropy = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const r = refLogprobRow(z.subarray(n * V, (n + 1) * V), targets[n], tau);
    logp[n] = r.logp;
    entropy[n] = r.entropy;
  }
  return { logp, entropy };
}

/** ∂L/∂z [N·V] from g = ∂L/∂ℓ [N]: g·(1[v = y] − p_v)/τ per row. */
export function refGradLogits(z: Float64Array, V: number, targets: ArrayLike<number>, g: ArrayLike<number>, tau = 1): Float64Array {
  const N = z.length / V;
  const out = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    if (g[n] === 0) continue;
    const { p } = refLogprobRow(z.subarray(n * V, (n + 1) * V), targets[n], tau);
    for (let v = 0; v < V; v++) out[n * V + v] = (g[n] * ((v === targets[n] ? 1 : 0) - p[v])) / tau;
  }
  return out;
}
