// The commands end to end on a tiny configuration: sft -> train (eval, checkpoints, metrics)
// -> resume -> eval -> report; and the `grpo` binary's --help and error exit codes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { runSft, runTrain, runEval } from '../lib/trainer/run';
import { readMetrics, writeReport } from '../lib/report';

const quiet = { log: () => {} };
const tiny = {
  digits: 1, ops: ['+'], trainSize: 40, testSize: 10, dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 16,
  maxCompletionLength: 4, batchSize: 2, numGenerations: 4, evalLimit: 4, evalK: 2, progress: false, seed: 9,
};

test('sft, train with eval and checkpoints, resume, eval, report', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-run-'));
  const sft = await runSft({ ...tiny, outputDir: path.join(root, 'sft'), sftSteps: 3, sftBatchSize: 4 }, quiet);
  assert.ok(fs.existsSync(path.join(sft.checkpoint, 'model.safetensors')));
  const out = path.join(root, 'grpo');
  const t = await runTrain({ ...tiny, outputDir: out, init: sft.checkpoint, maxSteps: 4, evalSteps: 2, saveSteps: 2, beta: 0.02 }, quiet);
  assert.equal(t.evals.map((e) => e.step), [0, 2, 4]);
  for (const s of [0, 2, 4]) assert.ok(fs.existsSync(path.join(out, `eval-step-${s}.json`)));
  const rows = readMetrics(path.join(out, 'metrics.jsonl'));
  assert.equal(rows.filter((r) => r.phase === 'grpo').map((r) => r.step), [1, 2, 3, 4]);
  const step = rows.find((r) => r.phase === 'grpo')!;
  for (const k of ['reward', 'reward_std', 'rewards/accuracy/mean', 'rewards/format/std', 'frac_reward_zero_std', 'kl', 'entropy', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'completions/mean_length', 'completions/clipped_ratio', 'step_time', 'tokens_per_second', 'learning_rate', 'grad_norm', 'loss'])
    assert.ok(k in step, `metrics.jsonl lacks ${k}`);
  // resume to 6 steps: continues from the step-4 checkpoint
  const t2 = await runTrain({ ...tiny, outputDir: out, init: sft.checkpoint, maxSteps: 6, evalSteps: 0, saveSteps: 0, beta: 0.02, resume: true }, quiet);
  assert.is(t2.steps, 6);
  assert.equal(readMetrics(path.join(out, 'metrics.jsonl')).filter((r) => r.phase === 'grpo').map((r) => r.step), [1, 2, 3, 4, 5, 6]);
  const ev = await runEval({ ...tiny, outputDir: out, evalK: 3 }, quiet);
  assert.is(ev.k, 3);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
  assert.is(json.step, 6);
  assert.ok('pass@1' in json && 'pass@k' in json && 'maj@k' in json && 'formatRate' in json && 'meanLength' in json && 'meanReward' in json);
  // without flags, eval uses the options the checkpoint was trained with (here evalLimit 4, not the default 200)
  const ev2 = await runEval({ checkpoint: t2.checkpoint, evalK: 2 }, quiet);
  assert.is(ev2.prompts, 4);
  const report = writeReport(out, { title: 'test', summary: { seed: 9 } });
  const html = fs.readFileSync(report, 'utf8');
  assert.ok(html.includes('uPlot'), 'uPlot is inlined');
  assert.not.ok(/<script[^>]+src=/.test(html), 'nothing is loaded from elsewhere');
  assert.ok(html.includes('Held-out pass@1'));
});

test('grpo binary: --help exits 0 and lists the commands; a bad flag exits 2 with a message', () => {
  const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');
  const h = spawnSync(process.execPath, ['--import', 'tsx', bin, '--help'], { encoding: 'utf8' });
  assert.is(h.status, 0);
  assert.ok(h.stdout.includes('Usage: grpo <command>') && h.stdout.includes('--num-generations'));
  const b = spawnSync(process.execPath, ['--import', 'tsx', bin, 'train', '--nope'], { encoding: 'utf8' });
  assert.is(b.status, 2);
  assert.match(b.stderr, /unknown option --nope/);
});

test.run();
