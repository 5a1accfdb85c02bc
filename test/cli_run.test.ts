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
  const own = fs.readFileSync(path.join(out, 'report.html'), 'utf8'); // written by the run itself
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
  // every train run wrote its report; its charts are those of metrics.jsonl
  const charts = JSON.parse(/<script id="chart-data" type="application\/json">([\s\S]*?)<\/script>/.exec(own)![1]);
  const reward = charts.find((c: { title: string }) => c.title.startsWith('Reward'));
  assert.equal(reward.labels.slice(0, 3), ['reward (weighted sum)', 'accuracy', 'format']);
  assert.equal(reward.data[0], [1, 2, 3, 4, 5, 6]);
  assert.ok(own.includes('completed 6 steps'));
  // --resume-from-checkpoint PATH: a checkpoint of another directory, continued into a new one
  const other = path.join(root, 'other');
  const t3 = await runTrain({ ...tiny, outputDir: other, resumeFromCheckpoint: t.checkpoint, resume: true, maxSteps: 5, evalSteps: 0, saveSteps: 0 }, quiet);
  assert.is(t3.steps, 5);
  assert.equal(readMetrics(path.join(other, 'metrics.jsonl')).filter((r) => r.phase === 'grpo').map((r) => r.step), [5]);
  let err = '';
  await runTrain({ ...tiny, outputDir: path.join(root, 'x'), resumeFromCheckpoint: path.join(root, 'missing') }, quiet).catch((e) => (err = e.message));
  assert.match(err, /--resume-from-checkpoint .*missing: no checkpoint there/);
  // a run that fails before logging anything leaves the report of the run already there alone
  const kept = fs.readFileSync(path.join(out, 'report.html'));
  err = '';
  await runTrain({ ...tiny, outputDir: out, resumeFromCheckpoint: path.join(root, 'missing') }, quiet).catch((e) => (err = e.message));
  assert.match(err, /no checkpoint there/);
  assert.ok(fs.readFileSync(path.join(out, 'report.html')).equals(kept));
});

test('a train run that fails midway still writes report.html, with what it logged and the error', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-fail-'));
  const out = path.join(root, 'run');
  // the failure: the io throws when the step-2 evaluation is reported (after 2 logged steps)
  const io = { log: (m: string) => { if (m.startsWith('eval step 2')) throw new Error('disk full'); } };
  let err = '';
  await runTrain({ ...tiny, outputDir: out, maxSteps: 6, evalSteps: 2, saveSteps: 0 }, io).catch((e) => (err = e.message));
  assert.is(err, 'disk full');
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.ok(html.includes('failed: disk full'));
  const charts = JSON.parse(/<script id="chart-data" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]);
  assert.equal(charts.find((c: { title: string }) => c.title.startsWith('Reward')).data[0], [1, 2]);
  // grpo report DIR rebuilds it (the binary), and --version prints the package's version
  fs.rmSync(path.join(out, 'report.html'));
  const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');
  const r = spawnSync(process.execPath, ['--import', 'tsx', bin, 'report', out], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(out, 'report.html')));
  const v = spawnSync(process.execPath, ['--import', 'tsx', bin, '--version'], { encoding: 'utf8' });
  assert.is(v.stdout.trim(), JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'package.json'), 'utf8')).version);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', bin, 'report', path.join(root, 'none')], { encoding: 'utf8' });
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /does not exist/);
  fs.rmSync(root, { recursive: true });
});

test('train on a JSONL dataset with the default format reward and 8-token completions fails before training, saying what to change', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-fmt-'));
  const data = path.join(root, 'd.jsonl');
  fs.writeFileSync(data, ['abc', 'xyz', 'pqr', 'uvw'].map((w) => JSON.stringify({ prompt: `reverse ${w}`, solution: [...w].reverse().join('') })).join('\n'));
  let err = '';
  await runTrain({ ...tiny, task: data, testFile: data, outputDir: path.join(root, 'run'), maxSteps: 2 }, quiet).catch((e) => (err = e.message));
  assert.match(err, /format reward: .* needs at least 32 characters but a completion has at most 4/);
  assert.not.ok(fs.existsSync(path.join(root, 'run', 'metrics.jsonl')), 'nothing was trained or logged');
  // with accuracy only, text answers train (and score: the reference of 'reverse abc' is 'cba')
  const t = await runTrain({ ...tiny, task: data, testFile: data, outputDir: path.join(root, 'run2'), maxSteps: 1, evalSteps: 0, saveSteps: 0, rewards: ['accuracy'] }, quiet);
  assert.is(t.steps, 1);
  fs.rmSync(root, { recursive: true });
});

test('grpo binary: --help exits 0 and lists the commands; a bad flag exits 2 with a message', () => {
  const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');
  const h = spawnSync(process.execPath, ['--import', 'tsx', bin, '--help'], { encoding: 'utf8' });
  assert.is(h.status, 0);
  assert.ok(h.stdout.includes('Usage: grpo <command>') && h.stdout.includes('--num-generations'));
  const b = spawnSync(process.execPath, ['--import', 'tsx', bin, 'train', '--nope'], { encoding: 'utf8' });
  assert.is(b.status, 2);
  assert.match(b.stderr, /unknown option --nope/);
  const t = spawnSync(process.execPath, ['--import', 'tsx', bin, 'train', '--help'], { encoding: 'utf8' });
  assert.is(t.status, 0);
  assert.ok(t.stdout.startsWith('Usage: grpo train') && !t.stdout.includes('--sft-steps'));
  const y = spawnSync(process.execPath, ['--import', 'tsx', bin, 'train', '--max-step', '3'], { encoding: 'utf8' });
  assert.is(y.status, 2);
  assert.match(y.stderr, /did you mean --max-steps\?/);
});

test.run();
