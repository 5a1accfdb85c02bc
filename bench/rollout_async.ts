// Rollout engines side by side: wall time per GRPO step (and per 100 steps) for in-process
// sampling, 2 local worker processes, one-step-off async (snapshot in-process), and async over
// 2 workers, with the per-phase breakdown the trainer reports (metrics time/*), on the demo's
// configuration and on a heavier one where generation dominates. Then (--learning) the demo's
// held-out pass@1 gain, synchronous vs async + rollout IS correction, over several seeds.
//   node --import tsx bench/rollout_async.ts [--steps 100] [--heavy-steps 20] [--learning-seeds 3] [--only timing|learning] [--config demo|heavy]
// Writes bench/results/rollout_async.raw.json (the numbers bench/results/rollout_async.md quotes).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execSync } from 'child_process';
import { GrpoTrainer, type StepMetrics } from '../lib/trainer/grpo';
import { createTransformer, CharTokenizer } from '../lib/models';
import { arithmeticTask } from '../lib/tasks';
import { accuracyReward, formatReward } from '../lib/rewards';
import { WorkerEngine } from '../lib/rollout/workers';
import type { RolloutEngine } from '../lib/rollout/engine';
import { runSft, runTrain, DEMO_OPTIONS } from '../lib/trainer/run';

const args = process.argv.slice(2);
const arg = (k: string, d: number) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : d);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : '';
const STEPS = arg('--steps', 100);
const HEAVY_STEPS = arg('--heavy-steps', 20);
const SEEDS = arg('--learning-seeds', 3);
const tok = new CharTokenizer();
const quietIo = { log: () => {}, warn: () => {} };

interface Variant { name: string; workers: number; async: boolean }
const VARIANTS: Variant[] = [
  { name: 'in-process', workers: 0, async: false },
  { name: '2 workers', workers: 2, async: false },
  { name: 'async (1-step-off, in-process snapshot)', workers: 0, async: true },
  { name: 'async + 2 workers', workers: 2, async: true },
];

const CONFIGS = {
  demo: { model: { dModel: 64, nLayers: 2, nHeads: 4, dFF: 256, maxSeqLen: 32 }, grpo: { batchSize: 32, numGenerations: 8, maxCompletionLength: 8, beta: 0.04 }, digits: 2 },
  // generation-dominated: long completions decoded token by token for a small batch (16
  // sequences), while training is one batched forward/backward over them (no reference model)
  heavy: { model: { dModel: 128, nLayers: 4, nHeads: 4, dFF: 512, maxSeqLen: 64 }, grpo: { batchSize: 4, numGenerations: 4, maxCompletionLength: 48, beta: 0 }, digits: 2 },
};

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

async function timeVariant(cfgName: keyof typeof CONFIGS, v: Variant, steps: number) {
  const c = CONFIGS[cfgName];
  const task = arithmeticTask({ seed: 1, digits: c.digits, ops: ['+'], trainSize: 5000, testSize: 10 });
  // a never-EOS random model would make every completion full length: the demo's numbers use a
  // random init too, so both configurations generate maxCompletionLength tokens (worst case)
  const model = createTransformer({ vocabSize: tok.vocabSize, ...c.model, seed: 42 });
  let engine: RolloutEngine | undefined;
  const t0 = performance.now();
  if (v.workers) engine = await WorkerEngine.create(model, tok, { workers: v.workers });
  const startup = performance.now() - t0;
  const t = new GrpoTrainer({
    model, tokenizer: tok, task, rewardFunctions: [accuracyReward(), formatReward()], engine,
    config: { ...c.grpo, maxSteps: steps, seed: 42, asyncRollouts: v.async, maxStaleness: 1 },
  });
  const rows: StepMetrics[] = [];
  const w0 = performance.now();
  for (let i = 0; i < steps; i++) rows.push(await t.step());
  const wall = (performance.now() - w0) / 1000;
  await t.close();
  await engine?.close();
  if (t.refModel) t.refModel.dispose();
  model.dispose();
  const phases: Record<string, number> = {};
  for (const k of Object.keys(rows[0])) if (k.startsWith('time/')) phases[k.slice(5)] = median(rows.slice(1).map((r) => r[k] as number));
  return {
    config: cfgName, variant: v.name, steps, wall, perStep: median(rows.slice(1).map((r) => r.step_time as number)), meanPerStep: wall / steps,
    per100: (wall / steps) * 100, startup: startup / 1000, phases,
    staleness: median(rows.slice(1).map((r) => r['async/staleness_mean'] as number)), dropped: rows.reduce((a, r) => a + ((r['async/stale_dropped'] as number) || 0), 0),
  };
}

async function learning(seed: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-async-learn-'));
  const base = { ...DEMO_OPTIONS, seed, progress: false, evalSteps: 300, saveSteps: 0, overwriteOutputDir: true };
  const sft = await runSft({ ...base, outputDir: path.join(dir, 'sft') }, quietIo as never);
  const out: Record<string, { before: number; after: number; seconds: number }> = {};
  for (const [name, extra] of [
    ['sync', {}],
    ['async+TIS', { asyncRollouts: true, maxStaleness: 1, rolloutImportanceSamplingMode: 'token_truncate', rolloutImportanceSamplingThreshold: 2 }],
  ] as const) {
    const r = await runTrain({ ...base, ...extra, init: sft.checkpoint, outputDir: path.join(dir, name) }, quietIo as never);
    out[name] = { before: r.evals[0].result['pass@1'], after: r.evals[r.evals.length - 1].result['pass@1'], seconds: r.seconds };
    console.log(`seed ${seed} ${name}: pass@1 ${(100 * out[name].before).toFixed(1)} -> ${(100 * out[name].after).toFixed(1)} (${r.seconds.toFixed(0)} s)`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { seed, ...out };
}

async function main() {
  const load = () => execSync('uptime').toString().trim();
  const raw: Record<string, unknown> = { machine: `${os.cpus()[0].model}, ${os.availableParallelism()} cores`, node: process.version, loadBefore: load() };
  if (only !== 'learning') {
    const timing = [];
    const cfgs = ([['demo', STEPS], ['heavy', HEAVY_STEPS]] as const).filter(([c]) => !args.includes('--config') || args[args.indexOf('--config') + 1] === c);
    for (const [cfg, steps] of cfgs) {
      // interleaved: every variant once, then again, so load drifts hit all alike
      for (const v of VARIANTS) {
        const r = await timeVariant(cfg, v, steps);
        timing.push(r);
        console.log(`${cfg} ${v.name}: ${(1000 * r.perStep).toFixed(0)} ms/step median, ${r.per100.toFixed(1)} s/100 steps; phases ${JSON.stringify(Object.fromEntries(Object.entries(r.phases).map(([k, x]) => [k, +(1000 * x).toFixed(1)])))}`);
      }
    }
    raw.timing = timing;
    raw.loadAfterTiming = load();
  }
  if (only !== 'timing') {
    const runs = [];
    for (let s = 0; s < SEEDS; s++) runs.push(await learning(42 + s));
    raw.learning = runs;
    raw.loadAfterLearning = load();
  }
  const tag = [only, args.includes('--config') ? args[args.indexOf('--config') + 1] : ''].filter(Boolean).join('_');
  const file = path.join(__dirname, 'results', `rollout_async${tag ? '_' + tag : ''}.raw.json`);
  fs.writeFileSync(file, JSON.stringify(raw, null, 2));
  console.log(`written ${file}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
