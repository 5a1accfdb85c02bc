/**
 * The commands behind the CLI, as functions: sft, train (GRPO), eval, demo. They build the
 * task, tokenizer, model and reward functions from one options object (see config.ts), log
 * metrics as JSONL under the run directory, checkpoint, evaluate and write the report.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CharTokenizer, createTransformer, MediaModelConfig, MediaTokenizer, mediaModelConfig, mediaSpecOf, mediaTokenizer, PolicyModel, Tokenizer, TransformerConfig } from '../models';
import { inferMediaSpec, loadTaskMedia, taskHasMediaRefs } from '../media/dataset';
import { baseIdentity, HfCausalLM, HfTokenizer, loadHfCheckpoint, parseHfConfig, saveHfModel, saveLoraAdapter } from '../models/hf';
import { setNumThreads } from '../index';
import { makeTask, Task, TaskSpec, mixSeed } from '../tasks';
import { builtinReward, checkFormatRewardFits, loadRewardModuleIsolated, RewardFunction } from '../rewards';
import { evaluate, evaluateEngine, EvalResult, formatEvalTable } from '../eval';
import { ProgressBar, formatDuration } from '../cli/progress';
import { writeReport, writeRunReport, readMetrics } from '../report';
import { defaultOptions, Options } from './config';
import { GrpoTrainer, resolveGrpoConfig, StepMetrics, TrainerState } from './grpo';
import { WorkerEngine } from '../rollout/workers';
import { supervisedFineTune } from './sft';
import { CheckpointMeta, checkTrainerState, latestCheckpoint, loadCheckpoint, restoreTensors, saveCheckpoint } from './checkpoint';
import { checkPromptLengths } from './rollout';
import { finishRunDir, isRunDir, prepareRunDir, readMetricsFile, RunDirError, writeTextAtomic } from './rundir';
import { RemoteEngine } from '../rollout/remote';
import type { RolloutEngine } from '../rollout/engine';
import { closeDataParallel, openDataParallel } from '../parallel/run';
import type { DataParallel } from '../parallel/data_parallel';
import { distEnv } from '../parallel/env';

/** Where messages go (the CLI prints them; tests can collect them). */
export interface Io {
  log(msg: string): void;
}
const consoleIo: Io = { log: (m) => process.stderr.write(m + '\n') };

export function withDefaults(o: Options): Options {
  const d = defaultOptions();
  for (const [k, v] of Object.entries(o)) if (v !== undefined) d[k] = v;
  return d;
}

/**
 * Options that name files, resolved to absolute paths: a checkpoint stores them, and `grpo eval`
 * from another directory must find the same dataset and reward module.
 */
export function resolvePaths(o: Options): Options {
  const r = { ...o };
  for (const k of ['outputDir', 'init', 'rewardModule', 'testFile', 'checkpoint', 'model'])
    if (typeof r[k] === 'string' && r[k]) r[k] = path.resolve(r[k] as string);
  if (typeof r.task === 'string' && /\.jsonl?$/.test(r.task)) r.task = path.resolve(r.task);
  return r;
}

export function buildTask(o: Options): Task {
  return makeTask({ ...(o as TaskSpec), task: o.task as string, formatPattern: o.formatPattern as string | undefined, ops: o.ops as TaskSpec['ops'] });
}

/**
 * A dataset task whose rows carry media (`--task FILE.jsonl` with `images` / `audios` / `videos`
 * columns): its media decoded once per row (loadTaskMedia: the trainer reads `example.media`
 * every step, never the files) at the sizes of the model's encoders: the checkpoint's
 * (`modelMedia`, for --init / --resume / eval) or, for a fresh model, read off the data
 * (inferMediaSpec). The returned task carries that spec as `media`, so the tokenizer expands the
 * tags into placeholders and the fresh model gets an encoder per kind present. Other tasks are
 * returned as they are.
 */
export async function withTaskMedia(task: Task, modelMedia: MediaModelConfig | undefined, hf = false): Promise<Task> {
  if (!taskHasMediaRefs(task)) return task;
  if (hf) throw new RangeError(`--model (a Hugging Face checkpoint) with a media dataset (${task.name}): not yet supported; media rows train the built-in model (leave out --model)`);
  const spec = modelMedia ? mediaSpecOf(modelMedia) : task.media ?? (await inferMediaSpec(task));
  await loadTaskMedia(task, spec);
  return { ...task, media: spec };
}

/**
 * A multimodal task (built-in, or a dataset with media columns) cannot go through the remote
 * engine: it sends token-id prompts to /v1/completions, which has no field for images, audio or
 * video, so the servers would sample from the bare placeholder tokens. Refused up front, naming
 * the option, rather than failing at the first step.
 */
function refuseRemoteMedia(task: Task, option: string, instead: string, remote = true) {
  if (!remote || (!task.media && !taskHasMediaRefs(task))) return;
  throw new RangeError(
    `${option}: expected a text task but ${task.name} is multimodal (its prompts carry media); the remote engine sends token-id prompts ` +
      `to /v1/completions, which has no field for images, audio or video. ${instead}`,
  );
}

/** The media config of the model in checkpoint `dir` (undefined for a text-only or HF model). */
function checkpointMedia(dir: string | undefined): MediaModelConfig | undefined {
  return dir ? (loadCheckpoint(dir).meta.modelConfig as Partial<TransformerConfig>).media : undefined;
}

