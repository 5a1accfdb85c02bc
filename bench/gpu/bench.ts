// `npm run bench:gpu`: the CUDA kernels on a real GPU, timed with CUDA events on the addon's
// stream (median of the iterations), each against a device-to-device copy measured in the same
// run (bandwidth as a fraction of what the GPU can copy), and against PyTorch peers when a
// CUDA-enabled torch is importable by python3 (bench/gpu/torch_gpu_peers.py: eager as TRL
// writes it, and torch.compile).
//
// Shapes (Qwen's vocabulary V = 151936):
//   loss      grpoLossFromLogits bf16, N = 8192 rows (S = 8 x T = 1024), forward + backward,
//             gradient in place; minimum traffic: read the logits once, write the gradient once
//   logprobs  logprobs bf16, N = 8192: read the logits once
//   sample    sample float32, R = 128 rows, top-k 50 / top-p 0.95 / plain: read the logits once
// Writes bench/results/gpu.json and bench/results/gpu.md. `--quick`: N = 1024, R = 32.
// Smoke run without a GPU: GRPO_KERNELS_ADDON=build-emu/Release/grpo_kernels_emu.node
//   GRPO_BENCH_N=64 GRPO_BENCH_V=1000 GRPO_BENCH_R=8 npm run bench:gpu -- --quick
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { backend } from '../../lib';
import { cuda, cudaAvailable, DeviceTensor } from '../../lib/device';
import { native } from '../../lib/native';

const quick = process.argv.includes('--quick');
// GRPO_BENCH_{N,V,R} override the shapes (a smoke run through the emulator addon uses tiny ones).
const V = Number(process.env.GRPO_BENCH_V ?? 151936);
const N = Number(process.env.GRPO_BENCH_N ?? (quick ? 1024 : 8192));
const R = Number(process.env.GRPO_BENCH_R ?? (quick ? 32 : 128));
const WARMUP = 2, ITERS = quick ? 5 : 15;
const ROOT = path.resolve(__dirname, '..', '..');

interface Timing { median_ms: number; min_ms: number; samples: number }
type Ev = unknown;
const nat = native() as unknown as {
  cudaEventRecordNow(): Ev;
  cudaEventElapsed(a: Ev, b: Ev): number;
  deviceCopyD2D(dst: unknown, src: unknown): void;
};

function timeIt(fn: () => void): Timing {
  for (let i = 0; i < WARMUP; i++) fn();
  const ms: number[] = [];
  for (let i = 0; i < ITERS; i++) {
    const a = nat.cudaEventRecordNow();
    fn();
    const b = nat.cudaEventRecordNow();
    ms.push(nat.cudaEventElapsed(a, b));
  }
  ms.sort((x, y) => x - y);
  return { median_ms: ms[Math.floor(ms.length / 2)], min_ms: ms[0], samples: ms.length };
}

// Logits ~ N(0, 2^2)-like as bf16 bits: 64 random rows (a sum of uniforms), repeated.
function randomBf16(rows: number, cols: number, seed: number): Uint16Array {
  const out = new Uint16Array(rows * cols);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  let s = seed >>> 0;
  const base = Math.min(rows, 64) * cols;
  for (let i = 0; i < base; i++) {
    let acc = 0;
    for (let k = 0; k < 4; k++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      acc += s / 4294967296;
    }
    f[0] = (acc - 2) * 3.4;
    out[i] = u[0] >>> 16;
  }
  for (let i = base; i < out.length; i += base) out.copyWithin(i, 0, Math.min(base, out.length - i));
  return out;
}

