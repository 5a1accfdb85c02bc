/**
 * The commands behind the CLI, as functions: sft, train (GRPO), eval, demo. They build the
 * task, tokenizer, model and reward functions from one options object (see config.ts), log
 * metrics as JSONL under the run directory, checkpoint, evaluate and write the report.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CharTokenizer, createTransformer, PolicyModel, Tokenizer, TransformerConfig } from '../models';
import { HfCausalLM, loadHfCheckpoint, saveHfModel, saveLoraAdapter } from '../models/hf';
import { setNumThreads } from '../index';
import { makeTask, Task, TaskSpec, mixSeed } from '../tasks';
import { builtinReward, loadRewardModule, RewardFunction } from '../rewards';
import { evaluate, EvalResult, formatEvalTable } from '../eval';
import { ProgressBar, formatDuration } from '../cli/progress';
import { writeReport, readMetrics } from '../report';
import { defaultOptions, Options } from './config';
import { GrpoTrainer, resolveGrpoConfig, StepMetrics, TrainerState } from './grpo';
import { supervisedFineTune } from './sft';
import { CheckpointMeta, latestCheckpoint, loadCheckpoint, loadCheckpointMeta, saveCheckpoint } from './checkpoint';

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

export function buildTask(o: Options): Task {
  return makeTask({ ...(o as TaskSpec), task: o.task as string, formatPattern: o.formatPattern as string | undefined, ops: o.ops as TaskSpec['ops'] });
}

export function buildRewards(o: Options): { fns: RewardFunction[]; weights: number[] } {
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
  if (o.rewardModule) fns.push(...loadRewardModule(o.rewardModule as string));
  if (!fns.length) throw new RangeError('no reward functions: give --rewards and/or --reward-module');
  const weights = (o.rewardWeights as number[] | undefined) ?? fns.map(() => 1);
  if (weights.length !== fns.length)
    throw new RangeError(`--reward-weights: expected ${fns.length} weights (for ${fns.map((f) => f.name).join(', ')}) but received ${weights.length}`);
  return { fns, weights };
}

export function modelConfig(o: Options, tok: Tokenizer): TransformerConfig {
  return {
    vocabSize: tok.vocabSize, dModel: o.dModel as number, nLayers: o.nLayers as number, nHeads: o.nHeads as number,
    dFF: o.dFF as number, maxSeqLen: o.maxSeqLen as number, seed: o.seed as number,
  };
}

function applyThreads(o: Options) {
  if ((o.threads as number) > 0) setNumThreads(o.threads as number);
}

/** A fresh model, or one with the weights of the `init` checkpoint. */
export function loadOrCreateModel(o: Options, tok: Tokenizer): PolicyModel {
  if (o.init) {
    const ck = loadCheckpoint(o.init as string);
    const m = createTransformer(ck.meta.modelConfig);
    m.loadStateDict(ck.weights);
    return m;
  }
  return createTransformer(modelConfig(o, tok));
}

/** The options a checkpoint was made with, less those that name what to load. */
function savedOptions(meta: CheckpointMeta): Options {
  const { init, resume, checkpoint, config, ...saved } = meta.config;
  return saved;
}

