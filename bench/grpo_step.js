#!/usr/bin/env node
'use strict';
// One GRPO step (generation, rewards, reference pass, forward, fused loss, backward, update),
// broken down by phase, with tokens/s. Uses the built package (npm run build:ts) and the demo's
// model and batch shape unless told otherwise: any trainer option can be given as a flag.
//   node bench/grpo_step.js [--steps 5] [--out bench/results/grpo_step.md] [--init runs/demo/sft]
//                           [--beta 0.04] [--d-model 128 --n-layers 3 ...] [--threads N]
const fs = require('fs');
const os = require('os');
const path = require('path');
const pkg = require('../dist');

function flag(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

async function main() {
  const steps = +flag('steps', 5);
  const threads = +flag('threads', 0);
  if (threads > 0) pkg.setNumThreads(threads);
  const given = { beta: 0.04, seed: 1 };
  for (let i = 2; i < process.argv.length; i += 2) {
    const spec = pkg.optionSpec(process.argv[i].replace(/^--/, ''));
    if (spec && !['steps', 'out', 'init', 'threads'].includes(spec.name)) given[spec.name] = pkg.coerceOption(spec, process.argv[i + 1], 'flag');
  }
  const o = pkg.withDefaults({ ...given, maxSteps: steps + 1 });
  const tok = new pkg.CharTokenizer();
  const task = pkg.buildTask(o);
  const model = flag('init') ? pkg.loadOrCreateModel({ ...o, init: flag('init') }, tok) : pkg.createTransformer(pkg.modelConfig(o, tok));
  const rewards = await pkg.buildRewards(o);
  const tr = new pkg.GrpoTrainer({ model, tokenizer: tok, task, rewardFunctions: rewards.fns, config: { ...o, rewardWeights: rewards.weights } });
  await tr.step(); // warm-up
  const rows = [];
  for (let i = 0; i < steps; i++) rows.push(await tr.step());
  const med = (k) => {
    const v = rows.map((r) => r[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const phases = ['generate', 'reward', 'reference', 'forward', 'loss', 'backward', 'optimizer'];
  const S = o.batchSize * o.numGenerations;
  const genTok = med('completions/mean_length') * S;
  const total = med('step_time');
  const lines = [];
  lines.push(`GRPO step on ${os.cpus()[0].model.trim()} (${os.cpus().length} logical CPUs), ${pkg.numThreads()} kernel threads, node ${process.version}`);
  lines.push(`model: ${model.numParameters} parameters (dModel ${o.dModel}, ${o.nLayers} layers, ${o.nHeads} heads, dFF ${o.dFF}, vocab ${tok.vocabSize});` +
    ` batch: B=${o.batchSize} prompts × G=${o.numGenerations} = ${S} sequences, ≤ ${o.maxCompletionLength} completion tokens, β=${o.beta}, μ=${o.numIterations}; median of ${steps} steps after 1 warm-up`);
  lines.push('');
  lines.push('| phase | median ms | share |');
  lines.push('|---|---:|---:|');
  for (const p of phases) lines.push(`| ${p} | ${(1000 * med(`time/${p}`)).toFixed(1)} | ${((100 * med(`time/${p}`)) / total).toFixed(1)}% |`);
  lines.push(`| **step total** | **${(1000 * total).toFixed(1)}** | |`);
  lines.push('');
  lines.push(`generated tokens/s: ${med('tokens_per_second').toFixed(0)} (≈ ${genTok.toFixed(0)} completion tokens per step); ` +
    `generation alone: ${(genTok / med('time/generate')).toFixed(0)} tokens/s`);
  const text = lines.join('\n');
  console.log(text);
  const out = flag('out');
  if (out) fs.writeFileSync(path.resolve(out), text + '\n');
  model.dispose();
  tr.refModel && tr.refModel.dispose();
  await pkg.disposeRewards(rewards);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
