/**
 * Checkpoints: <runDir>/checkpoints/step-NNNNNN/ holding
 *   model.safetensors      policy weights (a LoRA run on a Hugging Face base: the adapters only;
 *                          trainer_state.json's `base` names the base folder and its identity)
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
import { BaseIdentity, baseIdentityProblem, baseIdentityShapeProblem } from '../models/hf/identity';

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
  /**
   * Set when model.safetensors holds only the trained tensors (LoRA adapters): the frozen base
   * weights are those of this folder, checked against the recorded identity on load.
   */
  base?: BaseIdentity;
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
  /**
   * A LoRA run on a Hugging Face base: `weights` are the trained tensors only (model.safetensors
   * then holds them instead of model.stateDict()) and `base` the identity of the folder that
   * holds the rest. Both or neither.
   */
  weights?: TensorMap;
  base?: BaseIdentity;
  /** Test hook: called after the files are written, before anything is renamed into place. */
  beforeCommit?: () => void;
}

/** The files a checkpoint directory holds (and their atomic-write temporaries). */
const CHECKPOINT_FILE = /^((model|optimizer|reference)\.safetensors|trainer_state\.json)(\.tmp-\d+)?$/;

/**
 * Removes a checkpoint directory's own files, then the directory if that left it empty. Returns
 * false when something else is in it (a user's file): it stays, and so does the directory.
 */
function removeCheckpointDir(dir: string): boolean {
  for (const f of fs.readdirSync(dir)) if (CHECKPOINT_FILE.test(f)) fs.rmSync(path.join(dir, f), { force: true });
  try {
    fs.rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/** Saves atomically; returns the checkpoint directory. */
export function saveCheckpoint(runDir: string, o: SaveOptions): string {
  const root = path.join(runDir, 'checkpoints');
  fs.mkdirSync(root, { recursive: true });
  for (const e of fs.readdirSync(root)) {
    if (!/^(step-\d+|latest\.json)\.tmp-\d+$/.test(e)) continue;
    const p = path.join(root, e);
    if (fs.statSync(p).isDirectory()) removeCheckpointDir(p);
    else fs.rmSync(p, { force: true });
  }
  const name = `step-${String(o.meta.step).padStart(6, '0')}`;
  const final = path.join(root, name);
  const tmp = path.join(root, `${name}.tmp-${process.pid}`);
  fs.mkdirSync(tmp, { recursive: true });
  if (!o.weights !== !o.base) throw new RangeError('saveCheckpoint: weights (the trained tensors) and base (the folder holding the frozen ones) go together');
  const opt = o.model.optimizerState();
  const meta: CheckpointMeta = {
    version: 1,
    ...o.meta,
    modelConfig: o.model.config as TransformerConfig,
    optimizer: { step: opt.step ?? 0 },
    hasReference: !!o.refModel,
    ...(o.base ? { base: o.base } : {}),
    savedAt: new Date().toISOString(),
  };
  writeSafetensors(path.join(tmp, 'model.safetensors'), o.weights ?? o.model.stateDict(), { format: 'pt', step: String(meta.step) });
  writeSafetensors(path.join(tmp, 'optimizer.safetensors'), opt, { step: String(meta.optimizer.step) });
  if (o.refModel) writeSafetensors(path.join(tmp, 'reference.safetensors'), o.refModel.stateDict(), { format: 'pt' });
  const metaPath = path.join(tmp, 'trainer_state.json');
  fs.writeFileSync(metaPath, JSON.stringify(meta, null, 2));
  for (const f of fs.readdirSync(tmp)) fsyncPath(path.join(tmp, f));
  fsyncPath(tmp);
  o.beforeCommit?.();
  if (fs.existsSync(final) && !removeCheckpointDir(final)) {
    removeCheckpointDir(tmp);
    throw new CheckpointError(final, 'holds files that are not part of a checkpoint; they are left in place, so the new checkpoint cannot be saved there (move them away)');
  }
  fs.renameSync(tmp, final);
  fsyncPath(root);
  writeFileDurable(path.join(root, 'latest.json'), JSON.stringify({ checkpoint: name, step: meta.step }) + '\n');
  // prune: keep the newest `keep` complete checkpoints
  const keep = o.keep ?? 2;
  const all = fs.readdirSync(root).filter((e) => /^step-\d+$/.test(e)).sort();
  // only the checkpoint's own files: a file someone put in a checkpoint directory stays
  for (const e of all.slice(0, Math.max(0, all.length - keep))) if (e !== name) removeCheckpointDir(path.join(root, e));
  return final;
}

/** A checkpoint that cannot be used: the message names the file and what is wrong with it. */
export class CheckpointError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`checkpoint ${file}: ${problem}`);
    this.name = 'CheckpointError';
  }
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `is not valid JSON (${(e as Error).message}); the file is damaged`);
  }
}

