/**
 * The built-in policy: a small GPT-2-shaped decoder-only transformer whose forward, backward,
 * AdamW step and KV-cache decoding run natively (native/model/). Parameters, gradients and
 * Adam moments live in native memory owned by the model; dispose() frees them now, otherwise
 * the garbage collector does.
 *
 * Architecture: x = wte[token] + wpe[position]; nLayers pre-norm blocks
 *   x += Wo·attn(ln1(x)),  x += Wproj·gelu(Wfc·ln2(x))   (LayerNorm, causal multi-head
 *   attention, tanh-GELU MLP, biases everywhere), then logits = ln_f(x)·head (untied, no bias).
 * Tensor names (stateDict): wte [V, d], wpe [T, d], blocks.<l>.{ln1,ln2}.{weight,bias} [d],
 * blocks.<l>.attn.{q,k,v,o}.weight [d, d] and .bias [d], blocks.<l>.mlp.fc.weight [d, dFF],
 * .fc.bias [dFF], .proj.weight [dFF, d], .proj.bias [d], ln_f.{weight,bias} [d],
 * head.weight [d, V]. Matrices are stored [in, out] (y = x·W + b).
 *
 * Deterministic: forward, backward, step and generate give bit-identical results for the same
 * inputs at any thread count (every reduction has a fixed order), so resuming from a checkpoint
 * continues bit-exactly.
 */
import { native } from '../native';
import * as v from '../validate';
import { generateWithCache } from './generate';
import type { ForwardOptions, GenerateOptions, Generation, PolicyModel, StepOptions, TransformerConfig } from './policy';
import { buildMediaArgs, nativeEncoderConfig, type MediaArgs, type MediaModelConfig } from './media';
import type { ExampleMedia } from '../media/types';
import type { TensorMap } from './safetensors';

export interface ParamEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  /** Weight decay applies (matrices and embeddings; not norms or biases). */
  decay: boolean;
  /** freezeVit / freezeAligner: no gradient, no update. */
  frozen: boolean;
}

type Args = Record<string, unknown>;
interface NativeHandle {
  layout(): ParamEntry[];
  forward(a: Args, async: boolean): Promise<void> | void;
  backward(a: Args, async: boolean): Promise<void> | void;
  decode(a: Args, async: boolean): Promise<void> | void;
  zeroGrad(): void;
  step(a: Args): number;
  copy(which: number, buf: Float32Array, toModel: boolean): void;
  adamStep(): number;
  setAdamStep(n: number): void;
  dispose(): void;
}
const PARAMS = 0, GRADS = 1, ADAM_M = 2, ADAM_V = 3;

const OP = 'Transformer';

function checkConfig(cfg: unknown): TransformerConfig {
  const o = v.options(OP, cfg);
  const int = (name: string, lo: number, hi: number) => v.integer(OP, `config.${name}`, o[name], lo, hi);
  const c: TransformerConfig = {
    vocabSize: int('vocabSize', 1, 1 << 24),
    dModel: int('dModel', 1, 1 << 16),
    nLayers: int('nLayers', 1, 1024),
    nHeads: int('nHeads', 1, 1 << 16),
    dFF: int('dFF', 1, 1 << 20),
    maxSeqLen: int('maxSeqLen', 1, 1 << 20),
    seed: int('seed', 0, Number.MAX_SAFE_INTEGER),
  };
  if (c.dModel % c.nHeads !== 0) throw v.rangeError(OP, 'config.nHeads', `a divisor of dModel (${c.dModel})`, c.nHeads);
  if (o.media !== undefined) c.media = checkMedia(o.media, c.vocabSize);
  return c;
}

