/**
 * Device tensors and the CUDA backend.
 *
 * A {@link DeviceTensor} is memory on the GPU with a dtype and a shape: allocate it
 * ({@link DeviceTensor.empty}), upload a typed array ({@link DeviceTensor.fromHost} /
 * {@link DeviceTensor.upload}), download ({@link DeviceTensor.toHost} / {@link DeviceTensor.download}),
 * and free it with {@link DeviceTensor.dispose}. A tensor you forget is freed by a finalizer
 * when the GC collects it; device bytes are reported to the GC so it knows they exist.
 *
 * The ops in {@link cuda} take device tensors and return device tensors: outputs stay where the
 * inputs are. Host and device inputs are never mixed (a clear error, never a silent copy).
 * Work runs on one CUDA stream per addon instance; async forms resolve when the stream has
 * finished and never block the event loop; a CUDA failure rejects with the CUDA error text.
 * With no CUDA build or no GPU, {@link cudaAvailable} is false, the host ops work as always and
 * creating a device tensor throws.
 */
import { native } from './native';
import type { NativeMetrics } from './native';
import { ADVANTAGE_ESTIMATORS, ADVANTAGE_SCALES, GROUP_ADVANTAGES_DEVICE_KEYS, groupAdvantagesConfig, hostSequenceValues, rewardShape } from './ops/group_advantages';
import type { AdvantageEstimator, AdvantageScale } from './ops/group_advantages';
import { checkRolloutIs, GRPO_LOSS_KEYS, grpoConfigToNative, grpoLossConfig, lossShape } from './ops/grpo_loss';
import { defaultHiddenChunk, GRPO_LOSS_FROM_HIDDEN_KEYS } from './ops/grpo_loss_from_hidden';
import { lossConfigOf, POLICY_ONLY, wantsFullKl } from './ops/grpo_loss_full_kl';
import { GRADIENT_MODES, GRPO_LOSS_FROM_LOGITS_KEYS, grpoLossFromLogitsConfig, logitsLossShape } from './ops/grpo_loss_from_logits';
import { KL_ESTIMATORS, KL_PENALTY_KEYS, klPenaltyConfig } from './ops/kl_penalty';
import { LOGPROBS_KEYS, logprobsConfig, rowsOfNumel } from './ops/logprobs';
import { SAMPLE_KEYS, sampleParams } from './ops/sample';
import type { GrpoLossConfig, GrpoMetrics } from './ops/grpo_loss';
import type { KlEstimator } from './ops/kl_penalty';
import * as v from './validate';

export type DeviceDType = 'float32' | 'bfloat16' | 'float16' | 'int32' | 'uint8' | 'float64';
/** Codes of native/tensor.h DType. */
const DTYPE_CODE: Record<DeviceDType, number> = { float32: 0, bfloat16: 1, float16: 2, int32: 3, uint8: 4, float64: 5 };
const DTYPE_BYTES: Record<DeviceDType, number> = { float32: 4, bfloat16: 2, float16: 2, int32: 4, uint8: 1, float64: 8 };
export const DEVICE_DTYPES = Object.keys(DTYPE_CODE) as DeviceDType[];

type HostArray = Float32Array | Uint16Array | Int32Array | Uint32Array | Uint8Array | Float64Array;

interface DeviceNative {
  cudaAvailable(): boolean;
  deviceMemory(): { liveBytes: number; liveBuffers: number };
  deviceAlloc(dtype: number, numel: number): unknown;
  deviceFree(h: unknown): void;
  deviceCopy(h: unknown, data: HostArray, toDevice: boolean, async: boolean): Promise<void> | void;
  [op: string]: unknown;
}
function dn(): DeviceNative {
  return native() as unknown as DeviceNative;
}

/** True when this build has the CUDA backend and a CUDA device is present. */
export function cudaAvailable(): boolean {
  const n = dn();
  return typeof n.cudaAvailable === 'function' && n.cudaAvailable();
}

/** Device memory held by live device tensors of this process (bytes, buffers). */
export function deviceMemory(): { liveBytes: number; liveBuffers: number } {
  const n = dn();
  return typeof n.deviceMemory === 'function' ? n.deviceMemory() : { liveBytes: 0, liveBuffers: 0 };
}

function hostTypeFor(dtype: DeviceDType): string {
  switch (dtype) {
    case 'float32': return 'Float32Array';
    case 'bfloat16': case 'float16': return 'Uint16Array';
    case 'int32': return 'Int32Array or Uint32Array';
    case 'uint8': return 'Uint8Array';
    case 'float64': return 'Float64Array';
  }
}
const HOST_KINDS: Record<DeviceDType, readonly v.TypedArrayKind[]> = {
  float32: ['Float32Array'], bfloat16: ['Uint16Array'], float16: ['Uint16Array'],
  int32: ['Int32Array', 'Uint32Array'], uint8: ['Uint8Array'], float64: ['Float64Array'],
};
/** `a` checked as the host array for `dtype` (a real typed array, see validate.typedArray). */
function hostArray(op: string, name: string, dtype: DeviceDType, a: unknown, length?: number): HostArray {
  return v.typedArray(op, name, a, HOST_KINDS[dtype], length, length === undefined ? `${hostTypeFor(dtype)} for dtype ${dtype}` : `${hostTypeFor(dtype)} of length ${length}`) as HostArray;
}
function newHost(dtype: DeviceDType, n: number): HostArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'bfloat16': case 'float16': return new Uint16Array(n);
    case 'int32': return new Int32Array(n);
    case 'uint8': return new Uint8Array(n);
    case 'float64': return new Float64Array(n);
  }
}
function dtypeOfHost(a: unknown): DeviceDType | undefined {
  switch (v.typedArrayKind(a)) {
    case 'Float32Array': return 'float32';
    case 'Int32Array': case 'Uint32Array': return 'int32';
    case 'Uint8Array': return 'uint8';
    case 'Float64Array': return 'float64';
    default: return undefined;  // Uint16Array: bfloat16 or float16, the caller must say
  }
}

function checkShape(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw v.typeError(op, 'shape', 'an array of non-negative integers', shape);
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw v.rangeError(op, 'shape', 'an array of non-negative integers', shape);
  return shape.slice();
}

const GENUINE = new WeakSet<object>();

/** Memory on the CUDA device with a dtype and a shape. */
export class DeviceTensor {
  readonly dtype: DeviceDType;
  readonly shape: readonly number[];
  /** Element count (the product of the shape). */
  readonly numel: number;
  /** @internal native handle; null once disposed. */
  private h: unknown | null;

