/**
 * Rollout engines: where a GRPO step's completions come from. The trainer only sees this
 * interface, so sampling can move out of the training process (local workers, a remote
 * vLLM/SGLang-compatible server, `grpo serve`) or run ahead of training (asynchronous rollouts)
 * without the step changing. The in-process engine is the default and the reference: every other
 * engine must give the same tokens for the same seed and weights.
 */
import type { PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import { rollout, type PromptInput, type Rollout, type SamplingOptions } from '../trainer/rollout';

export interface RolloutEngine {
  /** Shown in errors and metrics ("in-process", "workers:2", "remote:http://…"). */
  readonly name: string;
  /**
   * `repeat` completions for each prompt; sequence i·repeat + j is sample j of prompt i and uses
   * Philox row id i·repeat + j under `o.seed`, so tokens do not depend on how an engine splits work.
   */
  generate(prompts: PromptInput[], repeat: number, o: SamplingOptions & { seed: number }): Promise<Rollout>;
  /**
   * Called after every optimiser update with the trained policy and its version (the trainer's
   * update count); an engine that holds its own copy of the weights refreshes it here.
   */
  syncWeights(model: PolicyModel, version: number): Promise<void>;
  /** Frees workers, connections, temporary files. Idempotent. */
  close(): Promise<void>;
}

/** Samples with the training model itself, in this process (today's path, the default). */
export class InProcessEngine implements RolloutEngine {
  readonly name = 'in-process';
  private version = 0;
  constructor(private model: PolicyModel, private tokenizer: Tokenizer) {}
  async generate(prompts: PromptInput[], repeat: number, o: SamplingOptions & { seed: number }): Promise<Rollout> {
    const r = await rollout(this.model, this.tokenizer, prompts, repeat, o);
    r.policyVersion = new Array(r.tokens.length).fill(this.version);
    return r;
  }
  async syncWeights(model: PolicyModel, version: number): Promise<void> {
    // the engine samples from the training model itself: nothing to copy, only the version to record
    this.model = model;
    this.version = version;
  }
  async close(): Promise<void> {}
}