function checkMedia(raw: unknown, V: number): MediaModelConfig {
  const o = v.options(OP, raw);
  const id = (n: string) => v.integer(OP, `config.media.${n}`, o[n], 0, V - 1);
  const m: MediaModelConfig = { imageTokenId: id('imageTokenId'), videoTokenId: id('videoTokenId'), audioTokenId: id('audioTokenId') };
  if (o.freezeVit !== undefined) m.freezeVit = v.boolean(OP, 'config.media.freezeVit', o.freezeVit, false);
  if (o.freezeAligner !== undefined) m.freezeAligner = v.boolean(OP, 'config.media.freezeAligner', o.freezeAligner, false);
  if (o.vision !== undefined) {
    const x = v.options(OP, o.vision);
    const int = (n: string, lo: number) => v.integer(OP, `config.media.vision.${n}`, x[n], lo, 1 << 16);
    m.vision = { imageSize: int('imageSize', 1), patchSize: int('patchSize', 1), hidden: int('hidden', 1), frames: int('frames', 0) };
    if (m.vision.imageSize % m.vision.patchSize !== 0) throw v.rangeError(OP, 'config.media.vision.patchSize', `a divisor of imageSize (${m.vision.imageSize})`, m.vision.patchSize);
    if (x.temporalPatch !== undefined) {
      // frames per video token; a model without video reads images with one frame per row
      const tp = v.integer(OP, 'config.media.vision.temporalPatch', x.temporalPatch, 1, Math.max(1, m.vision.frames));
      if (tp > 1) m.vision.temporalPatch = tp;
    }
  }
  if (o.audio !== undefined) {
    const x = v.options(OP, o.audio);
    const int = (n: string, lo: number) => v.integer(OP, `config.media.audio.${n}`, x[n], lo, 1 << 24);
    m.audio = { sampleRate: int('sampleRate', 1), samples: int('samples', 1), window: int('window', 2), hop: int('hop', 1), nMels: int('nMels', 1), stride: int('stride', 1), hidden: int('hidden', 1) };
    if (m.audio.window % 2 !== 0) throw v.rangeError(OP, 'config.media.audio.window', 'an even number of samples', m.audio.window);
    if (m.audio.samples < m.audio.window * 1 || Math.floor(((m.audio.samples - m.audio.window) / m.audio.hop + 1) / m.audio.stride) < 1)
      throw v.rangeError(OP, 'config.media.audio.samples', 'enough samples for at least one token (window + (stride−1)·hop)', m.audio.samples);
  }
  return m;
}

/** The built-in native transformer; see the file comment. Use {@link createTransformer}. */
export class Transformer implements PolicyModel {
  readonly config: TransformerConfig;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  readonly numParameters: number;
  /** Every parameter tensor, in the flat buffer's order. */
  readonly parameters: readonly ParamEntry[];
  private h: NativeHandle | null;
  private lastTrainTokens = 0;

  constructor(config: TransformerConfig) {
    this.config = checkConfig(config);
    const c = this.config;
    const Ctor = native().NativeTransformer as new (a: Args) => NativeHandle;
    this.h = new Ctor({
      vocabSize: c.vocabSize,
      dModel: c.dModel,
      nLayers: c.nLayers,
      nHeads: c.nHeads,
      dFF: c.dFF,
      maxSeqLen: c.maxSeqLen,
      seedLo: c.seed % 2 ** 32,
      seedHi: Math.floor(c.seed / 2 ** 32),
      ...nativeEncoderConfig(c.media),
    });
    this.parameters = Object.freeze(this.h.layout().map((p) => Object.freeze(p)));
    const last = this.parameters[this.parameters.length - 1];
    this.numParameters = last.offset + last.size;
    this.vocabSize = c.vocabSize;
    this.maxSeqLen = c.maxSeqLen;
  }

  private get native(): NativeHandle {
    if (!this.h) throw new Error(`${OP}: this model was disposed`);
    return this.h;
  }

  /** Encoder inputs for the rows' media (empty when there is none). */
  private mediaArgs(op: string, tokens: Int32Array, rowStart: number[], rowLen: number[], media: unknown): MediaArgs {
    const m = this.config.media;
    // no media: placeholder ids are ordinary tokens (a completion may contain sampled ones)
    if (media === undefined) return {};
    if (!Array.isArray(media) || media.length !== rowStart.length) throw v.typeError(op, 'opts.media', `an array of ${rowStart.length} per-row media (or undefined)`, media);
    if (!m) {
      if (media.some((x) => x !== undefined)) throw v.rangeError(op, 'opts.media', 'no media: this model has no encoders (config.media)', 'media');
      return {};
    }
    return buildMediaArgs(op, m, tokens, rowStart, rowLen, media as (ExampleMedia | undefined)[]);
  }

  private forwardArgs(tokens: Int32Array, batch: number, length: number, opts?: ForwardOptions) {
    const op = `${OP}.forward`;
    const B = v.integer(op, 'batch', batch, 1, 2 ** 31);
    const L = v.integer(op, 'length', length, 1, this.maxSeqLen);
    v.ids(op, 'tokens', tokens, B * L, this.vocabSize);
    const o = opts === undefined ? {} : v.options(op, opts);
    const train = v.boolean(op, 'opts.train', o.train, false);
    const logits = v.outFloat32(op, 'opts.out', o.out, B * L * this.vocabSize);
    const media = this.mediaArgs(op, tokens, Array.from({ length: B }, (_, b) => b * L), new Array(B).fill(L), o.media);
    return { tokens, B, L, logits, train, ...media };
  }

  /** Logits [B*L*V] of every position (row b*L + p predicts token p+1). train: keep activations for backward(). */
  async forward(tokens: Int32Array, batch: number, length: number, opts?: ForwardOptions): Promise<Float32Array> {
    const a = this.forwardArgs(tokens, batch, length, opts);
    const p = this.native.forward(a, true);
    if (a.train) this.lastTrainTokens = a.B * a.L;
    await p;
    return a.logits;
  }

