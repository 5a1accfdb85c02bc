// The commands never lose a user's files, never hide a failed run, and refuse damaged input:
// output directories (demo/train/overwrite), --resume, damaged checkpoints, torn metrics,
// reward timeouts (never-settling promise, busy loop) and throwing rewards in a worker,
// float32-range and throwing-getter rewards, prompts longer than the context, resolved paths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { pathToFileURL } from 'url';
import { runDemo, runEval, runSft, runTrain } from '../lib/trainer/run';
import { loadCheckpoint, latestCheckpoint } from '../lib/trainer/checkpoint';
import { readRunMarker } from '../lib/trainer/rundir';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { loadRewardModuleIsolated, RewardContext, RewardError, RewardFunction, scoreRewards } from '../lib/rewards';
import { readSafetensors, writeSafetensors } from '../lib/models/safetensors';
import { arithmeticTask } from '../lib/tasks';
import { tok, task, tinyModel, tinyConfig, rewards } from './trainer_setup';
import { dirSnapshot } from './helpers';

const quiet = { log: () => {} };
const tiny = {
  digits: 1, ops: ['+'], trainSize: 40, testSize: 10, dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 16,
  maxCompletionLength: 4, batchSize: 2, numGenerations: 4, evalLimit: 4, evalK: 2, progress: false, seed: 9,
  maxSteps: 2, evalSteps: 0, saveSteps: 1, saveTotalLimit: 5, sftSteps: 2, sftBatchSize: 4,
};
const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), `grpo-safety-${p}-`));
const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');
// tsx by absolute URL: some runs start in another directory
const tsxLoader = pathToFileURL(path.resolve(__dirname, '..', 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const grpo = (args: string[], cwd?: string) => spawnSync(process.execPath, ['--import', tsxLoader, bin, ...args], { encoding: 'utf8', cwd });
async function rejects(p: Promise<unknown>, re: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, re);
    return e as Error;
  }
  throw new assert.Assertion({ message: `expected a rejection matching ${re}`, expects: re, operator: 'rejects' });
}
const tinyArgs = ['--digits', '1', '--ops', '+', '--train-size', '40', '--test-size', '10', '--d-model', '16', '--n-layers', '1', '--n-heads', '2', '--d-ff', '32',
  '--max-seq-len', '16', '--max-completion-length', '4', '--batch-size', '2', '--num-generations', '4', '--eval-limit', '4', '--eval-k', '2', '--no-progress', '--eval-steps', '0'];

// ---- item 4: output directories ----

test('demo/train refuse a non-empty directory that is not a run; the user file survives; CLI exits 1 with one line', async () => {
  const dir = tmp('foreign');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
  await rejects(runDemo({ ...tiny, outputDir: dir }, quiet), /is not empty and is not a grpo run \(it holds 'notes.txt'\).*--overwrite-output-dir/);
  await rejects(runTrain({ ...tiny, outputDir: dir }, quiet), /is not empty and is not a grpo run/);
  await rejects(runSft({ ...tiny, outputDir: dir }, quiet), /is not empty and is not a grpo run/);
  assert.equal([...dirSnapshot(dir).keys()], ['notes.txt']);
  // eval replaces eval.json only in a run directory
  fs.writeFileSync(path.join(dir, 'eval.json'), 'my own');
  await rejects(runEval({ checkpoint: await baseRun(), outputDir: dir }, quiet), /eval\.json exists and .* is not a grpo run/);
  assert.is(fs.readFileSync(path.join(dir, 'eval.json'), 'utf8'), 'my own');
  fs.rmSync(path.join(dir, 'eval.json'));
  const r = grpo(['demo', '--output-dir', dir, ...tinyArgs]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^grpo: .*is not empty and is not a grpo run/);
  assert.is(r.stderr.trim().split('\n').length, 1, 'one line, no stack');
  assert.is(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'mine');
  await rejects(runTrain({ ...tiny, outputDir: path.join(dir, 'notes.txt') }, quiet), /notes\.txt is a file, not a directory/);
});

