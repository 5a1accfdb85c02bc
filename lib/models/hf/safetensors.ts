/**
 * Reading the headers of Hugging Face safetensors checkpoints (single file or shards listed by
 * model.safetensors.index.json) without reading their data: only the 8-byte length and the JSON
 * header pass through JS; the addon maps the files and copies the tensors (hf_binding.cc).
 * Every header field is checked against the file's size, so a truncated file or a length field
 * pointing past the end is an error naming the file (and the tensor), never a bad read.
 */
import * as fs from 'fs';
import * as path from 'path';

export type StDtype = 'F32' | 'BF16' | 'F16';
const BYTES: Record<StDtype, number> = { F32: 4, BF16: 2, F16: 2 };

export interface StEntry {
  name: string;
  file: string;
  dtype: StDtype;
  shape: number[];
  /** Absolute byte offset of the tensor's data in `file`. */
  offset: number;
  bytes: number;
}

/** The tensors of one safetensors file, by name. */
export function readSafetensorsHeader(file: string): Map<string, StEntry> {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new RangeError(`${file}: ${size} bytes is too short for a safetensors header (truncated file?)`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(size - 8) || n > 100_000_000n)
      throw new RangeError(`${file}: the header length field says ${n} bytes but the file has ${size - 8} after it (corrupt or truncated file)`);
    const hlen = Number(n);
    const hb = Buffer.alloc(hlen);
    fs.readSync(fd, hb, 0, hlen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (e) {
      throw new RangeError(`${file}: the safetensors header is not JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new RangeError(`${file}: the safetensors header is not a JSON object`);
    const dataStart = 8 + hlen, dataLen = size - dataStart;
    const out = new Map<string, StEntry>();
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!(typeof t?.dtype === 'string' && t.dtype in BYTES))
        throw new RangeError(`${file}: tensor '${name}' has dtype ${JSON.stringify(t?.dtype)}; expected F32, BF16 or F16`);
      const shape = t.shape;
      if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0)) throw new RangeError(`${file}: tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
      const off = t.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) || off[1] < off[0])
        throw new RangeError(`${file}: tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
      if (off[1] > dataLen)
        throw new RangeError(`${file}: tensor '${name}' ends at byte ${off[1]} of a ${dataLen}-byte data section (truncated file?)`);
      const dtype = t.dtype as StDtype;
      const bytes = BYTES[dtype] * (shape as number[]).reduce((a, b) => a * b, 1);
      if (off[1] - off[0] !== bytes) throw new RangeError(`${file}: tensor '${name}' has ${off[1] - off[0]} bytes for ${dtype} shape [${shape}] (${bytes} expected)`);
      out.set(name, { name, file, dtype, shape: (shape as number[]).slice(), offset: dataStart + off[0], bytes });
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** All tensors of a checkpoint folder: model.safetensors, or the shards its index lists. */
export function readCheckpointIndex(dir: string): Map<string, StEntry> {
  const single = path.join(dir, 'model.safetensors');
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(indexFile)) {
    let idx: { weight_map?: Record<string, unknown> };
    try {
      idx = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    } catch (e) {
      throw new RangeError(`${indexFile}: not JSON (${(e as Error).message})`);
    }
    const wm = idx?.weight_map;
    if (!wm || typeof wm !== 'object') throw new RangeError(`${indexFile}: expected a weight_map object`);
    const shards = new Map<string, Map<string, StEntry>>();
    const out = new Map<string, StEntry>();
    for (const [name, f] of Object.entries(wm)) {
      if (typeof f !== 'string' || f !== path.basename(f) || !f.endsWith('.safetensors'))
        throw new RangeError(`${indexFile}: tensor '${name}' maps to ${JSON.stringify(f)}; expected a .safetensors file name in the same folder`);
      let shard = shards.get(f);
      if (!shard) {
        const p = path.join(dir, f);
        if (!fs.existsSync(p)) throw new RangeError(`${indexFile}: shard ${f} (holding '${name}') is missing`);
        shard = readSafetensorsHeader(p);
        shards.set(f, shard);
      }
      const e = shard.get(name);
      if (!e) throw new RangeError(`${path.join(dir, f)}: tensor '${name}' is listed in the index but missing from the shard`);
      out.set(name, e);
    }
    return out;
  }
  if (!fs.existsSync(single)) throw new RangeError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  return readSafetensorsHeader(single);
}

/** bf16 bits of a float32, rounding to nearest even (NaN stays NaN). */
export function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const b = u[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Writes tensors (float32 data) as a safetensors file in `dtype`, streaming tensor by tensor
 * (no buffer of the whole file), to a temp file that is fsynced and renamed into place.
 */
export function writeSafetensorsStreaming(file: string, tensors: Iterable<[string, { shape: number[]; data: Float32Array }]>, dtype: 'BF16' | 'F32', metadata: Record<string, string> = { format: 'pt' }): void {
  const list = [...tensors];
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const [name, t] of list) {
    const bytes = t.data.length * BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, hb);
    for (const [, t] of list) {
      const arr = dtype === 'BF16' ? toBf16(t.data) : t.data;
      fs.writeSync(fd, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}