  /** Synchronous twin of {@link forward} (blocks the event loop). */
  forwardSync(tokens: Int32Array, batch: number, length: number, opts?: ForwardOptions): Float32Array {
    const a = this.forwardArgs(tokens, batch, length, opts);
    this.native.forward(a, false);
    if (a.train) this.lastTrainTokens = a.B * a.L;
    return a.logits;
  }

  private backwardArgs(gradLogits: Float32Array) {
    const op = `${OP}.backward`;
    if (this.lastTrainTokens === 0) throw new Error(`${op}: call forward(..., { train: true }) first`);
    v.float32Array(op, 'gradLogits', gradLogits, this.lastTrainTokens * this.vocabSize);
    return { N: this.lastTrainTokens, gradLogits };
  }

  /** Accumulates parameter gradients from dL/dlogits of the last train forward. */
  async backward(gradLogits: Float32Array): Promise<void> {
    await this.native.backward(this.backwardArgs(gradLogits), true);
  }

  /** Synchronous twin of {@link backward}. */
  backwardSync(gradLogits: Float32Array): void {
    this.native.backward(this.backwardArgs(gradLogits), false);
  }

  zeroGrad(): void {
    this.native.zeroGrad();
  }

  /**
   * AdamW: the gradient is scaled by min(1, maxGradNorm / (‖g‖ + 1e-6)) (global norm, omitted =
   * no clipping), then m, v updated, w ← w·(1 − lr·weightDecay) on decayed tensors, and
   * w ← w − lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps) (PyTorch's AdamW). Returns ‖g‖ before
   * clipping. A non-finite norm skips the update (nothing changes) and is returned as is.
   * The stored gradients are left unscaled.
   */
  step(opts: StepOptions): number {
    const op = `${OP}.step`;
    const o = v.options(op, opts);
    const lr = v.numberIn(op, 'lr', o.lr, 0, Infinity);
    const maxGradNorm = o.maxGradNorm === undefined ? 0 : v.numberIn(op, 'maxGradNorm', o.maxGradNorm, 0, Infinity, undefined, { loOpen: true });
    const weightDecay = v.numberIn(op, 'weightDecay', o.weightDecay, 0, Infinity, 0);
    const beta1 = v.numberIn(op, 'beta1', o.beta1, 0, 1, 0.9, { hiOpen: true });
    const beta2 = v.numberIn(op, 'beta2', o.beta2, 0, 1, 0.999, { hiOpen: true });
    const eps = v.numberIn(op, 'eps', o.eps, 0, Infinity, 1e-8);
    return this.native.step({ lr, maxGradNorm, weightDecay, beta1, beta2, eps });
  }

  /**
   * Batched sampling with a KV cache. Each prompt keeps its own positions (no padding): its
   * prompt is encoded once, then one token per step, logits of the last position only. Tokens
   * are drawn through the package's sample op with step = index of the token in the completion
   * and the row's rowId, so a prompt's completion does not depend on what else is in the batch.
   */
  async generate(prompts: number[][], opts: GenerateOptions): Promise<Generation> {
    const c = this.config;
    const op = `${OP}.generate`;
    // the prefill carries the prompts' media: the placeholders of prompt b sit at its offset in the flat stream
    let prefill: MediaArgs = {};
    const media = opts && typeof opts === 'object' ? (opts as GenerateOptions).media : undefined;
    if (Array.isArray(prompts) && prompts.every((p) => Array.isArray(p))) {
      const flat = Int32Array.from(prompts.flat());
      const starts: number[] = [];
      let at = 0;
      for (const p of prompts) { starts.push(at); at += p.length; }
      prefill = this.mediaArgs(op, flat, starts, prompts.map((p) => p.length), media);
    }
    return generateWithCache(op, {
      vocabSize: this.vocabSize, maxSeqLen: this.maxSeqLen,
      cacheFloats: (slots, ctx) => 2 * c.nLayers * slots * ctx * c.dModel,
      decode: (a, async) => this.native.decode(a as never, async),
      prefillArgs: prefill,
    }, prompts, opts);
  }

  /**
   * Logits [R*V] of each row's last token after feeding `tokens` (the KV-cache decode step on
   * its own; generate() is built on it). Exposed for tests and custom decoding loops.
   * cache: Float32Array [2, nLayers, slots, ctx, dModel] (ctx defaults to maxSeqLen); row r feeds
   * count[r] tokens at positions start[r].. of cache slot slot[r].
   */
  async decodeStep(args: { cache: Float32Array; slots: number; ctx?: number; tokens: Int32Array; slot: Int32Array; start: Int32Array; count: Int32Array; logits?: Float32Array }): Promise<Float32Array> {
    const R = args.slot.length;
    const logits = args.logits ?? new Float32Array(R * this.vocabSize);
    await this.native.decode({ ...args, ctx: args.ctx ?? this.maxSeqLen, R, logits }, true);
    return logits;
  }

