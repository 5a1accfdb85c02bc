// Data-parallel GRPO (lib/parallel/data_parallel.ts in GrpoTrainer, `grpo train` under torchrun's
// environment): two ranks as processes over loopback. Skipped, with the reason, where
// grpo_dist.node was not built (no Gloo: apt-get install libgloo-dev).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { NO_GLOO, ROOT, startRanks } from './dist_helpers';
import { checkTrainerState, latestCheckpoint, loadCheckpoint } from '../lib/trainer/checkpoint';
import { RUN_MARKER } from '../lib/trainer/rundir';

const glooTest = NO_GLOO ? test.skip : test;
if (NO_GLOO) console.log(`dist_train.test.ts: data-parallel training skipped: ${NO_GLOO}`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-dist-'));
const readF32 = (f: string) => {
  const b = fs.readFileSync(f);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

for (const lossType of ['dapo', 'grpo']) {
  glooTest(`${lossType}: 2 ranks train to the weights 1 rank reaches on the joined batch (2 steps), identical on both ranks`, async () => {
    const one = await startRanks(1, ['test/dist_train_child.ts', lossType, '2', path.join(tmp, `${lossType}-1.bin`)]);
    const two = await startRanks(2, ['test/dist_train_child.ts', lossType, '2', path.join(tmp, `${lossType}-2.bin`)]);
    const codes = await Promise.all([...one, ...two].map((r) => r.done));
    assert.equal(codes, [0, 0, 0], [...one, ...two].map((r) => r.stderr).join('\n'));
    const r1 = one[0].result()!, a = two[0].result()!, b = two[1].result()!;
    // every rank holds the same weights (also checked by hash after every step: distCheckWeights)
    assert.equal(a.hash, b.hash);
    assert.equal(a.state, b.state);
    // the trainer state (data order, token count, constant-reward monitor) is the 1-rank run's
    assert.equal(a.state, r1.state);
    // the global token count and the metrics are those of the joined batch
    assert.equal(a.numTokens, r1.numTokens);
    (r1.loss as number[]).forEach((l, i) => assert.ok(Math.abs(l - (a.loss as number[])[i]) < 1e-5, `step ${i + 1} loss ${l} vs ${(a.loss as number[])[i]}`));
    (r1.reward as number[]).forEach((x, i) => assert.ok(Math.abs(x - (a.reward as number[])[i]) < 1e-6, `step ${i + 1} reward`));
    const w1 = readF32(path.join(tmp, `${lossType}-1.bin`)), w2 = readF32(path.join(tmp, `${lossType}-2.bin`));
    assert.is(w1.length, w2.length);
    let maxDiff = 0;
    for (let i = 0; i < w1.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w1[i] - w2[i]));
    // the gradients differ only in summation order (one backward over 16 sequences vs the mean of
    // two over 8); after two AdamW steps of lr 1e-2 that is far below one step's size
    console.log(`${lossType}: max |w(1 rank) - w(2 ranks)| after 2 steps = ${maxDiff}`);
    assert.ok(maxDiff < 1e-4, `max |w1 - w2| = ${maxDiff}`);
  });
}

type Run = { hash: unknown; state: unknown; numTokens: number[]; loss: number[]; metrics: Record<string, unknown>[]; local: number[] };
// the metrics computed over the whole batch (gathered from every rank): the 1-rank run's values
const GLOBAL_METRIC = /^(reward|reward_std|frac_reward_zero_std|no_reward|rewards\/|no_reward\/|completions\/|dynamic_sampling\/)/;

/** 1 rank and 2 ranks on `cfg` (config overrides); asserts the 2 ranks' weights, state and whole-batch metrics are the 1 rank's. */
async function oneVsTwo(name: string, cfg: Record<string, unknown>, steps: number): Promise<{ r1: Run; two: Run[]; maxDiff: number }> {
  const f1 = path.join(tmp, `${name}-1.bin`), f2 = path.join(tmp, `${name}-2.bin`);
  const one = await startRanks(1, ['test/dist_train_child.ts', JSON.stringify(cfg), String(steps), f1]);
  const two = await startRanks(2, ['test/dist_train_child.ts', JSON.stringify(cfg), String(steps), f2]);
  const codes = await Promise.all([...one, ...two].map((r) => r.done));
  assert.equal(codes, [0, 0, 0], [...one, ...two].map((r) => r.stderr).join('\n'));
  const r1 = one[0].result() as unknown as Run, a = two[0].result() as unknown as Run, b = two[1].result() as unknown as Run;
  assert.equal(a.hash, b.hash);
  assert.equal(a.state, b.state);
  assert.equal(a.state, r1.state);
  assert.equal(a.numTokens, r1.numTokens);
  r1.loss.forEach((l, i) => assert.ok(Math.abs(l - a.loss[i]) < 1e-5, `${name}: step ${i + 1} loss ${l} vs ${a.loss[i]}`));
  r1.metrics.forEach((m1, i) => {
    const m2 = a.metrics[i];
    const keys = Object.keys(m1).filter((k) => GLOBAL_METRIC.test(k));
    assert.ok(keys.includes('rewards/digits/std') && keys.includes('completions/mean_terminated_length'), keys.join());
    for (const k of keys) {
      const x = m1[k] as number, y = m2[k] as number;
      assert.ok(Object.is(x, y) || Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(x)), `${name}: step ${i + 1} metric ${k}: 1 rank ${x}, 2 ranks ${y}`);
    }
  });
  const w1 = readF32(f1), w2 = readF32(f2);
  assert.is(w1.length, w2.length);
  let maxDiff = 0;
  for (let i = 0; i < w1.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w1[i] - w2[i]));
  console.log(`${name}: max |w(1 rank) - w(2 ranks)| after ${steps} steps = ${maxDiff}`);
  assert.ok(maxDiff < 1e-4, `${name}: max |w1 - w2| = ${maxDiff}`);
  return { r1, two: [a, b], maxDiff };
}

