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
import * as v from './validate';

/**
 * Reads the call's options once ({@link v.snapshot} over the keys of both forms, `out` included)
 * and says whether its tensors are device tensors (all of them: mixing throws). The chosen form
 * gets the snapshot, so no option getter runs twice and the form rejects keys it does not take.
 */
function route(op: string, o: unknown, tensors: readonly string[] | ((snap: Record<string, unknown>) => readonly string[]), keys: { all: readonly string[]; nested: { out: readonly string[] } }): { snap: never; device: boolean } {
  const snap = v.snapshot(op, o, keys.all, keys.nested);
  const picked: Record<string, unknown> = {};
  for (const t of typeof tensors === 'function' ? tensors(snap) : tensors) picked[t] = snap[t];
  const where = placement(op, picked);
  if (where === 'cpu') recordBackend(op, 'cpu');
  return { snap: snap as never, device: where === 'cuda' };
}

/** The keys of both forms of an op (computed once, not per call). */
function keySets(host: readonly string[], device: readonly string[], out: readonly string[]) {
  return { all: [...new Set([...host, ...device])], nested: { out } };
}

const KL = ['logp', 'refLogp'];
const KL_KEYS = keySets(kl.KL_PENALTY_HOST_KEYS, kl.KL_PENALTY_KEYS, kl.KL_PENALTY_OUT_KEYS);
/** KL penalty per token (spec §3): host or device tensors. */
export function klPenalty(o: kl.KlPenaltyOptions): Promise<kl.KlPenaltyResult>;
export function klPenalty(o: CudaKlPenaltyOptions): Promise<CudaKlPenaltyResult>;
export async function klPenalty(o: kl.KlPenaltyOptions | CudaKlPenaltyOptions): Promise<kl.KlPenaltyResult | CudaKlPenaltyResult> {
  const r = route('klPenalty', o, KL, KL_KEYS);
  return r.device ? cuda.klPenalty(r.snap) : kl.klPenalty(r.snap);
}
/** Synchronous twin of {@link klPenalty}. */
export function klPenaltySync(o: kl.KlPenaltyOptions): kl.KlPenaltyResult;
export function klPenaltySync(o: CudaKlPenaltyOptions): CudaKlPenaltyResult;
export function klPenaltySync(o: kl.KlPenaltyOptions | CudaKlPenaltyOptions): kl.KlPenaltyResult | CudaKlPenaltyResult {
  const r = route('klPenalty', o, KL, KL_KEYS);
  return r.device ? cuda.klPenaltySync(r.snap) : kl.klPenaltySync(r.snap);
}

const LP = ['logits', 'targets'];
const LP_KEYS = keySets(lp.LOGPROBS_HOST_KEYS, lp.LOGPROBS_KEYS, lp.LOGPROBS_OUT_KEYS);
/** Token log-probs and entropy (spec §1): host or device tensors. */
export function logprobs(o: lp.LogprobsOptions): Promise<lp.LogprobsResult>;
export function logprobs(o: CudaLogprobsOptions): Promise<CudaLogprobsResult>;
export async function logprobs(o: lp.LogprobsOptions | CudaLogprobsOptions): Promise<lp.LogprobsResult | CudaLogprobsResult> {
  const r = route('logprobs', o, LP, LP_KEYS);
  return r.device ? cuda.logprobs(r.snap) : lp.logprobs(r.snap);
}
/** Synchronous twin of {@link logprobs}. */
export function logprobsSync(o: lp.LogprobsOptions): lp.LogprobsResult;
export function logprobsSync(o: CudaLogprobsOptions): CudaLogprobsResult;
export function logprobsSync(o: lp.LogprobsOptions | CudaLogprobsOptions): lp.LogprobsResult | CudaLogprobsResult {
  const r = route('logprobs', o, LP, LP_KEYS);
  return r.device ? cuda.logprobsSync(r.snap) : lp.logprobsSync(r.snap);
}

const ADV = ['rewards', 'groupIds'];
const ADV_KEYS = keySets(adv.GROUP_ADVANTAGES_HOST_KEYS, adv.GROUP_ADVANTAGES_DEVICE_KEYS, adv.GROUP_ADVANTAGES_OUT_KEYS);
/**
 * Group advantages (spec §2): host or device tensors. On the device, `groupIds` is an int32
 * DeviceTensor of dense indices in [0, numGroups) (or use `groupSize`).
 */