  private constructor(dtype: DeviceDType, shape: number[]) {
    this.dtype = dtype;
    this.shape = Object.freeze(shape);
    this.numel = shape.reduce((a, b) => a * b, 1);
    if (!cudaAvailable())
      throw new Error('DeviceTensor: no CUDA device is available (cudaAvailable() is false; the host ops work on typed arrays)');
    this.h = dn().deviceAlloc(DTYPE_CODE[dtype], this.numel);
    // dtype/shape/numel are what the ops validate against: not writable, and only objects made
    // here count as device tensors (not a Proxy or an object inheriting this prototype)
    for (const k of ['dtype', 'shape', 'numel']) Object.defineProperty(this, k, { writable: false, configurable: false });
    GENUINE.add(this);
  }

  /** An uninitialised tensor of the given dtype and shape. */
  static empty(dtype: DeviceDType, shape: number[]): DeviceTensor {
    const op = 'DeviceTensor.empty';
    const dt = v.oneOf(op, 'dtype', dtype, DEVICE_DTYPES);
    return new DeviceTensor(dt, checkShape(op, shape));
  }

  private static prepare(op: string, data: unknown, opts: { dtype?: DeviceDType; shape?: number[] }): DeviceTensor {
    const o = v.snapshot(op, opts, ['dtype', 'shape']);
    const dt = o.dtype === undefined ? dtypeOfHost(data) : v.oneOf(op, 'dtype', o.dtype, DEVICE_DTYPES);
    if (dt === undefined) throw v.typeError(op, 'dtype', "'bfloat16' or 'float16' for a Uint16Array", o.dtype);
    const n = v.realLength(hostArray(op, 'data', dt, data));
    const shape = o.shape === undefined ? [n] : checkShape(op, o.shape);
    if (shape.reduce((a, b) => a * b, 1) !== n) throw v.rangeError(op, 'shape', `a shape with ${n} elements (data.length)`, `[${shape.join(', ')}]`);
    return new DeviceTensor(dt, shape);
  }

  /** Uploads a typed array (synchronously). Uint16Array needs `dtype` ('bfloat16' | 'float16'). */
  static fromHost(data: HostArray, opts: { dtype?: DeviceDType; shape?: number[] } = {}): DeviceTensor {
    const t = DeviceTensor.prepare('DeviceTensor.fromHost', data, opts);
    dn().deviceCopy(t.handle('DeviceTensor.fromHost'), data, true, false);
    return t;
  }

  /** Async twin of {@link fromHost}: resolves once the copy is done. */
  static async upload(data: HostArray, opts: { dtype?: DeviceDType; shape?: number[] } = {}): Promise<DeviceTensor> {
    const t = DeviceTensor.prepare('DeviceTensor.upload', data, opts);
    await dn().deviceCopy(t.handle('DeviceTensor.upload'), data, true, true);
    return t;
  }

  /** Byte size on the device. */
  get byteLength(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }

  get disposed(): boolean {
    return this.h === null;
  }

  /** @internal the native handle; throws once disposed. */
  handle(op = 'DeviceTensor'): unknown {
    if (this.h === null) throw new Error(`${op}: the device tensor was disposed`);
    return this.h;
  }

  private outFor(op: string, out: unknown): HostArray {
    if (out === undefined) return newHost(this.dtype, this.numel);
    return hostArray(op, 'out', this.dtype, out, this.numel);
  }

  /** Downloads into a new (or the given) typed array, synchronously. */
  toHost(out?: HostArray): HostArray {
    const host = this.outFor('DeviceTensor.toHost', out);
    dn().deviceCopy(this.handle('DeviceTensor.toHost'), host, false, false);
    return host;
  }

  /** Async twin of {@link toHost}. */
  async download(out?: HostArray): Promise<HostArray> {
    const host = this.outFor('DeviceTensor.download', out);
    await dn().deviceCopy(this.handle('DeviceTensor.download'), host, false, true);
    return host;
  }

  /** Frees the device memory now (idempotent). Work already queued keeps its own reference. */
  dispose(): void {
    if (this.h !== null) {
      dn().deviceFree(this.h);
      this.h = null;
    }
  }
}

/** True for a DeviceTensor this module made (a Proxy or a prototype-only object is not one). */
export function isDeviceTensor(x: unknown): x is DeviceTensor {
  return typeof x === 'object' && x !== null && GENUINE.has(x);
}

/**
 * For an op's tensor inputs (absent ones skipped): 'cuda' when every one is a DeviceTensor,
 * 'cpu' when none is, and a TypeError naming both kinds when they are mixed.
 */
export function placement(op: string, inputs: Record<string, unknown>): 'cpu' | 'cuda' {
  let dev: string | undefined, host: string | undefined;
  for (const [name, x] of Object.entries(inputs)) {
    if (x === undefined || x === null) continue;
    if (isDeviceTensor(x)) dev ??= name;
    else host ??= name;
  }
  if (dev !== undefined && host !== undefined)
    throw new TypeError(`${op}: ${dev} is a DeviceTensor but ${host} is a host array; inputs must all be on the host or all on the device (no implicit copies)`);
  return dev !== undefined ? 'cuda' : 'cpu';
}

const lastBackend: Record<string, 'cpu' | 'cuda'> = {};
/** @internal records which backend an op call used (shown by {@link opBackends}). */
export function recordBackend(op: string, b: 'cpu' | 'cuda'): void {
  lastBackend[op] = b;
}
/** Which backend each op used on its most recent call in this process. */
export function opBackends(): Readonly<Record<string, 'cpu' | 'cuda'>> {
  return { ...lastBackend };
}

// ---- the CUDA forms of the ops (device tensors in, device tensors out) -----------------------

function dev(op: string, name: string, x: unknown, dtype: DeviceDType | DeviceDType[], numel?: number): DeviceTensor {
  if (!isDeviceTensor(x)) throw v.typeError(op, name, 'a DeviceTensor', x);
  const ok = Array.isArray(dtype) ? dtype.includes(x.dtype) : x.dtype === dtype;
  if (!ok) throw v.typeError(op, name, `a DeviceTensor of dtype ${Array.isArray(dtype) ? dtype.join(' | ') : dtype}`, `DeviceTensor(${x.dtype})`);
  if (numel !== undefined && x.numel !== numel) throw v.rangeError(op, name, `a DeviceTensor of ${numel} elements`, `DeviceTensor(${x.numel} elements)`);
  x.handle(op);
  return x;
}
function nativeOp(name: string): (args: Record<string, unknown>, async: boolean) => unknown {
  const f = dn()[name];
  if (typeof f !== 'function') throw new Error(`${name}: this build has no CUDA backend`);
  return f as (args: Record<string, unknown>, async: boolean) => unknown;
}
function h(t: DeviceTensor | null | undefined): unknown {
  return t ? t.handle() : undefined;
}
const KL_EST: readonly KlEstimator[] = KL_ESTIMATORS;

