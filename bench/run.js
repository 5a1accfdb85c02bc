#!/usr/bin/env node
'use strict';
// `npm run bench`: every kernel against its peers and against the machine's memory bandwidth.
//
//   npm run bench                     full suite (target sizes; ~10-16 min on the 2-core box)
//   npm run bench -- --quick          small sizes, ~4 min
//   npm run bench -- --filter sample  only trials whose id contains "sample" (repeat --filter
//                                     for several; prints, writes no results file unless --out)
//   npm run bench -- --out FILE.md    write the table there instead
//
// Steps, all in this one run:
//  1. the bandwidth probes: bench/probe/probe.c compiled with cc into a temp dir and run as its
//     own process (copy and read GB/s, 2 threads), and TypedArray.set of 1 GiB in this process;
//  2. every trial of bench/trials.js in a fresh process (better-sqlite3 style), one at a time:
//     node for `ours` / `simple`, Debian's /usr/bin/python3 for the torch peers (installed with
//     apt-get here if missing, and only here);
//  3. a line per trial as it finishes (median ms, GB/s, floor), then the table with the ratios
//     to the floor and to each peer, printed and written to bench/results/cpu.md (--quick:
//     cpu-quick.md) with the raw numbers in bench/results/<name>.raw.json (gitignored).
// The addon is loaded the way the package loads it (node-gyp-build: build/Release), or from
// GRPO_KERNELS_ADDON=path/to/grpo_kernels.node.

const { spawnSync, execSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { trials: allTrials, TRAFFIC } = require('./trials');
const { nodeCopyProbe } = require('./probe/node_copy');

const ROOT = path.resolve(__dirname, '..');
const PY = '/usr/bin/python3';
const TRIAL_TIMEOUT_MS = 30 * 60 * 1000;

const argv = process.argv.slice(2);
const opt = { quick: argv.includes('--quick'), filter: [], out: null };
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--filter') opt.filter.push(argv[++i]);
  else if (argv[i] === '--out') opt.out = argv[++i];
  else if (argv[i] === '--help' || argv[i] === '-h') {
    console.log(fs.readFileSync(__filename, "utf8").split("\n").slice(2, 10).map((l) => l.slice(3)).join('\n'));
    process.exit(0);
  }
}
const outMd = opt.out ? path.resolve(opt.out)
  : opt.filter.length ? null
  : path.join(__dirname, 'results', opt.quick ? 'cpu-quick.md' : 'cpu.md');

const sh = (cmd) => { try { return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return ''; } };
const fmt = (x, d = 2) => (x === undefined || x === null || !Number.isFinite(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(d));
const fmtMs = (x) => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(4));
const loadAvg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

function machine() {
  const l = sh('lscpu');
  const get = (k) => (new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(l) || [])[1] || '?';
  return {
    cpu: get('Model name'), cores: os.cpus().length, l2: get('L2 cache'), l3: get('L3 cache'),
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version, os: `${os.type()} ${os.release()}`,
    commit: sh('git rev-parse --short HEAD') + (sh('git status --porcelain -- lib native bench') ? ' (+ uncommitted changes)' : ''),
  };
}

