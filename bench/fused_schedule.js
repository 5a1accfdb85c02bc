'use strict';
// grpoLossFromLogits against its memory floor, every row schedule side by side in one process
// (bench/results/fused-floor.md). For float32 and bfloat16 logits, a separate and an in-place
// gradient, and each schedule of the CPU kernel (GRPO_FUSED_SCHEDULE, read per call:
// two = two passes over the logits, pipe = one pass pipelined over two rows, row = one pass,
// each row finished from cache right after its read; `default` = what the kernel picks), at 1
// thread and at the default thread count, interleaved call by call. Optionally an older build of
// the addon (--old path.node, built from main) runs its default alongside. The bandwidth probe
// (bench/probe/probe.c, copy = read + write bytes per second) runs in the same run, before and
// after, at both thread counts; floors use its best repetition:
//   3-pass floor = 3·N·V·s bytes / copy bandwidth (s = 4 float32, 2 bfloat16).
// Reported per variant: median wall ms, median process CPU ms (all threads: on a shared machine
// it shows the kernel's own cost), wall / floor and the load average.
// Usage (repo root, after a native build):
//   node bench/fused_schedule.js [--n 2048] [--v 151936] [--reps 5] [--threads 1,2]
//     [--dtypes float32,bfloat16] [--modes separate,inplace] [--old /tmp/old.node] [--out FILE.md]
// ~2 min at N=2048 on an idle 2-core box (needs ~4 GB: logits, gradient, a pristine copy).
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const argv = process.argv.slice(2);
const opt = (name, d) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : d; };
const N = +opt('--n', 2048), V = +opt('--v', 151936), REPS = +opt('--reps', 5);
const THREADS = opt('--threads', '1,2').split(',').map(Number);
const DTYPES = opt('--dtypes', 'float32,bfloat16').split(',');
const MODES = opt('--modes', 'separate,inplace').split(',');
const OLD = opt('--old', null), OUT = opt('--out', null);
const S = 16, T = N / S;
if (!Number.isInteger(T) || T < 1) { console.error(`--n must be a positive multiple of ${S}, got ${N}`); process.exit(2); }

