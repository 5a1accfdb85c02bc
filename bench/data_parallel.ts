// Data-parallel training on this machine (lib/parallel/): the all-reduce of a gradient-sized
// float32 buffer between 2 ranks over loopback (Gloo), and one GRPO step on 1 rank vs 2 ranks,
// phase by phase. Each rank is its own process, started here with torchrun's environment.
//   node --import tsx bench/data_parallel.ts [--steps 12] [--reps 30] [--out bench/results/data_parallel.md]
import * as fs from 'fs';
import * as os from 'os';
import { spawn } from 'child_process';
import { execSync } from 'child_process';
import { freePort } from '../lib/parallel/launch';
import { distEnv } from '../lib/parallel/env';
import { ProcessGroup } from '../lib/parallel/process_group';
import { DataParallel } from '../lib/parallel/data_parallel';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { CharTokenizer, createTransformer } from '../lib/models';
import { arithmeticTask } from '../lib/tasks';
import { accuracyReward, formatReward } from '../lib/rewards';
import { setNumThreads } from '../lib/index';

const flag = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// the demo's model and batch (lib/trainer/config.ts defaults; B = 32 as `npm start`)
const tok = new CharTokenizer();
const modelCfg = { vocabSize: tok.vocabSize, dModel: 64, nLayers: 2, nHeads: 4, dFF: 256, maxSeqLen: 32, seed: 42 };

async function rankMain(job: { kind: string; sizes?: number[]; reps?: number; steps?: number; threads?: number }) {
  const e = distEnv();
  if (job.threads) setNumThreads(job.threads);
  const pg = await ProcessGroup.init({ ...e, timeoutMs: 120000 });
  const res: Record<string, unknown> = { rank: e.rank };
  if (job.kind === 'allreduce') {
    const rows: { n: number; ms: number[] }[] = [];
    for (const n of job.sizes!) {
      const a = new Float32Array(n).fill(1);
      const ms: number[] = [];
      for (let r = 0; r < job.reps! + 2; r++) {
        await pg.barrier();
        const t = performance.now();
        await pg.allReduce(a, 'avg');
        if (r >= 2) ms.push(performance.now() - t);
      }
      rows.push({ n, ms });
    }
    res.rows = rows;
  } else {
    const task = arithmeticTask({ seed: 42, digits: 2, ops: ['+', '-'], trainSize: 5000, testSize: 10 });
    const model = createTransformer(modelCfg);
    const dist = e.worldSize > 1 ? new DataParallel(pg) : undefined;
    const trainer = new GrpoTrainer({
      model, tokenizer: tok, task, rewardFunctions: [accuracyReward(), formatReward()],
      config: { maxSteps: job.steps!, batchSize: 32, numGenerations: 8, maxCompletionLength: 8, beta: 0.04, seed: 42 },
      dist,
    });
    const steps: Record<string, number>[] = [];
    for (let s = 0; s < job.steps!; s++) {
      await pg.barrier();
      const t = performance.now();
      const m = await trainer.step();
      const ph: Record<string, number> = { wall: performance.now() - t };
      for (const [k, v] of Object.entries(m)) if (k.startsWith('time/')) ph[k.slice(5)] = (v as number) * 1000;
      steps.push(ph);
    }
    res.steps = steps.slice(1);  // the first is a warm-up
    res.numParameters = model.numParameters;
    model.dispose();
    trainer.refModel?.dispose();
  }
  await pg.barrier();
  await pg.close();
  process.stdout.write('RESULT ' + JSON.stringify(res) + '\n');
}

async function run(world: number, job: object): Promise<Record<string, unknown>[]> {
  const port = await freePort();
  const outs = await Promise.all(Array.from({ length: world }, (_, r) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', __filename, '--rank-job', JSON.stringify(job)], {
      env: { ...process.env, RANK: String(r), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (c) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (c !== 0 || !line) reject(new Error(`rank ${r} exited ${c}`));
      else resolve(JSON.parse(line.slice(7)));
    });
  })));
  return outs;
}

