/**
 * Argument validation shared by every op. All checks run before any native call, and every
 * failure is a TypeError (wrong kind of value) or RangeError (right kind, wrong value) whose
 * message names the op, the argument, what was expected and what was received:
 *   "klPenalty: expected Float32Array of length 4 for refLogp but received Float32Array(3)"
 *
 * The order of a prepare() is fixed, so that no caller code can run between a check and the
 * native call:
 *   1. {@link snapshot}: every option is read exactly once (getters run here, once) into a plain
 *      object; unknown keys are rejected with a did-you-mean.
 *   2. kinds and shapes: typed arrays are identified by their internal slots (util.types, the
 *      %TypedArray% getters called on the object itself), never by `instanceof` or by a `length`
 *      a subclass could override, so these checks run no caller code. Plain JS arrays (masks,
 *      ids, weights) are copied into typed arrays here, reading each element once.
 *   3. contents (finite values, ids in range), on arrays no caller code can reach any more
 *      during a synchronous call.
 *
 * Floating-point options (temperature, eps, epsilon, beta, topP, ...) must be 0 or a normal
 * float32 magnitude, 2^-126 (1.18e-38) <= |x| <= 3.4028235e38 ({@link FLOAT32_MIN_NORMAL},
 * {@link FLOAT32_MAX}), on top of each option's own range: outside it the float32 kernels
 * would overflow to Infinity or flush to zero (temperature 1e39 sampled uniformly, 1e-45 gave
 * NaN log-probs).
 */
import * as util from 'util';

export type FloatDType = 'float32' | 'bfloat16' | 'float16';
export const FLOAT_DTYPES: readonly FloatDType[] = ['float32', 'bfloat16', 'float16'];

/** The largest finite float32, 3.4028234663852886e38. */
export const FLOAT32_MAX = 3.4028234663852886e38;
/** The smallest normal float32, 2^-126 = 1.1754943508222875e-38. */
export const FLOAT32_MIN_NORMAL = 1.1754943508222875e-38;

// ---- typed arrays, identified by their internal slots -------------------------------------
//
// `x instanceof Float32Array` is true for a Proxy of one and for Object.create(Float32Array.
// prototype), and a subclass may override `length`, `buffer` or `byteOffset`; the native layer
// sees the real object. So kinds come from util.types (internal slots), and length, buffer and
// offset from the %TypedArray%.prototype getters called on the object itself (captured at load,
// so later patching of the prototypes does not change them).

const TA_PROTO = Object.getPrototypeOf(Int8Array.prototype) as object;
function intrinsicGetter(name: string | symbol): (this: unknown) => unknown {
  return Object.getOwnPropertyDescriptor(TA_PROTO, name)!.get!;
}
const TA_LENGTH = intrinsicGetter('length');
const TA_BUFFER = intrinsicGetter('buffer');
const TA_BYTE_OFFSET = intrinsicGetter('byteOffset');
const TA_BYTE_LENGTH = intrinsicGetter('byteLength');
const TA_TAG = intrinsicGetter(Symbol.toStringTag);
const AB_RESIZABLE = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get;
const INTRINSIC_PROTOS = new Set<object>([Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array].map((c) => c.prototype));
const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** The typed-array kinds the ops take. */
export type TypedArrayKind = 'Float32Array' | 'Float64Array' | 'Int32Array' | 'Uint32Array' | 'Uint16Array' | 'Uint8Array';
export type TypedArrayOf<K extends TypedArrayKind> = {
  Float32Array: Float32Array; Float64Array: Float64Array; Int32Array: Int32Array;
  Uint32Array: Uint32Array; Uint16Array: Uint16Array; Uint8Array: Uint8Array;
}[K];

/** The real kind of a typed array ('Float32Array', ...), or undefined for anything else (Proxies included). */
export function typedArrayKind(x: unknown): string | undefined {
  // util.types.isTypedArray reads the internal slot: false for Proxies and prototype-only objects
  return util.types.isTypedArray(x) ? (Reflect.apply(TA_TAG, x, []) as string) : undefined;
}

