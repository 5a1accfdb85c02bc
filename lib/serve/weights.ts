/**
 * Weights on disk for rollout servers: what a trainer writes after an update (writeRolloutWeights)
 * and what `grpo serve` loads at start and on POST /update_weights_from_disk (loadServeModel).
 *
 * A rollout-weights directory is <runDir>/rollout-weights/v-NNNNNN/ (NNNNNN = the policy version,
 * i.e. the trainer's optimiser-update count) holding, for the built-in transformer,
 *   model.safetensors   float32 weights
 *   trainer_state.json  a checkpoint meta (kind 'grpo', step = version, no optimizer file)
 * and for a Hugging Face model a transformers folder (config.json + model.safetensors, float32 so a
 * server samples from exactly the trainer's weights) — or, for a LoRA model, a PEFT adapter folder
 * (adapter_config.json naming the base folder + float32 adapter_model.safetensors): the server
 * loads the base from that folder and applies the adapters unmerged, as the trainer does, so its
 * tokens are the in-process ones bit for bit (merged weights W + α/r·B·A round differently). It is written into a temporary sibling,
 * then renamed into place: a server is only ever told a complete directory, and a kill mid-write
 * leaves only a `.tmp-*` directory no one reads (and the next write removes).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CharTokenizer, createTransformer, mediaTokenizer, PolicyModel, Tokenizer, type MediaModelConfig } from '../models';
import { HfCausalLM, loadHfCheckpoint, loadHfModel, loadHfModelWithAdapter, saveHfModel, saveLoraAdapter } from '../models/hf';
import { readSafetensors, writeSafetensors } from '../models/safetensors';
import { CheckpointError, loadCheckpoint, loadCheckpointMeta, restoreTensors, type CheckpointMeta } from '../trainer/checkpoint';

const VERSION_DIR = /^v-(\d+)$/;
const TMP_DIR = /^v-\d+\.tmp-\d+$/;
/** The files a weights directory holds (the built-in layout and a transformers folder). */
const WEIGHT_FILE = /^(model\.safetensors|trainer_state\.json|config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|vocab\.json|merges\.txt|added_tokens\.json|chat_template\.jinja|adapter_config\.json|adapter_model\.safetensors)(\.tmp-\d+)?$/;