test('demo with overwriteOutputDir keeps the user file; a second demo replaces only its own files', async () => {
  const dir = tmp('demo');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
  fs.mkdirSync(path.join(dir, 'checkpoints'));
  fs.writeFileSync(path.join(dir, 'checkpoints', 'keep.bin'), 'x');
  await runDemo({ ...tiny, outputDir: dir, overwriteOutputDir: true }, quiet);
  assert.is(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'mine');
  assert.is(fs.readFileSync(path.join(dir, 'checkpoints', 'keep.bin'), 'utf8'), 'x');
  assert.ok(fs.existsSync(path.join(dir, 'report.html')) && fs.existsSync(path.join(dir, 'grpo', 'checkpoints', 'latest.json')));
  assert.is(readRunMarker(dir)!.status, 'completed');
  // a demo into its own earlier demo (npm start twice) needs no flag, but other files make it ask
  await rejects(runDemo({ ...tiny, outputDir: dir }, quiet), /holds an earlier grpo demo and other files \('notes.txt'\)/);
  // a file inside a checkpoint directory survives too: the checkpoint cannot be saved over it
  fs.writeFileSync(path.join(dir, 'grpo', 'checkpoints', 'step-000001', 'user.txt'), 'u');
  await rejects(runDemo({ ...tiny, outputDir: dir, overwriteOutputDir: true }, quiet), /step-000001: holds files that are not part of a checkpoint/);
  assert.equal(fs.readdirSync(path.join(dir, 'grpo', 'checkpoints', 'step-000001')), ['user.txt']);
  assert.is(readRunMarker(dir)!.status, 'failed');
  const clean = tmp('demo2');
  await runDemo({ ...tiny, outputDir: clean }, quiet);
  fs.writeFileSync(path.join(clean, 'sft', 'metrics.jsonl'), 'old\n');
  await runDemo({ ...tiny, outputDir: clean }, quiet);
  assert.is.not(fs.readFileSync(path.join(clean, 'sft', 'metrics.jsonl'), 'utf8'), 'old\n', 'the earlier demo was replaced');
});

// ---- item 6: resume and existing runs ----

test('train into an existing run is refused and changes nothing; overwrite removes only run files', async () => {
  const dir = tmp('run');
  await runTrain({ ...tiny, outputDir: dir }, quiet);
  const before = dirSnapshot(dir);
  await rejects(runTrain({ ...tiny, outputDir: dir, seed: 1 }, quiet), /already holds a run \(grpo, completed\); continue it with --resume/);
  assert.equal(dirSnapshot(dir), before, 'the old run is untouched');
  const r = grpo(['train', '--output-dir', dir, ...tinyArgs]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /already holds a run/);
  assert.equal(dirSnapshot(dir), before);
  fs.writeFileSync(path.join(dir, 'mine.txt'), 'm');
  await runTrain({ ...tiny, outputDir: dir, maxSteps: 1, overwriteOutputDir: true }, quiet);
  assert.is(fs.readFileSync(path.join(dir, 'mine.txt'), 'utf8'), 'm');
  assert.equal(fs.readdirSync(path.join(dir, 'checkpoints')).sort(), ['latest.json', 'step-000001'], 'no checkpoint of the old run is mixed in');
  const rows = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.filter((x) => x.phase === 'grpo').map((x) => x.step), [1]);
});

test('--resume without a checkpoint fails and deletes nothing', async () => {
  const missing = path.join(tmp('nores'), 'nothing-here');
  await rejects(runTrain({ ...tiny, outputDir: missing, resume: true }, quiet), /--resume: .*has no checkpoint to resume \(the directory does not exist\)/);
  assert.not.ok(fs.existsSync(missing), 'nothing was created');
  const dir = tmp('nores2');
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '{"phase":"grpo","step":1}\n');
  const before = dirSnapshot(dir);
  await rejects(runTrain({ ...tiny, outputDir: dir, resume: true }, quiet), /has no checkpoint to resume \(no checkpoints\/latest.json\)/);
  assert.equal(dirSnapshot(dir), before);
  const r = grpo(['train', '--output-dir', dir, '--resume', ...tinyArgs]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /has no checkpoint to resume/);
  assert.equal(dirSnapshot(dir), before);
});

// ---- item 7: damaged checkpoints ----

