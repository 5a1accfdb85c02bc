/**
 * The policy-model interface the trainer drives, model-neutral: token ids in, logits out,
 * gradients of the logits back, an optimiser step, KV-cache generation, and named float32
 * tensors for checkpoints. The built-in transformer (createTransformer) and the Hugging Face
 * models (lib/models/hf, loadHfModel) implement it; any other model can too (README,
 * "Hugging Face models").
 */
import type { TensorMap } from './safetensors';
import type { ExampleMedia } from '../media/types';
import type { MediaModelConfig } from './media';

export interface GenerateOptions {
  maxNewTokens: number;
  /** Per spec §9 (the package's sample op): τ ≥ 0 (0 = greedy, default 1), top-k (0 = off),
   * top-p in (0, 1] (1 = off), min-p in [0, 1] (0 = off). */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Philox seed; rows use rowIds so results don't depend on batching. */
  seed: number | bigint;
  /** Per prompt (uint32), default 0..B-1. */
  rowIds?: number[];
  /** Generation of a row stops after emitting one of these (it is included). */
  stopTokenIds?: number[];
  /** Per prompt: the media its placeholder tokens stand for (multimodal models; README "Multimodal GRPO"). */
  media?: (ExampleMedia | undefined)[];
}

export interface Generation {
  /** Per prompt: the completion ids (no prompt), length <= maxNewTokens. */
  tokens: Int32Array[];
  /** Per completion token: log softmax(z/τ)[token] over the whole vocab (τ = 1 when greedy). */
  logprobs: Float32Array[];
  /** Hit maxNewTokens without a stop token. */
  truncated: boolean[];
}

export interface TransformerConfig {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  dFF: number;
  maxSeqLen: number;
  seed: number;
  /** Built-in encoders and placeholder ids (multimodal; absent: a text-only model, exactly as before). */
  media?: MediaModelConfig;
}

export interface StepOptions {
  lr: number;
  /** Global-norm clipping threshold (> 0); omitted: no clipping. */
  maxGradNorm?: number;
  /** Decoupled weight decay (AdamW) on matrices and embeddings; default 0. */
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface ForwardOptions {
  train?: boolean;
  out?: Float32Array;
  /** Per batch row: the media its placeholder tokens stand for (multimodal models only). */
  media?: (ExampleMedia | undefined)[];
}

/** The output layer as the fused loss reads it (grpoLossFromHidden's `weight` / `gradWeight`). */
export interface OutputHead {
  /** W [V, D] row-major (Hugging Face's lm_head layout; the embedding when tied). */
  weight: Float32Array | Uint16Array;
  /** Element type of `weight`; required for a Uint16Array (bfloat16 / float16 bits), default 'float32'. */
  weightDtype?: 'float32' | 'bfloat16' | 'float16';
  /** The buffer ∂L/∂W accumulates into (+=, part of the model's gradients), or null when the head is frozen (LoRA). */
  grad: Float32Array | null;
}

export interface PolicyModel {
  readonly vocabSize: number;
  /** Prompt + completion must fit. */
  readonly maxSeqLen: number;
  readonly numParameters: number;
  /** Logits for every position of a batch of sequences: tokens [B*L] row-major, returns
   *  Float32Array [B*L*V] where row (b*L + p) predicts token p+1. With train=true the
   *  activations are kept for backward(). */
  forward(tokens: Int32Array, batch: number, length: number, opts?: ForwardOptions): Promise<Float32Array>;
  /** Accumulates parameter gradients from dL/dlogits [B*L*V] of the last train forward. */
  backward(gradLogits: Float32Array): Promise<void>;
  zeroGrad(): void;
  /** AdamW (decoupled weight decay) with global-norm gradient clipping; returns the norm
   *  before clipping. */
  step(opts: StepOptions): number;
  /** KV cache, sampling through the package's `sample` op. */
  generate(prompts: number[][], opts: GenerateOptions): Promise<Generation>;
  /** Deep copy (frozen reference model = a clone never stepped). */
  clone(): PolicyModel;
  /** Optional: the frozen reference for the KL term, cheaper than clone() (no optimizer state,
   *  lower-precision storage, or a view of shared base weights); the trainer prefers it. */
  referenceCopy?(): PolicyModel;
  /** Weights as named float32 tensors (safetensors-ready) and back; optimiser state too. */
  stateDict(): TensorMap;
  loadStateDict(sd: TensorMap): void;
  optimizerState(): TensorMap & { step?: number };
  loadOptimizerState(s: TensorMap, step: number): void;
  /**
   * Optional hidden-state path: a model that has all of hiddenSize, forwardHidden, backwardHidden
   * and outputHead is trained without the N×V logits (the trainer runs grpoLossFromHidden on the
   * hidden states and the head, chunked). forwardHidden returns the final normed hidden states
   * [rows.length·D] of positions `rows` (indices b·L + p into the batch, −1 = a zero row); with
   * train = true, backwardHidden(∂L/∂h for those rows) accumulates every parameter gradient
   * except the head's own, which the loss adds to outputHead().grad.
   */
  readonly hiddenSize?: number;
  forwardHidden?(tokens: Int32Array, batch: number, length: number, rows: Int32Array, opts?: { train?: boolean }): Promise<Float32Array>;
  backwardHidden?(gradHidden: Float32Array): Promise<void>;
  outputHead?(): OutputHead;
  /** The model's own description (the built-in TransformerConfig, an HF config, ...): the
   *  trainer never reads it; checkpoints record it. */
  readonly config: object;
  dispose(): void;
}

/** True when `m` implements the whole optional hidden-state path. */
export function hasHiddenPath(m: PolicyModel): m is PolicyModel & Required<Pick<PolicyModel, 'hiddenSize' | 'forwardHidden' | 'backwardHidden' | 'outputHead'>> {
  return typeof m.hiddenSize === 'number' && typeof m.forwardHidden === 'function' && typeof m.backwardHidden === 'function' && typeof m.outputHead === 'function';
}

/** The built-in native model (lib/models/transformer.ts), re-exported here as the contract names it. */
export { createTransformer } from './transformer';