export interface CudaKlPenaltyOptions {
  logp: DeviceTensor;
  refLogp: DeviceTensor;
  estimator?: KlEstimator;
  clampLogRatio?: boolean;
  grad?: boolean;
}
export interface CudaKlPenaltyResult {
  kl: DeviceTensor;
  grad: DeviceTensor | null;
}

function klPrepare(o: CudaKlPenaltyOptions) {
  const op = 'cuda.klPenalty';
  const opts = v.snapshot(op, o, KL_PENALTY_KEYS);
  const logp = dev(op, 'logp', opts.logp, 'float32');
  const n = logp.numel;
  const refLogp = dev(op, 'refLogp', opts.refLogp, 'float32', n);
  const { estimator, clampLogRatio, wantGrad } = klPenaltyConfig(op, opts);
  const kl = DeviceTensor.empty('float32', [...logp.shape]);
  const grad = wantGrad ? DeviceTensor.empty('float32', [...logp.shape]) : null;
  const args = { n, logp: h(logp), refLogp: h(refLogp), estimator: KL_EST.indexOf(estimator), clampLogRatio, kl: h(kl), grad: h(grad) };
  recordBackend('klPenalty', 'cuda');
  return { args, owned: [] as DeviceTensor[], outs: [kl, grad], result: (): CudaKlPenaltyResult => ({ kl, grad }) };
}

// ---- groupAdvantages ----

export interface CudaGroupAdvantagesOptions {
  /** Rewards [S·K] float32 on the device, NaN = no reward. */
  rewards: DeviceTensor;
  /** K (default 1). */
  numRewardFunctions?: number;
  /** Weight per reward function (host numbers, uploaded; default all 1). */
  weights?: number[] | Float32Array;
  /** Contiguous groups of this size; or `groupIds` + `numGroups`. */
  groupSize?: number;
  /** Dense group index per sequence in [0, numGroups), int32 on the device (out of range: NaN advantage). */
  groupIds?: DeviceTensor;
  /** The number of groups, with `groupIds` (not with `groupSize`). */
  numGroups?: number;
  estimator?: AdvantageEstimator;
  scale?: AdvantageScale;
  eps?: number;
  std?: 'unbiased' | 'population';
  /** Completion lengths [S]: float32 on the device, or host numbers (uploaded; finite >= 0). */
  lengths?: DeviceTensor | Float32Array | Int32Array | number[];
  /** remax baselines [S]: float32 on the device, or host numbers (uploaded). */
  baselines?: DeviceTensor | Float32Array | number[];
  normalizeAdvantages?: boolean;
}
export interface CudaGroupAdvantagesResult {
  advantages: DeviceTensor;
  rewards: DeviceTensor;
  groupMean: DeviceTensor;
  groupStd: DeviceTensor;
  zeroStdFraction: number;
  numNoReward: number;
}

function advPrepare(o: CudaGroupAdvantagesOptions) {
  const op = 'cuda.groupAdvantages';
  const opts = v.snapshot(op, o, GROUP_ADVANTAGES_DEVICE_KEYS);
  v.integer(op, 'numRewardFunctions', opts.numRewardFunctions, 1, 1 << 20, 1);
  const rewards = dev(op, 'rewards', opts.rewards, 'float32');
  const { K, S } = rewardShape(op, opts, rewards.numel, rewards);
  // the same checks as the host op (eps >= 0, rloo groups of >= 2, weights float32-finite, ...)
  const { weights: w, estimator, groupSize, scale, eps, std, normalize } = groupAdvantagesConfig(op, opts, K, S);
  // per-sequence inputs: device tensors as they are, host numbers checked and uploaded below
  const seq = (name: 'lengths' | 'baselines'): DeviceTensor | Float32Array | undefined => {
    const x = opts[name];
    if (x === undefined) return undefined;
    return isDeviceTensor(x) ? dev(op, name, x, 'float32', S) : hostSequenceValues(op, name, x, S);
  };
  const lengthsIn = seq('lengths'), baselinesIn = seq('baselines');
  let G: number;
  let groupIds: DeviceTensor | undefined;
  if (groupSize !== undefined) {
    if (opts.numGroups !== undefined) throw v.typeError(op, 'numGroups', 'undefined with groupSize (it is S / groupSize)', opts.numGroups);
    G = S / groupSize;
  } else {
    groupIds = dev(op, 'groupIds', opts.groupIds, 'int32', S);
    G = v.integer(op, 'numGroups', opts.numGroups, 0, 2 ** 31 - 1);
  }
  // every check is done: only now allocate (a later throw would leave these to the GC)
  const owned: DeviceTensor[] = [];
  let group: DeviceTensor;
  if (groupIds === undefined) {
    const ids = new Int32Array(S);
    for (let i = 0; i < S; i++) ids[i] = Math.floor(i / groupSize!);
    group = DeviceTensor.fromHost(ids);
    owned.push(group);
  } else {
    group = groupIds;
  }
  const weights = DeviceTensor.fromHost(w);
  owned.push(weights);
  const upload = (x: DeviceTensor | Float32Array | undefined) => {
    if (x === undefined || isDeviceTensor(x)) return x;
    const t = DeviceTensor.fromHost(x);
    owned.push(t);
    return t;
  };
  const lengths = upload(lengthsIn), baselines = upload(baselinesIn);
  const advantages = DeviceTensor.empty('float32', [S]);
  const reward = DeviceTensor.empty('float32', [S]);
  const groupMean = DeviceTensor.empty('float32', [G]);
  const groupStd = DeviceTensor.empty('float32', [G]);
  const args = {
    S, K, numGroups: G, rewards: h(rewards), weights: h(weights), group: h(group),
    estimator: ADVANTAGE_ESTIMATORS.indexOf(estimator), scale: ADVANTAGE_SCALES.indexOf(scale), eps, unbiased: std === 'unbiased',
    normalize, lengths: lengths && h(lengths), baselines: baselines && h(baselines),
    advantages: h(advantages), reward: h(reward), groupMean: h(groupMean), groupStd: h(groupStd),
  };
  recordBackend('groupAdvantages', 'cuda');
  return {
    args,
    owned,
    outs: [advantages, reward, groupMean, groupStd],
    result: (s: { zeroStdFraction: number; numNoReward: number }): CudaGroupAdvantagesResult => ({
      advantages, rewards: reward, groupMean, groupStd, zeroStdFraction: s.zeroStdFraction, numNoReward: s.numNoReward,
    }),
  };
}

// ---- logprobs ----