let base = '';
async function baseRun(): Promise<string> {
  if (!base) {
    base = tmp('base');
    await runTrain({ ...tiny, outputDir: base, beta: 0.04 }, quiet);
  }
  const copy = tmp('damaged');
  fs.cpSync(base, copy, { recursive: true });
  return copy;
}
const ckDir = (run: string) => path.join(run, 'checkpoints', 'step-000002');

test('each kind of checkpoint damage is an error naming the file; resume writes nothing', async () => {
  // [what, damage, error, also refused by eval (eval needs no trainer state)]
  const cases: [string, (run: string) => void, RegExp, boolean?][] = [
    ['missing optimizer', (r) => fs.rmSync(path.join(ckDir(r), 'optimizer.safetensors')), /step-000002\/optimizer\.safetensors: is missing/],
    ['missing reference', (r) => fs.rmSync(path.join(ckDir(r), 'reference.safetensors')), /step-000002\/reference\.safetensors: is missing/],
    ['missing weights', (r) => fs.rmSync(path.join(ckDir(r), 'model.safetensors')), /step-000002\/model\.safetensors: is missing/],
    ['truncated weights', (r) => fs.truncateSync(path.join(ckDir(r), 'model.safetensors'), 100), /model\.safetensors: is damaged/],
    ['NaN weight', (r) => {
      const f = path.join(ckDir(r), 'model.safetensors');
      const t = readSafetensors(f).tensors;
      const first = [...t.keys()][0];
      t.get(first)!.data[3] = NaN;
      writeSafetensors(f, t);
    }, /model\.safetensors: tensor '.+' holds NaN at index 3/],
    ['Inf in optimizer', (r) => {
      const f = path.join(ckDir(r), 'optimizer.safetensors');
      const t = readSafetensors(f).tensors;
      [...t.values()][1].data[0] = Infinity;
      writeSafetensors(f, t);
    }, /optimizer\.safetensors: tensor '.+' holds Infinity at index 0/],
    ['misshapen weights', (r) => {
      const f = path.join(ckDir(r), 'model.safetensors');
      const t = readSafetensors(f).tensors;
      t.delete([...t.keys()][0]);
      writeSafetensors(f, t);
    }, /model\.safetensors: does not fit the model/],
    ['torn trainer_state.json', (r) => fs.writeFileSync(path.join(ckDir(r), 'trainer_state.json'), '{"version": 1, "kind": "gr'), /trainer_state\.json: is not valid JSON/],
    ['trainer_state.json without state', (r) => {
      const f = path.join(ckDir(r), 'trainer_state.json');
      const m = JSON.parse(fs.readFileSync(f, 'utf8'));
      delete m.state.cursor;
      fs.writeFileSync(f, JSON.stringify(m));
    }, /trainer_state\.json: expected state\.cursor to be an integer >= 0 but received undefined/, false],
    ['broken latest.json', (r) => fs.writeFileSync(path.join(r, 'checkpoints', 'latest.json'), '{"checkpoint": "step-0'), /checkpoints\/latest\.json: is not valid JSON/],
    ['latest.json naming a missing checkpoint', (r) => fs.writeFileSync(path.join(r, 'checkpoints', 'latest.json'), '{"checkpoint":"step-000009","step":9}'), /latest\.json: names step-000009, but .* does not exist/],
    ['latest.json of the wrong shape', (r) => fs.writeFileSync(path.join(r, 'checkpoints', 'latest.json'), '[1]'), /latest\.json: expected \{"checkpoint": "step-NNNNNN"/],
  ];
  for (const [what, damage, re, evalToo = true] of cases) {
    const run = await baseRun();
    damage(run);
    const before = dirSnapshot(run);
    const e = await rejects(runTrain({ ...tiny, outputDir: run, maxSteps: 3, resume: true }, quiet), re);
    assert.is(e.name, 'CheckpointError', what);
    assert.equal(dirSnapshot(run), before, `${what}: resume wrote nothing`);
    if (evalToo) await rejects(runEval({ checkpoint: run, outputDir: tmp('ev') }, quiet), re);
  }
  // the CLI: exit 1, one line naming the file
  const run = await baseRun();
  fs.rmSync(path.join(ckDir(run), 'optimizer.safetensors'));
  const r = grpo(['train', '--output-dir', run, '--resume', '--max-steps', '3']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^grpo: checkpoint .*optimizer\.safetensors: is missing/);
  assert.is(r.stderr.trim().split('\n').length, 1);
});

test('a torn last metrics line (kill mid-write) is dropped on resume, with a report; a torn middle line is an error', async () => {
  const run = await baseRun();
  const f = path.join(run, 'metrics.jsonl');
  // the checkpoint is at step 2; rows of a step 3 that never got a checkpoint, then a torn line
  fs.appendFileSync(f, JSON.stringify({ phase: 'grpo', step: 3, reward: 0 }) + '\n' + '{"phase":"grpo","step":4,"rew');
  const logs: string[] = [];
  const t = await runTrain({ ...tiny, outputDir: run, maxSteps: 3, resume: true }, { log: (m) => logs.push(m) });
  assert.is(t.steps, 3);
  assert.ok(logs.some((l) => /metrics\.jsonl: dropped a torn last line/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /dropped 1 rows after step 2/.test(l)));
  const rows = fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.filter((x) => x.phase === 'grpo').map((x) => x.step), [1, 2, 3]);
  const run2 = await baseRun();
  const f2 = path.join(run2, 'metrics.jsonl');
  const lines = fs.readFileSync(f2, 'utf8').split('\n');
  lines[0] = lines[0].slice(0, 10);
  fs.writeFileSync(f2, lines.join('\n'));
  await rejects(runTrain({ ...tiny, outputDir: run2, maxSteps: 3, resume: true }, quiet), /metrics\.jsonl: line 1 is not a JSON object/);
});

