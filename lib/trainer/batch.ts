/**
 * Packing sequences for the policy's forward pass and moving logits between the model's layout
 * and the loss's layout.
 *
 * Shapes: n sequences, each prompt ids (P_b, BOS included) then completion ids (C_b), right-padded
 * to L = max_b(P_b + C_b) (causal attention: padding after a sequence cannot change its logits,
 * and positions match generation). The model returns logits [n·L, V], row b·L + p predicting
 * token p+1. The loss wants the completion positions only, [n·T, V] with T = max_b C_b:
 * row b·T + t is the model row b·L + P_b − 1 + t (the one predicting completion token t).
 */
import type { PolicyModel } from '../models/policy';
import type { ExampleMedia } from '../media/types';

export interface PackedBatch {
  n: number;
  /** Padded sequence length. */
  L: number;
  /** Padded completion length. */
  T: number;
  /** [n·L] prompt + completion + padding. */
  tokens: Int32Array;
  /** [n·T] model row feeding loss row b·T + t, or −1 for padding. */
  rowIndex: Int32Array;
  /** [n·T] completion token ids (0 at padding). */
  targets: Int32Array;
  /** [n·T] 1 = token that counts in the loss. */
  mask: Uint8Array;
  /** Completion length per sequence. */
  lengths: number[];
  /** Per sequence: its prompt's media (multimodal; absent when none has any). */
  media?: (ExampleMedia | undefined)[];
}

/**
 * Packs prompts and completions. `maskOut[b]` zeroes sequence b's loss mask (e.g. a truncated
 * completion with maskTruncatedCompletions) while keeping it in the batch.
 */
export function packBatch(
  prompts: ArrayLike<number>[], completions: ArrayLike<number>[], padId: number, maskOut?: boolean[], media?: (ExampleMedia | undefined)[],
): PackedBatch {
  const n = prompts.length;
  let L = 1, T = 1;
  for (let b = 0; b < n; b++) {
    L = Math.max(L, prompts[b].length + completions[b].length);
    T = Math.max(T, completions[b].length);
  }
  const tokens = new Int32Array(n * L).fill(padId);
  const rowIndex = new Int32Array(n * T).fill(-1);
  const targets = new Int32Array(n * T);
  const mask = new Uint8Array(n * T);
  const lengths: number[] = [];
  for (let b = 0; b < n; b++) {
    const P = prompts[b].length, C = completions[b].length;
    // seek to sequence b: prompt, then completion
    tokens.set(prompts[b] as ArrayLike<number>, b * L);
    tokens.set(completions[b] as ArrayLike<number>, b * L + P);
    for (let t = 0; t < C; t++) {
      rowIndex[b * T + t] = b * L + P - 1 + t;
      targets[b * T + t] = completions[b][t];
      mask[b * T + t] = maskOut && maskOut[b] ? 0 : 1;
    }
    lengths.push(C);
  }
  const out: PackedBatch = { n, L, T, tokens, rowIndex, targets, mask, lengths };
  if (media && media.some((m) => m !== undefined)) out.media = media.slice(0, n);
  return out;
}

/** Gathers the completion rows of `logits` [n·L, V] into [n·T, V] (zeros at padding). */
export function gatherCompletionLogits(logits: Float32Array, batch: PackedBatch, V: number, out?: Float32Array): Float32Array {
  const N = batch.n * batch.T;
  const g = out && out.length === N * V ? out : new Float32Array(N * V);
  for (let r = 0; r < N; r++) {
    const src = batch.rowIndex[r];
    if (src < 0) g.fill(0, r * V, (r + 1) * V);
    else g.set(logits.subarray(src * V, (src + 1) * V), r * V);
  }
  return g;
}

/** Scatters dL/dz of the completion rows [n·T, V] (times `scale`) into a zero [n·L, V] buffer. */
export function scatterCompletionGrad(grad: Float32Array, batch: PackedBatch, V: number, scale = 1): Float32Array {
  const full = new Float32Array(batch.n * batch.L * V);
  const N = batch.n * batch.T;
  for (let r = 0; r < N; r++) {
    const dst = batch.rowIndex[r];
    if (dst < 0) continue;
    const row = grad.subarray(r * V, (r + 1) * V);
    if (scale === 1) full.set(row, dst * V);
    else for (let v = 0; v < V; v++) full[dst * V + v] = row[v] * scale;
  }
  return full;
}

/** Selects sequences `idx` of a packed batch (same L and T). */
export function sliceBatch(b: PackedBatch, idx: number[]): PackedBatch {
  const n = idx.length;
  const tokens = new Int32Array(n * b.L);
  const rowIndex = new Int32Array(n * b.T);
  const targets = new Int32Array(n * b.T);
  const mask = new Uint8Array(n * b.T);
  idx.forEach((s, j) => {
    tokens.set(b.tokens.subarray(s * b.L, (s + 1) * b.L), j * b.L);
    targets.set(b.targets.subarray(s * b.T, (s + 1) * b.T), j * b.T);
    mask.set(b.mask.subarray(s * b.T, (s + 1) * b.T), j * b.T);
    for (let t = 0; t < b.T; t++) {
      const r = b.rowIndex[s * b.T + t];
      rowIndex[j * b.T + t] = r < 0 ? -1 : r - s * b.L + j * b.L;
    }
  });
  const out: PackedBatch = { n, L: b.L, T: b.T, tokens, rowIndex, targets, mask, lengths: idx.map((s) => b.lengths[s]) };
  if (b.media) out.media = idx.map((s) => b.media![s]);
  return out;
}

/** Per-token array [S·T] → the rows of sequences idx. */
export function slicePerToken(a: Float32Array, T: number, idx: number[]): Float32Array {
  const o = new Float32Array(idx.length * T);
  idx.forEach((s, j) => o.set(a.subarray(s * T, (s + 1) * T), j * T));
  return o;
}

/** Policy logits of the completion positions, [n·T, V]. */
export async function completionLogits(model: PolicyModel, batch: PackedBatch, train: boolean): Promise<Float32Array> {
  const logits = await model.forward(batch.tokens, batch.n, batch.L, batch.media ? { train, media: batch.media } : { train });
  return gatherCompletionLogits(logits, batch, model.vocabSize);
}