/** The real element count of a typed array (its `length` property may be overridden). */
export function realLength(a: ArrayBufferView): number {
  return Reflect.apply(TA_LENGTH, a, []) as number;
}

/** The real backing buffer and byte range of a typed array. */
export function realBytes(a: ArrayBufferView): { buffer: ArrayBufferLike; start: number; end: number } {
  const start = Reflect.apply(TA_BYTE_OFFSET, a, []) as number;
  return { buffer: Reflect.apply(TA_BUFFER, a, []) as ArrayBufferLike, start, end: start + (Reflect.apply(TA_BYTE_LENGTH, a, []) as number) };
}

/**
 * Whether `a` (a real typed array) shows its real `length`: the property must resolve to the
 * %TypedArray%.prototype getter, not to an own property or a subclass override. Walks the
 * prototype chain with descriptor reads only (no getter runs; a Proxy in the chain fails).
 */
function honestLength(a: object): boolean {
  // the common case, with no descriptor objects allocated: an instance of an intrinsic
  // constructor, with no own `length`, and the intrinsic prototypes untouched
  const proto = Object.getPrototypeOf(a) as object;
  if (INTRINSIC_PROTOS.has(proto) && !hasOwn(a, 'length') && !hasOwn(proto, 'length') && Object.getOwnPropertyDescriptor(TA_PROTO, 'length')?.get === TA_LENGTH) return true;
  let p: object | null = a;
  for (let depth = 0; p !== null && depth < 32; depth++) {
    if (util.types.isProxy(p)) return false;
    const d = Object.getOwnPropertyDescriptor(p, 'length');
    if (d !== undefined) return d.get === TA_LENGTH;
    p = Object.getPrototypeOf(p) as object | null;
  }
  return false;
}

/**
 * `v` as a typed array of one of `kinds`, checked without running caller code: a real typed
 * array (not a Proxy, not an object that only inherits the prototype), whose `length` is not
 * overridden, backed by a plain non-resizable ArrayBuffer (a SharedArrayBuffer or a resizable
 * one could change under the kernel), of `length` elements when given.
 */
export function typedArray<K extends TypedArrayKind>(op: string, name: string, v: unknown, kinds: K | readonly K[], length?: number, expected?: string): TypedArrayOf<K> {
  const kind = typedArrayKind(v);
  if (kind === undefined || (typeof kinds === 'string' ? kind !== kinds : !(kinds as readonly string[]).includes(kind)))
    throw typeError(op, name, wantText(kinds, length, expected), v);
  const a = v as ArrayBufferView;
  if (!honestLength(a)) throw typeError(op, name, `${wantText(kinds, length, expected)} (a typed array whose length property is not overridden)`, v);
  const plain = plainBuffer(Reflect.apply(TA_BUFFER, a, []) as ArrayBufferLike);
  if (plain !== true) throw typeError(op, name, `${wantText(kinds, length, expected)} backed by ${plain === 'shared' ? 'an ArrayBuffer, not a SharedArrayBuffer' : 'a fixed-length ArrayBuffer, not a resizable one'}`, v);
  if (length !== undefined && realLength(a) !== length) throw rangeError(op, name, wantText(kinds, length, expected), v);
  return v as TypedArrayOf<K>;
}

/** The expected-text of {@link typedArray}, built only on failure (it runs for every array of every call). */
function wantText(kinds: string | readonly string[], length: number | undefined, expected: string | undefined): string {
  return expected ?? lengthText(typeof kinds === 'string' ? kinds : kinds.join(' or '), length);
}