test('resume continues a run whose flags are given again; a checkpoint loads after validation', async () => {
  const run = await baseRun();
  const ck = loadCheckpoint(run);
  assert.is(ck.meta.step, 2);
  assert.ok(ck.reference && ck.optimizer);
  assert.is(latestCheckpoint(run), ckDir(run));
  const t = await runTrain({ ...tiny, outputDir: run, maxSteps: 3, resume: true }, quiet);
  assert.is(t.steps, 3);
  assert.is(readRunMarker(run)!.status, 'completed');
});

// ---- item 5: reward timeouts and failures ----

function rewardModules(): string {
  const dir = tmp('rewards');
  fs.writeFileSync(path.join(dir, 'hang.js'), 'module.exports = { never: () => new Promise(() => {}) };\n');
  fs.writeFileSync(path.join(dir, 'busy.js'), 'module.exports = { spin(c) { for (;;) {} } };\n');
  fs.writeFileSync(path.join(dir, 'throws.js'), "module.exports = { boom(c) { throw new TypeError('bad input ' + c.length); } };\n");
  fs.writeFileSync(path.join(dir, 'good.js'),
    'module.exports = { len: (c) => c.map((s) => s.length), acc: (c, ctx) => c.map((s, i) => (ctx.task.isCorrect(s, ctx.examples[i]) ? 1 : 0)),\n' +
    '  big: (c) => c.map((s, i) => (i === 0 ? 1e39 : 0.5)), getters: (c) => { const a = c.map(() => 1); Object.defineProperty(a, 1, { get() { throw new Error("g"); } }); return a; } };\n');
  return dir;
}
const ctxOf = (completions: string[]): RewardContext => ({
  completions, prompts: completions.map(() => task.train[0].prompt), examples: completions.map((_, i) => task.train[i]),
  completionLengths: completions.map((c) => c.length), truncated: completions.map(() => false), task, maxCompletionLength: 4,
});

