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
const arg = (k: string, d: number) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : d);
const STEPS = arg('--steps', 300);
const SFT_MAX = arg('--sft-steps', 2000);
const SFT_STOP = arg('--sft-stop', 0.2);
const DIGITS = arg('--digits', 2);
const D = arg('--d', 64);
const LAYERS = arg('--layers', 2);
const LR = arg('--lr', 1e-3);
const G = arg('--G', 8);
const BATCH = arg('--batch', 32);
const BETA = arg('--beta', 0.04);
const EVAL_EVERY = arg('--eval-every', 50);
const TEST = arg('--test', 200);
const SEED = arg('--seed', 1);
const OPS = (args.includes('--ops') ? args[args.indexOf('--ops') + 1] : '+').split('') as ('+' | '-' | '*')[];
const WRITE = !args.includes('--no-write');

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hf-demo-'));
  const V = writeTinyTokenizer(dir);
  const H = 4, KVH = 2, hd = D / H;
  const cfg = { arch: 'Qwen3ForCausalLM' as const, V, d: D, nL: LAYERS, H, KVH, hd, F: 4 * D, eps: 1e-6, theta: 10000, tied: true };
  // small init (the test helper's std 0.3, scaled down) so the model starts near uniform
  const w = randomWeights(cfg, SEED);
  for (const [k, t] of w) if (!k.endsWith('norm.weight')) for (let i = 0; i < t.length; i++) t[i] *= 0.2;
  writeHfCheckpoint(dir, cfg, w);
  const { model, tokenizer } = await loadHfCheckpoint(dir, { maxSeqLen: 32 });
  tokenizer.useChatTemplate = false; // raw prompts: "3+4=" -> completion
  const task = arithmeticTask({ seed: 1, digits: DIGITS, ops: OPS, trainSize: 5000, testSize: TEST });
  const evalOpts = { k: 8, limit: TEST, temperature: 1, maxCompletionLength: 8, seed: 99 };
  const t0 = performance.now();
  const init = await evaluate(model, tokenizer, task, evalOpts);
  // the supervised warm start of demo 1: stopped as soon as the sampled accuracy on 64 training
  // prompts (4 samples each, checked every 25 steps) reaches SFT_STOP — a policy that sometimes
  // succeeds, so GRPO's groups carry signal
  let probeAcc = 0;
  const sft = await supervisedFineTune(model, tokenizer, task.train, {
    steps: SFT_MAX, batchSize: 32, learningRate: 3e-3, seed: 3,
    shouldStop: async (step) => {
      if (step % 25 !== 0) return false;
      probeAcc = (await evaluate(model, tokenizer, task, { k: 4, limit: 64, temperature: 1, maxCompletionLength: 8, seed: 7 }, task.train))['pass@1'];
      return probeAcc >= SFT_STOP;
    },
  });
  const sftSteps = sft.steps;
  console.error(`warm start: ${sftSteps} steps, sampled training accuracy ${(100 * probeAcc).toFixed(1)}%`);
  const before = await evaluate(model, tokenizer, task, evalOpts);
  const tSft = (performance.now() - t0) / 1000;
  const tr = new GrpoTrainer({
    model, tokenizer, task, rewardFunctions: [accuracyReward(), formatReward()],
    config: { maxSteps: STEPS, batchSize: BATCH, numGenerations: G, maxCompletionLength: 8, learningRate: LR, beta: BETA, seed: 5 },
  });
  const rewards: number[] = [], acc: number[] = [];
  const curve: { step: number; pass1: number; train: number }[] = [{ step: 0, pass1: before['pass@1'], train: NaN }];
  for (let i = 0; i < STEPS; i++) {
    const m = await tr.step();
    rewards.push(m.reward as number);
    acc.push(m['rewards/accuracy/mean'] as number);
    if ((i + 1) % EVAL_EVERY === 0 || i + 1 === STEPS) {
      const e = i + 1 === STEPS ? null : await evaluate(model, tokenizer, task, evalOpts);
      curve.push({ step: i + 1, pass1: e ? e['pass@1'] : NaN, train: mean(acc.slice(-EVAL_EVERY)) });
      if (!e) break;
      console.error(`step ${i + 1}: held-out pass@1 ${(100 * e['pass@1']).toFixed(1)}%, train accuracy (last ${EVAL_EVERY}) ${mean(acc.slice(-EVAL_EVERY)).toFixed(3)}`);
    }
  }
  const after = await evaluate(model, tokenizer, task, evalOpts);
  curve[curve.length - 1].pass1 = after['pass@1'];
  const sec = (performance.now() - t0) / 1000;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const cmd = `node --import tsx bench/hf_demo.ts ${args.filter((a) => a !== '--no-write').join(' ')}`.trim();
  const lines = [
    '# Demo 2: GRPO on a tiny Qwen3-architecture HF checkpoint',
    '',
    `Command: \`${cmd}\`; ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (shared box); ${sec.toFixed(0)} s total (warm start and first evaluations ${tSft.toFixed(0)} s).`,
    `Model: Qwen3ForCausalLM, hidden ${D}, ${LAYERS} layers, ${H}/${KVH} heads, head_dim ${hd}, vocab ${V} (byte-level BPE tokenizer.json), tied, random init; ${model.numParameters} parameters; trained through the hidden-state path (grpoLossFromHidden).`,
    `Task: ${DIGITS}-digit arithmetic (${OPS.join(' ')}): ${task.train.length} training problems, ${task.test.length} held-out problems (never trained on); rewards accuracy + format.`,
    `Warm start (as demo 1): supervised steps of 32 at lr 3e-3 until the sampled accuracy on 64 training prompts reached ${pct(SFT_STOP)}: ${sftSteps} steps (${pct(probeAcc)}); held-out pass@1 from random init: ${pct(init['pass@1'])}.`,
    `GRPO: B=${BATCH} prompts × G=${G}, temperature 1, ≤ 8 tokens, β = ${BETA} (k3), dapo, AdamW lr ${LR} (5% warm-up, cosine to 10%), ${STEPS} steps.`,
    `Held-out: ${task.test.length} prompts × ${evalOpts.k} samples at temperature 1 (pass@1 = mean correct fraction).`,
    '',
    '| GRPO step | held-out pass@1 | train accuracy reward (steps since last row) |',
    '|---|---|---|',
    ...curve.map((c) => `| ${c.step} | ${pct(c.pass1)} | ${Number.isNaN(c.train) ? '—' : c.train.toFixed(3)} |`),
    '',
    `Held-out after the warm start → after GRPO: pass@1 ${pct(before['pass@1'])} → ${pct(after['pass@1'])} (${(100 * (after['pass@1'] - before['pass@1'])).toFixed(1)} points), pass@8 ${pct(before['pass@k'])} → ${pct(after['pass@k'])}, format rate ${pct(before.formatRate)} → ${pct(after.formatRate)}.`,
    `Mean reward, first 10 → last 10 steps: ${mean(rewards.slice(0, 10)).toFixed(3)} → ${mean(rewards.slice(-10)).toFixed(3)}.`,
  ];
  console.log(lines.join('\n'));
  if (WRITE) {
    fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    fs.writeFileSync(path.join(__dirname, 'results', 'hf_demo.md'), lines.join('\n') + '\n');
  }
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}
const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