export function groupAdvantages(o: adv.GroupAdvantagesOptions): Promise<adv.GroupAdvantagesResult>;
export function groupAdvantages(o: CudaGroupAdvantagesOptions): Promise<CudaGroupAdvantagesResult>;
export async function groupAdvantages(o: adv.GroupAdvantagesOptions | CudaGroupAdvantagesOptions): Promise<adv.GroupAdvantagesResult | CudaGroupAdvantagesResult> {
  const r = route('groupAdvantages', o, ADV, ADV_KEYS);
  return r.device ? cuda.groupAdvantages(r.snap) : adv.groupAdvantages(r.snap);
}
/** Synchronous twin of {@link groupAdvantages}. */
export function groupAdvantagesSync(o: adv.GroupAdvantagesOptions): adv.GroupAdvantagesResult;
export function groupAdvantagesSync(o: CudaGroupAdvantagesOptions): CudaGroupAdvantagesResult;
export function groupAdvantagesSync(o: adv.GroupAdvantagesOptions | CudaGroupAdvantagesOptions): adv.GroupAdvantagesResult | CudaGroupAdvantagesResult {
  const r = route('groupAdvantages', o, ADV, ADV_KEYS);
  return r.device ? cuda.groupAdvantagesSync(r.snap) : adv.groupAdvantagesSync(r.snap);
}

const GL = ['logp', 'oldLogp', 'refLogp', 'advantages', 'mask', 'entropy', 'rolloutLogp'];
const GL_KEYS = keySets(gl.GRPO_LOSS_HOST_KEYS, gl.GRPO_LOSS_KEYS, gl.GRPO_LOSS_OUT_KEYS);
/** The GRPO loss from per-token log-probs (spec §4-§6): host or device tensors. */
export function grpoLoss(o: gl.GrpoLossOptions): Promise<gl.GrpoLossResult>;
export function grpoLoss(o: CudaGrpoLossOptions): Promise<CudaGrpoLossResult>;
export async function grpoLoss(o: gl.GrpoLossOptions | CudaGrpoLossOptions): Promise<gl.GrpoLossResult | CudaGrpoLossResult> {
  const r = route('grpoLoss', o, GL, GL_KEYS);
  return r.device ? cuda.grpoLoss(r.snap) : gl.grpoLoss(r.snap);
}
/** Synchronous twin of {@link grpoLoss}. */
export function grpoLossSync(o: gl.GrpoLossOptions): gl.GrpoLossResult;
export function grpoLossSync(o: CudaGrpoLossOptions): CudaGrpoLossResult;
export function grpoLossSync(o: gl.GrpoLossOptions | CudaGrpoLossOptions): gl.GrpoLossResult | CudaGrpoLossResult {
  const r = route('grpoLoss', o, GL, GL_KEYS);
  return r.device ? cuda.grpoLossSync(r.snap) : gl.grpoLossSync(r.snap);
}