test('reward module in a worker: never-settling promise and busy loop time out, naming module and function; a throw is named', async () => {
  const dir = rewardModules();
  const ctx = ctxOf(['1', '22', '333']);
  for (const [file, fn] of [['hang.js', 'never'], ['busy.js', 'spin']]) {
    const [f] = await loadRewardModuleIsolated(path.join(dir, file), { timeout: 0.5 });
    assert.is(f.name, fn);
    const t0 = Date.now();
    const e = await rejects(scoreRewards([f], ctx), new RegExp(`reward function '${fn}' from .*${file} did not return within 0\\.5 s`));
    assert.ok(e instanceof RewardError);
    assert.ok(Date.now() - t0 < 5000, 'stopped at the timeout');
    await rejects(Promise.resolve(f.compute(ctx)), /cannot run: the module's worker was terminated/);
  }
  const [boom] = await loadRewardModuleIsolated(path.join(dir, 'throws.js'), { timeout: 5 });
  await rejects(scoreRewards([boom], ctx, { onError: 'abort' }), /reward function 'boom' from .*throws\.js threw: TypeError: bad input 3/);
  const soft = await scoreRewards([boom], ctx, { onError: 'no_reward' });
  assert.equal(soft.failures.map((x) => [x.name, x.count]), [['boom', 3]]);
  await boom.dispose!();
});

test('reward module in a worker computes what the same functions compute in-process (ctx.task rebuilt there)', async () => {
  const dir = rewardModules();
  const spec = { task: 'arithmetic', seed: 1, digits: 1, ops: ['+'], trainSize: 60, testSize: 20 };
  const fns = await loadRewardModuleIsolated(path.join(dir, 'good.js'), { timeout: 10, taskSpec: spec });
  assert.equal(fns.map((f) => f.name), ['len', 'acc', 'big', 'getters']);
  const answers = [task.train[0].answer, 'x', task.train[2].answer + '1'];
  const ctx = ctxOf(answers);
  const { rewards: r, failures } = await scoreRewards(fns, ctx);
  const K = 4;
  for (let i = 0; i < 3; i++) {
    assert.is(r[i * K], answers[i].length);
    assert.is(r[i * K + 1], task.isCorrect(answers[i], task.train[i]) ? 1 : 0);
  }
  assert.is(r[1], 1, 'the first answer is correct');
  assert.ok(Number.isNaN(r[2]) && r[K + 2] === 0.5, '1e39 is no reward, 0.5 stays');
  assert.ok(Number.isNaN(r[K + 3]) && r[3] === 1, 'a getter that throws is no reward');
  assert.equal(failures.map((x) => [x.name, x.count]), [['big', 1], ['getters', 1]]);
  await fns[0].dispose!();
});

test('grpo train with a stuck or throwing reward module: exit 1 naming module and function; no checkpoint; marked failed', () => {
  const dir = rewardModules();
  for (const [file, fn, re] of [['busy.js', 'spin', /did not return within 1 s/], ['hang.js', 'never', /did not return within 1 s/], ['throws.js', 'boom', /threw: TypeError: bad input 8/]] as const) {
    const out = path.join(tmp('cli5'), 'run');
    const r = grpo(['train', '--output-dir', out, '--reward-module', path.join(dir, file), '--reward-timeout', '1', '--max-steps', '2', ...tinyArgs]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`grpo: reward function '${fn}' from .*${file.replace('.', '\\.')}`));
    assert.match(r.stderr, re);
    assert.not.ok(fs.existsSync(path.join(out, 'checkpoints')), 'no checkpoint of a run that did not complete');
    const m = readRunMarker(out)!;
    assert.is(m.status, 'failed');
    assert.match(m.error!, new RegExp(fn));
  }
});

test('eval with a stuck reward module fails naming it', async () => {
  const run = await baseRun();
  const dir = rewardModules();
  await rejects(runEval({ checkpoint: run, outputDir: tmp('ev5'), rewardModule: path.join(dir, 'hang.js'), rewardTimeout: 0.5 }, quiet), /reward function 'never' from .*hang\.js did not return within 0\.5 s/);
});

test('in-process reward functions: a never-settling promise times out; a throw aborts by default, or is no reward when asked', async () => {
  const never: RewardFunction = { name: 'never', compute: () => new Promise(() => {}) };
  const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: [...rewards(), never], config: tinyConfig({ rewardTimeout: 0.3 }) });
  await rejects(tr.step(), /reward function 'never' did not return within 0\.3 s/);
  const bad: RewardFunction = { name: 'bad', compute: () => { throw new Error('nope'); } };
  const tr2 = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: [...rewards(), bad], config: tinyConfig() });
  await rejects(tr2.step(), /reward function 'bad' threw: Error: nope/);
});

// ---- item 8: out-of-range and unreadable rewards ----