export interface CudaLogprobsOptions {
  /** Logits [N, V] on the device: float32, bfloat16 or float16. */
  logits: DeviceTensor;
  /** Optional: if given, it must be the logits tensor's dtype (so host options carry over). */
  dtype?: v.FloatDType;
  vocabSize: number;
  /** Target ids [N], int32 on the device (an id outside [0, V) gives NaN). */
  targets: DeviceTensor;
  temperature?: number;
  entropy?: boolean;
}
export interface CudaLogprobsResult {
  logp: DeviceTensor;
  entropy: DeviceTensor | null;
}

/** The logits tensor and its rows; a `dtype` option, if given, must be the tensor's dtype. */
function rows(op: string, logits: unknown, vocabSize: unknown, dtype?: unknown) {
  const z = dev(op, 'logits', logits, ['float32', 'bfloat16', 'float16']);
  if (dtype !== undefined && v.oneOf(op, 'dtype', dtype, v.FLOAT_DTYPES) !== z.dtype)
    throw v.typeError(op, 'dtype', `the logits tensor's dtype '${z.dtype}' (or no dtype)`, dtype);
  const { V, N } = rowsOfNumel(op, z.numel, vocabSize, `DeviceTensor(${z.numel} elements)`);
  return { z, V, N };
}

function lpPrepare(o: CudaLogprobsOptions) {
  const op = 'cuda.logprobs';
  const opts = v.snapshot(op, o, LOGPROBS_KEYS);
  const { z, V, N } = rows(op, opts.logits, opts.vocabSize, opts.dtype);
  const targets = dev(op, 'targets', opts.targets, 'int32', N);
  const { temperature, wantEntropy } = logprobsConfig(op, opts);
  const logp = DeviceTensor.empty('float32', [N]);
  const entropy = wantEntropy ? DeviceTensor.empty('float32', [N]) : null;
  const args = { N, V, logits: h(z), targets: h(targets), temperature, logp: h(logp), entropy: h(entropy) };
  recordBackend('logprobs', 'cuda');
  return { args, owned: [] as DeviceTensor[], outs: [logp, entropy], result: (): CudaLogprobsResult => ({ logp, entropy }) };
}

// ---- klFull ----

export interface CudaKlFullOptions {
  /** Policy logits [N, V] on the device (float32, bfloat16 or float16). */
  logits: DeviceTensor;
  /** Reference logits [N, V] on the device, the same dtype. */
  refLogits: DeviceTensor;
  vocabSize: number;
  temperature?: number;
  /** Compute coef·∂KL/∂logits (default true). */
  grad?: boolean;
  /** Gradient scale per row [N], float32 on the device (default 1). */
  coef?: DeviceTensor;
}
export interface CudaKlFullResult {
  kl: DeviceTensor;
  grad: DeviceTensor | null;
}

function klFullPrepare(o: CudaKlFullOptions) {
  const op = 'cuda.klFull';
  const opts = v.snapshot(op, o, ['logits', 'refLogits', 'vocabSize', 'temperature', 'grad', 'coef']);
  const { z, V, N } = rows(op, opts.logits, opts.vocabSize);
  const zr = dev(op, 'refLogits', opts.refLogits, z.dtype, N * V);
  const temperature = v.float(op, 'temperature', opts.temperature, 0, Infinity, 1, { loOpen: true });
  const wantGrad = v.boolean(op, 'grad', opts.grad, true);
  const coef = opts.coef === undefined ? undefined : dev(op, 'coef', opts.coef, 'float32', N);
  const kl = DeviceTensor.empty('float32', [N]);
  const grad = wantGrad ? DeviceTensor.empty(z.dtype, [N * V]) : null;
  const args = { N, V, logits: h(z), refLogits: h(zr), temperature, coef: coef && h(coef), kl: h(kl), grad: grad ? h(grad) : undefined };
  recordBackend('klFull', 'cuda');
  return { args, owned: [] as DeviceTensor[], outs: [kl, grad], result: (): CudaKlFullResult => ({ kl, grad }) };
}

// ---- grpoLoss ----

export interface CudaGrpoLossOptions extends GrpoLossConfig {
  /** ℓ per token [S·T], float32 on the device. */
  logp: DeviceTensor;
  /** One advantage per sequence [S]; T = N / S. */
  advantages: DeviceTensor;
  mask?: DeviceTensor;
  oldLogp?: DeviceTensor;
  refLogp?: DeviceTensor;
  /** Token entropies [N] (metrics; required for topEntropyQuantile < 1). */
  entropy?: DeviceTensor;
  /** The sampler's log-probs [N] (rolloutImportanceSamplingMode). */
  rolloutLogp?: DeviceTensor;
  /** Compute dL/dℓ (default true). */
  grad?: boolean;
  /** Also return L per token (default false). */
  perTokenLoss?: boolean;
}
export interface CudaGrpoLossResult {
  loss: number;
  metrics: GrpoMetrics;
  gradLogp: DeviceTensor | null;
  perTokenLoss: DeviceTensor | null;
  /** ∂loss/∂H [N] with entropyCoef ≠ 0 and grad on, else null. */
  gradEntropy: DeviceTensor | null;
}

function grpoPrepare(o: CudaGrpoLossOptions) {
  const op = 'cuda.grpoLoss';
  const opts = v.snapshot(op, o, GRPO_LOSS_KEYS);
  const advantages = dev(op, 'advantages', opts.advantages, 'float32');
  const logp = dev(op, 'logp', opts.logp, 'float32');
  const { S, T, N } = lossShape(op, advantages.numel, logp.numel, advantages, logp);
  const oldLogp = opts.oldLogp == null ? undefined : dev(op, 'oldLogp', opts.oldLogp, 'float32', N);
  const refLogp = opts.refLogp == null ? undefined : dev(op, 'refLogp', opts.refLogp, 'float32', N);
  const entropy = opts.entropy == null ? undefined : dev(op, 'entropy', opts.entropy, 'float32', N);
  const rolloutLogp = opts.rolloutLogp == null ? undefined : dev(op, 'rolloutLogp', opts.rolloutLogp, 'float32', N);
  const maskIn = opts.mask === undefined ? undefined : dev(op, 'mask', opts.mask, 'uint8', N);
  const { cfg, wantGrad, wantPtl } = grpoLossConfig(op, opts, N, { refLogp: !!refLogp, entropy: !!entropy, rolloutLogp: !!rolloutLogp });
  const owned: DeviceTensor[] = [];
  let mask: DeviceTensor;
  if (maskIn === undefined) {
    mask = DeviceTensor.fromHost(new Uint8Array(N).fill(1));
    owned.push(mask);
  } else {
    mask = maskIn;
  }
  const gradLogp = wantGrad ? DeviceTensor.empty('float32', [N]) : null;
  const perTokenLoss = wantPtl ? DeviceTensor.empty('float32', [N]) : null;
  const gradEntropy = wantGrad && cfg.entropyCoef !== 0 ? DeviceTensor.empty('float32', [N]) : null;
  const args = {
    S, T, logp: h(logp), oldLogp: h(oldLogp), refLogp: h(refLogp), advantages: h(advantages), mask: h(mask), entropy: h(entropy),
    rolloutLogp: h(rolloutLogp), ...cfg, gradLogp: h(gradLogp), perTokenLoss: h(perTokenLoss), gradEntropy: h(gradEntropy),
  };
  recordBackend('grpoLoss', 'cuda');
  return {
    args,
    owned,
    outs: [gradLogp, perTokenLoss, gradEntropy],
    result: (m: NativeMetrics): CudaGrpoLossResult => ({ loss: m.loss, metrics: { ...m }, gradLogp, perTokenLoss, gradEntropy }),
  };
}

