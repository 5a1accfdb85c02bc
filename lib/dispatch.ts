/**
 * The package's op entry points with backend dispatch: each op accepts host tensors (typed
 * arrays: the CPU kernels of lib/ops) or device tensors ({@link DeviceTensor}: the CUDA kernels
 * of lib/device.ts `cuda`), and its outputs stay where its inputs are. Mixing host and device
 * tensors in one call is a TypeError naming both arguments (never a silent copy). Per-row
 * sampling parameters, weights and seeds are options, not tensors, and may be host values
 * either way. {@link opBackends} (and backend().ops) tells which backend each op used last.
 * lib/index.ts exports these in place of the host-only functions of lib/ops.
 */
import {
  cuda,
  CudaGroupAdvantagesOptions,
  CudaGroupAdvantagesResult,
  CudaGrpoLossFromLogitsOptions,
  CudaGrpoLossFromLogitsResult,
  CudaGrpoLossFromHiddenOptions,
  CudaGrpoLossFromHiddenResult,
  CudaGrpoLossOptions,
  CudaGrpoLossResult,
  CudaKlPenaltyOptions,
  CudaKlPenaltyResult,
  CudaLogprobsOptions,
  CudaLogprobsResult,
  CudaSampleOptions,
  CudaSampleResult,
  placement,
  recordBackend,
} from './device';
import * as adv from './ops/group_advantages';
import * as gl from './ops/grpo_loss';
import * as glf from './ops/grpo_loss_from_logits';
import * as glh from './ops/grpo_loss_from_hidden';
import * as kl from './ops/kl_penalty';
import * as lp from './ops/logprobs';
import * as smp from './ops/sample';

/** True when the call's tensors are device tensors (all of them: mixing throws). */
function onDevice(op: string, o: unknown, tensors: string[]): boolean {
  if (o === null || typeof o !== 'object') return false;  // the host op reports the bad argument
  const rec = o as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const t of tensors) picked[t] = rec[t];
  const where = placement(op, picked);
  if (where === 'cpu') recordBackend(op, 'cpu');
  return where === 'cuda';
}

const KL = ['logp', 'refLogp'];
/** KL penalty per token (spec §3): host or device tensors. */
export function klPenalty(o: kl.KlPenaltyOptions): Promise<kl.KlPenaltyResult>;
export function klPenalty(o: CudaKlPenaltyOptions): Promise<CudaKlPenaltyResult>;
export async function klPenalty(o: kl.KlPenaltyOptions | CudaKlPenaltyOptions): Promise<kl.KlPenaltyResult | CudaKlPenaltyResult> {
  return onDevice('klPenalty', o, KL) ? cuda.klPenalty(o as CudaKlPenaltyOptions) : kl.klPenalty(o as kl.KlPenaltyOptions);
}
/** Synchronous twin of {@link klPenalty}. */
export function klPenaltySync(o: kl.KlPenaltyOptions): kl.KlPenaltyResult;
export function klPenaltySync(o: CudaKlPenaltyOptions): CudaKlPenaltyResult;
export function klPenaltySync(o: kl.KlPenaltyOptions | CudaKlPenaltyOptions): kl.KlPenaltyResult | CudaKlPenaltyResult {
  return onDevice('klPenalty', o, KL) ? cuda.klPenaltySync(o as CudaKlPenaltyOptions) : kl.klPenaltySync(o as kl.KlPenaltyOptions);
}

const LP = ['logits', 'targets'];
/** Token log-probs and entropy (spec §1): host or device tensors. */
export function logprobs(o: lp.LogprobsOptions): Promise<lp.LogprobsResult>;
export function logprobs(o: CudaLogprobsOptions): Promise<CudaLogprobsResult>;
export async function logprobs(o: lp.LogprobsOptions | CudaLogprobsOptions): Promise<lp.LogprobsResult | CudaLogprobsResult> {
  return onDevice('logprobs', o, LP) ? cuda.logprobs(o as CudaLogprobsOptions) : lp.logprobs(o as lp.LogprobsOptions);
}
/** Synchronous twin of {@link logprobs}. */
export function logprobsSync(o: lp.LogprobsOptions): lp.LogprobsResult;
export function logprobsSync(o: CudaLogprobsOptions): CudaLogprobsResult;
export function logprobsSync(o: lp.LogprobsOptions | CudaLogprobsOptions): lp.LogprobsResult | CudaLogprobsResult {
  return onDevice('logprobs', o, LP) ? cuda.logprobsSync(o as CudaLogprobsOptions) : lp.logprobsSync(o as lp.LogprobsOptions);
}

