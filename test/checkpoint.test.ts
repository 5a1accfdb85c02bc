// Checkpoints: safetensors weights + JSON state; atomic (a crash mid-save leaves the previous
// checkpoint intact); resume is bit-exact (4 steps straight == 2 steps, save, resume, 2 steps).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createTransformer } from '../lib/models';
import { GrpoTrainer, StepMetrics } from '../lib/trainer/grpo';
import { saveCheckpoint, loadCheckpoint, latestCheckpoint } from '../lib/trainer/checkpoint';
import { tok, task, tinyModel, rewards, tinyConfig, sameWeights } from './trainer_setup';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-ck-'));
// β > 0 (a reference model to save), μ = 2 (optimiser state mid-batch), accumulation, a warm-up
const cfg = tinyConfig({ beta: 0.05, numIterations: 2, gradientAccumulationSteps: 2, maxSteps: 4, warmupRatio: 0.25 });

function save(dir: string, tr: GrpoTrainer, beforeCommit?: () => void) {
  return saveCheckpoint(dir, { model: tr.model, refModel: tr.refModel, meta: { kind: 'grpo', step: tr.state.step, config: cfg as Record<string, unknown>, state: { ...tr.state } }, beforeCommit });
}

function resume(dir: string): GrpoTrainer {
  const ck = loadCheckpoint(dir);
  const model = createTransformer(ck.meta.modelConfig);
  model.loadStateDict(ck.weights);
  model.loadOptimizerState(ck.optimizer!, ck.meta.optimizer.step);
  const ref = createTransformer(ck.meta.modelConfig);
  ref.loadStateDict(ck.reference!);
  const tr = new GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards(), config: cfg, refModel: ref });
  tr.state = { ...(ck.meta.state as unknown as GrpoTrainer['state']) };
  return tr;
}

const strip = (m: StepMetrics) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('time/') && k !== 'step_time' && k !== 'tokens_per_second'));

test('resume is bit-exact: 4 steps straight == 2 steps, save, resume, 2 steps', async () => {
  const a = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
  const ma: StepMetrics[] = [];
  for (let i = 0; i < 4; i++) ma.push(await a.step());

  const dir = tmp();
  const b = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
  await b.step();
  await b.step();
  save(dir, b);
  b.model.dispose();
  const c = resume(dir);
  assert.is(c.state.step, 2);
  const mc = [await c.step(), await c.step()];
  assert.ok(sameWeights(a.model, c.model), 'weights differ after resume');
  assert.equal(mc.map(strip), ma.slice(2).map(strip));
  assert.equal(c.state, a.state);
});

test('a checkpoint holds safetensors weights, optimiser state, reference, and the JSON state', async () => {
  const dir = tmp();
  const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
  await tr.step();
  const ck = save(dir, tr);
  assert.equal(fs.readdirSync(ck).sort(), ['model.safetensors', 'optimizer.safetensors', 'reference.safetensors', 'trainer_state.json']);
  const meta = JSON.parse(fs.readFileSync(path.join(ck, 'trainer_state.json'), 'utf8'));
  assert.is(meta.step, 1);
  assert.is(meta.optimizer.step, 2, 'μ = 2 updates');
  assert.equal(meta.state, { ...tr.state });
  assert.equal(meta.modelConfig, tr.model.config);
  // safetensors: 8-byte little-endian header length, then a JSON header
  const buf = fs.readFileSync(path.join(ck, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  for (const [k, t] of tr.model.stateDict()) {
    assert.is(header[k].dtype, 'F32');
    assert.equal(header[k].shape, t.shape);
  }
  assert.is(latestCheckpoint(dir), ck);
});

test('atomic: a crash mid-save leaves the previous checkpoint intact and latest pointing at it', async () => {
  const dir = tmp();
  const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
  await tr.step();
  const first = save(dir, tr);
  const snapshot = tinyModel(1);
  snapshot.loadStateDict(tr.model.stateDict());
  await tr.step();
  assert.throws(() => save(dir, tr, () => { throw new Error('simulated crash'); }), /simulated crash/);
  // the half-written checkpoint is a temporary directory that nothing reads
  assert.ok(fs.readdirSync(path.join(dir, 'checkpoints')).some((e) => e.includes('.tmp-')));
  assert.is(latestCheckpoint(dir), first);
  const ck = loadCheckpoint(dir);
  assert.is(ck.meta.step, 1);
  const m = createTransformer(ck.meta.modelConfig);
  m.loadStateDict(ck.weights);
  assert.ok(sameWeights(m, snapshot));
  // the next save succeeds and cleans up
  const second = save(dir, tr);
  assert.is(latestCheckpoint(dir), second);
  assert.not.ok(fs.readdirSync(path.join(dir, 'checkpoints')).some((e) => e.includes('.tmp-')));
});

test('a crash while latest.json is replaced keeps the old one (write to a temp file, then rename)', async () => {
  const dir = tmp();
  const tr = new GrpoTrainer({ model: tinyModel(), tokenizer: tok, task, rewardFunctions: rewards(), config: cfg });
  await tr.step();
  const first = save(dir, tr);
  // a stray, truncated temp file of latest.json (as a kill mid-write would leave) changes nothing
  fs.writeFileSync(path.join(dir, 'checkpoints', 'latest.json.tmp-999'), '{"checkp');
  assert.is(latestCheckpoint(dir), first);
  assert.throws(() => loadCheckpoint(tmp()), /no checkpoint/);
});

test.run();