const addon = require(path.join(__dirname, '..', 'build', 'Release', 'grpo_kernels.node'));
const old = OLD ? require(path.resolve(OLD)) : null;
const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function probe(threads) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-fused-probe-'));
  try {
    const exe = path.join(dir, 'probe');
    const cc = spawnSync('cc', ['-O3', '-march=native', '-pthread', '-o', exe, path.join(__dirname, 'probe', 'probe.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cc probe.c failed: ${cc.stderr}`);
    const r = spawnSync(exe, ['1024', String(threads), '5'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`probe failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Logits in [−4, 4) from a seeded LCG, one 1M-element chunk repeated (fast to set up).
function fill(dtype) {
  const half = dtype === 'bfloat16';
  const a = half ? new Uint16Array(N * V) : new Float32Array(N * V);
  const chunk = a.subarray(0, Math.min(a.length, 1 << 20));
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  let s = 12345;
  for (let i = 0; i < chunk.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const x = (s / 4294967296) * 8 - 4;
    if (half) { f[0] = x; chunk[i] = u[0] >>> 16; } else chunk[i] = x;
  }
  for (let i = chunk.length; i < a.length; i += chunk.length) a.set(chunk.subarray(0, Math.min(chunk.length, a.length - i)), i);
  return a;
}

const startLoad = load(), started = new Date();
console.log(`# N=${N} V=${V}, reps ${REPS}, threads ${THREADS}, load ${startLoad}`);
const probes = {};
for (const t of THREADS) probes[t] = [probe(t)];
for (const t of THREADS) console.log(`# probe.c ${t} thread(s): copy ${probes[t][0].copy_gbs.toFixed(1)} (best ${probes[t][0].copy_best_gbs.toFixed(1)}) GB/s, read ${probes[t][0].read_gbs.toFixed(1)} GB/s`);

const rows = [];
for (const dtype of DTYPES) {
  const logits = fill(dtype), esz = dtype === 'float32' ? 4 : 2;
  const pristine = MODES.includes('inplace') ? logits.slice() : null;
  const grad = MODES.includes('separate') ? new logits.constructor(N * V) : null;
  const targets = new Int32Array(N).map((_, i) => (i * 7919) % V);
  const args = (mode) => ({
    S, T, V, logits, logitsDtype: dtype, targets, temperature: 1, advantages: new Float32Array(S).map((_, i) => (i % 3) - 1),
    oldLogp: new Float32Array(N).fill(-11.5), mask: new Uint8Array(N).fill(1), level: 0, policyLoss: 0, epsilonLow: 0.2,
    epsilonHigh: 0.2, clipRatioC: 3, beta: 0, klEstimator: 3, clampLogRatio: true, lossType: 2,
    gradMode: mode === 'separate' ? 1 : 2, ...(mode === 'separate' ? { gradLogits: grad, gradLogitsDtype: dtype } : {}),
    logp: new Float32Array(N), entropy: new Float32Array(N), gradLogp: new Float32Array(N),
  });
  for (const threads of THREADS) {
    addon.setNumThreads(threads);
    if (old) old.setNumThreads(threads);
    const variants = [];
    for (const mode of MODES) {
      const a = args(mode);
      for (const sched of ['default', 'two', 'pipe', 'row']) variants.push({ mode, sched, lib: addon, a, name: `${mode} ${sched}` });
      if (old) variants.push({ mode, sched: 'default', lib: old, a, name: `${mode} old build` });
    }
    const res = variants.map(() => ({ wall: [], cpu: [], loss: new Set() }));
    for (let r = 0; r <= REPS; r++) {
      variants.forEach((v, j) => {
        // In place overwrites the logits with the gradient: every call starts from the same logits.
        if (pristine) logits.set(pristine);
        if (v.sched === 'default') delete process.env.GRPO_FUSED_SCHEDULE;
        else process.env.GRPO_FUSED_SCHEDULE = v.sched;
        const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
        const m = v.lib.grpoLossFromLogits(v.a, false);
        const wall = Number(process.hrtime.bigint() - t0) / 1e6, dc = process.cpuUsage(c0);
        if (r === 0) return;  // warm-up: page faults, thread start, scratch rows
        res[j].wall.push(wall);
        res[j].cpu.push((dc.user + dc.system) / 1e3);
        res[j].loss.add(m.loss);
      });
    }
    delete process.env.GRPO_FUSED_SCHEDULE;
    const bw = Math.max(...probes[threads].map((p) => p.copy_best_gbs));
    const floor = (3 * N * V * esz) / bw / 1e6;
    for (let j = 0; j < variants.length; j++) {
      const wall = median(res[j].wall), cpu = median(res[j].cpu);
      const row = { dtype, threads, name: variants[j].name, wall, cpu, floor, x: wall / floor, nsElem: (cpu * 1e6) / (N * V), loss: [...res[j].loss].join('/') };
      rows.push(row);
      console.log(`${dtype.padEnd(8)} ${threads}t ${row.name.padEnd(20)} ${wall.toFixed(1).padStart(7)} ms  cpu ${cpu.toFixed(0).padStart(5)} ms (${row.nsElem.toFixed(3)} ns/elem)  ${row.x.toFixed(2)}× floor ${floor.toFixed(1)} ms  loss ${row.loss}`);
    }
  }
}
for (const t of THREADS) probes[t].push(probe(t));
const endLoad = load();
const md = [
  `N=${N} V=${V}, median of ${REPS} after 1 warm-up, variants interleaved call by call (sync calls); ${os.cpus().length} CPUs (${os.cpus()[0].model}); load average ${startLoad} at start, ${endLoad} at end; ${started.toISOString()}.`,
  `Probe (bench/probe/probe.c, 1 GiB, copy = read + write bytes/s), before / after: ${THREADS.map((t) => `${t} thread(s): copy ${probes[t].map((p) => `${p.copy_gbs.toFixed(1)} (best ${p.copy_best_gbs.toFixed(1)})`).join(' / ')}, read ${probes[t].map((p) => p.read_gbs.toFixed(1)).join(' / ')} GB/s`).join('; ')}. Floors use the best copy repetition at the same thread count.`,
  '',
  '| dtype | threads | gradient, schedule | wall ms | CPU ms (all threads) | CPU ns / element | 3-pass floor ms | wall / floor |',
  '|---|---:|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.dtype} | ${r.threads} | ${r.name} | ${r.wall.toFixed(1)} | ${r.cpu.toFixed(0)} | ${r.nsElem.toFixed(3)} | ${r.floor.toFixed(1)} | ${r.x.toFixed(2)}× |`),
  '',
  `Command: node bench/fused_schedule.js ${argv.join(' ')}`,
];
console.log(md.join('\n'));
if (OUT) fs.writeFileSync(OUT, md.join('\n') + '\n');
