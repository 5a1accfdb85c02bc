// Tiny Hugging Face checkpoints written by the tests in the real layout (config.json,
// model.safetensors or shards + model.safetensors.index.json, F32 or BF16), with random
// weights, and the float64 reference's view of them. The safetensors writer here is the
// test's own (not lib's), so loading is checked against an independent encoder.
import * as fs from 'fs';
import * as path from 'path';
import { normal, rng } from './helpers';
import type { RefConfig, RefWeights } from './reference/hf_llama';

export function hfConfigJson(c: RefConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const j: Record<string, unknown> = {
    architectures: [c.arch], model_type: c.arch.replace('ForCausalLM', '').toLowerCase(),
    vocab_size: c.V, hidden_size: c.d, num_hidden_layers: c.nL, num_attention_heads: c.H, num_key_value_heads: c.KVH,
    intermediate_size: c.F, rms_norm_eps: c.eps, rope_theta: c.theta, tie_word_embeddings: c.tied,
    max_position_embeddings: 64, hidden_act: 'silu', torch_dtype: 'float32',
  };
  if (c.hd !== c.d / c.H) j.head_dim = c.hd;
  if (c.llama3) j.rope_scaling = { rope_type: 'llama3', ...c.llama3 };
  return { ...j, ...extra };
}

/** HF tensor names and shapes for `c`. */
export function hfShapes(c: RefConfig): [string, number[]][] {
  const s: [string, number[]][] = [['model.embed_tokens.weight', [c.V, c.d]]];
  const qd = c.H * c.hd, kvd = c.KVH * c.hd;
  for (let l = 0; l < c.nL; l++) {
    const p = `model.layers.${l}.`;
    s.push([p + 'input_layernorm.weight', [c.d]], [p + 'self_attn.q_proj.weight', [qd, c.d]], [p + 'self_attn.k_proj.weight', [kvd, c.d]],
      [p + 'self_attn.v_proj.weight', [kvd, c.d]], [p + 'self_attn.o_proj.weight', [c.d, qd]]);
    if (c.arch === 'Qwen2ForCausalLM') s.push([p + 'self_attn.q_proj.bias', [qd]], [p + 'self_attn.k_proj.bias', [kvd]], [p + 'self_attn.v_proj.bias', [kvd]]);
    if (c.arch === 'Qwen3ForCausalLM') s.push([p + 'self_attn.q_norm.weight', [c.hd]], [p + 'self_attn.k_norm.weight', [c.hd]]);
    s.push([p + 'post_attention_layernorm.weight', [c.d]], [p + 'mlp.gate_proj.weight', [c.F, c.d]], [p + 'mlp.up_proj.weight', [c.F, c.d]],
      [p + 'mlp.down_proj.weight', [c.d, c.F]]);
  }
  s.push(['model.norm.weight', [c.d]]);
  if (!c.tied) s.push(['lm_head.weight', [c.V, c.d]]);
  return s;
}

/** Round a float to bf16 (nearest even), returned as the widened float. */
export function bf16Round(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) << 16;
  return f[0];
}

/** Random weights (norm gains around 1, biases and matrices ~N(0, 0.3²)); bf16-representable when bf16. */
export function randomWeights(c: RefConfig, seed: number, bf16 = false): RefWeights {
  const r = rng(seed);
  const w: RefWeights = new Map();
  for (const [name, shape] of hfShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float64Array(n);
    const norm = name.endsWith('norm.weight');
    for (let i = 0; i < n; i++) {
      const x = Math.fround(norm ? 1 + 0.2 * normal(r) : 0.3 * normal(r));
      a[i] = bf16 ? bf16Round(x) : x;
    }
    w.set(name, a);
  }
  return w;
}