test('a reward of 1e39 or a throwing getter is no reward: counted per function, training goes on', async () => {
  const huge: RewardFunction = { name: 'huge', compute: (c) => c.completions.map((_, i) => (i % 2 ? 1e39 : -1e39)) };
  const getters: RewardFunction = {
    name: 'getters',
    compute: (c) => new Proxy(c.completions.map(() => 0.25), { get: (t, k) => (k === '3' || k === '5' ? (() => { throw new Error('no'); })() : Reflect.get(t, k)) }),
  };
  const failures: string[] = [];
  const tr = new GrpoTrainer({
    model: tinyModel(), tokenizer: tok, task, rewardFunctions: [...rewards(), huge, getters], config: tinyConfig(),
    onRewardFailure: (f) => failures.push(`${f.name}:${f.count}:${f.message}`),
  });
  const m = await tr.step();
  assert.is(m['no_reward/huge'], 12);
  assert.is(m['no_reward/getters'], 2);
  assert.is(m['no_reward/accuracy'], 0);
  assert.is(m['rewards/getters/mean'], 0.25);
  assert.ok(Number.isFinite(m.reward as number) && Number.isFinite(m.loss as number));
  assert.ok(failures.some((f) => /^huge:12:.*12 outside the float32 range/.test(f)), failures.join('\n'));
  assert.ok(failures.some((f) => /^getters:2:.*2 whose read threw/.test(f)), failures.join('\n'));
  // the boundary: the largest float32 is a reward, the next double that rounds to Infinity is not
  const edge: RewardFunction = { name: 'edge', compute: () => [3.4028234663852886e38, 3.4028235677973366e38] };
  const s = await scoreRewards([edge], { ...ctxOf(['a', 'b']) });
  assert.is(s.rewards[0], 3.4028234663852886e38);
  assert.ok(Number.isNaN(s.rewards[1]));
});

// ---- item 9: prompt lengths at load, resolved paths ----

test('a dataset prompt longer than the context fails at load naming file, line, length and context; nothing written', async () => {
  const dir = tmp('ds');
  const file = path.join(dir, 'train.jsonl');
  const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `${i}+1=`, solution: String(i + 1) }));
  lines[6] = JSON.stringify({ prompt: 'a prompt far too long for sixteen tokens', solution: '1' });
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const out = path.join(dir, 'run');
  const e = await rejects(runTrain({ ...tiny, task: file, testFile: file, outputDir: out }, quiet), /too long for the model's context: maxSeqLen 16 − maxCompletionLength 4 leaves 12 tokens/);
  assert.match(e.message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} line 7: prompt is 41 tokens`));
  assert.not.ok(fs.existsSync(out), 'nothing written');
  // built-in tasks too: 4-digit operands do not fit 16 tokens with 8 completion tokens
  await rejects(runTrain({ ...tiny, digits: 4, maxCompletionLength: 8, outputDir: out }, quiet), /example .*: prompt is \d+ tokens/);
});

test('relative dataset paths are stored resolved: eval from another directory finds the dataset', async () => {
  const dir = tmp('rel');
  const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify({ prompt: `${i % 10}+${(i * 7) % 10}=`, solution: String((i % 10) + ((i * 7) % 10)) }));
  fs.writeFileSync(path.join(dir, 'data.jsonl'), lines.join('\n') + '\n');
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    // accuracy alone: the dataset's default format pattern cannot fit in tiny's 4 completion tokens
    await runTrain({ ...tiny, task: 'data.jsonl', outputDir: 'run', maxSteps: 1, rewards: ['accuracy'] }, quiet);
  } finally {
    process.chdir(cwd);
  }
  const meta = loadCheckpoint(path.join(dir, 'run')).meta;
  assert.is(meta.config.task, path.join(fs.realpathSync(dir), 'data.jsonl'));
  assert.is(meta.config.outputDir, path.join(fs.realpathSync(dir), 'run'));
  const elsewhere = tmp('elsewhere');
  const r = grpo(['eval', '--checkpoint', path.join(dir, 'run'), '--output-dir', elsewhere], elsewhere);
  assert.is(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(elsewhere, 'eval.json')));
});

test.run();