/**
 * The run's reward functions: built-ins in-process, a --reward-module's functions in a worker
 * thread (each call bounded by rewardTimeout). Call disposeRewards when done.
 */
export async function buildRewards(o: Options): Promise<{ fns: RewardFunction[]; weights: number[] }> {
  const fns = ((o.rewards as string[]) ?? []).map((name) =>
    builtinReward(name, {
      cosine: {
        minLenValueCorrect: o.cosineMinLenValueCorrect as number, maxLenValueCorrect: o.cosineMaxLenValueCorrect as number,
        minLenValueWrong: o.cosineMinLenValueWrong as number, maxLenValueWrong: o.cosineMaxLenValueWrong as number,
        maxLength: o.cosineMaxLen as number | undefined,
      },
      repetition: { ngramSize: o.repetitionNgramSize as number, maxPenalty: o.repetitionMaxPenalty as number, unit: o.repetitionUnit as 'word' | 'char' },
      softOverlong: { cacheLength: o.softOverlongCache as number | undefined },
    }),
  );
  if (o.rewardModule) fns.push(...(await loadRewardModuleIsolated(o.rewardModule as string, { timeout: o.rewardTimeout as number, taskSpec: taskSpecOf(o) })));
  if (!fns.length) throw new RangeError('no reward functions: give --rewards and/or --reward-module');
  const weights = (o.rewardWeights as number[] | undefined) ?? fns.map(() => 1);
  if (weights.length !== fns.length) {
    await disposeRewards({ fns });
    throw new RangeError(`--reward-weights: expected ${fns.length} weights (for ${fns.map((f) => f.name).join(', ')}) but received ${weights.length}`);
  }
  return { fns, weights };
}

export async function disposeRewards(r: { fns: RewardFunction[] } | null | undefined): Promise<void> {
  for (const f of new Set(r?.fns ?? [])) await f.dispose?.();
}

/** The options that rebuild the task (plain data: sent to the reward worker). */
function taskSpecOf(o: Options): TaskSpec {
  const keys = ['task', 'testFile', 'seed', 'digits', 'ops', 'allowNegative', 'countdownNumbers', 'maxNumber', 'maxTarget', 'trainSize', 'testSize', 'formatPattern'];
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as TaskSpec;
}

/** Every prompt (train and held-out) must fit the model with a full completion: checked at load. */
function checkTaskFits(task: Task, tok: Tokenizer, maxSeqLen: number, o: Options, sft = false) {
  const L = o.maxCompletionLength as number;
  checkPromptLengths(task.train, tok, maxSeqLen, L, `${task.name} (training split)`, sft);
  checkPromptLengths(task.test, tok, maxSeqLen, L, `${task.name} (held-out split)`);
}

/** Runs `body` in a prepared run directory; its marker records whether the run completed. */
async function inRunDir<T>(dir: string, body: () => Promise<T>): Promise<T> {
  try {
    const r = await body();
    finishRunDir(dir);
    return r;
  } catch (e) {
    try {
      finishRunDir(dir, e);
    } catch {
      // the run's own error is the one to report
    }
    throw e;
  }
}

export function modelConfig(o: Options, tok: Tokenizer): TransformerConfig {
  const c: TransformerConfig = {
    vocabSize: tok.vocabSize, dModel: o.dModel as number, nLayers: o.nLayers as number, nHeads: o.nHeads as number,
    dFF: o.dFF as number, maxSeqLen: o.maxSeqLen as number, seed: o.seed as number,
  };
  if (tok instanceof MediaTokenizer && tok.media) c.media = tok.media;
  return c;
}

/** The built-in model's tokenizer for a task: characters, plus media placeholders for a multimodal task. */
export function taskTokenizer(task: Task, o: Options): Tokenizer {
  if (!task.media) return new CharTokenizer();
  return mediaTokenizer(mediaModelConfig(task.media, {
    patchSize: o.patchSize as number | undefined, encoderHidden: o.encoderHidden as number | undefined,
    temporalPatch: o.temporalPatch as number | undefined,
    freezeVit: o.freezeVit as boolean | undefined, freezeAligner: o.freezeAligner as boolean | undefined,
  }));
}

/** The tokenizer a built-in model was made with (its media placeholders), else `fallback`. */
export function tokenizerFor(model: PolicyModel, fallback: Tokenizer): Tokenizer {
  const m = (model.config as Partial<TransformerConfig>).media;
  return m ? mediaTokenizer(m) : fallback;
}

function applyThreads(o: Options) {
  if ((o.threads as number) > 0) setNumThreads(o.threads as number);
}

/** --use-peft: the LoRA adapters --model's HF model gets (undefined without). */
function loraOptions(o: Options) {
  return o.usePeft ? { r: o.loraR as number, alpha: o.loraAlpha as number, targetModules: o.loraTargetModules as string[], seed: o.seed as number } : undefined;
}

/** A fresh model, or one with the weights of the `init` checkpoint. */
export function loadOrCreateModel(o: Options, tok: Tokenizer): PolicyModel {
  if (o.init) {
    const ck = loadCheckpoint(o.init as string);
    const m = createTransformer(ck.meta.modelConfig);
    restoreTensors(ck, 'model', m);
    return m;
  }
  return createTransformer(modelConfig(o, tok));
}

