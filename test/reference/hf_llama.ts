// Float64 reference of the HF Llama / Qwen2 / Qwen3 causal LMs, written from transformers'
// modeling_llama.py / modeling_qwen2.py / modeling_qwen3.py (LlamaRMSNorm, rotate_half +
// apply_rotary_pos_emb, repeat_kv, eager_attention_forward with a causal mask, LlamaMLP) and
// the rope init functions (_compute_default_rope_parameters, _compute_llama3_parameters).
// Weights are HF-shaped ([out, in], y = x·Wᵀ + b), read from a name -> Float64Array map.

export interface RefConfig {
  arch: 'LlamaForCausalLM' | 'Qwen2ForCausalLM' | 'Qwen3ForCausalLM';
  V: number; d: number; nL: number; H: number; KVH: number; hd: number; F: number;
  eps: number; theta: number; tied: boolean;
  llama3?: { factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };
}
export type RefWeights = Map<string, Float64Array>;

export function refInvFreq(c: RefConfig): Float64Array {
  const inv = new Float64Array(c.hd / 2);
  for (let i = 0; i < c.hd / 2; i++) inv[i] = 1 / Math.pow(c.theta, (2 * i) / c.hd);
  if (c.llama3) {
    const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = c.llama3;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      const llama = wavelen > old / lo ? inv[i] / factor : inv[i];
      const smooth = (old / wavelen - lo) / (hi - lo);
      const smoothed = ((1 - smooth) * llama) / factor + smooth * llama;
      const medium = !(wavelen < old / hi) && !(wavelen > old / lo);
      inv[i] = medium ? smoothed : llama;
    }
  }
  return inv;
}

function linear(x: Float64Array, n: number, inF: number, W: Float64Array, outF: number, b?: Float64Array): Float64Array {
  const y = new Float64Array(n * outF);
  for (let t = 0; t < n; t++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[t * inF + i] * W[o * inF + i];
      y[t * outF + o] = s;
    }
  return y;
}

function rms(x: Float64Array, rows: number, d: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j] ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let j = 0; j < d; j++) y[r * d + j] = w[j] * x[r * d + j] * inv;
  }
  return y;
}

/** Logits [B*L*V] for tokens [B*L], positions 0..L-1 in each row. */
export function refLogits(c: RefConfig, W: RefWeights, tokens: ArrayLike<number>, B: number, L: number): Float64Array {
  const g = (n: string) => {
    const t = W.get(n);
    if (!t) throw new Error(`reference: no ${n}`);
    return t;
  };
  const { d, H, KVH, hd, F, V } = c;
  const N = B * L, qd = H * hd, kvd = KVH * hd, inv = refInvFreq(c);
  let x = new Float64Array(N * d);
  const E = g('model.embed_tokens.weight');
  for (let n = 0; n < N; n++) for (let j = 0; j < d; j++) x[n * d + j] = E[tokens[n] * d + j];
  const ropeInPlace = (v: Float64Array, heads: number) => {
    for (let n = 0; n < N; n++) {
      const pos = n % L;
      for (let h = 0; h < heads; h++) {
        const o = (n * heads + h) * hd;
        const r = Array.from(v.subarray(o, o + hd));
        for (let i = 0; i < hd; i++) {
          const f = inv[i % (hd / 2)] * pos; // emb = cat(freqs, freqs)
          const rot = i < hd / 2 ? -r[i + hd / 2] : r[i - hd / 2];
          v[o + i] = r[i] * Math.cos(f) + rot * Math.sin(f);
        }
      }
    }
  };
  for (let l = 0; l < c.nL; l++) {
    const p = `model.layers.${l}.`;
    const h = rms(x, N, d, g(p + 'input_layernorm.weight'), c.eps);
    const bias = c.arch === 'Qwen2ForCausalLM';
    let q = linear(h, N, d, g(p + 'self_attn.q_proj.weight'), qd, bias ? g(p + 'self_attn.q_proj.bias') : undefined);
    let k = linear(h, N, d, g(p + 'self_attn.k_proj.weight'), kvd, bias ? g(p + 'self_attn.k_proj.bias') : undefined);
    const v = linear(h, N, d, g(p + 'self_attn.v_proj.weight'), kvd, bias ? g(p + 'self_attn.v_proj.bias') : undefined);
    if (c.arch === 'Qwen3ForCausalLM') {
      q = rms(q, N * H, hd, g(p + 'self_attn.q_norm.weight'), c.eps);
      k = rms(k, N * KVH, hd, g(p + 'self_attn.k_norm.weight'), c.eps);
    }
    ropeInPlace(q, H);
    ropeInPlace(k, KVH);
    const y = new Float64Array(N * qd);
    for (let b = 0; b < B; b++)
      for (let hh = 0; hh < H; hh++) {
        const kvh = Math.floor(hh / (H / KVH)); // repeat_kv
        for (let t = 0; t < L; t++) {
          const s = new Float64Array(t + 1);
          let mx = -Infinity;
          for (let u = 0; u <= t; u++) {
            let dot = 0;
            for (let j = 0; j < hd; j++) dot += q[((b * L + t) * H + hh) * hd + j] * k[((b * L + u) * KVH + kvh) * hd + j];
            s[u] = dot / Math.sqrt(hd);
            mx = Math.max(mx, s[u]);
          }
          let z = 0;
          for (let u = 0; u <= t; u++) z += (s[u] = Math.exp(s[u] - mx));
          for (let u = 0; u <= t; u++)
            for (let j = 0; j < hd; j++) y[((b * L + t) * H + hh) * hd + j] += (s[u] / z) * v[((b * L + u) * KVH + kvh) * hd + j];
        }
      }
    const o = linear(y, N, qd, g(p + 'self_attn.o_proj.weight'), d);
    for (let i = 0; i < N * d; i++) o[i] += x[i];
    x = o;
    const h2 = rms(x, N, d, g(p + 'post_attention_layernorm.weight'), c.eps);
    const gt = linear(h2, N, d, g(p + 'mlp.gate_proj.weight'), F);
    const up = linear(h2, N, d, g(p + 'mlp.up_proj.weight'), F);
    for (let i = 0; i < N * F; i++) gt[i] = (gt[i] / (1 + Math.exp(-gt[i]))) * up[i];
    const dn = linear(gt, N, F, g(p + 'mlp.down_proj.weight'), d);
    for (let i = 0; i < N * d; i++) dn[i] += x[i];
    x = dn;
  }
  const hf = rms(x, N, d, g('model.norm.weight'), c.eps);
  return linear(hf, N, d, c.tied ? E : g('lm_head.weight'), V);
}