/**
 * The newest complete checkpoint of a run directory, or null when the run has none (no
 * latest.json). A latest.json that is damaged or names a checkpoint that is not there is an
 * error: another checkpoint is never picked silently.
 */
export function latestCheckpoint(runDir: string): string | null {
  const p = path.join(runDir, 'checkpoints', 'latest.json');
  if (!fs.existsSync(p)) return null;
  const j = readJson(p) as { checkpoint?: unknown } | null;
  const name = j && typeof j === 'object' ? j.checkpoint : undefined;
  if (typeof name !== 'string' || !/^step-\d+$/.test(name))
    throw new CheckpointError(p, `expected {"checkpoint": "step-NNNNNN", ...} but received ${JSON.stringify(j)}`);
  const dir = path.join(runDir, 'checkpoints', name);
  if (!fs.existsSync(dir)) throw new CheckpointError(p, `names ${name}, but ${dir} does not exist`);
  return dir;
}

function checkpointDir(dirOrRun: string): string {
  if (fs.existsSync(path.join(dirOrRun, 'trainer_state.json'))) return dirOrRun;
  const latest = latestCheckpoint(dirOrRun);
  if (!latest) {
    const why = !fs.existsSync(dirOrRun) ? 'it does not exist' : fs.existsSync(path.join(dirOrRun, 'checkpoints')) ? 'checkpoints/latest.json is missing' : 'it has no trainer_state.json and no checkpoints/latest.json';
    throw new CheckpointError(dirOrRun, `no checkpoint here (${why})`);
  }
  return latest;
}

const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
const isCount = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;

/** Checks a parsed trainer_state.json; returns what is wrong, or null. */
function metaProblem(m: unknown): string | null {
  if (!isObj(m)) return 'expected a JSON object';
  if (m.version !== 1) return `unsupported version ${JSON.stringify(m.version)} (expected 1)`;
  if (m.kind !== 'sft' && m.kind !== 'grpo') return `expected kind 'sft' or 'grpo' but received ${JSON.stringify(m.kind)}`;
  if (!isCount(m.step)) return `expected step to be an integer >= 0 but received ${JSON.stringify(m.step)}`;
  if (!isObj(m.modelConfig)) return 'modelConfig is missing';
  // the sizes a model config has (other model families may name theirs differently)
  for (const k of ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'dFF', 'maxSeqLen'])
    if (k in m.modelConfig && !(isCount(m.modelConfig[k]) && (m.modelConfig[k] as number) > 0)) return `expected modelConfig.${k} to be a positive integer but received ${JSON.stringify(m.modelConfig[k])}`;
  if (!isObj(m.config)) return 'config (the run options) is missing';
  if (!isObj(m.optimizer) || !isCount(m.optimizer.step)) return `expected optimizer.step to be an integer >= 0 but received ${JSON.stringify(isObj(m.optimizer) ? m.optimizer.step : m.optimizer)}`;
  if (typeof m.hasReference !== 'boolean') return `expected hasReference to be true or false but received ${JSON.stringify(m.hasReference)}`;
  if (!isObj(m.state)) return 'state is missing';
  if (m.base !== undefined) {
    const p = baseIdentityShapeProblem(m.base);
    if (p) return p;
  }
  return null;
}

/**
 * Checks that a checkpoint's state is the GRPO trainer's (what a resume continues from); throws a
 * CheckpointError naming trainer_state.json otherwise.
 */
export function checkTrainerState(ck: LoadedCheckpoint): void {
  const file = path.join(ck.dir, 'trainer_state.json');
  if (ck.meta.kind !== 'grpo') throw new CheckpointError(file, `is a ${ck.meta.kind} checkpoint; resume needs a grpo one`);
  const st = ck.meta.state;
  for (const k of ['step', 'updates', 'epoch', 'cursor', 'numTokens'])
    if (!isCount(st[k])) throw new CheckpointError(file, `expected state.${k} to be an integer >= 0 but received ${JSON.stringify(st[k])}`);
  if (st.step !== ck.meta.step) throw new CheckpointError(file, `state.step ${st.step} differs from step ${ck.meta.step}`);
}

