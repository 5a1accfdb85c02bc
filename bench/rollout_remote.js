#!/usr/bin/env node
'use strict';
// Wall time per GRPO step, in-process sampling vs the remote engine to `grpo serve` in other
// processes (1 and 2 servers), on the demo's shape and on a generation-dominated one, with the
// phase breakdown. The three trainers step in turn (one step each, repeated), so that a change
// of machine load hits them alike. "sync" is what the remote engine adds outside the phases: writing the weights
// after every update and each server's reload (step_time − the sum of the phases). Per 100 steps
// is measured (100 steps run) for the demo shape and is 100 × the median step for the heavy one.
// Uses dist/ (npm run build:ts).
//   node bench/rollout_remote.js [--steps 10] [--demo-steps 100] [--out bench/results/rollout_remote.md]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execSync } = require('child_process');
const pkg = require('../dist');
const { RemoteEngine } = require('../dist/rollout/remote');

function flag(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const bin = path.join(__dirname, '..', 'dist', 'cli', 'main.js');

function serve(args) {
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`grpo serve exited ${c}: ${err}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        child.removeAllListeners('exit');
        resolve({ url: m[1], stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) });
      }
    });
  });
}

const PHASES = ['generate', 'reward', 'reference', 'forward', 'loss', 'backward', 'optimizer'];
const med = (v) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** A trainer with its engine (and servers for the remote ones), ready to step. */
async function setup(o, mode, servers, tmp) {
  const tok = new pkg.CharTokenizer();
  const task = pkg.buildTask(o);
  const model = pkg.createTransformer(pkg.modelConfig(o, tok));
  const rewards = await pkg.buildRewards(o);
  const running = [];
  let engine;
  if (mode === 'remote') {
    const modelFlags = pkg.OPTIONS.filter((s) => s.section === 'Model (built-in transformer)').flatMap((s) => [`--${pkg.flagName(s.name)}`, String(o[s.name])]);
    for (let i = 0; i < servers; i++) running.push(await serve(['--threads', '2', ...modelFlags, '--seed', String(o.seed)]));
    engine = new RemoteEngine({ urls: running.map((s) => s.url), tokenizer: tok, vocabSize: model.vocabSize, weightsDir: path.join(tmp, `w-${mode}-${servers}`), timeout: 600 });
    await engine.syncWeights(model, 0);
  }
  const tr = new pkg.GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards.fns, config: { ...o, rewardWeights: rewards.weights }, engine });
  await tr.step(); // warm-up
  return {
    tr, rows: [], wall: 0,
    async close() {
      await engine?.close();
      for (const s of running) await s.stop();
      model.dispose();
      tr.refModel && tr.refModel.dispose();
      await pkg.disposeRewards(rewards);
    },
  };
}

function summary(t, steps) {
  const rows = t.rows;
  const r = { steps, wall: t.wall, step: med(rows.map((x) => x.step_time)), tokens: med(rows.map((x) => x['completions/mean_length'])) };
  for (const p of PHASES) r[p] = med(rows.map((x) => x[`time/${p}`]));
  r.sync = med(rows.map((x) => x.step_time - PHASES.reduce((a, p) => a + x[`time/${p}`], 0)));
  return r;
}

/** The engines side by side: one step of each in turn, so they see the same machine load. */
async function compare(o, steps, tmp) {
  const names = ['in-process', 'remote, 1 grpo serve', 'remote, 2 grpo serve'];
  const ts = [await setup(o, 'in-process', 0, tmp), await setup(o, 'remote', 1, tmp), await setup(o, 'remote', 2, tmp)];
  for (let i = 0; i < steps; i++)
    for (const t of ts) {
      const t0 = performance.now();
      t.rows.push(await t.tr.step());
      t.wall += (performance.now() - t0) / 1000;
    }
  for (const t of ts) await t.close();
  return names.map((n, i) => [n, summary(ts[i], steps)]);
}

async function main() {
  const steps = +flag('steps', 10);
  const demoSteps = +flag('demo-steps', 100);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-remote-'));
  const configs = [
    { name: 'demo shape (defaults: 115k parameters, B=32 × G=8, ≤ 8 tokens, β=0.04)', steps: demoSteps, o: { beta: 0.04, ops: ['+'] } },
    {
      // long completions of few sequences: token-by-token decoding costs more than the one batched
      // training pass over the same tokens (generation ≈ 50–60% of the in-process step)
      name: 'generation-dominated (the demo model, B=1 × G=4, ≤ 240 tokens, β=0)', steps,
      o: { beta: 0, ops: ['+'], maxSeqLen: 256, maxCompletionLength: 240, batchSize: 1, numGenerations: 4, rewards: ['format'] },
    },
  ];
  const lines = [];
  const load = execSync('uptime').toString().trim();
  lines.push(`Machine: ${os.cpus()[0].model.trim()} (${os.cpus().length} logical CPUs), node ${process.version}, ${pkg.numThreads()} kernel threads in the trainer, 2 in each server (--threads 2).`);
  lines.push(`Load at start: \`${load}\``);
  lines.push(`Command: \`node bench/rollout_remote.js --steps ${steps} --demo-steps ${demoSteps}\``);
  for (const c of configs) {
    const o = pkg.withDefaults({ seed: 1, maxSteps: c.steps + 1, evalSteps: 0, progress: false, ...c.o });
    const res = await compare(o, c.steps, tmp);
    const base = res[0][1].step;
    lines.push('', `## ${c.name}`, '', `median of ${c.steps} steps after 1 warm-up, the three engines stepping in turn (one step each, repeated) so that they see the same load; per 100 steps: ${c.steps >= 100 ? 'the measured wall time of the 100 steps' : '100 × the median step'}`, '');
    lines.push(`| engine | step ms | ×in-process | per 100 steps s | ${PHASES.join(' | ')} | sync |`);
    lines.push(`|---|---:|---:|---:|${PHASES.map(() => '---:').join('|')}|---:|`);
    for (const [n, r] of res) {
      const per100 = c.steps >= 100 ? (r.wall * 100) / c.steps : r.step * 100;
      lines.push(`| ${n} | ${(1000 * r.step).toFixed(1)} | ${(base / r.step).toFixed(2)} | ${per100.toFixed(1)} | ${PHASES.map((p) => (1000 * r[p]).toFixed(1)).join(' | ')} | ${(1000 * r.sync).toFixed(1)} |`);
    }
    lines.push('', `(mean completion length ${res[0][1].tokens.toFixed(1)} tokens in-process, ${res[1][1].tokens.toFixed(1)} remote: the same samples)`);
    console.log(lines.join('\n'));
  }
  lines.push('', `Load at end: \`${execSync('uptime').toString().trim()}\``);
  const out = flag('out');
  if (out) fs.writeFileSync(path.resolve(out), lines.join('\n') + '\n');
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