const GLF = ['logits', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp', 'rolloutLogp', 'refLogits'];
const GLF_KEYS = keySets(glf.GRPO_LOSS_FROM_LOGITS_HOST_KEYS, glf.GRPO_LOSS_FROM_LOGITS_KEYS, glf.GRPO_LOSS_FROM_LOGITS_OUT_KEYS);
/** The fused GRPO loss from logits (spec §7): host or device tensors. */
export function grpoLossFromLogits<L extends glf.LogitsArray>(o: glf.GrpoLossFromLogitsOptions<L>): Promise<glf.GrpoLossFromLogitsResult<L>>;
export function grpoLossFromLogits(o: CudaGrpoLossFromLogitsOptions): Promise<CudaGrpoLossFromLogitsResult>;
export async function grpoLossFromLogits(o: glf.GrpoLossFromLogitsOptions | CudaGrpoLossFromLogitsOptions): Promise<glf.GrpoLossFromLogitsResult | CudaGrpoLossFromLogitsResult> {
  const r = route('grpoLossFromLogits', o, GLF, GLF_KEYS);
  return r.device ? cuda.grpoLossFromLogits(r.snap) : glf.grpoLossFromLogits(r.snap);
}
/** Synchronous twin of {@link grpoLossFromLogits}. */
export function grpoLossFromLogitsSync<L extends glf.LogitsArray>(o: glf.GrpoLossFromLogitsOptions<L>): glf.GrpoLossFromLogitsResult<L>;
export function grpoLossFromLogitsSync(o: CudaGrpoLossFromLogitsOptions): CudaGrpoLossFromLogitsResult;
export function grpoLossFromLogitsSync(o: glf.GrpoLossFromLogitsOptions | CudaGrpoLossFromLogitsOptions): glf.GrpoLossFromLogitsResult | CudaGrpoLossFromLogitsResult {
  const r = route('grpoLossFromLogits', o, GLF, GLF_KEYS);
  return r.device ? cuda.grpoLossFromLogitsSync(r.snap) : glf.grpoLossFromLogitsSync(r.snap);
}

const GLH = ['hidden', 'weight', 'targets', 'advantages', 'mask', 'oldLogp', 'refLogp'];
const GLH_KEYS = keySets(glh.GRPO_LOSS_FROM_HIDDEN_HOST_KEYS, glh.GRPO_LOSS_FROM_HIDDEN_KEYS, glh.GRPO_LOSS_FROM_HIDDEN_OUT_KEYS);
/** Its tensors: gradWeight too when it is a buffer to accumulate into (not a boolean). */
function glhTensors(o: Record<string, unknown>): string[] {
  const gw = o.gradWeight;
  return gw !== null && typeof gw === 'object' ? [...GLH, 'gradWeight'] : GLH;
}
/** The fused linear GRPO loss from hidden states and the output weight (README, Math §8): host or device tensors. */
export function grpoLossFromHidden(o: glh.GrpoLossFromHiddenOptions): Promise<glh.GrpoLossFromHiddenResult>;
export function grpoLossFromHidden(o: CudaGrpoLossFromHiddenOptions): Promise<CudaGrpoLossFromHiddenResult>;
export async function grpoLossFromHidden(o: glh.GrpoLossFromHiddenOptions | CudaGrpoLossFromHiddenOptions): Promise<glh.GrpoLossFromHiddenResult | CudaGrpoLossFromHiddenResult> {
  const r = route('grpoLossFromHidden', o, glhTensors, GLH_KEYS);
  return r.device ? cuda.grpoLossFromHidden(r.snap) : glh.grpoLossFromHidden(r.snap);
}
/** Synchronous twin of {@link grpoLossFromHidden}. */
export function grpoLossFromHiddenSync(o: glh.GrpoLossFromHiddenOptions): glh.GrpoLossFromHiddenResult;
export function grpoLossFromHiddenSync(o: CudaGrpoLossFromHiddenOptions): CudaGrpoLossFromHiddenResult;
export function grpoLossFromHiddenSync(o: glh.GrpoLossFromHiddenOptions | CudaGrpoLossFromHiddenOptions): glh.GrpoLossFromHiddenResult | CudaGrpoLossFromHiddenResult {
  const r = route('grpoLossFromHidden', o, glhTensors, GLH_KEYS);
  return r.device ? cuda.grpoLossFromHiddenSync(r.snap) : glh.grpoLossFromHiddenSync(r.snap);
}

const SMP = ['logits'];
const SMP_KEYS = keySets(smp.SAMPLE_HOST_KEYS, smp.SAMPLE_KEYS, smp.SAMPLE_OUT_KEYS);
/** Batched sampling (spec §9): host or device logits; the same tokens on both for one seed. */
export function sample(o: smp.SampleOptions): Promise<smp.SampleResult>;
export function sample(o: CudaSampleOptions): Promise<CudaSampleResult>;
export async function sample(o: smp.SampleOptions | CudaSampleOptions): Promise<smp.SampleResult | CudaSampleResult> {
  const r = route('sample', o, SMP, SMP_KEYS);
  return r.device ? cuda.sample(r.snap) : smp.sample(r.snap);
}
/** Synchronous twin of {@link sample}. */
export function sampleSync(o: smp.SampleOptions): smp.SampleResult;
export function sampleSync(o: CudaSampleOptions): CudaSampleResult;
export function sampleSync(o: smp.SampleOptions | CudaSampleOptions): smp.SampleResult | CudaSampleResult {
  const r = route('sample', o, SMP, SMP_KEYS);
  return r.device ? cuda.sampleSync(r.snap) : smp.sampleSync(r.snap);
}