/** The trainer_state.json of a checkpoint directory (or of a run directory's latest checkpoint), validated. */
export function loadCheckpointMeta(dirOrRun: string): CheckpointMeta {
  const dir = checkpointDir(dirOrRun);
  const file = path.join(dir, 'trainer_state.json');
  const meta = readJson(file);
  const problem = metaProblem(meta);
  if (problem) throw new CheckpointError(file, problem);
  return meta as CheckpointMeta;
}

/** Reads one safetensors file of a checkpoint; every tensor must be finite. */
function readTensors(file: string): TensorMap {
  if (!fs.existsSync(file)) throw new CheckpointError(file, 'is missing (the checkpoint is incomplete)');
  let t: TensorMap;
  try {
    t = readSafetensors(file).tensors;
  } catch (e) {
    throw new CheckpointError(file, `is damaged (${(e as Error).message})`);
  }
  for (const [name, x] of t) {
    const d = x.data;
    for (let i = 0; i < d.length; i++)
      if (!Number.isFinite(d[i])) throw new CheckpointError(file, `tensor '${name}' holds ${d[i]} at index ${i} (weights must be finite)`);
  }
  return t;
}

/**
 * Reads and validates a checkpoint directory (or a run directory: its latest checkpoint):
 * trainer_state.json, model.safetensors, optimizer.safetensors and (when the run had a
 * reference model) reference.safetensors must all be there, parse, and hold finite values.
 */
export function loadCheckpoint(dirOrRun: string): LoadedCheckpoint {
  const dir = checkpointDir(dirOrRun);
  const meta = loadCheckpointMeta(dir);
  const weights = readTensors(path.join(dir, 'model.safetensors'));
  const optimizer = readTensors(path.join(dir, 'optimizer.safetensors'));
  const reference = meta.hasReference ? readTensors(path.join(dir, 'reference.safetensors')) : null;
  return { dir, meta, weights, optimizer, reference };
}

/**
 * Loads a checkpoint's tensors into `model`; a tensor set that does not fit the model (missing,
 * extra or misshapen tensors) is an error naming the file.
 */
export function restoreTensors(ck: LoadedCheckpoint, which: 'model' | 'optimizer' | 'reference', model: PolicyModel, opts: { baseDir?: string } = {}): void {
  const file = path.join(ck.dir, `${which}.safetensors`);
  const base = ck.meta.base;
  if (which === 'model' && base) checkBase(ck, opts.baseDir, model);
  try {
    if (which === 'optimizer') model.loadOptimizerState(ck.optimizer!, ck.meta.optimizer.step);
    else if (which === 'model' && base) (model as PolicyModel & { loadTrainableStateDict(sd: TensorMap): void }).loadTrainableStateDict(ck.weights);
    else model.loadStateDict(which === 'model' ? ck.weights : ck.reference!);
  } catch (e) {
    throw new CheckpointError(file, `does not fit the model in trainer_state.json (${(e as Error).message})`);
  }
}

/**
 * A checkpoint holding only LoRA adapters: `baseDir` (the folder `model`'s frozen weights were
 * loaded from) must be the base recorded in trainer_state.json, file for file; otherwise a
 * CheckpointError names the file that is missing or differs.
 */
function checkBase(ck: LoadedCheckpoint, baseDir: string | undefined, model: PolicyModel): void {
  const file = path.join(ck.dir, 'trainer_state.json');
  const base = ck.meta.base!;
  if (baseDir === undefined)
    throw new CheckpointError(file, `holds only the LoRA adapters; their base model is ${base.dir} (load it with --model ${base.dir})`);
  if (typeof (model as { loadTrainableStateDict?: unknown }).loadTrainableStateDict !== 'function')
    throw new CheckpointError(file, 'holds only the LoRA adapters of a Hugging Face model, but the model to restore is not one');
  const problem = baseIdentityProblem(baseDir, base);
  if (problem) throw new CheckpointError(file, `names base model ${base.dir}, but ${problem}`);
}
