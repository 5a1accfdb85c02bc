/**
 * A Hugging Face causal LM (Llama / Qwen2 / Qwen3 checkpoint folder) as a PolicyModel: native
 * forward, backward, AdamW and KV-cache generation (native/model/hf_model.cc), weights mapped
 * from the safetensors files by the addon (bf16, f16 or f32 on disk). Trained parameters are
 * float32 in memory (their own master copies); frozen matrices (the LoRA base, a reference copy)
 * may stay bfloat16 (frozenDtype), read by matmuls that accumulate in float32. Tensor names and shapes are HF's
 * (`model.layers.{i}.self_attn.q_proj.weight` [out, in], ...), so stateDict() saves back to a
 * folder transformers can load (saveHfModel).
 */
import * as fs from 'fs';
import * as path from 'path';
import { native } from '../../native';
import * as v from '../../validate';
import { generateWithCache } from '../generate';
import type { GenerateOptions, Generation, OutputHead, PolicyModel, StepOptions } from '../policy';
import type { TensorMap } from '../safetensors';
import { writeFileAtomic } from '../safetensors';
import { HfModelConfig, parseHfConfig } from './config';
import { readCheckpointIndex, readSafetensorsHeader, StEntry, writeSafetensorsStreaming } from './safetensors';
import { HfTokenizer } from './tokenizer';
import { mulberry32 } from '../../tasks/rng';

type Args = Record<string, unknown>;
interface ParamEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  decay: boolean;
  /** Has gradients and optimizer state (every tensor in full fine-tuning; the adapters with LoRA). */
  trainable: boolean;
}
interface NativeHandle {
  layout(): ParamEntry[];
  forward(a: Args, async: boolean): Promise<void> | void;
  backward(a: Args, async: boolean): Promise<void> | void;
  forwardHidden(a: Args, async: boolean): Promise<void> | void;
  backwardHidden(a: Args, async: boolean): Promise<void> | void;
  headViews(): { weight: Float32Array | Uint16Array; dtype: 'float32' | 'bfloat16'; grad: Float32Array | null };
  decode(a: Args, async: boolean): Promise<void> | void;
  loadFile(a: Args, async: boolean): Promise<void> | void;
  zeroGrad(): void;
  step(a: Args): number;
  getTensor(which: number, index: number, buf: Float32Array): void;
  setTensor(which: number, index: number, buf: Float32Array): void;
  adamStep(): number;
  setAdamStep(n: number): void;
  dispose(): void;
}
const PARAMS = 0, GRADS = 1, ADAM_M = 2, ADAM_V = 3;
const OP = 'HfCausalLM';
const DTYPE_CODE: Record<string, number> = { F32: 0, BF16: 1, F16: 2 };

/** PEFT's module names, in the native order (bit i of the target mask). */
export const LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export interface LoraOptions {
  /** Rank r. */
  r: number;
  /** α: the adapters' output is scaled by α / r. */
  alpha: number;
  /** PEFT module names (default q_proj, v_proj, PEFT's default for Llama and Qwen). */
  targetModules?: string[];
  /** Seed of A's init (kaiming-uniform as PEFT; B starts at zero so the model starts as the base). */
  seed?: number;
}

export interface HfModelOptions {
  /** Longest prompt + completion the model will see (default: min(max_position_embeddings, 4096)). */
  maxSeqLen?: number;
  /** Train LoRA adapters (dropout 0) instead of every weight; the base weights stay frozen. */
  lora?: LoraOptions;
  /**
   * Memory type of the frozen matrices (embedding, lm_head, projections of the LoRA base or of a
   * frozen copy): 'bfloat16' halves them (the matmuls widen per panel, accumulate in float32; a
   * float32 value loaded into one is rounded to nearest even). Trained parameters are always
   * float32. Default: loadHfModel picks 'bfloat16' when the checkpoint's matrices are bf16 (lossless), else 'float32'.
   */
  frozenDtype?: 'bfloat16' | 'float32';
  /** Nothing trains (a reference copy): no gradients or optimizer state; forward and generate only. */
  frozen?: boolean;
}