// ---- grpoLossFromLogits ----

export interface CudaGrpoLossFromLogitsOptions extends Omit<GrpoLossConfig, 'klEstimator'> {
  /** The KL estimator of GrpoLossConfig, or 'full': the exact per-row KL from `refLogits`. */
  klEstimator?: GrpoLossConfig['klEstimator'] | 'full';
  /** Reference logits [N, V] on the device, the logits' dtype: with `klEstimator: 'full'` only. */
  refLogits?: DeviceTensor;
  /** Logits [S·T, V] on the device: float32, bfloat16 or float16. */
  logits: DeviceTensor;
  /** Optional: if given, it must be the logits tensor's dtype. */
  dtype?: v.FloatDType;
  vocabSize: number;
  /** Target ids [N], int32. */
  targets: DeviceTensor;
  /** One advantage per sequence [S], float32; T = N / S. */
  advantages: DeviceTensor;
  /** 1 = real token [N], uint8 (default all 1). */
  mask?: DeviceTensor;
  oldLogp?: DeviceTensor;
  refLogp?: DeviceTensor;
  /** The sampler's log-probs [N] (rolloutImportanceSamplingMode). */
  rolloutLogp?: DeviceTensor;
  temperature?: number;
  /** 'separate' (default: a new device tensor), 'inplace' (over the logits) or 'none'. */
  gradient?: 'none' | 'separate' | 'inplace';
}
export interface CudaGrpoLossFromLogitsResult {
  loss: number;
  metrics: GrpoMetrics;
  logp: DeviceTensor;
  entropy: DeviceTensor;
  gradLogp: DeviceTensor;
  /** ∂L/∂logits (the logits tensor itself for 'inplace'), or null for 'none'. */
  gradLogits: DeviceTensor | null;
}

function lossPrepare(o: CudaGrpoLossFromLogitsOptions) {
  const op = 'cuda.grpoLossFromLogits';
  const opts = v.snapshot(op, o, GRPO_LOSS_FROM_LOGITS_KEYS);
  const { z, V, N } = rows(op, opts.logits, opts.vocabSize, opts.dtype);
  const advantages = dev(op, 'advantages', opts.advantages, 'float32');
  const { S, T } = logitsLossShape(op, advantages.numel, N, advantages, `DeviceTensor(${z.numel} elements)`);
  const targets = dev(op, 'targets', opts.targets, 'int32', N);
  const oldLogp = opts.oldLogp == null ? undefined : dev(op, 'oldLogp', opts.oldLogp, 'float32', N);
  const refLogp = opts.refLogp == null ? undefined : dev(op, 'refLogp', opts.refLogp, 'float32', N);
  const rolloutLogp = opts.rolloutLogp == null ? undefined : dev(op, 'rolloutLogp', opts.rolloutLogp, 'float32', N);
  const maskIn = opts.mask === undefined ? undefined : dev(op, 'mask', opts.mask, 'uint8', N);
  const { temperature, cfg, mode: gradient } = grpoLossFromLogitsConfig(op, opts, N, !!refLogp, !!rolloutLogp);
  // in place the logits are an output (its other outputs are new tensors); inputs may repeat (only read)
  if (gradient === 'inplace')
    v.noSameTensor(op, { logits: z }, { targets, advantages, mask: maskIn, oldLogp, refLogp, rolloutLogp }, { 'logits|*': "gradient: 'inplace' writes the gradient over logits" });
  const owned: DeviceTensor[] = [];
  let mask: DeviceTensor;
  if (maskIn === undefined) {
    mask = DeviceTensor.fromHost(new Uint8Array(N).fill(1));
    owned.push(mask);
  } else {
    mask = maskIn;
  }
  const logp = DeviceTensor.empty('float32', [N]);
  const entropy = DeviceTensor.empty('float32', [N]);
  const gradLogp = DeviceTensor.empty('float32', [N]);
  const gradLogits = gradient === 'separate' ? DeviceTensor.empty(z.dtype, [...z.shape]) : gradient === 'inplace' ? z : null;
  const args = {
    S, T, V, logits: h(z), targets: h(targets), temperature, oldLogp: h(oldLogp), refLogp: h(refLogp), advantages: h(advantages),
    rolloutLogp: h(rolloutLogp), mask: h(mask), ...cfg, gradMode: GRADIENT_MODES.indexOf(gradient),
    gradLogits: gradient === 'separate' ? h(gradLogits) : undefined, logp: h(logp), entropy: h(entropy), gradLogp: h(gradLogp),
  };
  recordBackend('grpoLossFromLogits', 'cuda');
  return {
    args,
    owned,
    outs: [logp, entropy, gradLogp, gradient === 'separate' ? gradLogits : null],
    result: (m: NativeMetrics): CudaGrpoLossFromLogitsResult => ({
      loss: m.loss,
      metrics: { ...m },
      logp, entropy, gradLogp, gradLogits,
    }),
  };
}

// ---- grpoLossFromLogits with klEstimator 'full' ----
//
// The host form's composition (lib/ops/grpo_loss_full_kl.ts) on device tensors, step by step:
//   separate / none: the fused loss with β = 0 (gradient as asked), the weights a_n·m_n from
//     cuda.grpoLoss on its ℓ (A = 0, β = 1, k1), then klFullCuda adding β·a_n·m_n·∇KL_n into
//     the gradient (accumulate);
//   inplace: the fused loss without a gradient, cuda.grpoLoss with the policy options on its
//     ℓ, H (∂L/∂ℓ, ∂L/∂H), the weights, then one klFullCuda pass over the logits writing
//     β·a_n·m_n·∇KL_n plus the policy term (gradInPlace + policyGrad).
// The per-row weights and KL values ([N] floats) come back to the host, where coef = β·a_n and
// the loss β·Σ a_n·KL_n are formed exactly as the host form does (the same float32 / double
// arithmetic), so the composition adds no device-only rounding of its own.

