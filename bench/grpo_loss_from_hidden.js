'use strict';
// grpoLossFromHidden (spec §8) against the materialised-logits path it replaces, side by side
// in one run, each measured trial in its own process (peak memory is per process):
//   ours      grpoLossFromHiddenSync: h [N, D], W [V, D] → loss, ∂L/∂h, ∂L/∂W (+= into a buffer),
//             logits one chunk at a time
//   base      the same work with the logits materialised, on the same matmul kernels
//             (native/model/matmul.cc through the addon's benchMatmul hook): Z = h·Wᵀ (from a
//             pre-transposed Wᵀ [D, V], as the built-in model stores its head), then
//             grpoLossFromLogitsSync with the gradient in place over Z (no second N×V buffer:
//             the most frugal form), then ∂Wᵀ += hᵀ·∂Z and ∂h = ∂Z·W
//   onechunk  (with ONECHUNK=1) ours with chunkSize = N: all logits at once (and their
//             transpose), i.e. the cost of chunking alone
//   torch     (when Debian's python3-torch is installed) F.linear + log_softmax/gather + the
//             same clipped loss + autograd backward, 2 threads; prints the BLAS it runs with
// Peak memory: VmHWM of the trial process minus its resident size once the inputs, the weight
// and the (touched) gradient buffers exist, i.e. what the loss itself adds on top of them.
// Loss configuration: token level, clip 0.2, beta 0, dapo, old logp = logp + noise, all-ones mask.
// Usage (repo root): node --import tsx bench/grpo_loss_from_hidden.js [N] [V] [D] [reps] [rounds]
//   defaults 2048 151936 896 2 2; results appended as a section to bench/results/grpo_loss_from_hidden.md.
const { spawnSync, execSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }
function hwmBytes() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? +m[1] * 1024 : NaN;
}
function rssBytes() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? +m[1] * 1024 : NaN;
}
function resetHwm() { try { fs.writeFileSync('/proc/self/clear_refs', '5'); } catch { /* older kernels: HWM since start */ } }

// Deterministic pseudo-random floats in [-a, a).
function fill(n, a, seed) {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  const chunk = Math.min(n, 1 << 20);
  for (let i = 0; i < chunk; i++) { s = (s * 1103515245 + 12345) >>> 0; x[i] = ((s / 4294967296) * 2 - 1) * a; }
  for (let i = chunk; i < n; i += chunk) x.copyWithin(i, 0, Math.min(chunk, n - i));
  return x;
}

function trial(spec) {
  const lib = require('../lib');
  const { native } = require('../lib/native');
  const { variant, N, V, D, reps, chunk } = spec;
  const S = 16, T = N / S;
  const hidden = fill(N * D, 1, 1), weight = fill(V * D, 0.08, 2);
  const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
  const advantages = new Float32Array(S).map((_, i) => (i % 3) - 1);
  const oldLogp = new Float32Array(N).fill(-11.9);
  // The caller's gradient buffers, resident before the measurement starts (both variants need them).
  const gradWeight = new Float32Array(V * D).fill(0), gradHidden = new Float32Array(N * D).fill(0);
  let run;
  if (variant === 'ours' || variant === 'onechunk') {
    const chunkSize = variant === 'onechunk' ? N : chunk;
    run = () => lib.grpoLossFromHiddenSync({
      hidden, weight, hiddenSize: D, vocabSize: V, targets, advantages, oldLogp, gradWeight, out: { gradHidden },
      ...(chunkSize ? { chunkSize } : {}),
    }).loss;
  } else {
    const wt = new Float32Array(D * V);  // Wᵀ [D, V]: the layout matmul's [in, out] weight wants
    for (let v = 0; v < V; v++) for (let k = 0; k < D; k++) wt[k * V + v] = weight[v * D + k];
    run = () => {
      const z = new Float32Array(N * V);  // the materialised logits (and, in place, their gradient)
      native().benchMatmul({ kind: 0, N, in: D, out: V, X: hidden, W: wt, Y: z });
      const r = lib.grpoLossFromLogitsSync({ logits: z, vocabSize: V, targets, advantages, oldLogp, gradient: 'inplace' });
      native().benchMatmul({ kind: 1, N, in: D, out: V, X: hidden, W: gradWeight.subarray(0, D * V), Y: z });  // ∂Wᵀ [D, V] += hᵀ·∂Z
      native().benchMatmul({ kind: 0, N, in: V, out: D, X: z, W: weight, Y: gradHidden });  // ∂h = ∂Z·W
      return r.loss;
    };
  }
  const base = rssBytes();
  resetHwm();
  const times = [], cpu = [];
  let loss = 0;
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    loss = run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const dc = process.cpuUsage(c0);
    cpu.push((dc.user + dc.system) / 1e3);
  }
  const peak = hwmBytes() - base;
  return { variant, median_ms: median(times), min_ms: Math.min(...times), cpu_ms: median(cpu), extra_peak_MB: peak / 2 ** 20, loss };
}