class MetricsLog {
  /** `fresh`: a new run in this directory starts a new file (a resumed one appends). */
  constructor(readonly file: string, fresh: boolean) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (fresh) fs.rmSync(file, { force: true });
  }
  write(row: Record<string, unknown>) {
    fs.appendFileSync(this.file, JSON.stringify(row) + '\n');
  }
  /** Drops rows of `phase` after `step` (a resumed run rewrites what follows its checkpoint). */
  truncateAfter(step: number, phases: string[]) {
    const rows = readMetrics(this.file).filter((r) => !(phases.includes(r.phase as string) && (r.step as number) > step));
    fs.writeFileSync(this.file, rows.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

function evalOptions(o: Options, rewards?: { fns: RewardFunction[]; weights: number[] }) {
  return {
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
  const o = withDefaults(opts);
  applyThreads(o);
  const t0 = Date.now();
  const dir = o.outputDir as string;
  const task = buildTask(o);
  const tok = new CharTokenizer();
  const model = loadOrCreateModel(o, tok);
  const n = o.sftExamples as number;
  const examples = n > 0 ? task.train.slice(0, n) : task.train;
  const log = new MetricsLog(path.join(dir, 'metrics.jsonl'), true);
  const steps = o.sftSteps as number;
  io.log(`sft: ${task.name}, ${examples.length} examples, ${steps} steps × ${o.sftBatchSize}, model ${model.numParameters} parameters -> ${dir}`);
  const bar = new ProgressBar('sft ', steps, 0, o.progress as boolean, 25);
  const target = o.sftStopAccuracy as number;
  let trainAccuracy = NaN;
  const r = await supervisedFineTune(model, tok, examples, {
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

/** `grpo train`: GRPO with evaluation every evalSteps, checkpoints, metrics.jsonl. */
export async function runTrain(opts: Options, io: Io = consoleIo): Promise<TrainResult> {
  const runDir = (opts.outputDir as string | undefined) ?? (defaultOptions().outputDir as string);
  const resumeFrom = opts.resume ? latestCheckpoint(runDir) : null;
  // a resumed run keeps the options it was started with unless a flag changes them
  const o = withDefaults(resumeFrom ? { ...savedOptions(loadCheckpointMeta(resumeFrom)), ...opts } : opts);
  applyThreads(o);
  const t0 = Date.now();
  const dir = o.outputDir as string;
  const task = buildTask(o);
  // --model DIR: a Hugging Face checkpoint (its tokenizer and chat template) instead of the built-in model
  const lora = o.usePeft ? { r: o.loraR as number, alpha: o.loraAlpha as number, targetModules: o.loraTargetModules as string[], seed: o.seed as number } : undefined;
  const hf = o.model ? await loadHfCheckpoint(o.model as string, { lora }) : null;
  const tok: Tokenizer = hf ? hf.tokenizer : new CharTokenizer();
  const rewards = buildRewards(o);
  const cfg = resolveGrpoConfig({ ...o, rewardWeights: rewards.weights });
  const log = new MetricsLog(path.join(dir, 'metrics.jsonl'), !resumeFrom);

  let model: PolicyModel;
  let refModel: PolicyModel | null = null;
  let state: TrainerState | null = null;
  if (o.resume && !resumeFrom) io.log(`train: --resume given but ${dir} has no checkpoint; starting fresh`);
  if (resumeFrom) {
    const ck = loadCheckpoint(resumeFrom);
    if (ck.meta.kind !== 'grpo') throw new Error(`${resumeFrom} is a ${ck.meta.kind} checkpoint; resume needs a grpo one`);
    model = hf ? hf.model : createTransformer(ck.meta.modelConfig);
    model.loadStateDict(ck.weights);
    if (ck.optimizer) model.loadOptimizerState(ck.optimizer, ck.meta.optimizer.step);
    if (hf && lora) {
      refModel = cfg.beta > 0 ? hf.model.referenceModel() : null;
    } else if (ck.reference) {
      refModel = hf ? new HfCausalLM(hf.model.config, { maxSeqLen: hf.model.maxSeqLen }) : createTransformer(ck.meta.modelConfig);
      refModel.loadStateDict(ck.reference);
    }
    state = ck.meta.state as unknown as TrainerState;
    log.truncateAfter(state.step, ['grpo', 'eval']);
    io.log(`train: resuming ${resumeFrom} at step ${state.step}`);
  } else {
    model = hf ? hf.model : loadOrCreateModel(o, tok);
    // LoRA: the reference is the base model, the same weights with the adapters off
    if (hf && lora && cfg.beta > 0) refModel = hf.model.referenceModel();
  }
  const trainer = new GrpoTrainer({
    model, tokenizer: tok, task, rewardFunctions: rewards.fns, config: cfg, refModel,
    onRewardFailure: (f, step) => io.log(`warning: step ${step + 1}: reward '${f.name}' ${f.message} (counted as no reward)`),
  });
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
    fs.writeFileSync(path.join(dir, `eval-step-${step}.json`), JSON.stringify(r, null, 2));
    return r;
  };
  const bar = new ProgressBar('grpo', cfg.maxSteps, trainer.state.step, o.progress as boolean, 5);
  const note = (m: string) => (o.progress ? bar.log(m) : io.log(m));
  if (evalSteps > 0 && trainer.state.step === 0) {
    const r = await doEval(0);
    note(`eval step 0: pass@1 ${(100 * r['pass@1']).toFixed(1)}%  pass@${r.k} ${(100 * r['pass@k']).toFixed(1)}%  format ${(100 * r.formatRate).toFixed(1)}%`);
  }
  const save = () =>
    saveCheckpoint(dir, { model, refModel: trainer.refModel, meta: { kind: 'grpo', step: trainer.state.step, config: o, state: { ...trainer.state } }, keep: o.saveTotalLimit as number });
  let last: StepMetrics | null = null;
  let ck = '';
  while (trainer.state.step < cfg.maxSteps) {
    const m = await trainer.step();
    last = m;
    log.write({ phase: 'grpo', ...m });
    bar.update(m.step, { reward: m.reward as number, kl: m.kl as number | undefined, entropy: m.entropy as number });
    const step = trainer.state.step;
    if (evalSteps > 0 && step % evalSteps === 0 && step < cfg.maxSteps) {
      const r = await doEval(step);
      note(`eval step ${step}: pass@1 ${(100 * r['pass@1']).toFixed(1)}%  pass@${r.k} ${(100 * r['pass@k']).toFixed(1)}%`);
    }
    if ((o.saveSteps as number) > 0 && step % (o.saveSteps as number) === 0 && step < cfg.maxSteps) ck = save();
  }
  bar.done();
  if (!evals.length || evals[evals.length - 1].step !== trainer.state.step) await doEval(trainer.state.step);
  ck = save();
  // an HF model is also saved as a folder transformers can load (bf16, tokenizer files copied)
  if (hf && lora) saveLoraAdapter(model as HfCausalLM, path.join(dir, 'adapter'), { baseModel: path.resolve(o.model as string), overwrite: true });
  if (hf && (!lora || o.saveMerged)) saveHfModel(model as HfCausalLM, path.join(dir, 'hf-model'), { sourceDir: o.model as string, overwrite: true });
  const seconds = (Date.now() - t0) / 1000;
  const first = evals[0], final = evals[evals.length - 1];
  io.log(`train: done in ${formatDuration(seconds)}; held-out pass@1 ${(100 * first.result['pass@1']).toFixed(1)}% (step ${first.step}) -> ${(100 * final.result['pass@1']).toFixed(1)}% (step ${final.step}); checkpoint ${ck}`);
  if (trainer.rewardFailures.length) io.log(`train: ${trainer.rewardFailures.length} reward-function failures (see warnings above)`);
  model.dispose();
  trainer.refModel?.dispose();
  return { checkpoint: ck, evals, seconds, steps: trainer.state.step, lastMetrics: last };
}

/** `grpo eval`: held-out evaluation of a checkpoint; prints a table and writes JSON. */
export async function runEval(opts: Options, io: Io = consoleIo): Promise<EvalResult> {
  const src = (opts.checkpoint ?? opts.init ?? opts.outputDir ?? defaultOptions().outputDir) as string;
  const ck = loadCheckpoint(src);
  // the task, sampling and reward options the checkpoint was trained with, unless flags change them
  const o = withDefaults({ ...savedOptions(ck.meta), ...opts });
  applyThreads(o);
  const model = createTransformer(ck.meta.modelConfig);
  model.loadStateDict(ck.weights);
  const task = buildTask(o);
  const tok = new CharTokenizer();
  const rewards = buildRewards(o);
  const r = await evaluate(model, tok, task, evalOptions(o, rewards));
  const out = path.join(o.outputDir as string, 'eval.json');
  fs.mkdirSync(o.outputDir as string, { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ checkpoint: ck.dir, step: ck.meta.step, ...r }, null, 2));
  io.log(`eval of ${ck.dir} (step ${ck.meta.step}):`);
  process.stdout.write(formatEvalTable(r) + '\n');
  io.log(`written ${out}`);
  model.dispose();
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
  const o = withDefaults({ ...DEMO_OPTIONS, ...opts });
  const t0 = Date.now();
  const root = o.outputDir as string;
  fs.rmSync(root, { recursive: true, force: true });
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
  fs.writeFileSync(path.join(root, 'summary.json'), JSON.stringify({ seed: o.seed, before, after, seconds, sftSeconds: sft.seconds, grpoSeconds: train.seconds }, null, 2));
  io.log('');
  io.log(`held-out pass@1: ${(100 * before['pass@1']).toFixed(1)}% after the warm start -> ${(100 * after['pass@1']).toFixed(1)}% after GRPO (${(100 * (after['pass@1'] - before['pass@1'])).toFixed(1)} points), seed ${o.seed}`);
  io.log(`total ${formatDuration(seconds)}; report: ${report}`);
  return { before: before['pass@1'], after: after['pass@1'], seconds, report };
}