async function main() {
  const ji = process.argv.indexOf('--rank-job');
  if (ji >= 0) return rankMain(JSON.parse(process.argv[ji + 1]));
  const steps = +flag('steps', '12'), reps = +flag('reps', '30');
  const outFile = flag('out', 'bench/results/data_parallel.md');
  const P = createTransformer(modelCfg).numParameters;
  const load0 = os.loadavg();
  const sizes = [P, 1 << 20, 1 << 22, 1 << 24];
  const ar = (await run(2, { kind: 'allreduce', sizes, reps }))[0].rows as { n: number; ms: number[] }[];
  // step time: 1 rank × 1 thread, 1 rank × 2 threads, 2 ranks × 1 thread, side by side in one run
  const cfgs = [{ name: '1 rank × 1 thread', world: 1, threads: 1 }, { name: '1 rank × 2 threads', world: 1, threads: 2 }, { name: '2 ranks × 1 thread', world: 2, threads: 1 }];
  const stepRes: { name: string; phases: Record<string, number> }[] = [];
  for (const c of cfgs) {
    const r = (await run(c.world, { kind: 'step', steps, threads: c.threads }))[0].steps as Record<string, number>[];
    const keys = Object.keys(r[0]);
    stepRes.push({ name: c.name, phases: Object.fromEntries(keys.map((k) => [k, median(r.map((s) => s[k] ?? 0))])) });
  }
  const load1 = os.loadavg();
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  let gloo = '';
  try {
    gloo = execSync("dpkg-query -W -f='${Version}' libgloo-dev 2>/dev/null").toString();
  } catch {
    gloo = '?';
  }
  const L: string[] = [];
  L.push('# Data-parallel training: all-reduce and step time on one machine', '');
  L.push(`\`node --import tsx bench/data_parallel.ts --steps ${steps} --reps ${reps}\` — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${cpu}, node ${process.version}, libgloo-dev ${gloo}.`);
  L.push(`Load average before / after: ${load0.map((x) => x.toFixed(1)).join(' ')} / ${load1.map((x) => x.toFixed(1)).join(' ')} (the box is shared with other builds and tests: read ratios, not absolute times). Each rank is its own process; ranks talk over loopback TCP (Gloo), rendezvous through lib/parallel/store.ts.`, '');
  L.push(`## All-reduce ('avg', float32) between 2 ranks, median of ${reps}`, '');
  L.push('| elements | MiB | median ms | min ms | algbw GB/s | busbw GB/s |', '|---:|---:|---:|---:|---:|---:|');
  for (const r of ar) {
    const bytes = r.n * 4, m = median(r.ms), mn = Math.min(...r.ms);
    L.push(`| ${r.n.toLocaleString('en-US')}${r.n === P ? ' (the demo model\'s gradient)' : ''} | ${(bytes / 2 ** 20).toFixed(2)} | ${m.toFixed(3)} | ${mn.toFixed(3)} | ${(bytes / m / 1e6).toFixed(2)} | ${((bytes / m / 1e6) * 2 * (2 - 1) / 2).toFixed(2)} |`);
  }
  L.push('', 'algbw = bytes / time; busbw = algbw · 2(W−1)/W (the bytes each rank sends and receives in a ring all-reduce), W = 2.', '');
  L.push(`## One GRPO step: the demo's shape (${P.toLocaleString('en-US')}-parameter transformer, B = 32 prompts × G = 8 over all ranks, ≤ 8 tokens, β = 0.04, random init), median of ${steps - 1} steps after a warm-up, rank 0's phases (ms)`, '');
  const phaseKeys = Object.keys(stepRes[2].phases).filter((k) => k !== 'wall');
  L.push(`| configuration | ${phaseKeys.join(' | ')} | **step (wall)** |`, `|---|${phaseKeys.map(() => '---:').join('|')}|---:|`);
  for (const s of stepRes) L.push(`| ${s.name} | ${phaseKeys.map((k) => (s.phases[k] ?? 0).toFixed(1)).join(' | ')} | **${s.phases.wall.toFixed(1)}** |`);
  L.push('', `Speed-up of 2 ranks over 1 rank × 1 thread: ${(stepRes[0].phases.wall / stepRes[2].phases.wall).toFixed(2)}×; over 1 rank × 2 threads (the same cores): ${(stepRes[1].phases.wall / stepRes[2].phases.wall).toFixed(2)}×.`);
  L.push('"allreduce" is the gradient all-reduce of the update (one per step, μ = 1); a 2-rank step\'s other phases each handle half the groups. The reduction of metrics and the token count (3 tiny all-reduces) fall under the step total only.');
  const text = L.join('\n') + '\n';
  fs.writeFileSync(outFile, text);
  process.stdout.write(text);
}
main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
