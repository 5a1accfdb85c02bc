/**
 * grpo-kernels: fast, exact GRPO kernels for Node.js.
 * Every op has an async form (Promise; work on the native thread pool, never the event loop)
 * and a *Sync twin. The math is in spec/grpo-math.md (see README "Math").
 */
import { opBackends } from './device';
import { native } from './native';

export * from './ops/kl_penalty';
export * from './ops/kl_full';
export * from './ops/logprobs';
export * from './ops/group_advantages';
export * from './ops/grpo_loss';
export * from './ops/grpo_loss_from_logits';
export * from './ops/grpo_loss_from_hidden';
export * from './ops/sample';
export * from './models';
export * from './tasks';
export * from './rewards';
export * from './eval';
export * from './trainer';
export * from './rollout/engine';
export * from './rollout/remote';
export { startServer, complete, type RunningServer, type ServerOptions } from './serve/server';
export { writeRolloutWeights, loadServedModel, reloadWeights, type ServedModel } from './serve/weights';
export { parseCompletionRequest, ApiError, type CompletionRequest } from './serve/protocol';
export { WorkerEngine, type WorkerEngineOptions } from './rollout/workers';
export { SnapshotEngine } from './rollout/async';
export type * from './media/types';
export * from './report';
// Media in datasets: ms-swift rows, decoding (sharp / wavefile / ffmpeg), writing (lib/media).
export * from './media/dataset';
export * from './media/decode';
export * from './media/write';
export type { FloatDType } from './validate';
// Host or device tensors: these dispatch to the CPU or the CUDA kernels (lib/dispatch.ts) and
// take the place of the host-only functions of the same names exported above.
export {
  klPenalty, klPenaltySync, logprobs, logprobsSync, groupAdvantages, groupAdvantagesSync,
  grpoLoss, grpoLossSync, grpoLossFromLogits, grpoLossFromLogitsSync, sample, sampleSync,
  grpoLossFromHidden, grpoLossFromHiddenSync,
} from './dispatch';
export * from './device';

/**
 * What the native addon was built with and what this machine has (CPU ISA, threads; CUDA:
 * compiled, arch list, devices present), and `ops`: which backend each op used on its last call.
 */
export function backend() {
  return { ...native().backend(), ops: opBackends() };
}

/** Number of CPU worker threads used by the kernels. */
export function numThreads(): number {
  return native().numThreads();
}

/** Set the number of CPU worker threads (>= 1). Also settable with GRPO_NUM_THREADS. */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024)
    throw new RangeError(`setNumThreads: expected an integer in [1, 1024] for n but received ${String(n)}`);
  native().setNumThreads(n);
}
