/**
 * config.json of a Hugging Face causal LM → the numbers the native model needs. Supported:
 * LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM (SwiGLU MLP, RMSNorm, rotate-half RoPE,
 * GQA; Qwen2 q/k/v biases; Qwen3 per-head q/k norms). RoPE: `rope_theta` at the top level or in
 * `rope_parameters` (transformers v5), scaling types default, linear and llama3 (Llama 3.1/3.2).
 */
export type HfArchitecture = 'LlamaForCausalLM' | 'Qwen2ForCausalLM' | 'Qwen3ForCausalLM';
export const HF_ARCHITECTURES: readonly HfArchitecture[] = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM'];

export interface HfModelConfig {
  architecture: HfArchitecture;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  rmsNormEps: number;
  qkvBias: boolean;
  qkNorm: boolean;
  tied: boolean;
  /** RoPE inverse frequencies [headDim/2] after scaling, as float32 (HF computes them in fp32). */
  invFreq: Float32Array;
  /** The config.json object as read (written back on save). */
  raw: Record<string, unknown>;
}

function err(file: string, what: string, expected: string, got: unknown): Error {
  return new RangeError(`${file}: expected ${expected} for ${what} but received ${JSON.stringify(got)}`);
}

/** inv_freq of HF's _compute_default_rope_parameters, then the configured scaling. */
export function ropeInvFreq(raw: Record<string, unknown>, headDim: number, file = 'config.json'): Float32Array {
  const rp = (raw.rope_parameters ?? raw.rope_scaling ?? null) as Record<string, unknown> | null;
  const theta = Number((rp && rp.rope_theta) ?? raw.rope_theta ?? 10000);
  if (!(theta > 0)) throw err(file, 'rope_theta', 'a positive number', theta);
  const type = String((rp && (rp.rope_type ?? rp.type)) ?? 'default');
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, Math.fround((2 * i) / headDim));
  if (type === 'linear') {
    const f = Number(rp!.factor);
    if (!(f > 0)) throw err(file, 'rope_scaling.factor', 'a positive number', rp!.factor);
    for (let i = 0; i < half; i++) inv[i] /= f;
  } else if (type === 'llama3') {
    const factor = Number(rp!.factor), lo = Number(rp!.low_freq_factor), hi = Number(rp!.high_freq_factor);
    const old = Number(rp!.original_max_position_embeddings);
    for (const [k, v] of [['factor', factor], ['low_freq_factor', lo], ['high_freq_factor', hi], ['original_max_position_embeddings', old]] as const)
      if (!(v > 0)) throw err(file, `rope_scaling.${k}`, 'a positive number', rp![k]);
    const loWave = old / lo, hiWave = old / hi;
    for (let i = 0; i < half; i++) {
      const wave = (2 * Math.PI) / inv[i];
      let f = wave > loWave ? inv[i] / factor : inv[i];
      if (!(wave < hiWave) && !(wave > loWave)) {
        const s = (old / wave - lo) / (hi - lo);
        f = ((1 - s) * f) / factor + s * f;
      }
      inv[i] = f;
    }
  } else if (type !== 'default') {
    throw err(file, 'rope_scaling type', "'default', 'linear' or 'llama3'", type);
  }
  return Float32Array.from(inv);
}

/** Validates a parsed config.json (`file` names it in errors). */
export function parseHfConfig(raw: unknown, file = 'config.json'): HfModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw err(file, 'the config', 'a JSON object', raw);
  const c = raw as Record<string, unknown>;
  const arch = Array.isArray(c.architectures) ? c.architectures[0] : undefined;
  if (!HF_ARCHITECTURES.includes(arch as HfArchitecture))
    throw new RangeError(`${file}: unsupported architecture ${JSON.stringify(arch)}; supported: ${HF_ARCHITECTURES.join(', ')}`);
  const int = (k: string, dflt?: number) => {
    const v = c[k] ?? dflt;
    if (!Number.isInteger(v) || (v as number) < 1) throw err(file, k, 'a positive integer', c[k]);
    return v as number;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw err(file, 'num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`, numKvHeads);
  const headDim = c.head_dim == null ? hiddenSize / numHeads : int('head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw err(file, 'head_dim', 'an even integer (hidden_size / num_attention_heads when unset)', headDim);
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw err(file, 'hidden_act', "'silu'", act);
  if (c.mlp_bias === true) throw err(file, 'mlp_bias', 'false (MLP biases are not supported)', c.mlp_bias);
  if (arch !== 'Qwen2ForCausalLM' && c.attention_bias === true) throw err(file, 'attention_bias', 'false (not supported)', c.attention_bias);
  if (c.use_sliding_window === true) throw err(file, 'use_sliding_window', 'false (sliding-window attention is not supported)', true);
  const eps = Number(c.rms_norm_eps ?? 1e-6);
  if (!(eps > 0)) throw err(file, 'rms_norm_eps', 'a positive number', c.rms_norm_eps);
  return {
    architecture: arch as HfArchitecture,
    vocabSize: int('vocab_size'),
    hiddenSize,
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: int('intermediate_size'),
    maxPositions: int('max_position_embeddings', 2048),
    rmsNormEps: eps,
    qkvBias: arch === 'Qwen2ForCausalLM',
    qkNorm: arch === 'Qwen3ForCausalLM',
    // LlamaConfig, Qwen2Config and Qwen3Config all default tie_word_embeddings to false
    tied: c.tie_word_embeddings === true,
    invFreq: ropeInvFreq(c, headDim, file),
    raw: c,
  };
}