/** --resume-from-checkpoint PATH: a checkpoint directory, or a run directory (its latest checkpoint). */
function checkpointToResume(p: string): string {
  if (fs.existsSync(path.join(p, 'trainer_state.json'))) return p;
  const latest = latestCheckpoint(p);
  if (latest) return latest;
  throw new Error(`--resume-from-checkpoint ${p}: no checkpoint there (expected a checkpoint directory with trainer_state.json, or a run directory with checkpoints/latest.json)`);
}

/** The options a checkpoint was made with, less those that name what to load. */
function savedOptions(meta: CheckpointMeta): Options {
  const { init, resume, resumeFromCheckpoint, checkpoint, config, overwriteOutputDir, ...saved } = meta.config;
  return saved;
}

class MetricsLog {
  /** Appends to `file` (prepareRunDir has removed an earlier run's file unless resuming).
   *  Disabled on data-parallel ranks other than 0 (rank 0 alone writes). */
  constructor(readonly file: string, readonly enabled = true) {
    if (enabled) fs.mkdirSync(path.dirname(file), { recursive: true });
  }
  write(row: Record<string, unknown>) {
    if (this.enabled) fs.appendFileSync(this.file, JSON.stringify(row) + '\n');
  }
  /**
   * Drops rows of `phase` after `step` (a resumed run rewrites what follows its checkpoint), and
   * a torn last line (a kill mid-append); returns what was dropped, for the report.
   */
  truncateAfter(step: number, phases: string[]): { dropped: number; torn: boolean } {
    if (!this.enabled) return { dropped: 0, torn: false };
    const { rows, torn } = readMetricsFile(this.file);
    const kept = rows.filter((r) => !(phases.includes(r.phase as string) && (r.step as number) > step));
    if (kept.length === rows.length && torn === null) return { dropped: 0, torn: false };
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, this.file);
    return { dropped: rows.length - kept.length, torn: torn !== null };
  }
}

function evalOptions(o: Options, rewards?: { fns: RewardFunction[]; weights: number[] }) {
  return {
    rewardTimeout: o.rewardTimeout as number, rewardErrors: o.rewardErrors as 'abort' | 'no_reward',
    k: o.evalK as number, limit: o.evalLimit as number,
    temperature: (o.evalTemperature as number | undefined) ?? (o.temperature as number),
    topK: o.topK as number, topP: o.topP as number, minP: o.minP as number,
    maxCompletionLength: o.maxCompletionLength as number, stop: o.stop as string[],
    // the same seed at every evaluation: differences come from the policy alone
    seed: mixSeed(o.seed as number, 0xe7a1),
    rewardFunctions: rewards?.fns, rewardWeights: rewards?.weights,
  };
}

function evalRow(step: number, r: EvalResult) {
  const { samples, passAt, ...rest } = r;
  return { phase: 'eval', step, ...passAt, ...rest };
}