/** true for a plain fixed-length ArrayBuffer, else 'shared' or 'resizable'. */
function plainBuffer(b: ArrayBufferLike): true | 'shared' | 'resizable' {
  if (util.types.isSharedArrayBuffer(b)) return 'shared';
  return AB_RESIZABLE !== undefined && Reflect.apply(AB_RESIZABLE, b, []) ? 'resizable' : true;
}

/** Short description of a received value for error messages; runs no caller code. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return `${v} of type number`;
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '...' : v}' of type string`;
  if (typeof v === 'bigint') return `${v}n of type bigint`;
  if (typeof v === 'symbol') return `${v.toString()} of type symbol`;
  if (typeof v !== 'object' && typeof v !== 'function') return `${String(v)} of type ${typeof v}`;
  if (util.types.isProxy(v)) return 'a Proxy';
  const kind = typedArrayKind(v);
  if (kind !== undefined) {
    const a = v as ArrayBufferView;
    const ctor = ctorName(v);
    const sub = ctor !== undefined && ctor !== kind ? `${ctor} (a ${kind} subclass)` : kind;
    const { buffer } = realBytes(a);
    const lie = honestLength(a) ? '' : ' with an overridden length property';
    const shared = util.types.isSharedArrayBuffer(buffer) ? ' on a SharedArrayBuffer' : AB_RESIZABLE !== undefined && Reflect.apply(AB_RESIZABLE, buffer, []) ? ' on a resizable ArrayBuffer' : '';
    return `${sub}(${realLength(a)})${lie}${shared}`;
  }
  if (Array.isArray(v)) return `Array(${v.length})`;
  if (ArrayBuffer.isView(v)) return 'DataView';
  const ctor = ctorName(v);
  if (ctor !== undefined && /Array$/.test(ctor) && ctor !== 'Array') return `an object inheriting ${ctor}.prototype (not a real ${ctor})`;
  return ctor ?? 'object';
}

/** The name of an object's constructor, read through data properties only (no getter runs). */
function ctorName(v: object): string | undefined {
  let p: object | null = v;
  for (let depth = 0; p !== null && depth < 32; depth++) {
    if (util.types.isProxy(p)) return undefined;
    const d = Object.getOwnPropertyDescriptor(p, 'constructor');
    if (d !== undefined) {
      if (typeof d.value !== 'function') return undefined;
      const n = Object.getOwnPropertyDescriptor(d.value, 'name');
      return n !== undefined && typeof n.value === 'string' && n.value !== '' ? n.value : undefined;
    }
    p = Object.getPrototypeOf(p) as object | null;
  }
  return undefined;
}

export function typeError(op: string, name: string, expected: string, received: unknown): TypeError {
  return new TypeError(`${op}: expected ${expected} for ${name} but received ${describe(received)}`);
}

export function rangeError(op: string, name: string, expected: string, received: unknown): RangeError {
  return new RangeError(`${op}: expected ${expected} for ${name} but received ${describe(received)}`);
}

// ---- options: read once, unknown keys rejected ---------------------------------------------

/**
 * Checks that `v` is an options object (a plain or class object; not null, an array, a typed
 * array, a function or a Proxy) and returns it. Prefer {@link snapshot}, which also reads it.
 */
export function options(op: string, v: unknown, name = 'options'): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v))
    throw typeError(op, name, 'an options object', v);
  if (util.types.isProxy(v)) throw typeError(op, name, 'an options object (not a Proxy)', v);
  return v as Record<string, unknown>;
}

/** Edit distance with adjacent transpositions (optimal string alignment), for did-you-mean. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The known key closest to `key` (case-insensitive edit distance), if it is close enough to be a typo. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined, bestD = Infinity;
  for (const c of known) {
    const d = editDistance(k, c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.floor(k.length / 3)) ? best : undefined;
}

/**
 * Reads an options object exactly once: each known key (own or inherited) once, in `keys`
 * order, into a fresh null-prototype object holding the keys whose value is not undefined.
 * Any own enumerable key that is not known is a TypeError with a did-you-mean ("losType" ->
 * "lossType", "epsilonhigh" -> "epsilonHigh"). Keys listed in `nested` (e.g. `out`) hold an
 * options object themselves and are read the same way, as `name.key`. A getter that throws
 * becomes a TypeError naming the option. Cost: O(number of keys), independent of array sizes.
 */
