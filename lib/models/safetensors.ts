/**
 * safetensors (https://github.com/huggingface/safetensors) for float32 tensors:
 *   8 bytes  little-endian u64 N, the header length
 *   N bytes  UTF-8 JSON: { "<name>": { "dtype": "F32", "shape": [...], "data_offsets": [b, e] },
 *            ..., "__metadata__": { "<key>": "<string>" } }  (padded with spaces to 8 bytes)
 *   rest     the tensors' little-endian bytes; offsets are relative to the start of this part
 * Writes are atomic: a temp file in the same directory, fsync, rename (then fsync the directory).
 */
import * as fs from 'fs';
import * as path from 'path';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}
export type TensorMap = Map<string, NamedTensor>;

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

const OP = 'safetensors';
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The file's bytes for `tensors` (written in the map's order) and optional string metadata. */
export function encodeSafetensors(tensors: TensorMap | Record<string, NamedTensor>, metadata?: Record<string, string>): Buffer {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new TypeError(`${OP}: expected string values for metadata but received ${typeof v} for '${k}'`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new RangeError(`${OP}: '__metadata__' is reserved and cannot name a tensor`);
    if (!(t?.data instanceof Float32Array)) throw new TypeError(`${OP}: expected a Float32Array for ${name}.data`);
    if (!Array.isArray(t.shape) || t.shape.some((s) => !Number.isInteger(s) || s < 0))
      throw new TypeError(`${OP}: expected an array of non-negative integers for ${name}.shape`);
    if (numel(t.shape) !== t.data.length)
      throw new RangeError(`${OP}: expected ${numel(t.shape)} elements for ${name} (shape [${t.shape}]) but received ${t.data.length}`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * t.data.length] };
    offset += 4 * t.data.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hbytes.length + offset);
  out.writeBigUInt64LE(BigInt(hbytes.length), 0);
  hbytes.copy(out, 8);
  let at = 8 + hbytes.length;
  for (const [, t] of entries) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (LE) out.set(bytes, at);
    else for (let i = 0; i < t.data.length; i++) out.writeFloatLE(t.data[i], at + 4 * i);
    at += t.data.byteLength;
  }
  return out;
}

/** Parses safetensors bytes (F32 tensors only), checking every offset against the buffer. */
export function decodeSafetensors(buf: Uint8Array, where = 'buffer'): SafetensorsFile {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 8) throw new RangeError(`${OP}: ${where} is too short for a header (${b.length} bytes)`);
  const n = b.readBigUInt64LE(0);
  if (n > BigInt(b.length - 8)) throw new RangeError(`${OP}: ${where} declares a ${n}-byte header but has ${b.length - 8} bytes after the length`);
  const hlen = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(b.subarray(8, 8 + hlen).toString('utf8'));
  } catch (e) {
    throw new RangeError(`${OP}: ${where} has a header that is not JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new RangeError(`${OP}: ${where} header is not a JSON object`);
  const dataStart = 8 + hlen;
  const dataLen = b.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorMap = new Map();
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new RangeError(`${OP}: ${where} metadata '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (t?.dtype !== 'F32') throw new RangeError(`${OP}: ${where} tensor '${name}' has dtype ${String(t?.dtype)}; only F32 is supported`);
    const shape = t.shape;
    if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0)) throw new RangeError(`${OP}: ${where} tensor '${name}' has an invalid shape`);
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x)) || off[0] < 0 || off[1] < off[0] || off[1] > dataLen)
      throw new RangeError(`${OP}: ${where} tensor '${name}' has data_offsets outside the ${dataLen}-byte data section`);
    const count = numel(shape as number[]);
    if (off[1] - off[0] !== 4 * count) throw new RangeError(`${OP}: ${where} tensor '${name}' has ${off[1] - off[0]} bytes for shape [${shape}]`);
    const data = new Float32Array(count);
    if (LE) new Uint8Array(data.buffer).set(b.subarray(dataStart + off[0], dataStart + off[1]));
    else for (let i = 0; i < count; i++) data[i] = b.readFloatLE(dataStart + off[0] + 4 * i);
    tensors.set(name, { shape: (shape as number[]).slice(), data });
    spans.push([off[0], off[1], name]);
  }
  spans.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < spans.length; i++)
    if (spans[i][0] < spans[i - 1][1]) throw new RangeError(`${OP}: ${where} tensors '${spans[i - 1][2]}' and '${spans[i][2]}' overlap`);
  return { tensors, metadata };
}

/** Writes `file` atomically: temp file in the same directory, fsync, rename, fsync directory. */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    let at = 0;
    while (at < bytes.length) at += fs.writeSync(fd, bytes, at, bytes.length - at);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // directories cannot be fsynced on every platform; the rename itself is atomic
  }
}

/** Writes float32 tensors (and optional string metadata) to `file` atomically. */
export function writeSafetensors(file: string, tensors: TensorMap | Record<string, NamedTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

/** Reads a safetensors file of float32 tensors. */
export function readSafetensors(file: string): SafetensorsFile {
  return decodeSafetensors(fs.readFileSync(file), file);
}