/** One step: the same work as a sync call and as an async call (drivers below). */
type Step<T> = { sync: () => T; async: () => Promise<T> };
function step<T>(sync: () => T, async: () => Promise<T>): Step<T> {
  return { sync, async };
}
function driveSync<R>(g: Generator<Step<unknown>, R, unknown>): R {
  let r = g.next();
  while (!r.done) {
    let x: unknown;
    try {
      x = r.value.sync();
    } catch (e) {
      r = g.throw(e);
      continue;
    }
    r = g.next(x);
  }
  return r.value;
}
async function driveAsync<R>(g: Generator<Step<unknown>, R, unknown>): Promise<R> {
  let r = g.next();
  while (!r.done) {
    let x: unknown;
    try {
      x = await r.value.async();
    } catch (e) {
      r = g.throw(e);
      continue;
    }
    r = g.next(x);
  }
  return r.value;
}

function* fullKlSteps(o: CudaGrpoLossFromLogitsOptions): Generator<Step<unknown>, CudaGrpoLossFromLogitsResult, unknown> {
  const op = 'cuda.grpoLossFromLogits';
  const opts = v.snapshot(op, o, [...GRPO_LOSS_FROM_LOGITS_KEYS, 'refLogits']);
  const { z, V, N } = rows(op, opts.logits, opts.vocabSize, opts.dtype);
  const zr = dev(op, 'refLogits', opts.refLogits, z.dtype, N * V);
  if (opts.refLogp !== undefined) throw v.typeError(op, 'refLogp', "undefined with klEstimator 'full' (the KL comes from refLogits)", opts.refLogp);
  if (opts.useBiasCorrectionKl === true) throw v.typeError(op, 'useBiasCorrectionKl', "false with klEstimator 'full' (not offered)", true);
  const beta = v.float(op, 'beta', opts.beta, 0, Infinity, 0);
  const gradient = v.oneOf(op, 'gradient', opts.gradient, GRADIENT_MODES, 'separate');
  const inplace = gradient === 'inplace';
  // in place, the gradient is written over the logits while refLogits is read: one tensor under
  // both names would be the reference overwritten (and KL(π‖π) = 0 anyway)
  if (inplace) v.noSameTensor(op, { logits: z }, { refLogits: zr }, { 'logits|refLogits': "gradient: 'inplace' writes the gradient over logits while refLogits is read" });
  const mask = opts.mask === undefined ? undefined : dev(op, 'mask', opts.mask, 'uint8', N);
  const policy: Record<string, unknown> = { ...opts, beta: 0, klEstimator: undefined, refLogits: undefined };
  delete policy.refLogits;
  if (inplace) policy.gradient = 'none';
  const temps: (DeviceTensor | null | undefined)[] = [];
  let r: CudaGrpoLossFromLogitsResult | undefined;
  let pr: CudaGrpoLossResult | undefined;
  let done = false;
  try {
    // 1. the fused loss, β = 0 (validates every other option exactly as the plain form)
    r = (yield step(() => cuda.grpoLossFromLogitsSync(policy as never), () => cuda.grpoLossFromLogits(policy as never))) as CudaGrpoLossFromLogitsResult;
    const S = (opts.advantages as DeviceTensor).numel;
    if (inplace) {
      // the policy term's ∂L/∂ℓ and ∂L/∂H from the loss core on the fused pass's ℓ, H
      const po = {
        ...lossConfigOf(opts), beta: 0, klEstimator: undefined, logp: r.logp, entropy: r.entropy, oldLogp: opts.oldLogp, advantages: opts.advantages, mask: opts.mask,
        rolloutLogp: opts.rolloutLogp,
      } as CudaGrpoLossOptions;
      pr = (yield step(() => cuda.grpoLossSync(po), () => cuda.grpoLoss(po))) as CudaGrpoLossResult;
    }
    // 2. the weights a_n·m_n (the entropy bonus and rollout IS weight are policy-side: left out)
    const zeros = DeviceTensor.fromHost(new Float32Array(S));
    temps.push(zeros);
    const wo = {
      ...lossConfigOf(opts, POLICY_ONLY), beta: 1, klEstimator: 'k1', useBiasCorrectionKl: false, clampLogRatio: true,
      logp: r.logp, oldLogp: r.logp, refLogp: r.logp, entropy: r.entropy, advantages: zeros, mask: opts.mask,
    } as CudaGrpoLossOptions;
    const wr = (yield step(() => cuda.grpoLossSync(wo), () => cuda.grpoLoss(wo))) as CudaGrpoLossResult;
    temps.push(wr.gradLogp, wr.perTokenLoss, wr.gradEntropy);
    const a = (yield step(() => wr.gradLogp!.toHost(), () => wr.gradLogp!.download())) as Float32Array;
    const coefHost = new Float32Array(N);
    for (let n = 0; n < N; n++) coefHost[n] = beta * a[n];
    const coef = DeviceTensor.fromHost(coefHost);
    const kl = DeviceTensor.empty('float32', [N]);
    temps.push(coef, kl);
    // 3. klFull: into the separate gradient (accumulate), over the logits with the policy term, or value only
    const temperature = v.float(op, 'temperature', opts.temperature, 0, Infinity, 1, { loOpen: true });
    const args: Record<string, unknown> = { N, V, logits: h(z), refLogits: h(zr), temperature, coef: h(coef), kl: h(kl) };
    if (inplace) Object.assign(args, { gradInPlace: true, policyGrad: h(pr!.gradLogp), policyGradEntropy: h(pr!.gradEntropy), entropy: h(r.entropy), targets: h(opts.targets as DeviceTensor) });
    else if (r.gradLogits !== null) Object.assign(args, { grad: h(r.gradLogits), accumulate: true });
    const f = nativeOp('klFullCuda');
    yield step(() => f(args, false), async () => f(args, true));
    const klHost = (yield step(() => kl.toHost(), () => kl.download())) as Float32Array;
    const m = mask === undefined ? undefined : ((yield step(() => mask.toHost(), () => mask.download())) as Uint8Array);
    let extra = 0, klSum = 0, count = 0;
    for (let n = 0; n < N; n++) {
      extra += a[n] * klHost[n];
      if (m === undefined || m[n] !== 0) {
        klSum += klHost[n];
        count++;
      }
    }
    const total = r.loss + beta * extra;
    recordBackend('grpoLossFromLogits', 'cuda');
    let out: CudaGrpoLossFromLogitsResult;
    if (inplace) {
      temps.push(r.gradLogp, pr!.perTokenLoss, pr!.gradEntropy);
      out = { ...r, loss: total, metrics: { ...r.metrics, loss: total, kl: count ? klSum / count : 0 }, gradLogits: z, gradLogp: pr!.gradLogp! };
    } else {
      out = { ...r, loss: total, metrics: { ...r.metrics, loss: total, kl: count ? klSum / count : 0 } };
    }
    done = true;
    return out;
  } finally {
    for (const t of temps) t?.dispose();  // never part of the result
    if (!done) {
      // a failure after step 1: its outputs are nobody's (the logits themselves never are)
      for (const t of [r?.logp, r?.entropy, r?.gradLogp, r?.gradLogits, pr?.gradLogp, pr?.gradEntropy, pr?.perTokenLoss]) if (t && t !== z) t.dispose();
    }
  }
}