/** Debian's python3-torch for the peers: installed here (and only here) when missing. */
function ensureTorch() {
  const probe = () => spawnSync(PY, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  let r = probe();
  if (r.status === 0) return r.stdout.trim();
  if (!fs.existsSync(PY)) return null;
  console.log('# torch peers: `import torch` failed; installing Debian python3-torch (apt-get) ...');
  const apt = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch'], { stdio: 'inherit' });
  if (apt.status !== 0) return null;
  r = probe();
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The native probe: compiled into a temp dir, run as its own process. */
function nativeProbe() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-probe-'));
  try {
    const exe = path.join(dir, 'probe');
    const cc = spawnSync('cc', ['-O3', '-march=native', '-pthread', '-o', exe, path.join(__dirname, 'probe', 'probe.c')], { encoding: 'utf8' });
    if (cc.status !== 0) return { error: `cc failed: ${cc.stderr || cc.error}` };
    const threads = String(os.cpus().length);
    const r = spawnSync(exe, ['1024', threads, '7'], { encoding: 'utf8' });
    if (r.status !== 0) return { error: `probe failed: ${r.stderr}` };
    const r1 = spawnSync(exe, ['1024', '1', '5'], { encoding: 'utf8' });
    const one = r1.status === 0 ? JSON.parse(r1.stdout) : null;
    return { ...JSON.parse(r.stdout), one_thread: one };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runTrial(t) {
  const spec = JSON.stringify({ kernel: t.kernel, impl: t.impl, params: t.params, reps: t.reps, warmup: t.warmup });
  const isPy = t.impl.startsWith('torch');
  const cmd = isPy ? [PY, [path.join(__dirname, 'peers', 'torch_peers.py'), spec]]
    : [process.execPath, ['--import', 'tsx', path.join(__dirname, 'cases', 'node_trial.js'), spec]];
  const t0 = Date.now();
  const r = spawnSync(cmd[0], cmd[1], { cwd: ROOT, encoding: 'utf8', timeout: TRIAL_TIMEOUT_MS, maxBuffer: 64 << 20, env: { ...process.env, FORCE_COLOR: '0' } });
  const wall = (Date.now() - t0) / 1000;
  const line = (r.stdout || '').split('\n').reverse().find((l) => l.startsWith('RESULT '));
  let res;
  try { res = line ? JSON.parse(line.slice(7)) : null; } catch { res = null; }
  if (!res) res = { error: (r.error ? String(r.error) : `exit ${r.status} ${r.signal || ''}`) + ` ${(r.stderr || '').slice(-800)}` };
  return { ...res, wall_s: wall };
}

function main() {
  const started = new Date();
  const m = machine();
  console.log(`# grpo-kernels bench — ${started.toISOString()} — ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, node ${m.node}`);
  console.log(`# load average at start: ${loadAvg()}`);
  const torchVersion = ensureTorch();
  console.log(`# torch peers: ${torchVersion ? `torch ${torchVersion} (${PY}, 2 threads)` : 'UNAVAILABLE (skipped)'}`);

  const chk = spawnSync(process.execPath, ['--import', 'tsx', '-e', "const l=require('./lib');console.log(JSON.stringify({...l.backend(),threads:l.numThreads()}))"], { cwd: ROOT, encoding: 'utf8' });
  if (chk.status !== 0) {
    console.error(`bench: the native addon does not load (build it first: npm run build, or set GRPO_KERNELS_ADDON).\n${chk.stderr}`);
    process.exit(1);
  }
  const backend = JSON.parse(chk.stdout.trim().split('\n').pop());
  console.log(`# ours: cpuIsa ${backend.cpuIsa}, ${backend.threads} threads${process.env.GRPO_KERNELS_ADDON ? `, addon ${process.env.GRPO_KERNELS_ADDON}` : ''}`);

  // Do the compared implementations compute the same thing? (bench/check.js, own process)
  const ck = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'check.js')], { cwd: ROOT, encoding: 'utf8' });
  const ckLine = (ck.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
  const agreement = ckLine ? JSON.parse(ckLine.slice(7)) : [];
  for (const l of (ck.stdout || '').split('\n')) if (l && !l.startsWith('RESULT ')) console.log(`# check: ${l}`);
  if (ck.status !== 0) console.log(`# check: MISMATCH or failure (exit ${ck.status}) ${(ck.stderr || '').slice(-400)}`);

  const np = nativeProbe();
  const jp = nodeCopyProbe({ mib: 1024, reps: 7 });
  // Floors are lower bounds, so they use the best of the probe's repetitions (on a quiet
  // machine best and median differ by a few %; under load the best is the less disturbed).
  // The probe runs again after the trials and the better of the two runs is kept.
  const bw = { copy: np.copy_best_gbs || jp.copy_best_gbs, read: np.read_best_gbs || jp.copy_best_gbs };
  if (np.error) console.log(`# probe.c: ${np.error} — floors use the TypedArray.set copy bandwidth`);
  else console.log(`# probe.c (1 GiB, ${np.threads} threads, median of ${np.reps}): copy ${fmt(np.copy_gbs)} GB/s (read+write counted), read ${fmt(np.read_gbs)} GB/s, write ${fmt(np.write_gbs)} GB/s; 1 thread: copy ${fmt(np.one_thread?.copy_gbs)}, read ${fmt(np.one_thread?.read_gbs)}`);
  console.log(`# TypedArray.set (1 GiB, in this process, median of 7): copy ${fmt(jp.copy_gbs)} GB/s (read+write counted)`);

  let list = allTrials({ quick: opt.quick });
  if (opt.filter.length) list = list.filter((t) => opt.filter.some((f) => t.id.includes(f)));
  if (!torchVersion) list = list.filter((t) => !t.impl.startsWith('torch'));
  console.log(`# ${list.length} trials, each in its own process\n`);

  const results = [];
  for (const t of list) {
    const res = runTrial(t);
    const traffic = TRAFFIC[t.kernel](t.params);
    const row = { ...t, ...res, traffic };
    if (res.median_ms) {
      row.gbs = traffic.bytes / (res.median_ms / 1e3) / 1e9;
      row.floor_ms = (traffic.floorBytes / (bw[traffic.bw] * 1e9)) * 1e3;
      row.x_floor = res.median_ms / row.floor_ms;
    }
    results.push(row);
    const what = res.skipped ? `skipped: ${res.skipped}` : res.error ? `ERROR: ${res.error.split('\n')[0]}`
      : `${fmtMs(res.median_ms).padStart(9)} ms  ${fmt(row.gbs).padStart(6)} GB/s  floor ${fmtMs(row.floor_ms)} ms (${traffic.floorName})  ${fmt(row.x_floor)}× floor${res.variant ? `  [${res.variant}]` : ''}`;
    console.log(`${t.id.padEnd(70)} ${what}  (${res.wall_s.toFixed(0)} s)`);
  }

  const np2 = np.error ? np : nativeProbe();
  if (!np.error && !np2.error) {
    console.log(`# probe.c again after the trials: copy ${fmt(np2.copy_gbs)} GB/s (best ${fmt(np2.copy_best_gbs)}), read ${fmt(np2.read_gbs)} GB/s (best ${fmt(np2.read_best_gbs)})`);
    // The best copy / read rate any probe saw (2 and 1 threads, before and after, and for copy
    // TypedArray.set): a load that steals bandwidth can only lower a probe, never raise it.
    const best = (k) => Math.max(...[np, np.one_thread, np2, np2.one_thread].map((x) => (x && x[`${k}_best_gbs`]) || 0), k === 'copy' ? jp.copy_best_gbs : 0);
    const copy = best('copy'), read = best('read');
    for (const r of results) {
      if (!r.median_ms) continue;
      r.floor_ms = (r.traffic.floorBytes / ((r.traffic.bw === 'copy' ? copy : read) * 1e9)) * 1e3;
      r.x_floor = r.median_ms / r.floor_ms;
    }
    bw.copy = copy;
    bw.read = read;
  }

  // Ratios: within a group (kernel + size + dtype), every `ours` row against every peer row.
  const groups = new Map();
  for (const r of results) {
    if (!groups.has(r.group)) groups.set(r.group, []);
    groups.get(r.group).push(r);
  }
  const peerNames = [...new Set(results.filter((r) => r.impl !== 'ours').map((r) => r.impl))];
  for (const rows of groups.values()) {
    for (const r of rows) {
      r.speedup = {};
      if (r.impl !== 'ours' || !r.median_ms) continue;
      for (const p of rows) if (p.impl !== 'ours' && p.median_ms) r.speedup[p.impl] = p.median_ms / r.median_ms;
    }
  }
  const finished = new Date();
  const minutes = (finished - started) / 60000;

  const hdr = ['case', 'impl', 'median ms', 'GB/s', 'floor ms', '× floor', ...peerNames.map((p) => `vs ${p}`), 'check', 'notes'];
  const lines = [];
  const tableRow = (cells) => `| ${cells.join(' | ')} |`;
  lines.push(tableRow(hdr), tableRow(hdr.map(() => '---')));
  for (const [g, rows] of groups) {
    for (const r of rows) {
      const chkv = r.check ? Object.entries(r.check).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(6) : v}`).join(' ') : '';
      const notes = [r.skipped && `skipped: ${r.skipped}`, r.error && `error: ${r.error.split('\n')[0].slice(0, 120)}`, r.variant, r.method, r.rss_mb && `${r.rss_mb} MB resident`].filter(Boolean).join('; ');
      lines.push(tableRow([g, r.label, r.median_ms ? fmtMs(r.median_ms) : '—', fmt(r.gbs), r.floor_ms ? fmtMs(r.floor_ms) : '—', fmt(r.x_floor),
        ...peerNames.map((p) => (r.speedup && r.speedup[p] ? `${fmt(r.speedup[p])}×` : '')), chkv, notes]));
    }
  }

  // The issue's targets, checked against this run.
  const find = (kernel, impl, pred) => results.find((r) => r.kernel === kernel && r.impl === impl && pred(r.params) && r.median_ms);
  const targets = [];
  const lossBig = (mode) => (p) => p.S * p.T === 2048 && p.dtype === 'float32' && (!mode || p.mode === mode);
  for (const mode of ['separate', 'inplace']) {
    const o = find('loss', 'ours', lossBig(mode));
    if (!o) continue;
    targets.push([`fused loss f32 N=2048 V=151936 (${mode}): ≤ 1.3× the 3-pass floor`, o.x_floor, 1.3, 'max']);
    if (o.speedup.torch_trl) targets.push([`fused loss f32 N=2048 (${mode}): ≥ 10× faster than TRL-as-written torch`, o.speedup.torch_trl, 10, 'min']);
    if (o.speedup.torch_tuned) targets.push([`fused loss f32 N=2048 (${mode}): ≥ 2× faster than hand-tuned torch`, o.speedup.torch_tuned, 2, 'min']);
  }
  const s = find('sample', 'ours', (p) => p.R === 64);
  if (s && s.speedup.torch_vllm) targets.push(['sample 64×151936 top-k 50 top-p 0.9: ≥ 50× faster than torch sort-based', s.speedup.torch_vllm, 50, 'min']);
  const tlines = targets.map(([what, got, want, kind]) => {
    const ok = kind === 'max' ? got <= want : got >= want;
    const by = kind === 'max' ? `${fmt(got / want)}× over` : `${fmt(want / got)}× short`;
    // The fused kernel's compulsory traffic is two passes (read the logits, write the gradient),
    // 2/3 of the three-pass floor: below that the probes must have been disturbed by other load.
    const suspect = kind === 'max' && got < (2 / 3) * 0.95 ? ' — below the 2-pass (read + write) bound of 0.67×: the probes saw less bandwidth than the kernel got, so they were disturbed by other load; this ratio is not trustworthy, rerun on a quiet machine' : kind === 'max' && got < 1 ? ' (below 1×: the kernel moves two passes of traffic, read + write, against the three-pass floor)' : '';
    return `- ${ok ? 'MET' : 'MISSED'}: ${what} — measured ${fmt(got)}×${ok ? '' : ` (${by})`}${suspect}`;
  });
  if (!tlines.length) tlines.push('- (the target cases were not part of this run; run the full suite)');

  const cmdline = `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}${process.env.GRPO_KERNELS_ADDON ? ` (GRPO_KERNELS_ADDON=${process.env.GRPO_KERNELS_ADDON})` : ''}`;
  const md = [
    `# CPU benchmark results${opt.quick ? ' (quick subset)' : ''}`,
    '',
    `Command: \`${cmdline}\`, started ${started.toISOString()}, took ${minutes.toFixed(1)} min.`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, L2 ${m.l2}, L3 ${m.l3}, ${m.memGiB} GiB; ${m.os}; node ${m.node}; torch ${torchVersion || 'n/a'} (Debian python3-torch, ${PY}, 2 threads); ours: cpuIsa ${backend.cpuIsa}, ${backend.threads} threads; commit ${m.commit}.`,
    `Load average (1, 5, 15 min) at start: ${loadAvgStart}; at end: ${loadAvg()}. A load above ~0.5 on this 2-core box means other processes shared the cores: treat the numbers as noisy.`,
    '',
    `Bandwidth probes (this run): probe.c 1 GiB, ${np.threads || '?'} threads, before the trials, median (best) of ${np.reps || '?'}: copy ${fmt(np.copy_gbs)} (${fmt(np.copy_best_gbs)}) GB/s (bytes read + bytes written per second; glibc memcpy, non-temporal stores), read ${fmt(np.read_gbs)} (${fmt(np.read_best_gbs)}) GB/s, write ${fmt(np.write_gbs)} (${fmt(np.write_best_gbs)}) GB/s; 1 thread: copy ${fmt(np.one_thread?.copy_gbs)}, read ${fmt(np.one_thread?.read_gbs)}; after the trials: copy ${fmt(np2.copy_gbs)} (${fmt(np2.copy_best_gbs)}), read ${fmt(np2.read_gbs)} (${fmt(np2.read_best_gbs)}). TypedArray.set of 1 GiB in the bench process: copy ${fmt(jp.copy_gbs)} (${fmt(jp.copy_best_gbs)}) GB/s (read + write). **Floors use copy ${fmt(bw.copy)} GB/s and read ${fmt(bw.read)} GB/s** (the best repetition any probe saw: a concurrent load can only lower a probe).`,
    '',
    '## Agreement check (bench/check.js, this run)',
    '',
    'The fused loss of every implementation compared on one shared input (S=2, T=8, V=1000, temperature 0.7) against the simple float64-accumulating peer: max |dL/dlogits error| / max |dL/dlogits|, max |logp error|, loss relative error.',
    '',
    ...(agreement.length ? agreement.map((a) => `- ${a.ok ? 'ok' : 'MISMATCH'}: ${a.name}: grad ${a.gradMaxAbsErr.toExponential(1)}, logp ${a.logpMaxAbsErr.toExponential(1)}, loss ${a.lossRelErr.toExponential(1)}`) : ['- (the check did not run)']),
    '',
    '## Targets (from the issue)',
    '',
    ...tlines,
    '',
    '## All trials',
    '',
    ...lines,
    '',
    '## How to read this',
    '',
    '- Each row is one trial in its own fresh process. Big kernels (loss from logits, logprobs, sample): a manual loop, warm-up then the median of k timed calls of the async API (k in notes); small per-token ops: benchmark.js on the sync twin (ours, simple) and a timeit-style loop (torch).',
    '- **GB/s** = the kernel\'s compulsory traffic / median time. Loss from logits: 2·N·V·s bytes (read the logits once, write dL/dlogits once, s = 4 for float32, 2 for bf16; the same in place). logprobs: N·V·s. sample: R·V·4. grpoLoss: 9 bytes per token + 4 per sequence. groupAdvantages: 12 per sequence (rewards in; advantages and rewards out) + 12 per group (mean, std, ids out). klPenalty: 16 per token.',
    `- **floor ms** = floor bytes / probe bandwidth. Loss from logits: the issue's **three-pass floor** = 3·N·V·s bytes / copy bandwidth (read, read, write, where the copy bandwidth counts read + write bytes moved per second, from probe.c in this run: ${fmt(bw.copy)} GB/s). logprobs and sample: one read of the logits at the read bandwidth. The per-token ops: their bytes at the copy bandwidth; at the small sizes everything is in cache and the floor means little. **× floor** = median / floor (1.0 = at the memory bound).`,
    '- **vs <peer>** = peer median / our median (> 1: ours is faster), within the same case (kernel, size, dtype).',
    '- **check**: a value each implementation computed (loss, a log-prob, a token). `ours` and `simple` get the same inputs (the same seeded generator), so their checks match; the torch peers draw their own inputs from the same distribution (logits N(0, 2²), all-ones mask), so `torch_trl` and `torch_tuned` match each other.',
    '- Peers: `simple` = bench/peers/simple.js (plain loops, float64 accumulation); `torch_trl` = the code as TRL writes it (bench/peers/torch_peers.py quotes it), forward + autograd backward; `torch_tuned` = no autograd, analytic gradient into a preallocated buffer, rows in cache-sized chunks, best of several chunk sizes and two forms (named in notes); `torch_vllm` = vLLM\'s sort-based top-k/top-p fallback with the exponential-race draw.',
    '- MB resident: the trial process\'s memory, inputs included (Node: resident at the end; Python: peak, VmHWM).',
    '- Loss configuration for every implementation: token-level ratio, clip ε = 0.2, β = 0, lossType dapo (= Σ mask), ℓ_old = ℓ detached, temperature 1, all rows masked in.',
    '',
  ].join('\n');

  console.log('\n' + md);
  if (outMd) {
    fs.mkdirSync(path.dirname(outMd), { recursive: true });
    fs.writeFileSync(outMd, md);
    const raw = outMd.replace(/\.md$/, '') + '.raw.json';
    fs.writeFileSync(raw, JSON.stringify({ started, finished, command: cmdline, machine: m, backend, torch: torchVersion, probes: { native: np, nativeAfter: np2, typedArraySet: jp }, bandwidthUsed: bw, loadStart: loadAvgStart, loadEnd: loadAvg(), results }, null, 1));
    console.log(`# wrote ${path.relative(ROOT, outMd)} and ${path.relative(ROOT, raw)}`);
  }
  const bad = results.filter((r) => r.error);
  if (bad.length) {
    console.error(`# ${bad.length} trial(s) failed: ${bad.map((r) => r.id).join('; ')}`);
    process.exitCode = 1;
  }
}

const loadAvgStart = loadAvg();
main();
