/**
 * grpo-kernels: fast, exact GRPO kernels for Node.js.
 * Every op has an async form (Promise; work on the native thread pool, never the event loop)
 * and a *Sync twin. The math is in spec/grpo-math.md (see README "Math").
 */
import { native } from './native';

export * from './ops/kl_penalty';
export * from './ops/logprobs';
export * from './ops/group_advantages';
export * from './ops/grpo_loss';
export * from './ops/grpo_loss_from_logits';
export * from './ops/sample';
export * from './models';
export * from './tasks';
export * from './rewards';
export * from './eval';
export * from './trainer';
export * from './report';
export type { FloatDType } from './validate';

/** What the native addon was built with and what this machine has. */
export function backend() {
  return native().backend();
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