export function snapshot(op: string, v: unknown, keys: readonly string[], nested: Record<string, readonly string[]> = {}, name = 'options'): Record<string, unknown> {
  const o = options(op, v, name);
  const prefix = name === 'options' ? '' : `${name}.`;
  for (const k of Object.keys(o)) {
    if (keys.includes(k)) continue;
    const near = didYouMean(k, keys);
    throw new TypeError(`${op}: unknown option ${prefix}${k}${near !== undefined ? ` (did you mean ${prefix}${near}?)` : `; expected one of ${keys.map((x) => prefix + x).join(', ')}`}`);
  }
  // a snapshot passed on (dispatch -> op) is plain data already: checking its keys is enough
  if ((o as Record<symbol, unknown>)[SNAPSHOT] === true) {
    for (const n in nested) if (o[n] !== undefined) snapshot(op, o[n], nested[n], {}, prefix + n);
    return o;
  }
  // null prototype: a key absent here reads as undefined, never as Object.prototype[key]
  // (and measured faster than a plain object holding every key)
  const snap: Record<string | symbol, unknown> = Object.create(null);
  let k = '';
  try {
    for (k of keys) {
      const x = o[k];
      if (x !== undefined) snap[k] = x;
    }
  } catch (e) {
    throw new TypeError(`${op}: reading option ${prefix}${k} threw: ${e instanceof Error ? e.message : describe(e)}`, { cause: e });
  }
  for (const n in nested) if (snap[n] !== undefined) snap[n] = snapshot(op, snap[n], nested[n], {}, prefix + n);
  snap[SNAPSHOT] = true;
  return snap as Record<string, unknown>;
}

/** Brands the objects {@link snapshot} made (module-private: a caller cannot forge it). */
const SNAPSHOT = Symbol('grpo-kernels options snapshot');

/** An empty `out` for ops called without one (no prototype: `NO_OUT.kl` is undefined whatever Object.prototype holds). */
export const NO_OUT: Readonly<Record<string, unknown>> = Object.freeze(Object.create(null));

// ---- typed-array arguments -----------------------------------------------------------------

export function float32Array(op: string, name: string, v: unknown, length?: number): Float32Array {
  return typedArray(op, name, v, 'Float32Array', length);
}

export function optionalFloat32Array(op: string, name: string, v: unknown, length?: number): Float32Array | undefined {
  return v === undefined || v === null ? undefined : float32Array(op, name, v, length);
}

export function int32Array(op: string, name: string, v: unknown, length?: number): Int32Array {
  return typedArray(op, name, v, 'Int32Array', length);
}

function lengthText(kind: string, length?: number): string {
  return length === undefined ? kind : `${kind} of length ${length}`;
}

/**
 * A plain JS array (not a Proxy) of `length` elements when given, for the options that take
 * number[] / boolean[]. Its elements are read by the caller, once each, into a typed array.
 */
export function plainArray(op: string, name: string, v: unknown, expected: string, length?: number): unknown[] {
  if (!Array.isArray(v)) throw typeError(op, name, expected, v);
  if (util.types.isProxy(v)) throw typeError(op, name, `${expected} (not a Proxy)`, v);
  if (length !== undefined && v.length !== length) throw rangeError(op, name, expected, v);
  return v;
}