function main() {
  const [N, V, D, reps, rounds] = [2048, 151936, 896, 2, 2].map((d, i) => +(process.argv[2 + i] || d));
  const gflop = (3 * 2 * N * V * D) / 1e9;
  const py = '/usr/bin/python3';
  const torchOk = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  const variants = ['ours', ...(process.env.ONECHUNK ? ['onechunk'] : []), 'base', ...(torchOk ? ['torch'] : [])];
  const load0 = os.loadavg();
  const rows = {};
  let blas = '';
  for (let round = 0; round < rounds; round++) {
    for (const variant of variants) {
      const spec = { variant, N, V, D, reps };
      const r = variant === 'torch'
        ? spawnSync(py, [path.join(__dirname, 'peers', 'torch_hidden.py'), JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 24 })
        : spawnSync(process.execPath, ['--import', 'tsx', __filename, '--trial', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) { console.error(`${variant} failed:\n${r.stdout}\n${r.stderr}`); process.exitCode = 1; continue; }
      const res = JSON.parse(line.slice(7));
      if (res.blas) blas = res.blas;
      console.log(`round ${round} ${variant}: ${res.median_ms.toFixed(0)} ms (min ${res.min_ms.toFixed(0)}, cpu ${res.cpu_ms.toFixed(0)} ms), extra peak ${res.extra_peak_MB.toFixed(0)} MB, loss ${res.loss}`);
      (rows[variant] ??= []).push(res);
    }
  }
  const load1 = os.loadavg();
  const cpuName = (os.cpus()[0] || {}).model || '?';
  const med = (v, k) => median(rows[v].map((r) => r[k]));
  const lines = [];
  lines.push(`## N=${N}, V=${V}, D=${D}, float32 (${new Date().toISOString().slice(0, 16)}Z)`, '');
  lines.push(`Machine: ${cpuName}, ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; load average ${load0[0].toFixed(1)} before, ${load1[0].toFixed(1)} after (other jobs shared the 2 cores: times are noisy, the side-by-side ratio less so).`);
  lines.push(`Command: \`${process.env.ONECHUNK ? 'ONECHUNK=1 ' : ''}node --import tsx bench/grpo_loss_from_hidden.js ${N} ${V} ${D} ${reps} ${rounds}\` (${rounds} rounds × ${reps} calls per variant, interleaved, each variant in a fresh process per round; medians).`);
  if (blas) lines.push(`torch: ${blas}`);
  lines.push('', `| variant | median ms | min ms | CPU ms | GFLOP/s (3 matmuls, ${gflop.toFixed(0)} GFLOP) | extra peak memory |`, '|---|---:|---:|---:|---:|---:|');
  for (const v of Object.keys(rows)) {
    const ms = med(v, 'median_ms');
    lines.push(`| ${v} | ${ms.toFixed(0)} | ${Math.min(...rows[v].map((r) => r.min_ms)).toFixed(0)} | ${med(v, 'cpu_ms').toFixed(0)} | ${(gflop / (ms / 1e3)).toFixed(1)} | ${med(v, 'extra_peak_MB').toFixed(0)} MB |`);
  }
  if (rows.ours && rows.base)
    lines.push('', `ours / base time: ${(med('ours', 'median_ms') / med('base', 'median_ms')).toFixed(2)}×; extra peak memory ${(med('base', 'extra_peak_MB') / Math.max(1, med('ours', 'extra_peak_MB'))).toFixed(1)}× smaller (logits alone: ${(N * V * 4 / 2 ** 20).toFixed(0)} MB f32, and as much again for a separate gradient).`);
  lines.push('');
  const out = path.join(__dirname, 'results', 'grpo_loss_from_hidden.md');
  if (!fs.existsSync(out)) fs.writeFileSync(out, '# grpoLossFromHidden: fused linear loss vs materialised logits\n\nSee the header of bench/grpo_loss_from_hidden.js for what each variant runs.\n\n');
  fs.appendFileSync(out, lines.join('\n') + '\n');
  console.log(lines.join('\n'));
}

if (process.argv[2] === '--trial') console.log('RESULT ' + JSON.stringify(trial(JSON.parse(process.argv[3]))));
else main();