function checkLora(lo: LoraOptions | undefined): { r: number; alpha: number; targets: string[]; mask: number; seed: number } | null {
  if (lo === undefined) return null;
  const op = `${'HfCausalLM'}: lora`;
  const o = v.options(op, lo);
  const r = v.integer(op, 'r', o.r, 1, 1 << 16);
  const alpha = v.numberIn(op, 'alpha', o.alpha, 0, Infinity, undefined, { loOpen: true });
  const targets = (o.targetModules as string[] | undefined) ?? ['q_proj', 'v_proj'];
  if (!Array.isArray(targets) || targets.length === 0) throw v.typeError(op, 'targetModules', `a non-empty array of ${LORA_MODULES.join(', ')}`, targets);
  let mask = 0;
  for (const t of targets) {
    const i = LORA_MODULES.indexOf(t as (typeof LORA_MODULES)[number]);
    if (i < 0) throw v.rangeError(op, 'targetModules', `names from ${LORA_MODULES.join(', ')}`, t);
    mask |= 1 << i;
  }
  return { r, alpha, targets: [...targets], mask, seed: v.integer(op, 'seed', o.seed, 0, 2 ** 32 - 1, 0) };
}

/** A Llama / Qwen2 / Qwen3 causal LM; see the file comment. Load one with {@link loadHfModel}. */
export class HfCausalLM implements PolicyModel {
  readonly config: HfModelConfig;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  readonly numParameters: number;
  readonly parameters: readonly ParamEntry[];
  /** D (hidden_size): the rows of forwardHidden. */
  readonly hiddenSize: number;
  private h: NativeHandle | null;
  private lastTrainTokens = 0;
  private lastTrainRows = 0;
  private head: { weight: Float32Array | Uint16Array; dtype: 'float32' | 'bfloat16'; grad: Float32Array | null } | null = null;
  /** Memory type of the frozen matrices (HfModelOptions.frozenDtype). */
  readonly frozenDtype: 'bfloat16' | 'float32';
  /** Nothing trains (HfModelOptions.frozen). */
  readonly frozen: boolean;
  /** The LoRA settings, or null in full fine-tuning. */
  readonly lora: { r: number; alpha: number; targets: string[]; mask: number; seed: number } | null;
  private readonly index = new Map<string, number>();

  /** A model with zero weights (load them with loadStateDict or {@link loadHfModel}); LoRA adapters initialised as PEFT does. */
  constructor(config: HfModelConfig, opts: HfModelOptions = {}) {
    this.config = config;
    this.lora = checkLora(opts.lora);
    const fd = opts.frozenDtype ?? 'float32';
    if (fd !== 'bfloat16' && fd !== 'float32') throw v.rangeError(OP, 'frozenDtype', "'bfloat16' or 'float32'", fd);
    this.frozenDtype = fd;
    this.frozen = v.boolean(OP, 'frozen', opts.frozen, false);
    if (this.frozen && this.lora) throw v.rangeError(OP, 'frozen', 'false with lora (the adapters train)', true);
    const Ctor = native().NativeHfModel as new (a: Args) => NativeHandle;
    const l = this.lora;
    this.h = new Ctor({
      ...config, raw: undefined, frozen: this.frozen, bf16Frozen: fd === 'bfloat16',
      ...(l ? { loraR: l.r, loraScale: l.alpha / l.r, loraTargets: l.mask } : {}),
    });
    this.parameters = Object.freeze(this.h.layout().map((p) => Object.freeze(p)));
    this.parameters.forEach((p, i) => this.index.set(p.name, i));
    const last = this.parameters[this.parameters.length - 1];
    this.numParameters = last.offset + last.size;
    this.vocabSize = config.vocabSize;
    this.hiddenSize = config.hiddenSize;
    this.maxSeqLen = v.integer(OP, 'maxSeqLen', opts.maxSeqLen, 1, config.maxPositions, Math.min(config.maxPositions, 4096));
    if (l) {
      // PEFT: A ~ kaiming_uniform(a=√5) = U(±1/√fan_in), B = 0
      const rand = mulberry32(l.seed);
      this.parameters.forEach((p, i) => {
        if (!p.name.endsWith('lora_A.weight')) return;
        const bound = 1 / Math.sqrt(p.shape[1]);
        this.native.setTensor(PARAMS, i, Float32Array.from({ length: p.size }, () => (2 * rand() - 1) * bound));
      });
    }
  }