/**
 * Rejects outputs that share memory with each other or with an input (the same array, or
 * overlapping views of one ArrayBuffer): the kernels read inputs while writing outputs and
 * write outputs in any order, so an alias would corrupt the result. Absent (null/undefined)
 * entries are skipped. O(outputs × (outputs + inputs)). Inputs may share memory with each other
 * (they are only read; the native side pins each one, and pinning one buffer twice takes two
 * shares of its backing store: pin.cc). Distinct views of one ArrayBuffer that do not overlap
 * are not aliases. `hints['a|b']` (or `hints['a|*']`: any pair with a) is appended to the error (what to do instead).
 * Most ops call it only when the caller passed `out` (outputs they allocate alias nothing); an
 * op that writes over a caller's array (gradient 'inplace', an accumulated gradWeight) always does.
 */
export function noAliases(
  op: string,
  outputs: Record<string, ArrayBufferView | null | undefined>,
  inputs: Record<string, ArrayBufferView | null | undefined> = {},
  hints: Record<string, string> = {},
): void {
  const outs: [string, Bytes][] = [];
  const hint = (a: string, b: string) => {
    const h = hints[`${a}|${b}`] ?? hints[`${b}|${a}`] ?? hints[`${a}|*`] ?? hints[`${b}|*`];
    return h === undefined ? '' : `; ${h}`;
  };
  for (const n in outputs) {
    const a = outputs[n];
    if (a == null) continue;
    const b = realBytes(a);
    for (const [m, c] of outs) {
      if (overlaps(b, c)) throw new RangeError(`${op}: expected ${n} and ${m} to be separate memory but they overlap (the same buffer bytes ${Math.max(b.start, c.start)}..${Math.min(b.end, c.end)})${hint(n, m)}`);
    }
    outs.push([n, b]);
  }
  for (const m in inputs) {
    const a = inputs[m];
    if (a == null) continue;
    const c = realBytes(a);
    for (const [n, b] of outs) {
      if (overlaps(b, c)) throw new RangeError(`${op}: expected ${n} to be memory apart from the input ${m} but they overlap (the same buffer bytes ${Math.max(b.start, c.start)}..${Math.min(b.end, c.end)})${hint(n, m)}`);
    }
  }
}

/** Whether two typed arrays share bytes: the same real ArrayBuffer and overlapping byte ranges. */
export function sharesMemory(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return overlaps(realBytes(a), realBytes(b));
}

/**
 * {@link noAliases} for device tensors (lib/device.ts): each is a whole allocation (no views), so
 * two share memory exactly when they are the same tensor. Outputs the op allocates are never
 * passed; this covers the caller's tensors an op writes (the logits in place, gradWeight).
 */
export function noSameTensor(
  op: string,
  outputs: Record<string, object | null | undefined>,
  inputs: Record<string, object | null | undefined> = {},
  hints: Record<string, string> = {},
): void {
  const hint = (a: string, b: string) => (hints[`${a}|${b}`] ? `; ${hints[`${a}|${b}`]}` : '');
  const outs = Object.entries(outputs).filter((e): e is [string, object] => e[1] != null);
  for (let i = 0; i < outs.length; i++)
    for (let j = 0; j < i; j++)
      if (outs[i][1] === outs[j][1]) throw new RangeError(`${op}: expected ${outs[i][0]} and ${outs[j][0]} to be separate memory but they are the same DeviceTensor${hint(outs[i][0], outs[j][0])}`);
  for (const [m, x] of Object.entries(inputs)) {
    if (x == null) continue;
    for (const [n, o] of outs)
      if (o === x) throw new RangeError(`${op}: expected ${n} to be memory apart from the input ${m} but they are the same DeviceTensor${hint(n, m)}`);
  }
}

type Bytes = ReturnType<typeof realBytes>;
function overlaps(x: Bytes, y: Bytes): boolean {
  return x.buffer === y.buffer && x.start < y.end && y.start < x.end;
}

/**
 * True iff every element is finite: x·0 is ±0 for finite x and NaN for ±Inf/NaN, so the sum is 0
 * exactly when all are. Four independent accumulators and no branch: ~2x faster than a
 * Number.isFinite loop on large arrays. Callers rescan on false to name the bad index.
 */