/** Removes a weights directory's own files, then the directory if that emptied it (a user's file stays). */
function removeWeightsDir(dir: string): boolean {
  for (const f of fs.readdirSync(dir)) if (WEIGHT_FILE.test(f)) fs.rmSync(path.join(dir, f), { force: true });
  try {
    fs.rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

export interface WriteWeightsOptions {
  /** Test hook: called after the files are written, before the directory is renamed into place. */
  beforeCommit?: () => void;
  /** HF models: copy tokenizer files from this folder too (a server started on the folder needs them). */
  sourceDir?: string;
}

/**
 * Writes `model`'s weights as <root>/v-NNNNNN atomically and returns that directory. An existing
 * complete directory of the same version is replaced only if it holds nothing but weight files.
 */
export function writeRolloutWeights(root: string, model: PolicyModel, version: number, o: WriteWeightsOptions = {}): string {
  if (!Number.isSafeInteger(version) || version < 0) throw new RangeError(`writeRolloutWeights: expected version to be an integer >= 0 but received ${version}`);
  fs.mkdirSync(root, { recursive: true });
  // leftovers of a write that was killed: only our own temporary directories
  for (const e of fs.readdirSync(root)) if (TMP_DIR.test(e)) removeWeightsDir(path.join(root, e));
  const name = `v-${String(version).padStart(6, '0')}`;
  const final = path.join(root, name);
  const tmp = path.join(root, `${name}.tmp-${process.pid}`);
  try {
    if (model instanceof HfCausalLM && model.lora && o.sourceDir) {
      // the adapters only; the server reads the base from the folder the trainer loaded it from
      saveLoraAdapter(model, tmp, { baseModel: path.resolve(o.sourceDir) });
    } else if (model instanceof HfCausalLM) {
      saveHfModel(model, tmp, { dtype: 'float32', sourceDir: o.sourceDir });
    } else {
      fs.mkdirSync(tmp, { recursive: true });
      writeSafetensors(path.join(tmp, 'model.safetensors'), model.stateDict(), { format: 'pt', version: String(version) });
      const meta: CheckpointMeta = {
        version: 1, kind: 'grpo', step: version, modelConfig: model.config as CheckpointMeta['modelConfig'],
        config: {}, optimizer: { step: 0 }, state: { rolloutWeights: true }, hasReference: false, savedAt: new Date().toISOString(),
      };
      fs.writeFileSync(path.join(tmp, 'trainer_state.json'), JSON.stringify(meta, null, 2));
    }
    // No fsync: these weights are for live servers, not for recovery (a resume reads checkpoints/);
    // the rename alone guarantees a server never sees a partly written directory, and skipping the
    // flush takes most of the per-update cost off a busy disk (bench/results/rollout_remote.md).
    o.beforeCommit?.();
    if (fs.existsSync(final) && !removeWeightsDir(final))
      throw new Error(`writeRolloutWeights: ${final} holds files that are not weights; they are left in place, so version ${version} cannot be written there (move them away)`);
    fs.renameSync(tmp, final);
  } catch (e) {
    if (fs.existsSync(tmp)) removeWeightsDir(tmp);
    throw e;
  }
  return final;
}

/** Removes rollout-weights versions older than `keepFrom` (servers have moved past them). */
export function pruneRolloutWeights(root: string, keepFrom: number): void {
  if (!fs.existsSync(root)) return;
  for (const e of fs.readdirSync(root)) {
    const m = VERSION_DIR.exec(e);
    if (m && Number(m[1]) < keepFrom) removeWeightsDir(path.join(root, e));
  }
}

/** What `grpo serve` serves. */
export interface ServedModel {
  model: PolicyModel;
  tokenizer: Tokenizer;
  /** 'builtin' or 'hf'; a reload must keep the kind (the tokenizer stays). */
  kind: 'builtin' | 'hf';
  /** Where the weights came from ('fresh' for a new built-in model). */
  source: string;
  /** The policy version of the weights (a checkpoint's step, 0 otherwise). */
  version: number;
}

/**
 * Reads a built-in checkpoint or rollout-weights directory (trainer_state.json + model.safetensors;
 * a run directory means its latest checkpoint) into a new model. Every tensor must be finite and
 * fit the model config; errors name the file.
 */
export function loadBuiltinWeights(dir: string): { model: PolicyModel; meta: CheckpointMeta; dir: string } {
  const meta = loadCheckpointMeta(dir);
  const ckDir = fs.existsSync(path.join(dir, 'trainer_state.json')) ? dir : path.dirname(findLatest(dir));
  const file = path.join(ckDir, 'model.safetensors');
  if (!fs.existsSync(file)) throw new CheckpointError(file, 'is missing (the checkpoint is incomplete)');
  let t;
  try {
    t = readSafetensors(file).tensors;
  } catch (e) {
    throw new CheckpointError(file, `is damaged (${(e as Error).message})`);
  }
  for (const [name, x] of t)
    for (let i = 0; i < x.data.length; i++)
      if (!Number.isFinite(x.data[i])) throw new CheckpointError(file, `tensor '${name}' holds ${x.data[i]} at index ${i} (weights must be finite)`);
  const model = createTransformer(meta.modelConfig);
  try {
    model.loadStateDict(t);
  } catch (e) {
    model.dispose();
    throw new CheckpointError(file, `does not fit the model in trainer_state.json (${(e as Error).message})`);
  }
  return { model, meta, dir: ckDir };
}

function findLatest(runDir: string): string {
  const j = JSON.parse(fs.readFileSync(path.join(runDir, 'checkpoints', 'latest.json'), 'utf8')) as { checkpoint: string };
  return path.join(runDir, 'checkpoints', j.checkpoint, 'trainer_state.json');
}

/** True when `dir` is a transformers folder (config.json), not a checkpoint of this package. */
export function isHfFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json')) && !fs.existsSync(path.join(dir, 'trainer_state.json'));
}

/**
 * The model `grpo serve` starts with: an HF folder (`model`, with a checkpoint's weights when
 * `checkpoint` is given too), a built-in checkpoint, or a fresh built-in transformer from `fresh`.
 */
export async function loadServedModel(o: { checkpoint?: string; model?: string; maxSeqLen?: number; fresh: () => PolicyModel }): Promise<ServedModel> {
  if (o.model) {
    const hf = await loadHfCheckpoint(o.model);
    if (o.checkpoint) {
      const ck = await reloadWeights({ model: hf.model, tokenizer: hf.tokenizer, kind: 'hf', source: o.model, version: 0 }, o.checkpoint);
      hf.model.dispose();
      return ck;
    }
    return { model: hf.model, tokenizer: hf.tokenizer, kind: 'hf', source: path.resolve(o.model), version: 0 };
  }
  if (o.checkpoint) {
    const w = loadBuiltinWeights(o.checkpoint);
    // a multimodal checkpoint's vocabulary ends with its media placeholder ids: its own tokenizer
    const media = servedMedia(w.model);
    const tokenizer = media ? mediaTokenizer(media) : new CharTokenizer();
    checkVocab(w.model, tokenizer, w.dir);
    return { model: w.model, tokenizer, kind: 'builtin', source: w.dir, version: w.meta.step };
  }
  const model = o.fresh();
  const tokenizer = new CharTokenizer();
  checkVocab(model, tokenizer, 'the fresh model');
  return { model, tokenizer, kind: 'builtin', source: 'fresh', version: 0 };
}

/** The media config of a built-in multimodal model (undefined for text-only and HF models). */
export function servedMedia(m: PolicyModel): MediaModelConfig | undefined {
  return (m.config as { media?: MediaModelConfig } | undefined)?.media;
}

/**
 * The media placeholder ids of a served model, by id, with the tag they stand for. The
 * completions API has no field for images, audio or video, so `grpo serve` serves text prompts
 * only: a prompt holding a placeholder would be sampled from the bare placeholder embeddings.
 */
export function mediaPlaceholders(m: PolicyModel): Map<number, string> {
  const media = servedMedia(m);
  const out = new Map<number, string>();
  if (!media) return out;
  out.set(media.imageTokenId, '<image>');
  out.set(media.videoTokenId, '<video>');
  out.set(media.audioTokenId, '<audio>');
  return out;
}

function checkVocab(m: PolicyModel, tok: Tokenizer, where: string) {
  if (m.vocabSize !== tok.vocabSize) {
    m.dispose();
    throw new RangeError(`${where}: the model's vocabulary has ${m.vocabSize} ids but the tokenizer's ${tok.vocabSize}`);
  }
}

/**
 * New weights for a served model from `dir`: for an HF model a transformers folder or a
 * checkpoint of it (model.safetensors with the HF tensor names), for the built-in one a
 * checkpoint or rollout-weights directory. Returns a new ServedModel (the caller swaps it in and
 * disposes the old one); on any error the old model is untouched.
 */
export async function reloadWeights(cur: ServedModel, dir: string): Promise<ServedModel> {
  if (typeof dir !== 'string' || !dir) throw new RangeError('expected a directory path');
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new RangeError(`${dir} is not a directory`);
  if (cur.kind === 'hf') {
    const hfCur = cur.model as HfCausalLM;
    let model: HfCausalLM;
    let version = 0;
    if (fs.existsSync(path.join(dir, 'adapter_config.json'))) {
      model = await loadAdapterFolder(dir, hfCur.maxSeqLen);
    } else if (isHfFolder(dir)) {
      model = await loadHfModel(dir, { maxSeqLen: hfCur.maxSeqLen });
    } else {
      const meta = loadCheckpointMeta(dir);
      const file = path.join(dir, 'model.safetensors');
      if (meta.base) {
        // a LoRA run's checkpoint: the adapters, on the base folder it names (checked file by file)
        model = await loadLoraCheckpoint(dir, meta, hfCur.maxSeqLen);
      } else {
        model = new HfCausalLM(hfCur.config, { maxSeqLen: hfCur.maxSeqLen });
        try {
          model.loadStateDict(readSafetensors(file).tensors);
        } catch (e) {
          model.dispose();
          throw new CheckpointError(file, `does not fit the served model (${(e as Error).message})`);
        }
      }
      version = meta.step;
    }
    if (model.vocabSize < cur.tokenizer.vocabSize) {
      model.dispose();
      throw new RangeError(`${dir}: vocabulary ${model.vocabSize} is smaller than the served tokenizer's ${cur.tokenizer.vocabSize}`);
    }
    return { ...cur, model, source: path.resolve(dir), version };
  }
  if (isHfFolder(dir)) throw new RangeError(`${dir} is a transformers folder but this server serves the built-in transformer (start it with --model for HF models)`);
  const w = loadBuiltinWeights(dir);
  if (w.model.vocabSize !== cur.tokenizer.vocabSize) {
    w.model.dispose();
    throw new RangeError(`${w.dir}: the model's vocabulary has ${w.model.vocabSize} ids but the served tokenizer's ${cur.tokenizer.vocabSize}`);
  }
  return { ...cur, model: w.model, source: w.dir, version: w.meta.step };
}

/** A PEFT adapter folder (as writeRolloutWeights writes for LoRA) on the base its adapter_config.json names. */
async function loadAdapterFolder(dir: string, maxSeqLen: number): Promise<HfCausalLM> {
  const file = path.join(dir, 'adapter_config.json');
  let base: unknown;
  try {
    base = (JSON.parse(fs.readFileSync(file, 'utf8')) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
  } catch (e) {
    throw new RangeError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (typeof base !== 'string' || !path.isAbsolute(base) || !fs.existsSync(path.join(base, 'config.json')))
    throw new RangeError(`${file}: expected base_model_name_or_path to be the absolute path of the base model's folder (with config.json) but received ${JSON.stringify(base)}`);
  return loadHfModelWithAdapter(base, dir, { maxSeqLen });
}

/** A checkpoint holding LoRA adapters only (trainer_state.json `base`): base folder + adapters, identity checked. */
async function loadLoraCheckpoint(dir: string, meta: CheckpointMeta, maxSeqLen: number): Promise<HfCausalLM> {
  const c = meta.config as { loraR?: number; loraAlpha?: number; loraTargetModules?: string[] };
  const ckDir = fs.existsSync(path.join(dir, 'trainer_state.json')) ? dir : path.dirname(findLatest(dir));
  const ck = loadCheckpoint(ckDir);
  const model = await loadHfModel(meta.base!.dir, { maxSeqLen, lora: { r: c.loraR as number, alpha: c.loraAlpha as number, targetModules: c.loraTargetModules } });
  try {
    restoreTensors(ck, 'model', model, { baseDir: meta.base!.dir });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