  /** True for the PEFT adapter tensors (base_model.model.….lora_A/B.weight). */
  static isAdapter(name: string): boolean {
    return name.startsWith('base_model.model.');
  }

  private get native(): NativeHandle {
    if (!this.h) throw new Error(`${OP}: this model was disposed`);
    return this.h;
  }

  private planLoad(entries: Map<string, StEntry>, where: string) {
    const byFile = new Map<string, { index: number[]; offset: number[]; dtype: number[] }>();
    for (const [i, p] of this.parameters.entries()) {
      if (HfCausalLM.isAdapter(p.name) && !entries.has(p.name)) continue;  // adapters keep their init
      const e = entries.get(p.name);
      if (!e) throw new RangeError(`${where}: tensor '${p.name}' is missing (expected shape [${p.shape}])`);
      if (e.shape.length !== p.shape.length || e.shape.some((s, j) => s !== p.shape[j]))
        throw new RangeError(`${e.file}: tensor '${p.name}' has shape [${e.shape}] but config.json implies [${p.shape}]`);
      let f = byFile.get(e.file);
      if (!f) byFile.set(e.file, (f = { index: [], offset: [], dtype: [] }));
      f.index.push(i);
      f.offset.push(e.offset);
      f.dtype.push(DTYPE_CODE[e.dtype]);
    }
    return [...byFile].map(([file, f]) => ({ path: file, index: Int32Array.from(f.index), offset: Float64Array.from(f.offset), dtype: Int32Array.from(f.dtype) }));
  }

  /** Copies every parameter from a checkpoint's tensors (readCheckpointIndex), file by file through mmap, off the event loop. */
  async loadEntries(entries: Map<string, StEntry>, where: string): Promise<void> {
    for (const a of this.planLoad(entries, where)) await this.native.loadFile(a, true);
  }

  /** Synchronous twin of {@link loadEntries}. */
  loadEntriesSync(entries: Map<string, StEntry>, where: string): void {
    for (const a of this.planLoad(entries, where)) this.native.loadFile(a, false);
  }

  private forwardArgs(tokens: Int32Array, batch: number, length: number, opts?: { train?: boolean; out?: Float32Array; adapters?: boolean }) {
    const op = `${OP}.forward`;
    const B = v.integer(op, 'batch', batch, 1, 2 ** 31);
    const L = v.integer(op, 'length', length, 1, this.maxSeqLen);
    v.ids(op, 'tokens', tokens, B * L, this.vocabSize);
    const o = opts === undefined ? {} : v.options(op, opts);
    const train = v.boolean(op, 'opts.train', o.train, false);
    const adapters = v.boolean(op, 'opts.adapters', o.adapters, true);
    if (train && !adapters) throw v.rangeError(op, 'opts.adapters', 'true when train is true (the adapters are what trains)', adapters);
    const logits = v.outFloat32(op, 'opts.out', o.out, B * L * this.vocabSize);
    return { tokens, B, L, logits, train, adapters };
  }

  /** Logits [B*L*V] (row b*L + p predicts token p+1; positions 0..L-1 in every row). train: keep activations for backward(); adapters: false runs the base model (LoRA). */
  async forward(tokens: Int32Array, batch: number, length: number, opts?: { train?: boolean; out?: Float32Array; adapters?: boolean }): Promise<Float32Array> {
    const a = this.forwardArgs(tokens, batch, length, opts);
    const p = this.native.forward(a, true);
    if (a.train) this.lastTrainTokens = a.B * a.L;
    await p;
    return a.logits;
  }