const ADV = ['rewards', 'groupIds'];
/**
 * Group advantages (spec §2): host or device tensors. On the device, `groupIds` is an int32
 * DeviceTensor of dense indices in [0, numGroups) (or use `groupSize`).
 */
export function groupAdvantages(o: adv.GroupAdvantagesOptions): Promise<adv.GroupAdvantagesResult>;
export function groupAdvantages(o: CudaGroupAdvantagesOptions): Promise<CudaGroupAdvantagesResult>;
export async function groupAdvantages(o: adv.GroupAdvantagesOptions | CudaGroupAdvantagesOptions): Promise<adv.GroupAdvantagesResult | CudaGroupAdvantagesResult> {
  return onDevice('groupAdvantages', o, ADV) ? cuda.groupAdvantages(o as CudaGroupAdvantagesOptions) : adv.groupAdvantages(o as adv.GroupAdvantagesOptions);
}
/** Synchronous twin of {@link groupAdvantages}. */
export function groupAdvantagesSync(o: adv.GroupAdvantagesOptions): adv.GroupAdvantagesResult;
export function groupAdvantagesSync(o: CudaGroupAdvantagesOptions): CudaGroupAdvantagesResult;
export function groupAdvantagesSync(o: adv.GroupAdvantagesOptions | CudaGroupAdvantagesOptions): adv.GroupAdvantagesResult | CudaGroupAdvantagesResult {
  return onDevice('groupAdvantages', o, ADV) ? cuda.groupAdvantagesSync(o as CudaGroupAdvantagesOptions) : adv.groupAdvantagesSync(o as adv.GroupAdvantagesOptions);
}

const GL = ['logp', 'oldLogp', 'refLogp', 'advantages', 'mask', 'entropy'];
/** The GRPO loss from per-token log-probs (spec §4-§6): host or device tensors. */
export function grpoLoss(o: gl.GrpoLossOptions): Promise<gl.GrpoLossResult>;
export function grpoLoss(o: CudaGrpoLossOptions): Promise<CudaGrpoLossResult>;
export async function grpoLoss(o: gl.GrpoLossOptions | CudaGrpoLossOptions): Promise<gl.GrpoLossResult | CudaGrpoLossResult> {
  return onDevice('grpoLoss', o, GL) ? cuda.grpoLoss(o as CudaGrpoLossOptions) : gl.grpoLoss(o as gl.GrpoLossOptions);
}
/** Synchronous twin of {@link grpoLoss}. */
export function grpoLossSync(o: gl.GrpoLossOptions): gl.GrpoLossResult;
export function grpoLossSync(o: CudaGrpoLossOptions): CudaGrpoLossResult;
export function grpoLossSync(o: gl.GrpoLossOptions | CudaGrpoLossOptions): gl.GrpoLossResult | CudaGrpoLossResult {
  return onDevice('grpoLoss', o, GL) ? cuda.grpoLossSync(o as CudaGrpoLossOptions) : gl.grpoLossSync(o as gl.GrpoLossOptions);
}

