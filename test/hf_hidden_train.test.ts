// The trainer's hidden-state path (PolicyModel.forwardHidden / backwardHidden / outputHead +
// grpoLossFromHidden, no N×V logits) against its logits path (forward + grpoLossFromLogits +
// backward): one GRPO step from the same weights, batch and seeds must give the same weights,
// for a tiny Qwen2 (untied head, q/k/v biases) and a tiny Llama (tied head, GQA), LoRA and full
// fine-tuning, with a KL term (the reference log-probs go through the same path) and with
// micro-batches averaged (lossType 'grpo', the scaled head gradient), and with one-step-off async
// rollouts and the rollout IS correction (two steps: the second trains on the snapshot's samples).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { HfCausalLM, HfTokenizer, loadHfModel } from '../lib/models/hf';
import { hasHiddenPath } from '../lib/models/policy';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { arithmeticTask } from '../lib/tasks';
import { rng } from './helpers';
import { ARCHS, randomWeights, writeHfCheckpoint, writeTinyTokenizer } from './hf_helpers';
import { digitsReward } from './trainer_setup';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hidden-train-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const task = arithmeticTask({ seed: 1, digits: 1, ops: ['+'], trainSize: 30, testSize: 4 });
const lora = { r: 2, alpha: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 5 };

function checkpoint(arch: 'qwen2' | 'llama'): { dir: string; tok: HfTokenizer } {
  const dir = path.join(tmp, arch);
  if (!fs.existsSync(dir)) {
    const V = writeTinyTokenizer(dir);
    const cfg = { ...ARCHS[arch], V };
    writeHfCheckpoint(dir, cfg, randomWeights(cfg, arch === 'qwen2' ? 11 : 12));
  }
  const tok = HfTokenizer.fromDir(dir);
  tok.useChatTemplate = false;
  return { dir, tok };
}

async function model(dir: string, withLora: boolean): Promise<HfCausalLM> {
  const m = await loadHfModel(dir, { maxSeqLen: 24, lora: withLora ? lora : undefined });
  if (withLora) {
    // random B (PEFT starts it at zero, which would leave A without a gradient)
    const sd = m.stateDict();
    const r = rng(3);
    for (const [k, t] of sd) if (k.endsWith('lora_B.weight')) for (let i = 0; i < t.data.length; i++) t.data[i] = 0.3 * (2 * r() - 1);
    m.loadStateDict(sd);
  }
  return m;
}

async function oneStep(arch: 'qwen2' | 'llama', withLora: boolean, hiddenPath: boolean, cfg: Record<string, unknown>, steps = 1) {
  const { dir, tok } = checkpoint(arch);
  const m = await model(dir, withLora);
  const calls = { forward: 0, forwardHidden: 0 };
  const fwd = m.forward.bind(m), fh = m.forwardHidden.bind(m);
  m.forward = (...a: Parameters<typeof m.forward>) => (calls.forward++, fwd(...a));
  m.forwardHidden = (...a: Parameters<typeof m.forwardHidden>) => (calls.forwardHidden++, fh(...a));
  const before = m.stateDict();
  // the gradients the optimiser step sees
  let grads = new Map<string, { data: Float32Array }>();
  const step = m.step.bind(m);
  m.step = (o) => ((grads = m.gradients()), step(o));
  const tr = new GrpoTrainer({
    model: m, tokenizer: tok, task, rewardFunctions: [digitsReward], hiddenPath,
    refModel: withLora ? m.referenceModel() : undefined,
    config: { maxSteps: 1, batchSize: 2, numGenerations: 3, maxCompletionLength: 5, learningRate: 1e-2, warmupRatio: 0, seed: 4, ...cfg },
  });
  let metrics = await tr.step();
  for (let s = 1; s < steps; s++) metrics = await tr.step();
  await tr.close();
  const after = m.stateDict();
  m.dispose();
  return { before, after, metrics, calls, grads };
}

const cases: [string, 'qwen2' | 'llama', boolean, Record<string, unknown>, number?][] = [
  ['qwen2 full, KL', 'qwen2', false, { beta: 0.1 }],
  ['qwen2 LoRA, KL', 'qwen2', true, { beta: 0.1 }],
  ['llama full (tied head), micro-batches averaged', 'llama', false, { lossType: 'grpo', gradientAccumulationSteps: 2, beta: 0.05 }],
  ['llama LoRA (tied head)', 'llama', true, { topEntropyQuantile: 0.5 }],
  // the second step trains on samples drawn (and scored with behaviour log-probs) before the first update
  ['qwen2 full, async + rollout IS token_truncate, 2 steps', 'qwen2', false,
    { maxSteps: 2, asyncRollouts: true, rolloutImportanceSamplingMode: 'token_truncate', rolloutImportanceSamplingThreshold: 1.001 }, 2],
  ['llama LoRA (tied head), async + rollout IS sequence_mask + KL, 2 steps', 'llama', true,
    { maxSteps: 2, asyncRollouts: true, rolloutImportanceSamplingMode: 'sequence_mask', rolloutImportanceSamplingThreshold: 0.95, beta: 0.05 }, 2],
];