function main() {
  if (!cudaAvailable()) {
    console.error(`bench:gpu: no CUDA device (${backend().cuda.error || 'addon built without CUDA'})`);
    process.exit(1);
  }
  const dev = backend().cuda.devices[0];
  console.log(`device: ${dev.name} (sm ${dev.computeCapability}), ${(dev.totalMemory / 2 ** 30).toFixed(0)} GiB`);
  const results: Record<string, unknown> = { device: dev, shapes: { N, V, R }, iters: ITERS };

  // the yardstick: a D2D copy of the loss's logits size (reads + writes 2 x bytes)
  const copyBytes = N * V * 2;
  const src = DeviceTensor.empty('bfloat16', [N, V]), dst = DeviceTensor.empty('bfloat16', [N, V]);
  const copy = timeIt(() => nat.deviceCopyD2D(dst.handle(), src.handle()));
  const copyGBs = (2 * copyBytes) / (copy.median_ms * 1e6);
  dst.dispose();
  console.log(`d2d copy ${(copyBytes / 2 ** 30).toFixed(2)} GiB: ${copy.median_ms.toFixed(3)} ms, ${copyGBs.toFixed(0)} GB/s (read + write)`);
  results.copy = { ...copy, bytes: copyBytes, GBs: copyGBs };
  const rows: string[][] = [];
  const line = (name: string, t: Timing, bytes: number) => {
    const gbs = bytes / (t.median_ms * 1e6);
    console.log(`${name}: ${t.median_ms.toFixed(3)} ms, ${gbs.toFixed(0)} GB/s, ${((100 * gbs) / copyGBs).toFixed(0)}% of copy`);
    rows.push([name, t.median_ms.toFixed(3), gbs.toFixed(0), `${((100 * gbs) / copyGBs).toFixed(0)}%`]);
    results[name] = { ...t, bytes, GBs: gbs, fractionOfCopy: gbs / copyGBs };
  };

  // fill the logits with real values (uninitialised memory may hold NaN/inf)
  const host = randomBf16(N, V, 1);
  const z = DeviceTensor.fromHost(host, { dtype: 'bfloat16', shape: [N, V] });
  src.dispose();
  const targets = DeviceTensor.fromHost(new Int32Array(N).map((_, i) => (i * 7919) % V));
  const S = N / 1024 >= 1 ? N / 1024 : 1;
  const adv = DeviceTensor.fromHost(new Float32Array(S).map((_, i) => (i % 2 ? 1 : -1)));
  const old = DeviceTensor.fromHost(new Float32Array(N).fill(-12));
  const mask = DeviceTensor.fromHost(new Uint8Array(N).fill(1));

  line('logprobs bf16 fwd', timeIt(() => {
    const r = cuda.logprobsSync({ logits: z, vocabSize: V, targets });
    r.logp.dispose();
    r.entropy?.dispose();
  }), N * V * 2);

  // in place: every iteration overwrites the logits with a gradient (the timing does not depend
  // on the values: rows are read and written in full either way)
  line('grpoLossFromLogits bf16 fwd+bwd (in place)', timeIt(() => {
    const r = cuda.grpoLossFromLogitsSync({ logits: z, vocabSize: V, targets, advantages: adv, mask, oldLogp: old, gradient: 'inplace' });
    r.logp.dispose();
    r.entropy.dispose();
    r.gradLogp.dispose();
  }), 2 * N * V * 2);
  z.dispose();

  const zs = DeviceTensor.fromHost(new Float32Array(R * V).map((_, i) => Math.sin(i * 12.9898) * 6), { shape: [R, V] });
  for (const [name, p] of [['plain', {}], ['top-k 50', { topK: 50 }], ['top-p 0.95', { topP: 0.95 }]] as const) {
    line(`sample f32 ${R}x${V} ${name}`, timeIt(() => {
      const r = cuda.sampleSync({ logits: zs, vocabSize: V, seed: 1, ...p });
      r.tokens.dispose();
      r.logp.dispose();
    }), R * V * 4);
  }
  for (const t of [zs, targets, adv, old, mask]) t.dispose();

  // peers
  const py = spawnSync('python3', [path.join(__dirname, 'torch_gpu_peers.py'), JSON.stringify({ N, V, R, iters: ITERS })], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const peerLines = (py.stdout || '').split('\n').filter((l) => l.startsWith('RESULT '));
  if (py.status !== 0 || peerLines.length === 0) {
    console.log(`peers: not run (${(py.stderr || py.error?.message || 'python3 / torch unavailable').trim().split('\n').pop()})`);
    results.peers = { skipped: (py.stderr || '').trim().split('\n').pop() || 'python3 / torch unavailable' };
  } else {
    const peers = peerLines.map((l) => JSON.parse(l.slice(7)));
    results.peers = peers;
    for (const p of peers) {
      console.log(`peer ${p.name}: ${p.median_ms.toFixed(3)} ms`);
      rows.push([`peer: ${p.name}`, p.median_ms.toFixed(3), '', '']);
    }
  }

  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  const stem = quick ? 'gpu-quick' : 'gpu';
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', `${stem}.json`), JSON.stringify(results, null, 2) + '\n');
  const md = [
    `# CUDA kernels on ${dev.name} (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Median of ${ITERS} iterations, CUDA events on the addon's stream. D2D copy: ${copyGBs.toFixed(0)} GB/s (read + write).`,
    '',
    '| case | median ms | GB/s | of copy |',
    '|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', `${stem}.md`), md);
  console.log(`\nwrote bench/results/${stem}.md and ${stem}.json`);
}

main();
