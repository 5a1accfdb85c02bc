// Float64 reference forward of the built-in transformer (lib/models/transformer.ts), written
// independently of the native code from the architecture description: the llm.c-style
// "obviously correct" version every native result is checked against.
//   x = wte[tok] + wpe[pos]; per block: x += attn(ln1(x))·Wo + bo; x += gelu(ln2(x)·Wfc + bfc)·Wproj + bproj
//   logits = ln_f(x)·head. Weights [in, out]. LayerNorm eps 1e-5; tanh GELU.

export interface RefConfig {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  dFF: number;
  maxSeqLen: number;
}
export type RefParams = Map<string, Float64Array>;

export function toRefParams(sd: Map<string, { data: Float32Array }>): RefParams {
  const m: RefParams = new Map();
  for (const [k, t] of sd) m.set(k, Float64Array.from(t.data));
  return m;
}

function get(p: RefParams, k: string): Float64Array {
  const t = p.get(k);
  if (!t) throw new Error(`reference: missing ${k}`);
  return t;
}

function layernorm(x: Float64Array, g: Float64Array, b: Float64Array, N: number, d: number): Float64Array {
  const y = new Float64Array(N * d);
  for (let n = 0; n < N; n++) {
    let mu = 0;
    for (let j = 0; j < d; j++) mu += x[n * d + j];
    mu /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[n * d + j] - mu) ** 2;
    v /= d;
    const rs = 1 / Math.sqrt(v + 1e-5);
    for (let j = 0; j < d; j++) y[n * d + j] = (x[n * d + j] - mu) * rs * g[j] + b[j];
  }
  return y;
}

function linear(x: Float64Array, W: Float64Array, b: Float64Array | null, N: number, inn: number, out: number): Float64Array {
  const y = new Float64Array(N * out);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inn; i++) s += x[n * inn + i] * W[i * out + o];
      y[n * out + o] = s;
    }
  return y;
}

export const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** Logits [B*L*V] in float64. */
export function refForward(
  c: RefConfig, p: RefParams, tokens: ArrayLike<number>, B: number, L: number,
  /** Multimodal splice: row n of `rows` replaces wte[tokens[n]] for every n in it (wpe still added). */
  splice?: Map<number, Float64Array>,
): Float64Array {
  const d = c.dModel, H = c.nHeads, hd = d / H, N = B * L, F = c.dFF, V = c.vocabSize;
  const wte = get(p, 'wte'), wpe = get(p, 'wpe');
  let x = new Float64Array(N * d);
  for (let n = 0; n < N; n++) {
    const e = splice?.get(n);
    for (let j = 0; j < d; j++) x[n * d + j] = (e ? e[j] : wte[tokens[n] * d + j]) + wpe[(n % L) * d + j];
  }
  for (let l = 0; l < c.nLayers; l++) {
    const k = (s: string) => get(p, `blocks.${l}.${s}`);
    const h = layernorm(x, k('ln1.weight'), k('ln1.bias'), N, d);
    const q = linear(h, k('attn.q.weight'), k('attn.q.bias'), N, d, d);
    const kk = linear(h, k('attn.k.weight'), k('attn.k.bias'), N, d, d);
    const vv = linear(h, k('attn.v.weight'), k('attn.v.bias'), N, d, d);
    const y = new Float64Array(N * d);
    for (let b = 0; b < B; b++)
      for (let hh = 0; hh < H; hh++)
        for (let t = 0; t < L; t++) {
          const sc: number[] = [];
          for (let s = 0; s <= t; s++) {
            let dot = 0;
            for (let j = 0; j < hd; j++) dot += q[(b * L + t) * d + hh * hd + j] * kk[(b * L + s) * d + hh * hd + j];
            sc.push(dot / Math.sqrt(hd));
          }
          const mx = Math.max(...sc);
          const e = sc.map((s) => Math.exp(s - mx));
          const z = e.reduce((a, b2) => a + b2, 0);
          for (let s = 0; s <= t; s++)
            for (let j = 0; j < hd; j++) y[(b * L + t) * d + hh * hd + j] += (e[s] / z) * vv[(b * L + s) * d + hh * hd + j];
        }
    const o = linear(y, k('attn.o.weight'), k('attn.o.bias'), N, d, d);
    const xm = x.map((xi, i) => xi + o[i]);
    const h2 = layernorm(xm, k('ln2.weight'), k('ln2.bias'), N, d);
    const a = linear(h2, k('mlp.fc.weight'), k('mlp.fc.bias'), N, d, F).map(gelu);
    const m = linear(a, k('mlp.proj.weight'), k('mlp.proj.bias'), N, F, d);
    x = xm.map((xi, i) => xi + m[i]);
  }
  const hf = layernorm(x, get(p, 'ln_f.weight'), get(p, 'ln_f.bias'), N, d);
  return linear(hf, get(p, 'head.weight'), null, N, d, V);
}