function encodeSt(tensors: [string, number[], Float64Array][], dtype: 'F32' | 'BF16'): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  const es = dtype === 'F32' ? 4 : 2;
  for (const [name, shape, data] of tensors) {
    header[name] = { dtype, shape, data_offsets: [off, off + es * data.length] };
    off += es * data.length;
  }
  const hj = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + hj.length + off);
  out.writeBigUInt64LE(BigInt(hj.length), 0);
  hj.copy(out, 8);
  let at = 8 + hj.length;
  for (const [, , data] of tensors)
    for (let i = 0; i < data.length; i++, at += es) {
      if (dtype === 'F32') out.writeFloatLE(data[i], at);
      else {
        const f = new Float32Array([data[i]]);
        out.writeUInt16LE(new Uint32Array(f.buffer)[0] >>> 16, at);
      }
    }
  return out;
}

/** Writes a checkpoint folder; `shards` > 1 splits the tensors over that many files with an index. */
export function writeHfCheckpoint(dir: string, c: RefConfig, w: RefWeights, o: { dtype?: 'F32' | 'BF16'; shards?: number; extraConfig?: Record<string, unknown> } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(c, o.extraConfig)));
  const list: [string, number[], Float64Array][] = hfShapes(c).map(([n, s]) => [n, s, w.get(n)!]);
  const shards = o.shards ?? 1;
  if (shards === 1) {
    fs.writeFileSync(path.join(dir, 'model.safetensors'), encodeSt(list, o.dtype ?? 'F32'));
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = list.filter((_, i) => i % shards === s);
    part.forEach(([n]) => (weightMap[n] = file));
    fs.writeFileSync(path.join(dir, file), encodeSt(part, o.dtype ?? 'F32'));
  }
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

export function toRef(sd: Map<string, { data: Float32Array }>): RefWeights {
  const m: RefWeights = new Map();
  for (const [k, t] of sd) m.set(k, Float64Array.from(t.data));
  return m;
}

export const ARCHS: Record<string, RefConfig> = {
  // Llama 3.2-style: GQA, tied head, llama3 rope scaling
  llama: { arch: 'LlamaForCausalLM', V: 48, d: 32, nL: 2, H: 4, KVH: 2, hd: 8, F: 40, eps: 1e-5, theta: 500000, tied: true,
    llama3: { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } },
  // Qwen2.5-style: q/k/v biases, untied head
  qwen2: { arch: 'Qwen2ForCausalLM', V: 40, d: 24, nL: 2, H: 6, KVH: 2, hd: 4, F: 36, eps: 1e-6, theta: 1000000, tied: false },
  // Qwen3-style: per-head q/k norms, head_dim set explicitly (≠ hidden/heads)
  qwen3: { arch: 'Qwen3ForCausalLM', V: 44, d: 16, nL: 2, H: 4, KVH: 1, hd: 8, F: 28, eps: 1e-6, theta: 1000000, tied: true },
};

/** GPT-2 byte-to-unicode (the ByteLevel pre-tokenizer's alphabet). */
function byteToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  return new Map(bs.map((b, i) => [b, String.fromCharCode(cs[i])]));
}

/**
 * Tokenizer files of a tiny byte-level BPE (one token per printable ASCII byte and newline, no
 * merges; Qwen's three special tokens first) with a ChatML template: the same file formats and
 * code path as a real Qwen checkpoint, with a vocabulary small enough for tests. Returns the vocab size.
 */
export function writeTinyTokenizer(dir: string): number {
  const b2u = byteToUnicode();
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  const bytes = [10, ...Array.from({ length: 95 }, (_, i) => 32 + i)];
  bytes.forEach((b, i) => (vocab[b2u.get(b)!] = specials.length + i));
  const tj = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  const tc = {
    bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', add_bos_token: false,
    chat_template: "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, 0] }));
  return specials.length + bytes.length;
}

/** n random token ids below V. */
export function tokens(r: () => number, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => Math.floor(r() * V));
}

/** max |got − want| / max |want|: the error relative to the largest reference value. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / den;
}