const aggLoss: Record<string, number[]> = {};
for (const lossAggMode of ['token-mean', 'seq-mean-token-mean'] as const) {
  glooTest(`lossAggMode ${lossAggMode}: 2 ranks train to the weights 1 rank reaches on the joined batch, with the whole batch's reward metrics`, async () => {
    const { r1 } = await oneVsTwo(`agg-${lossAggMode}`, { lossAggMode }, 2);
    aggLoss[lossAggMode] = r1.loss;
    // the mode takes effect (completion lengths differ, so the two normalisations differ)
    if (aggLoss['token-mean'] && aggLoss['seq-mean-token-mean'])
      assert.ok(Math.abs(aggLoss['token-mean'][0] - aggLoss['seq-mean-token-mean'][0]) > 1e-4, JSON.stringify(aggLoss));
  });
}

glooTest("scaleRewards 'batch' and normalizeAdvantages: 2 ranks use the global batch's σ (weights and metrics of 1 rank on the joined batch)", async () => {
  await oneVsTwo('scale-batch', { lossType: 'grpo', scaleRewards: 'batch' }, 2);
  await oneVsTwo('normalize', { lossType: 'dapo', normalizeAdvantages: true }, 2);
});

for (const lossType of ['dapo', 'grpo'] as const) {
  glooTest(`dynamicSampling (${lossType}): 2 ranks keep the groups 1 rank keeps on the joined batch, run the same rounds and reach its weights`, async () => {
    const { r1, two } = await oneVsTwo(`dyn-${lossType}`, { lossType, dynamicSampling: true, maxDynamicSamplingRounds: 3, batchSize: 4 }, 3);
    // the ranks' shares together are the 1 rank's kept sequences, and at some step they are
    // uneven (what the per-sequence losses' rescaling and the all-reduce of an idle rank are for)
    console.log(`dyn-${lossType}: sequences per step, 1 rank ${r1.local}, rank 0 ${two[0].local}, rank 1 ${two[1].local}`);
    r1.local.forEach((n, i) => assert.is(two[0].local[i] + two[1].local[i], n));
    assert.ok(two[0].local.some((n, i) => n !== two[1].local[i]), 'equal shares at every step');
    // the test means something only if groups were dropped (more than one round, or fewer kept)
    assert.ok(r1.metrics.some((m) => (m['dynamic_sampling/rounds'] as number) > 1 || (m['dynamic_sampling/kept_groups'] as number) < 4),
      `no group dropped: ${JSON.stringify(r1.metrics.map((m) => [m['dynamic_sampling/rounds'], m['dynamic_sampling/kept_groups'], m.frac_reward_zero_std]))}`);
  });
}

const CLI = ['lib/cli/main.ts', 'train', '--max-steps', '40', '--save-steps', '2', '--batch-size', '4', '--num-generations', '4',
  '--d-model', '16', '--n-layers', '1', '--n-heads', '2', '--d-ff', '32', '--max-seq-len', '16', '--max-completion-length', '4',
  '--digits', '1', '--ops', '+', '--train-size', '60', '--test-size', '8', '--eval-steps', '0', '--eval-limit', '4', '--eval-k', '2',
  '--progress', 'false', '--dist-check-weights'];

