/**
 * Supervised warm start: cross-entropy on (prompt → solution + EOS), completion tokens only.
 * The gradient comes from the same fused loss: with advantage 1, no old log-probs (ρ = 1) and
 * token-mean aggregation ('bnpo'), ∂L/∂ℓ = −1/N per token, exactly the gradient of the mean
 * negative log-likelihood, so SFT needs no kernel of its own. The reported loss is the NLL.
 */
import type { PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import { grpoLossFromLogits } from '../ops/grpo_loss_from_logits';
import { Example } from '../tasks/types';
import { mixSeed, permutation } from '../tasks/rng';
import { completionLogits, packBatch, scatterCompletionGrad } from './batch';
import { encodeExamplePrompt } from './rollout';
import { learningRateAt } from './schedule';

export interface SftOptions {
  steps: number;
  batchSize: number;
  learningRate: number;
  warmupRatio?: number;
  minLrRatio?: number;
  maxGradNorm?: number;
  weightDecay?: number;
  seed: number;
  /** Checked after every step: true ends the warm start early (e.g. once the policy sometimes succeeds). */
  shouldStop?: (step: number) => boolean | Promise<boolean>;
  /** Called after every step with its metrics. */
  onStep?: (m: { step: number; loss: number; grad_norm: number; learning_rate: number; step_time: number; tokens_per_second: number }) => void | Promise<void>;
}

export async function supervisedFineTune(model: PolicyModel, tok: Tokenizer, examples: Example[], o: SftOptions): Promise<{ loss: number; steps: number }> {
  if (!examples.length) throw new RangeError('supervisedFineTune: no examples');
  const V = model.vocabSize;
  const seqs = examples.map((e) => ({ p: encodeExamplePrompt(tok, e), c: [...tok.encode(e.solution ?? e.answer), tok.eosId] }));
  let perm = permutation(seqs.length, mixSeed(o.seed, 0x5f7));
  let cursor = 0, epoch = 0, last = NaN;
  for (let step = 0; step < o.steps; step++) {
    const t0 = performance.now();
    const batchIdx: number[] = [];
    while (batchIdx.length < o.batchSize) {
      if (cursor >= perm.length) {
        perm = permutation(seqs.length, mixSeed(o.seed, 0x5f7, ++epoch));
        cursor = 0;
      }
      batchIdx.push(perm[cursor++]);
    }
    const batch = packBatch(batchIdx.map((i) => seqs[i].p), batchIdx.map((i) => seqs[i].c), tok.padId, undefined, batchIdx.map((i) => examples[i].media));
    model.zeroGrad();
    const logits = await completionLogits(model, batch, true);
    const r = await grpoLossFromLogits({
      logits, vocabSize: V, targets: batch.targets, mask: batch.mask,
      advantages: new Float32Array(batch.n).fill(1), temperature: 1, beta: 0, lossType: 'bnpo',
      gradient: 'inplace',
    } as Parameters<typeof grpoLossFromLogits>[0]);
    // NLL = −mean ℓ over the completion tokens
    let nll = 0, cnt = 0;
    for (let i = 0; i < batch.mask.length; i++) if (batch.mask[i]) { nll -= r.logp[i]; cnt++; }
    last = nll / Math.max(1, cnt);
    await model.backward(scatterCompletionGrad(r.gradLogits as Float32Array, batch, V));
    const lr = learningRateAt(step, { learningRate: o.learningRate, totalUpdates: o.steps, warmupRatio: o.warmupRatio ?? 0.05, minLrRatio: o.minLrRatio ?? 0.1 });
    const norm = model.step({ lr, maxGradNorm: o.maxGradNorm ?? 1, weightDecay: o.weightDecay ?? 0 });
    const dt = (performance.now() - t0) / 1000;
    await o.onStep?.({ step: step + 1, loss: last, grad_norm: norm, learning_rate: lr, step_time: dt, tokens_per_second: (batch.n * batch.L) / dt });
    if (await o.shouldStop?.(step + 1)) return { loss: last, steps: step + 1 };
  }
  return { loss: last, steps: o.steps };
}
