#!/usr/bin/env node
'use strict';
// What running a --reward-module in its worker thread (so that a hung function can be stopped,
// lib/rewards/isolated.ts) costs per reward call, against the same module loaded in-process:
// scoreRewards on one GRPO batch (the demo's S = B·G = 256 completions), calls alternating,
// median of --calls. Uses the built package (npm run build:ts).
//   node bench/reward_worker.js [--calls 200] [--s 256] [--out bench/results/reward_worker.md]
const fs = require('fs');
const os = require('os');
const path = require('path');
const pkg = require('../dist');

function flag(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

async function main() {
  const calls = +flag('calls', 200);
  const S = +flag('s', 256);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-reward-'));
  const mod = path.join(dir, 'len.js');
  fs.writeFileSync(mod, 'module.exports = { len: (c) => c.map((s) => s.length / 8) };\n');
  const task = pkg.arithmeticTask({ seed: 1, digits: 2, ops: ['+'], trainSize: S, testSize: 10 });
  const ex = task.train.slice(0, S);
  const ctx = {
    completions: ex.map((e) => `${e.answer} ok`), prompts: ex.map((e) => e.prompt), examples: ex,
    completionLengths: ex.map(() => 4), truncated: ex.map(() => false), task, maxCompletionLength: 8,
  };
  const inproc = pkg.loadRewardModule(mod);
  const iso = await pkg.loadRewardModuleIsolated(mod, { timeout: 120 });
  const a = [], b = [];
  for (let r = 0; r < calls; r++) {
    let t = performance.now();
    await pkg.scoreRewards(inproc, ctx, { timeout: 120 });
    a.push(performance.now() - t);
    t = performance.now();
    await pkg.scoreRewards(iso, ctx, { timeout: 120 });
    b.push(performance.now() - t);
  }
  await iso[0].dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  const med = (v) => v.sort((x, y) => x - y)[v.length >> 1];
  const lines = [
    `reward module in-process vs in its worker thread: ${os.cpus()[0].model.trim()} (${os.cpus().length} logical CPUs), node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`,
    `scoreRewards on S = ${S} completions, one module function, ${calls} calls each, alternating`,
    '',
    '| where the function runs | median ms per call |',
    '|---|---:|',
    `| in-process (loadRewardModule) | ${med(a).toFixed(3)} |`,
    `| worker thread (loadRewardModuleIsolated, the CLI's) | ${med(b).toFixed(3)} |`,
  ];
  const text = lines.join('\n');
  console.log(text);
  const out = flag('out');
  if (out) fs.writeFileSync(path.resolve(out), text + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