const GLF = ['logits', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp'];
/** The fused GRPO loss from logits (spec §7): host or device tensors. */
export function grpoLossFromLogits<L extends glf.LogitsArray>(o: glf.GrpoLossFromLogitsOptions<L>): Promise<glf.GrpoLossFromLogitsResult<L>>;
export function grpoLossFromLogits(o: CudaGrpoLossFromLogitsOptions): Promise<CudaGrpoLossFromLogitsResult>;
export async function grpoLossFromLogits(o: glf.GrpoLossFromLogitsOptions | CudaGrpoLossFromLogitsOptions): Promise<glf.GrpoLossFromLogitsResult | CudaGrpoLossFromLogitsResult> {
  return onDevice('grpoLossFromLogits', o, GLF) ? cuda.grpoLossFromLogits(o as CudaGrpoLossFromLogitsOptions) : glf.grpoLossFromLogits(o as glf.GrpoLossFromLogitsOptions);
}
/** Synchronous twin of {@link grpoLossFromLogits}. */
export function grpoLossFromLogitsSync<L extends glf.LogitsArray>(o: glf.GrpoLossFromLogitsOptions<L>): glf.GrpoLossFromLogitsResult<L>;
export function grpoLossFromLogitsSync(o: CudaGrpoLossFromLogitsOptions): CudaGrpoLossFromLogitsResult;
export function grpoLossFromLogitsSync(o: glf.GrpoLossFromLogitsOptions | CudaGrpoLossFromLogitsOptions): glf.GrpoLossFromLogitsResult | CudaGrpoLossFromLogitsResult {
  return onDevice('grpoLossFromLogits', o, GLF) ? cuda.grpoLossFromLogitsSync(o as CudaGrpoLossFromLogitsOptions) : glf.grpoLossFromLogitsSync(o as glf.GrpoLossFromLogitsOptions);
}

const GLH = ['hidden', 'weight', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp'];
/** Its tensors: gradWeight too when it is a buffer to accumulate into (not a boolean). */
function glhTensors(o: unknown): string[] {
  const gw = o !== null && typeof o === 'object' ? (o as Record<string, unknown>).gradWeight : undefined;
  return gw !== null && typeof gw === 'object' ? [...GLH, 'gradWeight'] : GLH;
}
/** The fused linear GRPO loss from hidden states and the output weight (spec §8): host or device tensors. */
export function grpoLossFromHidden(o: glh.GrpoLossFromHiddenOptions): Promise<glh.GrpoLossFromHiddenResult>;
export function grpoLossFromHidden(o: CudaGrpoLossFromHiddenOptions): Promise<CudaGrpoLossFromHiddenResult>;
export async function grpoLossFromHidden(o: glh.GrpoLossFromHiddenOptions | CudaGrpoLossFromHiddenOptions): Promise<glh.GrpoLossFromHiddenResult | CudaGrpoLossFromHiddenResult> {
  return onDevice('grpoLossFromHidden', o, glhTensors(o)) ? cuda.grpoLossFromHidden(o as CudaGrpoLossFromHiddenOptions) : glh.grpoLossFromHidden(o as glh.GrpoLossFromHiddenOptions);
}
/** Synchronous twin of {@link grpoLossFromHidden}. */
export function grpoLossFromHiddenSync(o: glh.GrpoLossFromHiddenOptions): glh.GrpoLossFromHiddenResult;
export function grpoLossFromHiddenSync(o: CudaGrpoLossFromHiddenOptions): CudaGrpoLossFromHiddenResult;
export function grpoLossFromHiddenSync(o: glh.GrpoLossFromHiddenOptions | CudaGrpoLossFromHiddenOptions): glh.GrpoLossFromHiddenResult | CudaGrpoLossFromHiddenResult {
  return onDevice('grpoLossFromHidden', o, glhTensors(o)) ? cuda.grpoLossFromHiddenSync(o as CudaGrpoLossFromHiddenOptions) : glh.grpoLossFromHiddenSync(o as glh.GrpoLossFromHiddenOptions);
}

const SMP = ['logits'];
/** Batched sampling (spec §9): host or device logits; the same tokens on both for one seed. */
export function sample(o: smp.SampleOptions): Promise<smp.SampleResult>;
export function sample(o: CudaSampleOptions): Promise<CudaSampleResult>;
export async function sample(o: smp.SampleOptions | CudaSampleOptions): Promise<smp.SampleResult | CudaSampleResult> {
  return onDevice('sample', o, SMP) ? cuda.sample(o as CudaSampleOptions) : smp.sample(o as smp.SampleOptions);
}
/** Synchronous twin of {@link sample}. */
export function sampleSync(o: smp.SampleOptions): smp.SampleResult;
export function sampleSync(o: CudaSampleOptions): CudaSampleResult;
export function sampleSync(o: smp.SampleOptions | CudaSampleOptions): smp.SampleResult | CudaSampleResult {
  return onDevice('sample', o, SMP) ? cuda.sampleSync(o as CudaSampleOptions) : smp.sampleSync(o as smp.SampleOptions);
}