function allFiniteFast(a: Float32Array): boolean {
  const n = a.length, n4 = n & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let i = 0; i < n4; i += 4) {
    s0 += a[i] * 0; s1 += a[i + 1] * 0; s2 += a[i + 2] * 0; s3 += a[i + 3] * 0;
  }
  for (let i = n4; i < n; i++) s0 += a[i] * 0;
  return s0 + s1 + s2 + s3 === 0;
}

/** Every element finite (no NaN, no ±Infinity). O(n): only for per-token arrays, not logits. */
export function allFinite(op: string, name: string, a: Float32Array): void {
  if (allFiniteFast(a)) return;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (!Number.isFinite(x)) throw rangeError(op, name, 'finite values', `${x} at index ${i}`);
  }
}

/** Every element finite where mask[i] != 0 (padding may hold anything). */
export function allFiniteWhere(op: string, name: string, a: Float32Array, mask: Uint8Array): void {
  // Padding is usually finite too: then the unmasked fast scan settles it.
  if (allFiniteFast(a)) return;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (mask[i] !== 0 && !Number.isFinite(x)) throw rangeError(op, name, 'finite values where mask is 1', `${x} at index ${i}`);
  }
}

export function ids(op: string, name: string, v: unknown, length: number, bound: number): Int32Array {
  const a = int32Array(op, name, v, length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x < 0 || x >= bound) throw rangeError(op, name, `ids in [0, ${bound})`, `${x} at index ${i}`);
  }
  return a;
}

export function number(op: string, name: string, v: unknown, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number') throw typeError(op, name, 'a number', v);
  if (!Number.isFinite(v)) throw rangeError(op, name, 'a finite number', v);
  return v;
}

export function numberIn(op: string, name: string, v: unknown, lo: number, hi: number, dflt?: number, opts: { loOpen?: boolean; hiOpen?: boolean } = {}): number {
  const x = number(op, name, v, dflt);
  const okLo = opts.loOpen ? x > lo : x >= lo;
  const okHi = opts.hiOpen ? x < hi : x <= hi;
  if (!okLo || !okHi) throw rangeError(op, name, `a number in ${opts.loOpen ? '(' : '['}${lo}, ${hi}${opts.hiOpen ? ')' : ']'}`, x);
  return x;
}

/**
 * A floating-point option the kernels use: a finite number that float32 represents without
 * overflow or flush to zero (0, or FLOAT32_MIN_NORMAL <= |x| <= FLOAT32_MAX), within [lo, hi]
 * (ends open as flagged). `hi` = Infinity means FLOAT32_MAX.
 */
export function float(op: string, name: string, v: unknown, lo: number, hi: number, dflt?: number, opts: { loOpen?: boolean; hiOpen?: boolean } = {}): number {
  const x = number(op, name, v, dflt);
  const ax = Math.abs(x);
  if (x !== 0 && !(ax >= FLOAT32_MIN_NORMAL && ax <= FLOAT32_MAX))
    throw rangeError(op, name, `a number float32 represents (0 or a magnitude in [${FLOAT32_MIN_NORMAL}, ${FLOAT32_MAX}])`, x);
  const top = hi === Infinity ? FLOAT32_MAX : hi;
  const okLo = opts.loOpen ? x > lo : x >= lo;
  const okHi = opts.hiOpen && hi !== Infinity ? x < top : x <= top;
  if (!okLo || !okHi) throw rangeError(op, name, `a number in ${opts.loOpen ? '(' : '['}${lo}, ${top}${opts.hiOpen && hi !== Infinity ? ')' : ']'}`, x);
  return x;
}

/** Like {@link float} for an element of an array option: `x` is named "x at index i". */
export function floatOk(x: number, lo: number, hi: number, loOpen = false): boolean {
  const ax = Math.abs(x);
  return Number.isFinite(x) && (x === 0 || (ax >= FLOAT32_MIN_NORMAL && ax <= FLOAT32_MAX)) && (loOpen ? x > lo : x >= lo) && x <= hi;
}