for (const [name, arch, withLora, cfg, steps] of cases) {
  test(`hidden path == logits path after ${steps ?? 1} step(s): ${name}`, async () => {
    const h = await oneStep(arch, withLora, true, cfg, steps);
    const l = await oneStep(arch, withLora, false, cfg, steps);
    // the paths really differ: no logits forward on the hidden path, no hidden forward on the other
    assert.is(h.calls.forward, 0);
    assert.ok(h.calls.forwardHidden >= 1);
    assert.is(l.calls.forwardHidden, 0);
    assert.ok(l.calls.forward >= 1);
    for (const k of ['loss', 'entropy', 'grad_norm'])
      assert.ok(Math.abs((h.metrics[k] as number) - (l.metrics[k] as number)) <= 1e-5 * (1 + Math.abs(l.metrics[k] as number)), `${k}: ${h.metrics[k]} vs ${l.metrics[k]}`);
    if (cfg.beta) assert.ok(Math.abs((h.metrics.kl as number) - (l.metrics.kl as number)) <= 1e-6 + 1e-4 * Math.abs(l.metrics.kl as number), `kl ${h.metrics.kl} vs ${l.metrics.kl}`);
    if (cfg.rolloutImportanceSamplingMode) {
      for (const k of ['rollout_is/weight_mean', 'rollout_is/clipped_frac']) {
        assert.type(l.metrics[k], 'number', k);
        assert.ok(Math.abs((h.metrics[k] as number) - (l.metrics[k] as number)) <= 1e-5, `${k}: ${h.metrics[k]} vs ${l.metrics[k]}`);
      }
      // off-policy by one update: the IS weights are not all 1, and some ratios pass C
      assert.ok(Math.abs((l.metrics['rollout_is/weight_mean'] as number) - 1) > 1e-4, `weight_mean ${l.metrics['rollout_is/weight_mean']}`);
      assert.ok((l.metrics['rollout_is/clipped_frac'] as number) > 0, `clipped_frac ${l.metrics['rollout_is/clipped_frac']}`);
    }
    // gradients: equal to float rounding (relative to the largest of the tensor)
    for (const [k, g] of l.grads) {
      const u = h.grads.get(k)!.data;
      let big = 0, diff = 0;
      for (let i = 0; i < g.data.length; i++) {
        big = Math.max(big, Math.abs(g.data[i]));
        diff = Math.max(diff, Math.abs(u[i] - g.data[i]));
      }
      assert.ok(big > 0, `${k}: no gradient`);
      assert.ok(diff <= 1e-4 * big, `${k}: max |Δg| ${diff} vs max |g| ${big}`);
    }
    let moved = 0, worst = 0;
    for (const [k, t] of l.after) {
      const u = h.after.get(k)!.data, b = l.before.get(k)!.data, g = l.grads.get(k)?.data;
      const big = g ? g.reduce((a, x) => Math.max(a, Math.abs(x)), 0) : 0;
      for (let i = 0; i < t.data.length; i++) {
        if (t.data[i] !== b[i]) moved++;
        // Adam's first step moves a weight by ≈ lr·g/(|g| + ε): where |g| is near ε the update
        // amplifies float rounding of g, so weights are compared where the gradient is not tiny
        if (g && Math.abs(g[i]) > 1e-3 * big) worst = Math.max(worst, Math.abs(u[i] - t.data[i]));
      }
      if (withLora && !HfCausalLM.isAdapter(k)) assert.equal(Array.from(h.after.get(k)!.data), Array.from(b), `${k} is frozen`);
    }
    assert.ok(moved > 0, 'the step moved no weight');
    // lr 1e-2: an update is ~1e-2 per element; the two paths agree to float rounding
    assert.ok(worst <= 2e-5, `max |Δw| between the paths ${worst}`);
  });
}

test('hasHiddenPath: the HF model and its LoRA reference view have it', async () => {
  const { dir } = checkpoint('qwen2');
  const m = await model(dir, true);
  assert.ok(hasHiddenPath(m));
  assert.ok(hasHiddenPath(m.referenceModel()));
  assert.is(m.outputHead().grad, null);
  m.dispose();
});

test('forwardHidden: rows are the final normed hidden states; head·h = the logits of forward', async () => {
  const { dir } = checkpoint('qwen2');
  const m = await loadHfModel(dir);
  const r = rng(8);
  const B = 2, L = 5, V = m.vocabSize, D = m.hiddenSize;
  const toks = Int32Array.from({ length: B * L }, () => Math.floor(r() * V));
  const rows = Int32Array.from([7, -1, 0, 9]);
  const h = await m.forwardHidden(toks, B, L, rows);
  const logits = await m.forward(toks, B, L);
  const W = m.outputHead().weight as Float32Array;
  for (let i = 0; i < rows.length; i++) {
    for (let v = 0; v < V; v++) {
      let z = 0;
      for (let j = 0; j < D; j++) z += h[i * D + j] * W[v * D + j];
      const want = rows[i] < 0 ? 0 : logits[rows[i] * V + v];
      assert.ok(Math.abs(z - want) <= 1e-4 * (1 + Math.abs(want)), `row ${rows[i]} v ${v}: ${z} vs ${want}`);
    }
  }
  assert.throws(() => m.forwardHiddenSync(toks, B, L, Int32Array.from([B * L])), /\[0, 10\) or -1 for rows\[0\]/);
  assert.throws(() => m.backwardHiddenSync(new Float32Array(4 * D)), /forwardHidden\(\.\.\., \{ train: true \}\) first/);
  m.dispose();
});

test.run();
