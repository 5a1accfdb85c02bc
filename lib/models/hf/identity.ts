/**
 * A cheap identity of a Hugging Face checkpoint folder, so that a LoRA run's checkpoint can hold
 * only the adapters and name its base instead of carrying a float32 copy of the frozen weights
 * (~2 GB for a 0.5B model). Per file (config.json, the safetensors files and their index): the
 * size and a SHA-256 over the safetensors header plus 64 evenly spaced 4 KiB blocks of the data
 * (the whole file when it is smaller than that). Hashing every byte of a multi-GB base on each
 * checkpoint load would cost seconds; the sampled blocks still catch a different fine-tune with
 * the same layout (its header alone would match), a re-quantised file, or a truncated copy.
 * Modification times are not part of it: a copy of the folder is the same base.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

export interface BaseFileIdentity {
  /** File name relative to the folder. */
  file: string;
  size: number;
  /** SHA-256 (hex) of the file's header and sampled blocks, see the file comment. */
  sha256: string;
}

export interface BaseIdentity {
  /** Absolute path of the folder when it was recorded. */
  dir: string;
  files: BaseFileIdentity[];
}

const BLOCK = 4096;
const SAMPLES = 64;

/** The files that make up a checkpoint folder's weights and shape. */
function baseFiles(dir: string): string[] {
  const files = ['config.json'];
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    files.push('model.safetensors.index.json');
    let wm: Record<string, unknown> = {};
    try {
      wm = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: Record<string, unknown> }).weight_map ?? {};
    } catch (e) {
      throw new RangeError(`${index}: not JSON (${(e as Error).message})`);
    }
    for (const f of new Set(Object.values(wm))) if (typeof f === 'string') files.push(f);
  } else files.push('model.safetensors');
  return files;
}

function fileIdentity(dir: string, name: string): BaseFileIdentity {
  const p = path.join(dir, name);
  const fd = fs.openSync(p, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const h = crypto.createHash('sha256');
    const read = (pos: number, len: number) => {
      const b = Buffer.alloc(len);
      const n = fs.readSync(fd, b, 0, len, pos);
      h.update(b.subarray(0, n));
    };
    let dataStart = 0;
    if (name.endsWith('.safetensors') && size >= 8) {
      const lb = Buffer.alloc(8);
      fs.readSync(fd, lb, 0, 8, 0);
      const n = lb.readBigUInt64LE(0);
      dataStart = n <= BigInt(size - 8) ? 8 + Number(n) : size;
      read(0, dataStart);
    }
    const dataLen = size - dataStart;
    if (dataLen <= SAMPLES * BLOCK) read(dataStart, dataLen);
    else for (let i = 0; i < SAMPLES; i++) read(dataStart + Math.floor((i * (dataLen - BLOCK)) / (SAMPLES - 1)), BLOCK);
    return { file: name, size, sha256: h.digest('hex') };
  } finally {
    fs.closeSync(fd);
  }
}

/** Records the identity of checkpoint folder `dir` (a missing file is an error naming it). */
export function baseIdentity(dir: string): BaseIdentity {
  const abs = path.resolve(dir);
  return {
    dir: abs,
    files: baseFiles(abs).map((f) => {
      if (!fs.existsSync(path.join(abs, f))) throw new RangeError(`${path.join(abs, f)}: missing (a file of the base model)`);
      return fileIdentity(abs, f);
    }),
  };
}

/**
 * What differs between folder `dir` and a recorded identity, naming the file (missing, another
 * size, other contents), or null when it is the same base.
 */
export function baseIdentityProblem(dir: string, recorded: BaseIdentity): string | null {
  const abs = path.resolve(dir);
  for (const r of recorded.files) {
    const p = path.join(abs, r.file);
    if (!fs.existsSync(p)) return `${p} is missing (the base model the adapters were trained on had it)`;
    const now = fileIdentity(abs, r.file);
    if (now.size !== r.size) return `${p} has ${now.size} bytes but the base model the adapters were trained on had ${r.size}: it is another model`;
    if (now.sha256 !== r.sha256) return `${p} has other contents than the base model the adapters were trained on (sampled SHA-256 ${now.sha256.slice(0, 12)}… vs ${r.sha256.slice(0, 12)}…)`;
  }
  return null;
}

/** Checks the parsed shape of a recorded identity; returns what is wrong, or null. */
export function baseIdentityShapeProblem(x: unknown): string | null {
  const o = x as BaseIdentity | null;
  if (!o || typeof o !== 'object' || typeof o.dir !== 'string' || !Array.isArray(o.files) || o.files.length === 0)
    return `expected base to be { dir, files: [{ file, size, sha256 }, ...] } but received ${JSON.stringify(x)?.slice(0, 200)}`;
  for (const f of o.files)
    if (!f || typeof f.file !== 'string' || f.file !== path.basename(f.file) || !Number.isSafeInteger(f.size) || typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256))
      return `base.files holds ${JSON.stringify(f)?.slice(0, 200)}; expected { file (a name in the folder), size, sha256 (64 hex digits) }`;
  return null;
}
