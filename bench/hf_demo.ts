// Second learning demo: GRPO trains a tiny Qwen3-architecture model — a real HF checkpoint
// folder (config.json, model.safetensors, tokenizer.json with a byte-level BPE) loaded through
// the same code path as a downloaded one — on 1-digit addition from a random init
// (a short supervised warm start first, as demo 1), and the reward and held-out accuracy are measured before and after. Writes bench/results/hf_demo.md.
//   node --import tsx bench/hf_demo.ts [--steps 60]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { loadHfCheckpoint } from '../lib/models/hf';
import { arithmeticTask } from '../lib/tasks';
import { accuracyReward, formatReward } from '../lib/rewards';
import { evaluate } from '../lib/eval';
import { supervisedFineTune } from '../lib/trainer/sft';
import { randomWeights, writeHfCheckpoint, writeTinyTokenizer } from '../test/hf_helpers';

const args = process.argv.slice(2);
const STEPS = args.includes('--steps') ? Number(args[args.indexOf('--steps') + 1]) : 200;
const SFT = args.includes('--sft-steps') ? Number(args[args.indexOf('--sft-steps') + 1]) : 150;

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hf-demo-'));
  const V = writeTinyTokenizer(dir);
  const cfg = { arch: 'Qwen3ForCausalLM' as const, V, d: 48, nL: 2, H: 4, KVH: 2, hd: 12, F: 96, eps: 1e-6, theta: 10000, tied: true };
  // small init (std ≈ 0.3·… from the test helper, scaled down) so the model starts near uniform
  const w = randomWeights(cfg, 1);
  for (const [k, t] of w) if (!k.endsWith('norm.weight')) for (let i = 0; i < t.length; i++) t[i] *= 0.2;
  writeHfCheckpoint(dir, cfg, w);
  const { model, tokenizer } = await loadHfCheckpoint(dir, { maxSeqLen: 32 });
  tokenizer.useChatTemplate = false; // raw prompts: "3+4=" -> completion
  const task = arithmeticTask({ seed: 1, digits: 1, ops: ['+'], trainSize: 100, testSize: 40 });
  const evalOpts = { k: 4, limit: 40, temperature: 1, maxCompletionLength: 4, seed: 99 };
  const t0 = performance.now();
  const init = await evaluate(model, tokenizer, task, evalOpts);
  // a short supervised warm start (as demo 1), stopped early so GRPO has room to improve
  await supervisedFineTune(model, tokenizer, task.train, { steps: SFT, batchSize: 16, learningRate: 1e-2, seed: 3 });
  const before = await evaluate(model, tokenizer, task, evalOpts);
  const tr = new GrpoTrainer({
    model, tokenizer, task, rewardFunctions: [accuracyReward(), formatReward()],
    config: { maxSteps: STEPS, batchSize: 8, numGenerations: 8, maxCompletionLength: 4, learningRate: 3e-3, warmupRatio: 0, seed: 5 },
  });
  const rewards: number[] = [], acc: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const m = await tr.step();
    rewards.push(m.reward as number);
    acc.push(m['rewards/accuracy/mean'] as number);
  }
  const after = await evaluate(model, tokenizer, task, evalOpts);
  const sec = (performance.now() - t0) / 1000;
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const lines = [
    '# Demo 2: GRPO on a tiny Qwen3-architecture HF checkpoint',
    '',
    `Command: \`node --import tsx bench/hf_demo.ts --steps ${STEPS} --sft-steps ${SFT}\`; ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (shared box); ${sec.toFixed(0)} s total.`,
    `Model: Qwen3ForCausalLM, hidden 48, 2 layers, 4/2 heads, head_dim 12, vocab ${V} (byte-level BPE tokenizer.json), tied, random init; ${model.numParameters} parameters.`,
    `Warm start: ${SFT} supervised steps × 16 (held-out pass@1 from random init: ${(100 * init['pass@1']).toFixed(1)}%).`,
    `Task: 1-digit addition, rewards accuracy + format, B=8 prompts × G=8, ≤ 4 tokens, lr 3e-3, ${STEPS} steps.`,
    '',
    '| | first 10 steps | last 10 steps |',
    '|---|---|---|',
    `| mean reward | ${mean(rewards.slice(0, 10)).toFixed(3)} | ${mean(rewards.slice(-10)).toFixed(3)} |`,
    `| mean accuracy reward | ${mean(acc.slice(0, 10)).toFixed(3)} | ${mean(acc.slice(-10)).toFixed(3)} |`,
    '',
    `Held-out (40 prompts × 4 samples), after the warm start → after GRPO: pass@1 ${(100 * before['pass@1']).toFixed(1)}% → ${(100 * after['pass@1']).toFixed(1)}% (${(100 * (after['pass@1'] - before['pass@1'])).toFixed(1)} points), format rate ${(100 * before.formatRate).toFixed(1)}% → ${(100 * after.formatRate).toFixed(1)}%.`,
  ];
  console.log(lines.join('\n'));
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'hf_demo.md'), lines.join('\n') + '\n');
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
