// Shared setup of the model tests: the tiny config, randomised (larger than init) weights so
// every path matters, and a few float64 helpers.
import { createTransformer, Transformer, TransformerConfig } from '../lib';
import { normal, rng } from './helpers';

export const TINY: TransformerConfig = { vocabSize: 11, dModel: 16, nLayers: 2, nHeads: 2, dFF: 32, maxSeqLen: 8, seed: 3 };

/** A model whose every tensor is random and O(1)-scaled (init weights are too small to test with). */
export function randomModel(cfg: TransformerConfig = TINY, seed = 1): Transformer {
  const m = createTransformer(cfg);
  const r = rng(seed);
  const sd = m.stateDict();
  for (const [name, t] of sd) {
    const gain = name.endsWith('ln1.weight') || name.endsWith('ln2.weight') || name.endsWith('ln_f.weight');
    const s = t.shape.length === 1 ? (gain ? 0.2 : 0.1) : 1 / Math.sqrt(t.shape[0]);
    for (let i = 0; i < t.data.length; i++) t.data[i] = (gain ? 1 : 0) + s * normal(r);
  }
  m.loadStateDict(sd);
  return m;
}

export function randomTokens(r: () => number, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => Math.floor(r() * V));
}

/** Mean next-token cross-entropy over rows (float64) and its gradient w.r.t. the logits. */
export function crossEntropy(logits: Float32Array, targets: ArrayLike<number>, V: number): { loss: number; grad: Float32Array } {
  const N = targets.length;
  const grad = new Float32Array(N * V);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[n * V + v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[n * V + v] - mx);
    loss += Math.log(z) + mx - logits[n * V + targets[n]];
    for (let v = 0; v < V; v++) grad[n * V + v] = (Math.exp(logits[n * V + v] - mx) / z - (v === targets[n] ? 1 : 0)) / N;
  }
  return { loss: loss / N, grad };
}

export function argmax(a: ArrayLike<number>, off: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[off + v] > a[off + best]) best = v;
  return best;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
