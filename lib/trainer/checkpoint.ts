/**
 * Checkpoints: <runDir>/checkpoints/step-NNNNNN/ holding
 *   model.safetensors      policy weights
 *   optimizer.safetensors  AdamW moments (m, v)
 *   reference.safetensors  the frozen reference weights (only when β > 0)
 *   trainer_state.json     config, model config, optimiser step and hyper-parameters, data-order
 *                          RNG state (epoch, cursor), step, token count
 * and <runDir>/checkpoints/latest.json naming the newest complete one.
 *
 * Atomic: a checkpoint is written into a temporary sibling directory, every file and the
 * directory are fsynced, then it is renamed into place, and only then is latest.json replaced
 * (write to a temporary file, fsync, rename). A crash at any point leaves latest.json naming the
 * previous complete checkpoint; leftover *.tmp-* directories are never read and are removed by
 * the next save.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { PolicyModel, TransformerConfig } from '../models/policy';
import { readSafetensors, TensorMap, writeSafetensors } from '../models/safetensors';

export interface CheckpointMeta {
  /** Format version of trainer_state.json. */
  version: 1;
  kind: 'sft' | 'grpo';
  step: number;
  modelConfig: TransformerConfig;
  /** The run's options (CLI options object). */
  config: Record<string, unknown>;
  optimizer: { step: number };
  /** Everything else needed to continue bit-exactly (trainer state: updates, epoch, cursor, ...). */
  state: Record<string, unknown>;
  hasReference: boolean;
  savedAt: string;
}

export interface LoadedCheckpoint {
  dir: string;
  meta: CheckpointMeta;
  weights: TensorMap;
  optimizer: TensorMap | null;
  reference: TensorMap | null;
}

function fsyncPath(p: string) {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function writeFileDurable(p: string, text: string) {
  const tmp = `${p}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, p);
  fsyncPath(path.dirname(p));
}

export interface SaveOptions {
  model: PolicyModel;
  refModel?: PolicyModel | null;
  meta: Omit<CheckpointMeta, 'version' | 'savedAt' | 'hasReference' | 'optimizer' | 'modelConfig'>;
  /** Keep at most this many checkpoints (oldest deleted after a successful save). Default 2. */
  keep?: number;
  /** Test hook: called after the files are written, before anything is renamed into place. */
  beforeCommit?: () => void;
}

/** Saves atomically; returns the checkpoint directory. */
export function saveCheckpoint(runDir: string, o: SaveOptions): string {
  const root = path.join(runDir, 'checkpoints');
  fs.mkdirSync(root, { recursive: true });
  for (const e of fs.readdirSync(root)) if (e.includes('.tmp-')) fs.rmSync(path.join(root, e), { recursive: true, force: true });
  const name = `step-${String(o.meta.step).padStart(6, '0')}`;
  const final = path.join(root, name);
  const tmp = path.join(root, `${name}.tmp-${process.pid}`);
  fs.mkdirSync(tmp, { recursive: true });
  const opt = o.model.optimizerState();
  const meta: CheckpointMeta = {
    version: 1,
    ...o.meta,
    modelConfig: o.model.config as TransformerConfig,
    optimizer: { step: opt.step ?? 0 },
    hasReference: !!o.refModel,
    savedAt: new Date().toISOString(),
  };
  writeSafetensors(path.join(tmp, 'model.safetensors'), o.model.stateDict(), { format: 'pt', step: String(meta.step) });
  writeSafetensors(path.join(tmp, 'optimizer.safetensors'), opt, { step: String(meta.optimizer.step) });
  if (o.refModel) writeSafetensors(path.join(tmp, 'reference.safetensors'), o.refModel.stateDict(), { format: 'pt' });
  const metaPath = path.join(tmp, 'trainer_state.json');
  fs.writeFileSync(metaPath, JSON.stringify(meta, null, 2));
  for (const f of fs.readdirSync(tmp)) fsyncPath(path.join(tmp, f));
  fsyncPath(tmp);
  o.beforeCommit?.();
  if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  fsyncPath(root);
  writeFileDurable(path.join(root, 'latest.json'), JSON.stringify({ checkpoint: name, step: meta.step }) + '\n');
  // prune: keep the newest `keep` complete checkpoints
  const keep = o.keep ?? 2;
  const all = fs.readdirSync(root).filter((e) => /^step-\d+$/.test(e)).sort();
  for (const e of all.slice(0, Math.max(0, all.length - keep))) if (e !== name) fs.rmSync(path.join(root, e), { recursive: true, force: true });
  return final;
}

/** The newest complete checkpoint of a run directory, or null. */
export function latestCheckpoint(runDir: string): string | null {
  const p = path.join(runDir, 'checkpoints', 'latest.json');
  if (!fs.existsSync(p)) return null;
  const { checkpoint } = JSON.parse(fs.readFileSync(p, 'utf8'));
  const dir = path.join(runDir, 'checkpoints', checkpoint);
  return fs.existsSync(path.join(dir, 'trainer_state.json')) ? dir : null;
}

function checkpointDir(dirOrRun: string): string {
  if (fs.existsSync(path.join(dirOrRun, 'trainer_state.json'))) return dirOrRun;
  const latest = latestCheckpoint(dirOrRun);
  if (!latest) throw new Error(`no checkpoint in ${dirOrRun} (expected trainer_state.json or checkpoints/latest.json)`);
  return latest;
}

/** The trainer_state.json of a checkpoint directory (or of a run directory's latest checkpoint). */
export function loadCheckpointMeta(dirOrRun: string): CheckpointMeta {
  const dir = checkpointDir(dirOrRun);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as CheckpointMeta;
  if (meta.version !== 1) throw new Error(`${dir}: unsupported checkpoint version ${meta.version}`);
  return meta;
}

/** Reads a checkpoint directory (or a run directory: its latest checkpoint). */
export function loadCheckpoint(dirOrRun: string): LoadedCheckpoint {
  const dir = checkpointDir(dirOrRun);
  const meta = loadCheckpointMeta(dir);
  const read = (f: string) => (fs.existsSync(path.join(dir, f)) ? readSafetensors(path.join(dir, f)).tensors : null);
  const weights = read('model.safetensors');
  if (!weights) throw new Error(`${dir}: model.safetensors is missing`);
  return { dir, meta, weights, optimizer: read('optimizer.safetensors'), reference: meta.hasReference ? read('reference.safetensors') : null };
}