async function untilCheckpoint(dir: string, step: number, ms: number) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const l = latestCheckpoint(dir);
    if (l && loadCheckpoint(l).meta.step >= step) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no checkpoint of step ${step} in ${dir} after ${ms} ms`);
}

for (const fault of ['SIGKILL', 'SIGSTOP'] as const) {
  glooTest(`grpo train on 2 ranks, rank 1 ${fault === 'SIGKILL' ? 'killed' : 'stopped (hung)'} mid-run: rank 0 exits non-zero naming rank 1; the last checkpoint resumes on 1 rank`, async () => {
    const dir = path.join(tmp, `run-${fault}`);
    const ranks = await startRanks(2, [...CLI, '--output-dir', dir, '--dist-timeout', '4']);
    try {
      await untilCheckpoint(dir, 2, 120000);
      ranks[1].proc.kill(fault);
      const t0 = Date.now();
      const code = await ranks[0].done;
      const took = Date.now() - t0;
      assert.is.not(code, 0);
      assert.match(ranks[0].stderr, fault === 'SIGKILL' ? /rank 1 exited/ : /rank 1 (did not reach it within 4000 ms|stopped responding)/, ranks[0].stderr.slice(-1500));
      // bounded: the timeout (4 s), plus a step and the diagnosis
      assert.ok(took < 30000, `rank 0 took ${took} ms to give up`);
    } finally {
      ranks[1].proc.kill('SIGKILL');
      await ranks[1].done;
    }
    // rank 0 alone wrote: the run is marked failed, the latest checkpoint is complete and loads
    const marker = JSON.parse(fs.readFileSync(path.join(dir, RUN_MARKER), 'utf8'));
    assert.is(marker.status, 'failed');
    const latest = latestCheckpoint(dir)!;
    const ck = loadCheckpoint(latest);
    checkTrainerState(ck);
    const step = ck.meta.step;
    assert.ok(step >= 2 && step % 2 === 0);
    // resume with another rank count (1): completes from that step
    const r = spawnSync(process.execPath, ['--import', 'tsx', ...CLI.map((x) => (x === '40' ? String(step + 2) : x)), '--output-dir', dir, '--resume'],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, RANK: undefined, WORLD_SIZE: undefined } });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`resuming .* at step ${step}`));
    assert.is(loadCheckpoint(latestCheckpoint(dir)!).meta.step, step + 2);
  });
}

glooTest('grpo train --nproc-per-node 2: starts both ranks, rank 0 alone writes metrics and checkpoints, exit 0', () => {
  const dir = path.join(tmp, 'run-nproc');
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...CLI.map((x) => (x === '40' ? '3' : x)), '--output-dir', dir, '--nproc-per-node', '2'],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, RANK: undefined, WORLD_SIZE: undefined } });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /data parallel over 2 ranks \(torchrun/);
  const rows = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // one writer: each step once, in order, with the global token count
  assert.equal(rows.filter((x) => x.phase === 'grpo').map((x) => x.step), [1, 2, 3]);
  assert.ok(rows.every((x) => x.phase !== 'grpo' || x['time/allreduce'] >= 0));
  assert.is(loadCheckpoint(latestCheckpoint(dir)!).meta.step, 3);
  assert.is(JSON.parse(fs.readFileSync(path.join(dir, RUN_MARKER), 'utf8')).status, 'completed');
});

// The children of a process and their environment, from /proc (Linux): the launcher's ranks.
function rankPids(parent: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const m = /(?:^|\0)RANK=(\d+)\0/.exec(fs.readFileSync(`/proc/${d}/environ`, 'latin1'));
      if (m) out.set(Number(m[1]), Number(d));
    } catch {
      // the process ended while being read
    }
  }
  return out;
}

const procTest = NO_GLOO || !fs.existsSync('/proc/self/environ') ? test.skip : test;
procTest('grpo train --nproc-per-node 2, rank 1 killed mid-run: the launcher exits non-zero and rank 0 names rank 1', async () => {
  const dir = path.join(tmp, 'run-nproc-kill');
  const launcher = spawn(process.execPath, ['--import', 'tsx', ...CLI, '--output-dir', dir, '--nproc-per-node', '2', '--dist-timeout', '4'],
    { cwd: ROOT, env: { ...process.env, RANK: undefined, WORLD_SIZE: undefined }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  launcher.stderr!.on('data', (d) => (stderr += d));
  launcher.stdout!.resume();
  const done = new Promise<number | null>((r) => launcher.on('exit', (c) => r(c)));
  let pids = new Map<number, number>();
  try {
    await untilCheckpoint(dir, 2, 120000);
    pids = rankPids(launcher.pid!);
    assert.ok(pids.has(0) && pids.has(1), `ranks of the launcher: ${JSON.stringify([...pids])}`);
    process.kill(pids.get(1)!, 'SIGKILL');
    const t0 = Date.now();
    const code = await Promise.race([done, new Promise<string>((r) => setTimeout(() => r('hung'), 60000).unref())]);
    assert.ok(code !== 0 && code !== 'hung', `launcher exit: ${code}`);
    assert.ok(Date.now() - t0 < 30000, `took ${Date.now() - t0} ms`);
    assert.match(stderr, /rank 1 exited \(its connection to the store closed\)/, stderr.slice(-1500));
    assert.match(stderr, /grpo: rank 1 exited with signal SIGKILL/);
    assert.is(JSON.parse(fs.readFileSync(path.join(dir, RUN_MARKER), 'utf8')).status, 'failed');
  } finally {
    for (const pid of [...pids.values()]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (launcher.exitCode === null && launcher.signalCode === null) launcher.kill('SIGKILL');
    await done;
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