/** `grpo sft`: the supervised warm start; writes a checkpoint to <outputDir>. */
export async function runSft(opts: Options, io: Io = consoleIo): Promise<{ checkpoint: string; loss: number; seconds: number; steps: number }> {
  const o = resolvePaths(withDefaults(opts));
  applyThreads(o);
  const t0 = Date.now();
  const dir = o.outputDir as string;
  const task = await withTaskMedia(buildTask(o), checkpointMedia(o.init as string | undefined));
  const model = loadOrCreateModel(o, taskTokenizer(task, o));
  const tok = tokenizerFor(model, taskTokenizer(task, o));
  try {
    checkTaskFits(task, tok, model.maxSeqLen, o, true);
    prepareRunDir(dir, { kind: 'sft', overwrite: o.overwriteOutputDir as boolean });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return inRunDir(dir, () => sftBody(o, io, t0, task, tok, model));
}

async function sftBody(o: Options, io: Io, t0: number, task: Task, tok: Tokenizer, model: PolicyModel) {
  const dir = o.outputDir as string;
  const n = o.sftExamples as number;
  const examples = n > 0 ? task.train.slice(0, n) : task.train;
  const log = new MetricsLog(path.join(dir, 'metrics.jsonl'));
  const steps = o.sftSteps as number;
  io.log(`sft: ${task.name}, ${examples.length} examples, ${steps} steps × ${o.sftBatchSize}, model ${model.numParameters} parameters -> ${dir}`);
  const bar = new ProgressBar('sft ', steps, 0, o.progress as boolean, 25);
  const target = o.sftStopAccuracy as number;
  let trainAccuracy = NaN;
  let r: { loss: number; steps: number };
  try {
    r = await supervisedFineTune(model, tok, examples, {
      steps, batchSize: o.sftBatchSize as number, learningRate: o.sftLearningRate as number, seed: o.seed as number,
      // "a policy that sometimes succeeds": measured on training prompts, never on the held-out split
      shouldStop: async (step) => {
        if (!(target > 0) || step % 25 !== 0) return false;
        const ev = await evaluate(model, tok, task, { ...evalOptions(o), k: 4, limit: 64 }, examples);
        trainAccuracy = ev['pass@1'];
        log.write({ phase: 'sft_check', step, train_accuracy: trainAccuracy });
        return trainAccuracy >= target;
      },
      // a short warm start: constant learning rate after the warm-up
      warmupRatio: o.warmupRatio as number, minLrRatio: 1, maxGradNorm: o.maxGradNorm as number,
      onStep: (m) => {
        log.write({ phase: 'sft', ...m });
        bar.update(m.step, { loss: m.loss });
      },
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  bar.done();
  const ck = saveCheckpoint(dir, { model, meta: { kind: 'sft', step: r.steps, config: o, state: {} }, keep: 1 });
  const seconds = (Date.now() - t0) / 1000;
  const acc = Number.isNaN(trainAccuracy) ? '' : `, sampled accuracy on training prompts ${(100 * trainAccuracy).toFixed(1)}%`;
  io.log(`sft: done in ${formatDuration(seconds)} after ${r.steps} steps, final NLL ${r.loss.toFixed(4)}${acc}, checkpoint ${ck}`);
  model.dispose();
  return { checkpoint: ck, loss: r.loss, seconds, steps: r.steps };
}

export interface TrainResult {
  checkpoint: string;
  evals: { step: number; result: EvalResult }[];
  seconds: number;
  steps: number;
  lastMetrics: StepMetrics | null;
}

/**
 * `grpo train`: GRPO with evaluation every evalSteps, checkpoints, metrics.jsonl, and
 * report.html at the end, also of a run that failed (with what it logged and the error).
 */
export async function runTrain(opts: Options, io: Io = consoleIo): Promise<TrainResult> {
  const runDir = (opts.outputDir as string | undefined) ?? (defaultOptions().outputDir as string);
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const stamp = () => {
    try {
      const st = fs.statSync(metricsFile);
      return `${st.size}:${st.mtimeMs}`;
    } catch {
      return '';
    }
  };
  const before = stamp();
  let status = 'failed';
  try {
    const r = await trainRun(opts, io);
    status = `completed ${r.steps} steps`;
    return r;
  } catch (e) {
    status = `failed: ${(e as Error)?.message ?? String(e)}`;
    throw e;
  } finally {
    // only when this run logged something: a run refused or failed before its first row must
    // not rewrite the report of whatever run the directory already holds
    const after = stamp();
    // data parallel: rank 0 alone writes (distEnv is the launcher's environment, checked again in trainRun)
    const lead = (() => {
      try {
        return distEnv().rank === 0;
      } catch {
        return true;
      }
    })();
    if (lead && after && after !== before) {
      try {
        const report = writeRunReport(runDir, { status });
        io.log(`train: report ${report}`);
      } catch (e) {
        io.log(`warning: could not write the report: ${(e as Error).message}`);
      }
    }
  }
}

async function trainRun(opts: Options, io: Io): Promise<TrainResult> {
  const runDir = path.resolve((opts.outputDir as string | undefined) ?? (defaultOptions().outputDir as string));
  // resume resumes or fails: the checkpoint is found and validated before anything is written.
  // --resume takes the run's latest checkpoint; --resume-from-checkpoint PATH a given one, which
  // continues this run when it lies inside outputDir and otherwise starts outputDir from it.
  let ck: ReturnType<typeof loadCheckpoint> | null = null;
  let resumeInPlace = false;
  if (opts.resume || opts.resumeFromCheckpoint) {
    let from: string | null;
    if (opts.resumeFromCheckpoint) {
      from = checkpointToResume(path.resolve(opts.resumeFromCheckpoint as string));
    } else {
      from = latestCheckpoint(runDir);
      if (!from)
        throw new RunDirError(
          `--resume: ${runDir} has no checkpoint to resume (${fs.existsSync(runDir) ? 'no checkpoints/latest.json' : 'the directory does not exist'}); ` +
            'start a new run without --resume',
        );
    }
    const rel = path.relative(runDir, path.resolve(from));
    resumeInPlace = !rel.startsWith('..') && !path.isAbsolute(rel);
    if (resumeInPlace && opts.overwriteOutputDir) throw new RangeError('--resume and --overwrite-output-dir exclude each other: resume the run, or replace it');
    ck = loadCheckpoint(from);
    checkTrainerState(ck);
  }
  // a resumed run keeps the options it was started with unless a flag changes them
  const o = resolvePaths(withDefaults(ck ? { ...savedOptions(ck.meta), ...opts } : opts));
  o.outputDir = runDir;
  applyThreads(o);
  // data parallel (WORLD_SIZE > 1 or mpirun): every rank joins here; rank 0 alone writes
  const dist = await openDataParallel(o, io.log);
  const lead = !dist || dist.isMain;
  const t0 = Date.now();
  const dir = runDir;
  let task = buildTask(o);
  // --model DIR: a Hugging Face checkpoint (its tokenizer and chat template) instead of the built-in model
  const lora = loraOptions(o);
  let tok: Tokenizer = taskTokenizer(task, o);
  const cfg0 = resolveGrpoConfig(o);
  let model: PolicyModel | null = null;
  let refModel: PolicyModel | null = null;
  let rewards: { fns: RewardFunction[]; weights: number[] } | null = null;
  try {
    // before any model loads or the run directory is written: the remote engine cannot carry media
    refuseRemoteMedia(task, '--rollout-engine remote', 'Use --rollout-engine in-process or workers for multimodal tasks', o.rolloutEngine === 'remote');
    const media = ck ? (ck.meta.modelConfig as Partial<TransformerConfig>).media : checkpointMedia(o.init as string | undefined);
    task = await withTaskMedia(task, media, !!o.model);
    tok = taskTokenizer(task, o);
    const hf = o.model ? await loadHfCheckpoint(o.model as string, { lora }) : null;
    if (hf) tok = hf.tokenizer;
    if (ck) {
      model = hf ? hf.model : createTransformer(ck.meta.modelConfig);
      // a LoRA checkpoint holds the adapters; the base weights are --model's, checked against it
      restoreTensors(ck, 'model', model, { baseDir: o.model as string | undefined });
      restoreTensors(ck, 'optimizer', model);
      if (hf && lora) {
        // LoRA: the reference is the base model, the same weights with the adapters off
        refModel = cfg0.beta > 0 ? hf.model.referenceModel() : null;
      } else if (ck.reference) {
        refModel = hf ? new HfCausalLM(hf.model.config, { maxSeqLen: hf.model.maxSeqLen, frozen: true, frozenDtype: hf.model.frozenDtype }) : createTransformer(ck.meta.modelConfig);
        restoreTensors(ck, 'reference', refModel);
      }
    } else {
      model = hf ? hf.model : loadOrCreateModel(o, tok);
      if (hf && lora && cfg0.beta > 0) refModel = hf.model.referenceModel();
    }
    if (!hf) tok = tokenizerFor(model, tok);
    checkTaskFits(task, tok, model.maxSeqLen, { ...o, maxCompletionLength: cfg0.maxCompletionLength });
    rewards = await buildRewards(o);
    // a lower bound in characters: the built-in CharTokenizer makes one character per token; an HF
    // tokenizer's tokens are longer, so no bound is checked there
    if (!hf) checkFormatRewardFits(rewards.fns, task, cfg0.maxCompletionLength);
    if (lead) prepareRunDir(dir, { kind: 'grpo', overwrite: o.overwriteOutputDir as boolean, resume: resumeInPlace });
  } catch (e) {
    model?.dispose();
    refModel?.dispose();
    await disposeRewards(rewards);
    await closeDataParallel(dist, false);
    throw e;
  }
  const rw = rewards, m = model, tk = task;
  const body = () => trainBody(o, io, t0, tk, tok, m, refModel, rw, ck, dist);
  let ok = false;
  return (lead ? inRunDir(dir, body) : body())
    .then((r) => ((ok = true), r))
    .finally(async () => {
      await disposeRewards(rw);
      await closeDataParallel(dist, ok);
    });
}

async function trainBody(
  o: Options, io: Io, t0: number, task: Task, tok: Tokenizer, model: PolicyModel, refModel: PolicyModel | null,
  rewards: { fns: RewardFunction[]; weights: number[] }, ck: ReturnType<typeof loadCheckpoint> | null, dist: DataParallel | null = null,
): Promise<TrainResult> {
  const dir = o.outputDir as string;
  const cfg = resolveGrpoConfig({ ...o, rewardWeights: rewards.weights });
  const log = new MetricsLog(path.join(dir, 'metrics.jsonl'), !dist || dist.isMain);
  let state: TrainerState | null = null;
  if (ck) {
    state = ck.meta.state as unknown as TrainerState;
    const t = log.truncateAfter(state.step, ['grpo', 'eval']);
    if (t.torn) io.log(`train: ${log.file}: dropped a torn last line (the run was stopped mid-write)`);
    if (t.dropped) io.log(`train: ${log.file}: dropped ${t.dropped} rows after step ${state.step} (they follow the checkpoint)`);
    io.log(`train: resuming ${ck.dir} at step ${state.step}`);
  }
  let trainer: GrpoTrainer;
  let engine: RolloutEngine | undefined;
  try {
    engine = await rolloutEngine(o, tok, model, state?.updates ?? 0);
    trainer = new GrpoTrainer({
      model, tokenizer: tok, task, rewardFunctions: rewards.fns, config: cfg, refModel, engine, hiddenPath: o.hiddenPath as boolean,
      onRewardFailure: (f, step) => io.log(`warning: step ${step + 1}: reward '${f.name}' ${f.message} (counted as no reward)`),
      onRewardConstant: (c, step) => io.log(`warning: step ${step}: reward '${c.name}' has been ${c.value} for every completion for ${c.steps} steps: it adds nothing to the advantages (metrics: rewards/${c.name}/stuck)`),
      ...(dist ? { dist, distCheckWeights: o.distCheckWeights as boolean } : {}),
    });
    // identical weights on every rank from the first step, whatever each loaded
    if (dist) await dist.broadcastParameters(model);
  } catch (e) {
    await engine?.close();
    model.dispose();
    refModel?.dispose();
    throw e;
  }
  try {
    // the servers start from the trainer's weights (an init or resumed checkpoint, or a fresh model)
    if (engine) await engine.syncWeights(model, state?.updates ?? 0);
    return await trainLoop(o, io, t0, task, tok, model, rewards, cfg, log, trainer, state, dist);
  } finally {
    await trainer.close();
    await engine?.close();
    model.dispose();
    trainer.refModel?.dispose();
  }
}

/** --rollout-engine: undefined for in-process (the trainer's default), else the engine. */
async function rolloutEngine(o: Options, tok: Tokenizer, model: PolicyModel, version: number): Promise<RolloutEngine | undefined> {
  if (o.rolloutEngine === 'in-process' || o.rolloutEngine === undefined) return undefined;
  if (o.rolloutEngine === 'workers')
    return await WorkerEngine.create(model, tok, { workers: o.rolloutWorkers as number, timeout: o.rolloutTimeout as number, retries: o.rolloutRetries as number }, version);
  if (o.rolloutEngine === 'remote') {
    const urls = (o.rolloutUrls as string[] | undefined) ?? [];
    if (!urls.length) throw new RangeError('--rollout-engine remote: expected --rollout-urls URL[,URL...] (servers such as grpo serve, vLLM or SGLang) but received none');
    return new RemoteEngine({
      urls, tokenizer: tok, vocabSize: model.vocabSize, timeout: o.rolloutTimeout as number, retries: o.rolloutRetries as number,
      weightsDir: path.join(o.outputDir as string, 'rollout-weights'), sourceDir: o.model as string | undefined,
    });
  }
  throw new RangeError(`--rollout-engine: expected in-process, workers or remote but received ${JSON.stringify(o.rolloutEngine)}`);
}

async function trainLoop(
  o: Options, io: Io, t0: number, task: Task, tok: Tokenizer, model: PolicyModel, rewards: { fns: RewardFunction[]; weights: number[] },
  cfg: ReturnType<typeof resolveGrpoConfig>, log: MetricsLog, trainer: GrpoTrainer, state: TrainerState | null, dist: DataParallel | null = null,
): Promise<TrainResult> {
  const dir = o.outputDir as string;
  // data parallel: rank 0 alone evaluates and writes; the others wait in the next collective
  const lead = !dist || dist.isMain;
  if (state) trainer.state = { ...state };
  io.log(
    `train: ${task.name}, ${cfg.maxSteps} steps × ${cfg.batchSize} prompts × ${cfg.numGenerations} completions, μ=${cfg.numIterations}, β=${cfg.beta}` +
      `, rewards ${rewards.fns.map((f, i) => `${f.name}×${rewards.weights[i]}`).join(' + ')}, model ${model.numParameters} parameters -> ${dir}`,
  );
  const evals: { step: number; result: EvalResult }[] = [];
  const evalSteps = o.evalSteps as number;
  const doEval = async (step: number) => {
    const r = await evaluate(model, tok, task, evalOptions(o, rewards));
    evals.push({ step, result: r });
    log.write(evalRow(step, r));
    writeTextAtomic(path.join(dir, `eval-step-${step}.json`), JSON.stringify(r, null, 2));
    return r;
  };
  const bar = new ProgressBar('grpo', cfg.maxSteps, trainer.state.step, lead && (o.progress as boolean), 5);
  const note = (m: string) => (o.progress ? bar.log(m) : io.log(m));
  if (lead && evalSteps > 0 && trainer.state.step === 0) {
    const r = await doEval(0);
    note(`eval step 0: pass@1 ${(100 * r['pass@1']).toFixed(1)}%  pass@${r.k} ${(100 * r['pass@k']).toFixed(1)}%  format ${(100 * r.formatRate).toFixed(1)}%`);
  }
  // LoRA on an HF base: checkpoints hold the adapters (and their optimiser state) and name the
  // base folder, not a float32 copy of the frozen weights; the reference is that same base, so
  // there is nothing of its own to save either. The identity is taken once: the base is read-only.
  let base: ReturnType<typeof baseIdentity> | undefined;
  const save = () => {
    const lora = !!(o.model && o.usePeft);
    if (lora) base ??= baseIdentity(o.model as string);
    return saveCheckpoint(dir, {
      model, refModel: lora ? null : trainer.refModel, meta: { kind: 'grpo', step: trainer.state.step, config: o, state: { ...trainer.state } }, keep: o.saveTotalLimit as number,
      ...(lora ? { weights: (model as HfCausalLM).trainableStateDict(), base } : {}),
    });
  };
  let last: StepMetrics | null = null;
  let ck = '';
  while (trainer.state.step < cfg.maxSteps) {
    const m = await trainer.step();
    last = m;
    log.write({ phase: 'grpo', ...m });
    bar.update(m.step, { reward: m.reward as number, kl: m.kl as number | undefined, entropy: m.entropy as number });
    const step = trainer.state.step;
    if (lead && evalSteps > 0 && step % evalSteps === 0 && step < cfg.maxSteps) {
      const r = await doEval(step);
      note(`eval step ${step}: pass@1 ${(100 * r['pass@1']).toFixed(1)}%  pass@${r.k} ${(100 * r['pass@k']).toFixed(1)}%`);
    }
    if (lead && (o.saveSteps as number) > 0 && step % (o.saveSteps as number) === 0 && step < cfg.maxSteps) ck = save();
  }
  bar.done();
  if (!lead) return { checkpoint: '', evals, seconds: (Date.now() - t0) / 1000, steps: trainer.state.step, lastMetrics: last };
  if (!evals.length || evals[evals.length - 1].step !== trainer.state.step) await doEval(trainer.state.step);
  ck = save();
  // an HF model is also saved as a folder transformers can load (bf16, tokenizer files copied)
  if (o.model && o.usePeft) saveLoraAdapter(model as HfCausalLM, path.join(dir, 'adapter'), { baseModel: path.resolve(o.model as string), overwrite: true });
  if (o.model && (!o.usePeft || o.saveMerged)) saveHfModel(model as HfCausalLM, path.join(dir, 'hf-model'), { sourceDir: o.model as string, overwrite: true });
  const seconds = (Date.now() - t0) / 1000;
  const first = evals[0], final = evals[evals.length - 1];
  io.log(`train: done in ${formatDuration(seconds)}; held-out pass@1 ${(100 * first.result['pass@1']).toFixed(1)}% (step ${first.step}) -> ${(100 * final.result['pass@1']).toFixed(1)}% (step ${final.step}); checkpoint ${ck}`);
  if (trainer.rewardFailures.length) io.log(`train: ${trainer.rewardFailures.length} reward-function failures (see warnings above)`);
  return { checkpoint: ck, evals, seconds, steps: trainer.state.step, lastMetrics: last };
}

/**
 * `grpo eval`: held-out evaluation of a checkpoint; prints a table and writes JSON. A run trained
 * with --model (or `--model DIR` given here) evaluates that Hugging Face model and its tokenizer,
 * with the checkpoint's weights; `--model DIR` with no checkpoint named (and none in outputDir)
 * evaluates the folder's own weights.
 */
export async function runEval(opts: Options, io: Io = consoleIo): Promise<EvalResult> {
  if (opts.endpoint !== undefined) return evalEndpoint(opts, io);
  const named = (opts.checkpoint ?? opts.init) as string | undefined;
  const src = named ?? ((opts.outputDir ?? defaultOptions().outputDir) as string);
  const ck = named !== undefined || opts.model === undefined || latestCheckpoint(path.resolve(src)) ? loadCheckpoint(src) : null;
  // the task, sampling and reward options the checkpoint was trained with, unless flags change them
  const o = resolvePaths(withDefaults(ck ? { ...savedOptions(ck.meta), ...opts } : opts));
  applyThreads(o);
  const outDir = o.outputDir as string;
  const out = path.join(outDir, 'eval.json');
  // eval.json is a run's file: replaced in a run directory, never in someone else's
  if (fs.existsSync(out) && !isRunDir(outDir) && !o.overwriteOutputDir)
    throw new RunDirError(`${out} exists and ${outDir} is not a grpo run; choose another --output-dir, or replace it with --overwrite-output-dir`);
  let model: PolicyModel | null = null;
  let rewards: { fns: RewardFunction[]; weights: number[] } | null = null;
  let r: EvalResult;
  let tok: Tokenizer = new CharTokenizer();
  try {
    // as runTrain builds it: with LoRA the adapters exist, so the checkpoint's adapter tensors load
    const hf = o.model ? await loadHfCheckpoint(o.model as string, { lora: loraOptions(o) }) : null;
    if (hf) tok = hf.tokenizer;
    model = hf ? hf.model : createTransformer(ck!.meta.modelConfig);
    if (ck) restoreTensors(ck, 'model', model, { baseDir: o.model as string | undefined });
    if (!hf) tok = tokenizerFor(model, tok);
    const task = await withTaskMedia(buildTask(o), hf ? undefined : (model.config as Partial<TransformerConfig>).media, !!hf);
    checkTaskFits({ ...task, train: [] }, tok, model.maxSeqLen, o);
    rewards = await buildRewards(o);
    r = await evaluate(model, tok, task, evalOptions(o, rewards));
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    await disposeRewards(rewards);
  }
  const what = ck ? ck.dir : path.resolve(o.model as string);
  fs.mkdirSync(outDir, { recursive: true });
  writeTextAtomic(out, JSON.stringify({ checkpoint: what, step: ck ? ck.meta.step : 0, ...r }, null, 2));
  io.log(ck ? `eval of ${ck.dir} (step ${ck.meta.step}):` : `eval of ${what} (its own weights):`);
  process.stdout.write(formatEvalTable(r) + '\n');
  io.log(`written ${out}`);
  model.dispose();
  return r;
}

/**
 * `grpo eval --endpoint URL[,URL]`: the same evaluation with the samples from OpenAI-compatible
 * servers (grpo serve, vLLM, SGLang) through the remote rollout engine. Prompts go as token ids of
 * the built-in tokenizer, or of --model DIR's tokenizer (only its tokenizer files are read).
 */
async function evalEndpoint(opts: Options, io: Io): Promise<EvalResult> {
  if (opts.checkpoint !== undefined) throw new RangeError('--endpoint and --checkpoint exclude each other: evaluate the server, or the checkpoint');
  const o = resolvePaths(withDefaults(opts));
  const urls = String(o.endpoint).split(',').map((u) => u.trim()).filter(Boolean);
  const outDir = o.outputDir as string;
  const out = path.join(outDir, 'eval.json');
  if (fs.existsSync(out) && !isRunDir(outDir) && !o.overwriteOutputDir)
    throw new RunDirError(`${out} exists and ${outDir} is not a grpo run; choose another --output-dir, or replace it with --overwrite-output-dir`);
  let tok: Tokenizer = new CharTokenizer();
  let vocabSize = tok.vocabSize;
  if (o.model) {
    tok = HfTokenizer.fromDir(o.model as string);
    vocabSize = parseHfConfig(JSON.parse(fs.readFileSync(path.join(o.model as string, 'config.json'), 'utf8')), path.join(o.model as string, 'config.json')).vocabSize;
  }
  const engine = new RemoteEngine({ urls, tokenizer: tok, vocabSize, timeout: o.rolloutTimeout as number, retries: o.rolloutRetries as number });
  let rewards: { fns: RewardFunction[]; weights: number[] } | null = null;
  let r: EvalResult;
  try {
    const task = buildTask(o);
    refuseRemoteMedia(task, '--endpoint', 'Evaluate the checkpoint with --checkpoint DIR instead');
    rewards = await buildRewards(o);
    r = await evaluateEngine(engine, tok, task, evalOptions(o, rewards));
  } finally {
    await engine.close();
    await disposeRewards(rewards);
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeTextAtomic(out, JSON.stringify({ endpoint: urls.join(','), ...r }, null, 2));
  io.log(`eval of ${engine.name}:`);
  process.stdout.write(formatEvalTable(r) + '\n');
  io.log(`written ${out}`);
  return r;
}

/**
 * What `npm start` changes from the defaults: 2-digit addition, a KL term (so the report shows
 * one), and a warm start that stops once the policy solves 20% of sampled training prompts.
 * With the defaults otherwise (a 115k-parameter transformer, 300 GRPO steps of 32 prompts × 8
 * completions) GRPO starts just before the model has learnt carrying reliably, which leaves
 * it room (bench/results/demo.md).
 */
export const DEMO_OPTIONS: Options = {
  outputDir: 'runs/demo',
  ops: ['+'],
  beta: 0.04,
  sftStopAccuracy: 0.2,
};

/** `npm start`: warm start, GRPO, evaluation, report. */
export async function runDemo(opts: Options, io: Io = consoleIo): Promise<{ before: number; after: number; seconds: number; report: string }> {
  const o = resolvePaths(withDefaults({ ...DEMO_OPTIONS, ...opts }));
  const root = o.outputDir as string;
  // an earlier demo here is replaced (only its files); anything else is refused unless told to overwrite
  prepareRunDir(root, { kind: 'demo', overwrite: o.overwriteOutputDir as boolean, replaceOwnKind: true });
  return inRunDir(root, () => demoBody(o, io));
}

async function demoBody(o: Options, io: Io): Promise<{ before: number; after: number; seconds: number; report: string }> {
  const t0 = Date.now();
  const root = o.outputDir as string;
  io.log(`demo: seed ${o.seed}; output ${root}/ (sft/, grpo/, report.html)`);
  const sft = await runSft({ ...o, outputDir: path.join(root, 'sft') }, io);
  const train = await runTrain({ ...o, outputDir: path.join(root, 'grpo'), init: sft.checkpoint, resume: false }, io);
  const before = train.evals[0].result, after = train.evals[train.evals.length - 1].result;
  const seconds = (Date.now() - t0) / 1000;
  const summary: Record<string, string | number> = {
    seed: o.seed as number,
    task: `${o.task} (digits ${o.digits}, ops ${(o.ops as string[]).join(' ')})`,
    'held-out prompts × samples': `${before.prompts} × ${before.k} (temperature ${before.temperature})`,
    'pass@1 after warm start (GRPO step 0)': `${(100 * before['pass@1']).toFixed(1)}%`,
    [`pass@1 after GRPO (step ${train.steps})`]: `${(100 * after['pass@1']).toFixed(1)}%`,
    'pass@1 gain': `${(100 * (after['pass@1'] - before['pass@1'])).toFixed(1)} points`,
    [`pass@${before.k} before → after`]: `${(100 * before['pass@k']).toFixed(1)}% → ${(100 * after['pass@k']).toFixed(1)}%`,
    'maj@k before → after': `${(100 * before['maj@k']).toFixed(1)}% → ${(100 * after['maj@k']).toFixed(1)}%`,
    'format rate before → after': `${(100 * before.formatRate).toFixed(1)}% → ${(100 * after.formatRate).toFixed(1)}%`,
    'warm start': `${sft.steps} SFT steps × ${o.sftBatchSize} (stops once sampled training accuracy ≥ ${100 * (o.sftStopAccuracy as number)}%), ${formatDuration(sft.seconds)}`,
    'GRPO time (incl. evaluations)': formatDuration(train.seconds),
    'total time': formatDuration(seconds),
    'GRPO config': `B=${o.batchSize} G=${o.numGenerations} μ=${o.numIterations} β=${o.beta} lr=${o.learningRate} lossType=${o.lossType} T=${o.temperature}`,
  };
  const metrics = [...readMetrics(path.join(root, 'sft', 'metrics.jsonl')), ...readMetrics(path.join(root, 'grpo', 'metrics.jsonl'))];
  const report = writeReport(root, { title: 'grpo-kernels demo: SFT warm start, then GRPO', summary, metrics, samples: after.samples });
  writeTextAtomic(path.join(root, 'summary.json'), JSON.stringify({ seed: o.seed, before, after, seconds, sftSeconds: sft.seconds, grpoSeconds: train.seconds }, null, 2));
  io.log('');
  io.log(`held-out pass@1: ${(100 * before['pass@1']).toFixed(1)}% after the warm start -> ${(100 * after['pass@1']).toFixed(1)}% after GRPO (${(100 * (after['pass@1'] - before['pass@1'])).toFixed(1)} points), seed ${o.seed}`);
  io.log(`total ${formatDuration(seconds)}; report: ${report}`);
  return { before: before['pass@1'], after: after['pass@1'], seconds, report };
}