  private flat(which: number): Float32Array {
    const buf = new Float32Array(this.numParameters);
    this.native.copy(which, buf, false);
    return buf;
  }

  private toMap(buf: Float32Array, prefix = ''): TensorMap {
    const m: TensorMap = new Map();
    for (const p of this.parameters) m.set(prefix + p.name, { shape: p.shape.slice(), data: buf.subarray(p.offset, p.offset + p.size) });
    return m;
  }

  private fromMap(op: string, sd: TensorMap, prefix = '', what = 'state dict'): Float32Array {
    if (!(sd instanceof Map)) throw v.typeError(op, what, 'a Map of name -> { shape, data }', sd);
    const buf = new Float32Array(this.numParameters);
    for (const p of this.parameters) {
      const t = sd.get(prefix + p.name);
      const name = `${what}['${prefix + p.name}']`;
      if (!t) throw v.rangeError(op, name, `a tensor of shape [${p.shape}]`, undefined);
      if (!Array.isArray(t.shape) || t.shape.length !== p.shape.length || t.shape.some((s, i) => s !== p.shape[i]))
        throw v.rangeError(op, `${name}.shape`, `[${p.shape}]`, `[${t.shape}]`);
      v.float32Array(op, `${name}.data`, t.data, p.size);
      buf.set(t.data, p.offset);
    }
    const known = new Set(this.parameters.map((p) => prefix + p.name));
    for (const k of sd.keys()) if (k.startsWith(prefix) && !known.has(k)) throw v.rangeError(op, what, 'only this model\'s tensor names', `unknown tensor '${k}'`);
    return buf;
  }

  /** Weights as named float32 tensors (fresh copies). */
  stateDict(): TensorMap {
    return this.toMap(this.flat(PARAMS));
  }

  /** Current gradients as named tensors (fresh copies). */
  gradients(): TensorMap {
    return this.toMap(this.flat(GRADS));
  }

  /** Gradients / weights as one flat buffer in layout order (a fresh copy): what data-parallel
   *  training all-reduces and broadcasts (lib/parallel/data_parallel.ts), one collective per step. */
  flatGradients(): Float32Array {
    return this.flat(GRADS);
  }
  setFlatGradients(g: Float32Array): void {
    v.float32Array(`${OP}.setFlatGradients`, 'g', g, this.numParameters);
    this.native.copy(GRADS, g, true);
  }
  flatParameters(): Float32Array {
    return this.flat(PARAMS);
  }
  setFlatParameters(p: Float32Array): void {
    v.float32Array(`${OP}.setFlatParameters`, 'p', p, this.numParameters);
    this.native.copy(PARAMS, p, true);
  }

  loadStateDict(sd: TensorMap): void {
    this.native.copy(PARAMS, this.fromMap(`${OP}.loadStateDict`, sd), true);
  }

  /** Adam moments as 'm.<name>' and 'v.<name>' tensors, and the step count. */
  optimizerState(): TensorMap & { step?: number } {
    const m = this.toMap(this.flat(ADAM_M), 'm.');
    for (const [k, t] of this.toMap(this.flat(ADAM_V), 'v.')) m.set(k, t);
    return Object.assign(m, { step: this.native.adamStep() });
  }

  loadOptimizerState(s: TensorMap, step: number): void {
    const op = `${OP}.loadOptimizerState`;
    const st = v.integer(op, 'step', step, 0, Number.MAX_SAFE_INTEGER);
    const m = this.fromMap(op, s, 'm.', 'optimizer state');
    const vv = this.fromMap(op, s, 'v.', 'optimizer state');
    this.native.copy(ADAM_M, m, true);
    this.native.copy(ADAM_V, vv, true);
    this.native.setAdamStep(st);
  }

  /** Deep copy: weights, Adam moments and step (gradients start at zero). */
  clone(): Transformer {
    const c = new Transformer(this.config);
    const h = c.native;
    for (const which of [PARAMS, ADAM_M, ADAM_V]) h.copy(which, this.flat(which), true);
    h.setAdamStep(this.native.adamStep());
    return c;
  }

  /** Frees the native memory now (later calls throw). Safe to call twice. */
  dispose(): void {
    if (!this.h) return;
    this.h.dispose();
    this.h = null;
  }
}

/** The built-in native transformer. */
export function createTransformer(cfg: TransformerConfig): Transformer {
  return new Transformer(cfg);
}