// ---- grpoLossFromHidden ----

export interface CudaGrpoLossFromHiddenOptions extends GrpoLossConfig {
  /** Hidden states [N, D] on the device: float32, bfloat16 or float16. */
  hidden: DeviceTensor;
  /** Output weight [V, D] on the device: float32, bfloat16 or float16. */
  weight: DeviceTensor;
  hiddenSize: number;
  vocabSize: number;
  /** Target ids [N], int32. */
  targets: DeviceTensor;
  /** One advantage per sequence [S], float32; T = N / S. */
  advantages: DeviceTensor;
  /** 1 = real token [N], uint8 (default all 1). */
  mask?: DeviceTensor;
  oldLogp?: DeviceTensor;
  refLogp?: DeviceTensor;
  /** The sampler's log-probs [N] (rolloutImportanceSamplingMode). */
  rolloutLogp?: DeviceTensor;
  temperature?: number;
  /** Compute ∂L/∂h (default true): a new float32 device tensor [N, D]. */
  gradHidden?: boolean;
  /** ∂L/∂W: a float32 device tensor [V, D] to add to, true (default: a new zeroed one) or false (skip). */
  gradWeight?: DeviceTensor | boolean;
  /** Rows of logits per chunk (default as the host op). */
  chunkSize?: number;
}
export interface CudaGrpoLossFromHiddenResult {
  loss: number;
  metrics: GrpoMetrics;
  logp: DeviceTensor;
  entropy: DeviceTensor;
  gradLogp: DeviceTensor;
  gradHidden: DeviceTensor | null;
  gradWeight: DeviceTensor | null;
}

function hiddenPrepare(o: CudaGrpoLossFromHiddenOptions) {
  const op = 'cuda.grpoLossFromHidden';
  const opts = v.snapshot(op, o, GRPO_LOSS_FROM_HIDDEN_KEYS);
  const D = v.integer(op, 'hiddenSize', opts.hiddenSize, 1, 2 ** 31 - 1);
  const V = v.integer(op, 'vocabSize', opts.vocabSize, 1, 2 ** 31 - 1);
  const hid = dev(op, 'hidden', opts.hidden, ['float32', 'bfloat16', 'float16']);
  if (hid.numel % D !== 0) throw v.rangeError(op, 'hidden', `a multiple of hiddenSize = ${D} elements`, `DeviceTensor(${hid.numel} elements)`);
  const N = hid.numel / D;
  const weight = dev(op, 'weight', opts.weight, ['float32', 'bfloat16', 'float16'], V * D);
  const advantages = dev(op, 'advantages', opts.advantages, 'float32');
  const S = advantages.numel;
  if (S === 0 || N === 0 || N % S !== 0) throw v.rangeError(op, 'hidden', `a positive multiple of S = advantages.numel = ${S} rows`, `${N} rows`);
  const T = N / S;
  const targets = dev(op, 'targets', opts.targets, 'int32', N);
  const oldLogp = opts.oldLogp === undefined ? undefined : dev(op, 'oldLogp', opts.oldLogp, 'float32', N);
  const refLogp = opts.refLogp === undefined ? undefined : dev(op, 'refLogp', opts.refLogp, 'float32', N);
  const rolloutLogp = opts.rolloutLogp == null ? undefined : dev(op, 'rolloutLogp', opts.rolloutLogp, 'float32', N);
  const temperature = v.float(op, 'temperature', opts.temperature, 0, Infinity, 1, { loOpen: true });
  const cfg = grpoConfigToNative(op, opts);
  checkRolloutIs(op, cfg, opts, N, !!rolloutLogp);
  if (cfg.beta !== 0 && !refLogp) throw v.typeError(op, 'refLogp', 'a DeviceTensor when beta > 0', refLogp);
  const chunk = v.integer(op, 'chunkSize', opts.chunkSize, 1, 2 ** 31 - 1, defaultHiddenChunk(V));
  const wantDh = v.boolean(op, 'gradHidden', opts.gradHidden, true);
  const gw = opts.gradWeight;
  if (!(gw === undefined || typeof gw === 'boolean' || gw instanceof DeviceTensor))
    throw v.typeError(op, 'gradWeight', 'a float32 DeviceTensor to accumulate into, or a boolean', gw);
  if (gw instanceof DeviceTensor) dev(op, 'gradWeight', gw, 'float32', V * D);
  if (gw === hid || gw === weight) throw v.rangeError(op, 'gradWeight', 'a DeviceTensor apart from hidden and weight', 'the same tensor');
  // gradWeight is accumulated into while the kernel reads every input: none of them may be it
  if (gw instanceof DeviceTensor) v.noSameTensor(op, { gradWeight: gw }, { targets, advantages, mask: opts.mask as DeviceTensor | undefined, oldLogp, refLogp });
  const owned: DeviceTensor[] = [];
  let mask: DeviceTensor;
  if (opts.mask === undefined) {
    mask = DeviceTensor.fromHost(new Uint8Array(N).fill(1));
    owned.push(mask);
  } else {
    mask = dev(op, 'mask', opts.mask, 'uint8', N);
  }
  const logp = DeviceTensor.empty('float32', [N]);
  const entropy = DeviceTensor.empty('float32', [N]);
  const gradLogp = DeviceTensor.empty('float32', [N]);
  const gradHidden = wantDh ? DeviceTensor.empty('float32', [N, D]) : null;
  const newGw = gw === undefined || gw === true;
  const gradWeight = newGw ? DeviceTensor.fromHost(new Float32Array(V * D), { shape: [V, D] }) : gw instanceof DeviceTensor ? gw : null;
  const args = {
    S, T, V, D, chunk, hidden: h(hid), weight: h(weight), targets: h(targets), temperature, oldLogp: h(oldLogp), refLogp: h(refLogp),
    rolloutLogp: h(rolloutLogp), advantages: h(advantages), mask: h(mask), ...cfg, gradHidden: h(gradHidden), gradWeight: h(gradWeight),
    logp: h(logp), entropy: h(entropy), gradLogp: h(gradLogp),
  };
  recordBackend('grpoLossFromHidden', 'cuda');
  return {
    args,
    owned,
    outs: [logp, entropy, gradLogp, gradHidden, newGw ? gradWeight : null],
    result: (m: NativeMetrics): CudaGrpoLossFromHiddenResult => ({ loss: m.loss, metrics: { ...m }, logp, entropy, gradLogp, gradHidden, gradWeight }),
  };
}