  /** Synchronous twin of {@link forward} (blocks the event loop). */
  forwardSync(tokens: Int32Array, batch: number, length: number, opts?: { train?: boolean; out?: Float32Array; adapters?: boolean }): Float32Array {
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

  private hiddenArgs(tokens: Int32Array, batch: number, length: number, rows: Int32Array, opts?: { train?: boolean; adapters?: boolean }) {
    const op = `${OP}.forwardHidden`;
    const B = v.integer(op, 'batch', batch, 1, 2 ** 31);
    const L = v.integer(op, 'length', length, 1, this.maxSeqLen);
    v.ids(op, 'tokens', tokens, B * L, this.vocabSize);
    if (!(rows instanceof Int32Array) || rows.length === 0) throw v.typeError(op, 'rows', 'a non-empty Int32Array of positions b·length + p (or -1)', rows);
    for (let i = 0; i < rows.length; i++)
      if (rows[i] < -1 || rows[i] >= B * L) throw v.rangeError(op, `rows[${i}]`, `a position in [0, ${B * L}) or -1`, rows[i]);
    const o = opts === undefined ? {} : v.options(op, opts);
    const train = v.boolean(op, 'opts.train', o.train, false);
    const adapters = v.boolean(op, 'opts.adapters', o.adapters, true);
    if (train && !adapters) throw v.rangeError(op, 'opts.adapters', 'true when train is true (the adapters are what trains)', adapters);
    const hidden = new Float32Array(rows.length * this.hiddenSize);
    return { tokens, B, L, R: rows.length, rows, hidden, train, adapters };
  }

  /** Final normed hidden states [rows.length·D] of positions `rows` (b·length + p; −1 = zero row): the PolicyModel hidden-state path, no logits. */
  async forwardHidden(tokens: Int32Array, batch: number, length: number, rows: Int32Array, opts?: { train?: boolean; adapters?: boolean }): Promise<Float32Array> {
    const a = this.hiddenArgs(tokens, batch, length, rows, opts);
    const p = this.native.forwardHidden(a, true);
    if (a.train) this.lastTrainRows = a.R;
    await p;
    return a.hidden;
  }

  /** Synchronous twin of {@link forwardHidden}. */
  forwardHiddenSync(tokens: Int32Array, batch: number, length: number, rows: Int32Array, opts?: { train?: boolean; adapters?: boolean }): Float32Array {
    const a = this.hiddenArgs(tokens, batch, length, rows, opts);
    this.native.forwardHidden(a, false);
    if (a.train) this.lastTrainRows = a.R;
    return a.hidden;
  }

  private backwardHiddenArgs(gradHidden: Float32Array) {
    const op = `${OP}.backwardHidden`;
    if (this.lastTrainRows === 0) throw new Error(`${op}: call forwardHidden(..., { train: true }) first`);
    v.float32Array(op, 'gradHidden', gradHidden, this.lastTrainRows * this.hiddenSize);
    return { R: this.lastTrainRows, gradHidden };
  }

  /** Accumulates the parameter gradients (all but the head's, see outputHead) from ∂L/∂h of the last train forwardHidden. */
  async backwardHidden(gradHidden: Float32Array): Promise<void> {
    await this.native.backwardHidden(this.backwardHiddenArgs(gradHidden), true);
  }

  /** Synchronous twin of {@link backwardHidden}. */
  backwardHiddenSync(gradHidden: Float32Array): void {
    this.native.backwardHidden(this.backwardHiddenArgs(gradHidden), false);
  }

  /**
   * The output weight [V, D] (lm_head.weight, or the embedding when tied) and the gradient buffer
   * it accumulates into (null with LoRA: the head is frozen): views of the model's own memory,
   * read-only by contract, valid for the model's life.
   */
  outputHead(): OutputHead {
    this.head ??= this.native.headViews();
    return { weight: this.head.weight, weightDtype: this.head.dtype, grad: this.head.grad };
  }

  zeroGrad(): void {
    this.native.zeroGrad();
  }

  /** AdamW exactly as the built-in Transformer.step (PyTorch's AdamW, global-norm clipping); returns ‖g‖ before clipping. */
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
   * Batched sampling with a KV cache: each prompt has its own cache slot and positions 0..len-1
   * (prompts of different lengths need no padding), one token per step through the package's
   * sample op with step = token index and the row's rowId, so a completion does not depend on
   * the batch it was drawn in.
   */
  async generate(prompts: number[][], opts: GenerateOptions): Promise<Generation> {
    const c = this.config;
    return generateWithCache(`${OP}.generate`, {
      vocabSize: this.vocabSize, maxSeqLen: this.maxSeqLen,
      cacheFloats: (slots, ctx) => 2 * c.numLayers * slots * ctx * c.numKvHeads * c.headDim,
      decode: (a, async) => this.native.decode(a as never, async),
    }, prompts, opts);
  }

  /** Logits [R*V] of each row's last token after feeding `tokens` at positions start[r].. of cache slot slot[r] (cache [2, nL, slots, ctx, KVH*hd]). */
  async decodeStep(args: { cache: Float32Array; slots: number; ctx: number; tokens: Int32Array; slot: Int32Array; start: Int32Array; count: Int32Array }): Promise<Float32Array> {
    const R = args.slot.length;
    const logits = new Float32Array(R * this.vocabSize);
    await this.native.decode({ ...args, R, logits }, true);
    return logits;
  }

  private toMap(which: number, prefix = ''): TensorMap {
    const m: TensorMap = new Map();
    this.parameters.forEach((p, i) => {
      if (which !== PARAMS && !p.trainable) return;
      const data = new Float32Array(p.size);
      this.native.getTensor(which, i, data);
      m.set(prefix + p.name, { shape: p.shape.slice(), data });
    });
    return m;
  }

  private fromMap(op: string, which: number, sd: TensorMap, prefix = '', what = 'state dict', trainableOnly = false): void {
    if (!(sd instanceof Map)) throw v.typeError(op, what, 'a Map of name -> { shape, data }', sd);
    const keep = (p: ParamEntry) => (which === PARAMS && !trainableOnly) || p.trainable;
    const list = this.parameters.filter(keep);
    list.forEach((p) => {
      const t = sd.get(prefix + p.name);
      const name = `${what}['${prefix + p.name}']`;
      if (!t) throw v.rangeError(op, name, `a tensor of shape [${p.shape}]`, undefined);
      if (!Array.isArray(t.shape) || t.shape.length !== p.shape.length || t.shape.some((s, i) => s !== p.shape[i])) throw v.rangeError(op, `${name}.shape`, `[${p.shape}]`, `[${t.shape}]`);
      v.float32Array(op, `${name}.data`, t.data, p.size);
    });
    const names = new Set(list.map((p) => prefix + p.name));
    if (trainableOnly) for (const k of sd.keys()) if (!names.has(k)) throw v.rangeError(op, `${what}['${k}']`, 'only the trained tensors (a frozen or unknown tensor is not loaded from here)', 'a tensor');
    this.parameters.forEach((p, i) => keep(p) && this.native.setTensor(which, i, sd.get(prefix + p.name)!.data));
  }

  /** Weights as named float32 tensors in HF names and shapes (fresh copies). */
  stateDict(): TensorMap {
    return this.toMap(PARAMS);
  }
  /** Current gradients, HF names and shapes. */
  gradients(): TensorMap {
    return this.toMap(GRADS);
  }
  loadStateDict(sd: TensorMap): void {
    this.fromMap(`${OP}.loadStateDict`, PARAMS, sd);
  }
  /**
   * Only the tensors that train (the LoRA adapters; every weight in full fine-tuning): what a
   * LoRA checkpoint holds, the frozen base staying in its own folder.
   */
  trainableStateDict(): TensorMap {
    const m: TensorMap = new Map();
    this.parameters.forEach((p, i) => {
      if (!p.trainable) return;
      const data = new Float32Array(p.size);
      this.native.getTensor(PARAMS, i, data);
      m.set(p.name, { shape: p.shape.slice(), data });
    });
    return m;
  }
  /** Loads exactly the trained tensors (the counterpart of {@link trainableStateDict}); the frozen ones stay. */
  loadTrainableStateDict(sd: TensorMap): void {
    this.fromMap(`${OP}.loadTrainableStateDict`, PARAMS, sd, '', 'state dict', true);
  }
  optimizerState(): TensorMap & { step?: number } {
    const m = this.toMap(ADAM_M, 'm.');
    for (const [k, t] of this.toMap(ADAM_V, 'v.')) m.set(k, t);
    return Object.assign(m, { step: this.native.adamStep() });
  }
  loadOptimizerState(s: TensorMap, step: number): void {
    const op = `${OP}.loadOptimizerState`;
    const st = v.integer(op, 'step', step, 0, Number.MAX_SAFE_INTEGER);
    this.fromMap(op, ADAM_M, s, 'm.', 'optimizer state');
    this.fromMap(op, ADAM_V, s, 'v.', 'optimizer state');
    this.native.setAdamStep(st);
  }

  /**
   * The base model as a read-only PolicyModel sharing these weights: forward with the adapters
   * switched off. With LoRA this is the GRPO reference model, without a second copy in memory.
   */
  referenceModel(): PolicyModel {
    if (!this.lora) throw new Error(`${OP}.referenceModel: only a LoRA model has a base to fall back to; use clone()`);
    const self = this;
    const ro = (what: string) => () => {
      throw new Error(`${OP} reference view: ${what} is not available (the reference is read-only)`);
    };
    return {
      get vocabSize() { return self.vocabSize; },
      get maxSeqLen() { return self.maxSeqLen; },
      get numParameters() { return self.parameters.filter((p) => !p.trainable).reduce((a, p) => a + p.size, 0); },
      get config() { return self.config; },
      forward: (t, b, l, o) => self.forward(t, b, l, { ...o, train: false, adapters: false }),
      hiddenSize: self.hiddenSize,
      forwardHidden: (t, b, l, rows, o) => self.forwardHidden(t, b, l, rows, { ...o, train: false, adapters: false }),
      backwardHidden: ro('backwardHidden'),
      outputHead: () => ({ ...self.outputHead(), grad: null }),
      backward: ro('backward'), zeroGrad: ro('zeroGrad'), step: ro('step'), generate: ro('generate'),
      // nothing of its own to checkpoint: the base weights are in the policy's state dict
      clone: () => self.referenceModel(), stateDict: () => new Map(), loadStateDict: () => {},
      optimizerState: () => new Map(), loadOptimizerState: ro('loadOptimizerState'), dispose: () => {},
    } as PolicyModel;
  }

  /**
   * The frozen reference for GRPO's KL term: with LoRA the base itself ({@link referenceModel},
   * no copy); otherwise a frozen copy of the current weights with no gradients or optimizer
   * state, its matrices in `frozenDtype` (bf16: half the memory; exact for weights loaded from a
   * bf16 checkpoint and not yet trained).
   */
  referenceCopy(): PolicyModel {
    if (this.lora) return this.referenceModel();
    const c = new HfCausalLM(this.config, { maxSeqLen: this.maxSeqLen, frozen: true, frozenDtype: this.frozenDtype });
    // tensor by tensor: never a second full float32 copy of the weights at once
    this.parameters.forEach((p, i) => {
      const data = new Float32Array(p.size);
      this.native.getTensor(PARAMS, i, data);
      c.native.setTensor(PARAMS, i, data);
    });
    return c;
  }

  /** Deep copy: weights, Adam moments and step (gradients start at zero). */
  clone(): HfCausalLM {
    const l = this.lora;
    const c = new HfCausalLM(this.config, {
      maxSeqLen: this.maxSeqLen, frozen: this.frozen, frozenDtype: this.frozenDtype,
      lora: l ? { r: l.r, alpha: l.alpha, targetModules: l.targets, seed: l.seed } : undefined,
    });
    c.loadStateDict(this.stateDict());
    if (!this.frozen && this.native.adamStep() > 0) c.loadOptimizerState(this.optimizerState(), this.native.adamStep());
    return c;
  }

  dispose(): void {
    if (!this.h) return;
    this.head = null;
    this.h.dispose();
    this.h = null;
  }
}

function readConfig(dir: string): HfModelConfig {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new RangeError(`${dir}: no config.json (is this a Hugging Face checkpoint folder?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RangeError(`${file}: not JSON (${(e as Error).message})`);
  }
  return parseHfConfig(raw, file);
}

/** 'bfloat16' when every 2-D tensor of the checkpoint is stored bf16 (keeping them bf16 loses nothing). */
function defaultFrozenDtype(entries: Map<string, StEntry>): 'bfloat16' | 'float32' {
  for (const e of entries.values()) if (e.shape.length === 2 && e.dtype !== 'BF16') return 'float32';
  return 'bfloat16';
}

/** Loads a checkpoint folder's model (config.json + safetensors); the files are mapped by the addon off the event loop. */
export async function loadHfModel(dir: string, opts: HfModelOptions = {}): Promise<HfCausalLM> {
  // (with opts.lora the adapters start fresh: A random, B zero)
  const cfg = readConfig(dir);
  const entries = readCheckpointIndex(dir);
  const m = new HfCausalLM(cfg, { ...opts, frozenDtype: opts.frozenDtype ?? defaultFrozenDtype(entries) });
  try {
    await m.loadEntries(entries, dir);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}

/** Synchronous twin of {@link loadHfModel}. */
export function loadHfModelSync(dir: string, opts: HfModelOptions = {}): HfCausalLM {
  const cfg = readConfig(dir);
  const entries = readCheckpointIndex(dir);
  const m = new HfCausalLM(cfg, { ...opts, frozenDtype: opts.frozenDtype ?? defaultFrozenDtype(entries) });
  try {
    m.loadEntriesSync(entries, dir);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}

/** Model and tokenizer of a checkpoint folder. */
export async function loadHfCheckpoint(dir: string, opts: HfModelOptions = {}): Promise<{ model: HfCausalLM; tokenizer: HfTokenizer }> {
  const tokenizer = HfTokenizer.fromDir(dir);
  return { model: await loadHfModel(dir, opts), tokenizer };
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];

/**
 * Saves `model` as a Hugging Face folder: config.json, model.safetensors (bf16 by default),
 * and the tokenizer / generation files copied from `sourceDir`. Refuses a non-empty `dir`
 * unless `overwrite` (nothing a user made is replaced without being asked).
 */
export function saveHfModel(model: HfCausalLM, dir: string, opts: { dtype?: 'bfloat16' | 'float32'; sourceDir?: string; overwrite?: boolean } = {}): void {
  const dtype = opts.dtype ?? 'bfloat16';
  if (dtype !== 'bfloat16' && dtype !== 'float32') throw v.rangeError('saveHfModel', 'dtype', "'bfloat16' or 'float32'", dtype);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0 && !opts.overwrite)
    throw new Error(`saveHfModel: ${dir} is not empty; pass overwrite: true to replace its files`);
  fs.mkdirSync(dir, { recursive: true });
  // with LoRA: the base with the adapters merged in (W + α/r·B·A), as PEFT's merge_and_unload
  const sd = mergedStateDict(model);
  writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), sd, dtype === 'bfloat16' ? 'BF16' : 'F32');
  const raw = { ...model.config.raw, torch_dtype: dtype };
  writeFileAtomic(path.join(dir, 'config.json'), Buffer.from(JSON.stringify(raw, null, 2) + '\n'));
  if (opts.sourceDir)
    for (const f of TOKENIZER_FILES) {
      const src = path.join(opts.sourceDir, f);
      if (fs.existsSync(src) && path.resolve(src) !== path.resolve(path.join(dir, f))) fs.copyFileSync(src, path.join(dir, f));
    }
}

/** Base weights with any LoRA adapters merged in: W[out, in] += (α/r)·B[out, r]·A[r, in] (float64 sums, rounded once). */
export function mergedStateDict(model: HfCausalLM): TensorMap {
  const all = model.stateDict();
  const out: TensorMap = new Map([...all].filter(([k]) => !HfCausalLM.isAdapter(k)));
  const l = model.lora;
  if (!l) return out;
  const s = l.alpha / l.r;
  for (const [k, A] of all) {
    if (!k.endsWith('.lora_A.weight')) continue;
    const stem = k.slice('base_model.model.'.length, -'.lora_A.weight'.length);
    const B = all.get(`base_model.model.${stem}.lora_B.weight`)!;
    const W = out.get(`${stem}.weight`)!;
    const [o, r] = B.shape, inF = A.shape[1];
    const merged = Float32Array.from(W.data);
    for (let i = 0; i < o; i++)
      for (let j = 0; j < inF; j++) {
        let acc = 0;
        for (let q = 0; q < r; q++) acc += B.data[i * r + q] * A.data[q * inF + j];
        merged[i * inF + j] = W.data[i * inF + j] + s * acc;
      }
    out.set(`${stem}.weight`, { shape: W.shape.slice(), data: merged });
  }
  return out;
}

/**
 * Saves the LoRA adapters as a PEFT folder (adapter_config.json + adapter_model.safetensors,
 * float32) that peft.PeftModel.from_pretrained(base, dir) loads. `baseModel` is recorded as
 * base_model_name_or_path.
 */
export function saveLoraAdapter(model: HfCausalLM, dir: string, opts: { baseModel?: string; overwrite?: boolean } = {}): void {
  const l = model.lora;
  if (!l) throw new Error('saveLoraAdapter: this model has no LoRA adapters');
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0 && !opts.overwrite)
    throw new Error(`saveLoraAdapter: ${dir} is not empty; pass overwrite: true to replace its files`);
  fs.mkdirSync(dir, { recursive: true });
  const ad = new Map([...model.stateDict()].filter(([k]) => HfCausalLM.isAdapter(k)));
  writeSafetensorsStreaming(path.join(dir, 'adapter_model.safetensors'), ad, 'F32');
  const cfg = {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: opts.baseModel ?? null, r: l.r, lora_alpha: l.alpha,
    lora_dropout: 0, target_modules: l.targets, bias: 'none', fan_in_fan_out: false, inference_mode: true, init_lora_weights: true,
    modules_to_save: null, use_rslora: false, use_dora: false,
  };
  writeFileAtomic(path.join(dir, 'adapter_config.json'), Buffer.from(JSON.stringify(cfg, null, 2) + '\n'));
}

/** Loads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) onto a base checkpoint folder. */
export async function loadHfModelWithAdapter(baseDir: string, adapterDir: string, opts: { maxSeqLen?: number; frozenDtype?: 'bfloat16' | 'float32' } = {}): Promise<HfCausalLM> {
  const cfgFile = path.join(adapterDir, 'adapter_config.json');
  if (!fs.existsSync(cfgFile)) throw new RangeError(`${adapterDir}: no adapter_config.json`);
  const ac = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  if (ac.peft_type !== 'LORA') throw new RangeError(`${cfgFile}: expected peft_type "LORA" but received ${JSON.stringify(ac.peft_type)}`);
  const entries = readCheckpointIndex(baseDir);
  const m = new HfCausalLM(readConfig(baseDir), {
    maxSeqLen: opts.maxSeqLen, frozenDtype: opts.frozenDtype ?? defaultFrozenDtype(entries),
    lora: { r: ac.r, alpha: ac.lora_alpha, targetModules: ac.target_modules },
  });
  try {
    for (const [k, e] of readSafetensorsHeader(path.join(adapterDir, 'adapter_model.safetensors'))) entries.set(k, e);
    for (const p of m.parameters) if (HfCausalLM.isAdapter(p.name) && !entries.has(p.name)) throw new RangeError(`${adapterDir}: adapter tensor '${p.name}' is missing`);
    await m.loadEntries(entries, baseDir);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}
