/**
 * Sampling from a weight snapshot, for asynchronous (one-step-off) rollouts: while step k trains,
 * the rollouts of step k+1 are generated, so the sampler must not read the weights the optimiser
 * is writing. This engine samples in-process from its own copy of the policy; syncWeights takes a
 * copy of the trained weights at once (training goes on), and the copy is loaded at the start of
 * the next generate, never under a running one. Each sample records the version it came from.
 */
import type { PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import type { TensorMap } from '../models/safetensors';
import { rollout, type PromptInput, type Rollout, type SamplingOptions } from '../trainer/rollout';
import type { RolloutEngine } from './engine';

export class SnapshotEngine implements RolloutEngine {
  readonly name = 'in-process-snapshot';
  private model: PolicyModel | null;
  private version: number;
  private pending: { sd: TensorMap; version: number } | null = null;
  /** Generate calls run one after another (a snapshot is only ever loaded between them). */
  private queue: Promise<unknown> = Promise.resolve();

  /** Samples with a clone of `model` (freed by close()). */
  constructor(model: PolicyModel, private tokenizer: Tokenizer, version = 0) {
    this.model = model.clone();
    this.version = version;
  }

  generate(prompts: PromptInput[], repeat: number, o: SamplingOptions & { seed: number }): Promise<Rollout> {
    const run = async () => {
      const m = this.model;
      if (!m) throw new Error(`rollout engine ${this.name}: generate after close()`);
      if (this.pending) {
        m.loadStateDict(this.pending.sd);
        this.version = this.pending.version;
        this.pending = null;
      }
      const r = await rollout(m, this.tokenizer, prompts, repeat, o);
      r.policyVersion = new Array(r.tokens.length).fill(this.version);
      return r;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  async syncWeights(model: PolicyModel, version: number): Promise<void> {
    // stateDict() copies now: the optimiser may change the model before the next generate
    this.pending = { sd: model.stateDict(), version };
  }

  async close(): Promise<void> {
    await this.queue;
    this.model?.dispose();
    this.model = null;
  }
}