// ---- sample ----

export interface CudaSampleOptions {
  /** Logits [R, V] on the device: float32, bfloat16 or float16. */
  logits: DeviceTensor;
  /** Optional: if given, it must be the logits tensor's dtype. */
  dtype?: v.FloatDType;
  vocabSize: number;
  /** Per-row sampling parameters, as for {@link sample} (options, uploaded with the call). */
  temperature?: number | Float32Array;
  topK?: number | Int32Array;
  topP?: number | Float32Array;
  minP?: number | Float32Array;
  seed: number | bigint;
  step?: number;
  rowIds?: Uint32Array | number[];
  truncatedLogprobs?: boolean;
}
export interface CudaSampleResult {
  /** int32 [R] on the device. */
  tokens: DeviceTensor;
  logp: DeviceTensor;
  truncLogp: DeviceTensor | null;
}

function samplePrepare(o: CudaSampleOptions) {
  const op = 'cuda.sample';
  const opts = v.snapshot(op, o, SAMPLE_KEYS);
  const { z, V, N: R } = rows(op, opts.logits, opts.vocabSize, opts.dtype);
  const hp = sampleParams(op, opts, R);
  const up = (a: Float32Array | Int32Array | Uint32Array | undefined) => (a === undefined ? undefined : DeviceTensor.fromHost(a));
  const owned = [up(hp.temperature)!, up(hp.topK)!, up(hp.topP)!, up(hp.minP)!];
  const rowIds = up(hp.rowIds);
  if (rowIds) owned.push(rowIds);
  const tokens = DeviceTensor.empty('int32', [R]);
  const logp = DeviceTensor.empty('float32', [R]);
  const truncLogp = hp.wantTrunc ? DeviceTensor.empty('float32', [R]) : null;
  const args = {
    R, V, logits: h(z), temperature: h(owned[0]), topK: h(owned[1]), topP: h(owned[2]), minP: h(owned[3]),
    seedLo: hp.seedLo, seedHi: hp.seedHi, step: hp.step, rowIds: h(rowIds), tokens: h(tokens), logp: h(logp), truncLogp: h(truncLogp),
  };
  recordBackend('sample', 'cuda');
  return { args, owned, outs: [tokens, logp, truncLogp], result: (): CudaSampleResult => ({ tokens, logp, truncLogp }) };
}

/** Runs a prepared device op; frees its temporary uploads and, on failure, its outputs. */
async function runAsync<R, M>(name: string, p: { args: Record<string, unknown>; owned: DeviceTensor[]; outs: (DeviceTensor | null)[]; result: (m: M) => R }): Promise<R> {
  try {
    const m = (await nativeOp(name)(p.args, true)) as M;
    return p.result(m);
  } catch (e) {
    for (const o of p.outs) o?.dispose();
    throw e;
  } finally {
    for (const t of p.owned) t.dispose();
  }
}
function runSync<R, M>(name: string, p: { args: Record<string, unknown>; owned: DeviceTensor[]; outs: (DeviceTensor | null)[]; result: (m: M) => R }): R {
  try {
    return p.result(nativeOp(name)(p.args, false) as M);
  } catch (e) {
    for (const o of p.outs) o?.dispose();
    throw e;
  } finally {
    for (const t of p.owned) t.dispose();
  }
}

/**
 * The CUDA forms of the ops: device tensors in, new device tensors out (spec sections as the
 * host ops). Async forms resolve when the stream has finished (and reject, never throw, on bad
 * input); *Sync forms wait on the calling thread.
 */
export const cuda = {
  // async forms are async functions: a bad argument rejects the promise, it never throws
  klPenalty: async (o: CudaKlPenaltyOptions) => runAsync('klPenaltyCuda', klPrepare(o)),
  klPenaltySync: (o: CudaKlPenaltyOptions) => runSync('klPenaltyCuda', klPrepare(o)),
  groupAdvantages: async (o: CudaGroupAdvantagesOptions) => runAsync('groupAdvantagesCuda', advPrepare(o)),
  groupAdvantagesSync: (o: CudaGroupAdvantagesOptions) => runSync('groupAdvantagesCuda', advPrepare(o)),
  klFull: async (o: CudaKlFullOptions) => runAsync('klFullCuda', klFullPrepare(o)),
  klFullSync: (o: CudaKlFullOptions) => runSync('klFullCuda', klFullPrepare(o)),
  logprobs: async (o: CudaLogprobsOptions) => runAsync('logprobsCuda', lpPrepare(o)),
  logprobsSync: (o: CudaLogprobsOptions) => runSync('logprobsCuda', lpPrepare(o)),
  grpoLoss: async (o: CudaGrpoLossOptions) => runAsync('grpoLossCuda', grpoPrepare(o)),
  grpoLossSync: (o: CudaGrpoLossOptions) => runSync('grpoLossCuda', grpoPrepare(o)),
  grpoLossFromLogits: async (o: CudaGrpoLossFromLogitsOptions) =>
    wantsFullKl(o) ? driveAsync(fullKlSteps(o)) : runAsync('grpoLossFromLogitsCuda', lossPrepare(o)),
  grpoLossFromLogitsSync: (o: CudaGrpoLossFromLogitsOptions) =>
    wantsFullKl(o) ? driveSync(fullKlSteps(o)) : runSync('grpoLossFromLogitsCuda', lossPrepare(o)),
  grpoLossFromHidden: async (o: CudaGrpoLossFromHiddenOptions) => runAsync('grpoLossFromHiddenCuda', hiddenPrepare(o)),
  grpoLossFromHiddenSync: (o: CudaGrpoLossFromHiddenOptions) => runSync('grpoLossFromHiddenCuda', hiddenPrepare(o)),
  sample: async (o: CudaSampleOptions) => runAsync('sampleCuda', samplePrepare(o)),
  sampleSync: (o: CudaSampleOptions) => runSync('sampleCuda', samplePrepare(o)),
};