export function integer(op: string, name: string, v: unknown, lo: number, hi: number, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number') throw typeError(op, name, `an integer in [${lo}, ${hi}]`, v);
  if (!Number.isInteger(v) || v < lo || v > hi) throw rangeError(op, name, `an integer in [${lo}, ${hi}]`, v);
  return v;
}

export function boolean(op: string, name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw typeError(op, name, 'a boolean', v);
  return v;
}

export function oneOf<T extends string>(op: string, name: string, v: unknown, allowed: readonly T[], dflt?: T): T {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
    throw (typeof v === 'string' ? rangeError : typeError)(op, name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  return v as T;
}

/**
 * A float tensor: Float32Array (float32), or Uint16Array holding bfloat16 / float16 bits with
 * `dtype` saying which. `length` is the element count it must have.
 */
export function floatTensor(op: string, name: string, v: unknown, dtype: unknown, length: number): { data: Float32Array | Uint16Array; dtype: FloatDType } {
  const dt = dtype === undefined ? (typedArrayKind(v) === 'Uint16Array' ? undefined : 'float32') : dtype;
  if (dt === undefined) throw typeError(op, `${name}Dtype`, "'bfloat16' or 'float16' for a Uint16Array", dtype);
  const d = oneOf(op, `${name}Dtype`, dt, FLOAT_DTYPES);
  const data = d === 'float32'
    ? typedArray(op, name, v, 'Float32Array', length, `Float32Array of length ${length} (dtype float32)`)
    : typedArray(op, name, v, 'Uint16Array', length, `Uint16Array of length ${length} holding ${d} bits`);
  return { data, dtype: d };
}

const MASK_KINDS = ['Uint8Array', 'Int32Array', 'Float32Array', 'Float64Array'] as const;

/**
 * A 0/1 mask as Uint8Array. Accepts Uint8Array (used as is), Int32Array, Float32Array,
 * Float64Array or a plain boolean[] / number[] (copied, each element read once); any value
 * other than 0/1 (false/true) is an error.
 */
export function mask(op: string, name: string, v: unknown, length: number, checkValues = true): Uint8Array {
  if (v === undefined) return new Uint8Array(length).fill(1);
  const expected = `Uint8Array, Int32Array, Float32Array, Float64Array or boolean[] of length ${length} (0/1)`;
  let out: Uint8Array;
  let src: ArrayLike<unknown>;
  if (Array.isArray(v)) {
    src = plainArray(op, name, v, expected, length);
    out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const x = src[i];
      out[i] = x === 1 || x === true ? 1 : x === 0 || x === false ? 0 : 255;
      if (out[i] > 1) throw rangeError(op, name, 'mask values 0 or 1', `${describe(x)} at index ${i}`);
    }
    return out;
  }
  const a = typedArray(op, name, v, MASK_KINDS, length, expected);
  src = a;
  if (typedArrayKind(a) === 'Uint8Array') {
    out = a as Uint8Array;
    // checkValues false: the kernel checks the values in its own read of the mask (grpoLoss)
    if (!checkValues) return out;
  } else {
    // an index loop, not Uint8Array.from: a subclass may override Symbol.iterator
    out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const x = (a as Float32Array)[i];
      out[i] = x === 1 ? 1 : x === 0 ? 0 : 255;
    }
  }
  for (let i = 0; i < out.length; i++) {
    if (out[i] > 1) throw rangeError(op, name, 'mask values 0 or 1', `${src[i]} at index ${i}`);
  }
  return out;
}
/** An output buffer the caller may pass to avoid allocation, or a fresh one. */
export function outFloat32(op: string, name: string, v: unknown, length: number): Float32Array {
  if (v === undefined) return new Float32Array(length);
  return float32Array(op, name, v, length);
}
