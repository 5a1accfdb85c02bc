#!/usr/bin/env node
'use strict';
// `npm run test:gpu`: the CUDA tests on a real GPU (a machine with a driver and a device).
//   1. builds the package's addon with nvcc if build/ has no CUDA backend (cmake-js, build/);
//   2. runs every test/cuda_*.test.ts on the device (GRPO_TEST_GPU=1: the same files that run
//      the kernels through the emulator in `npm test`, plus test/cuda_gpu_scale.test.ts, which
//      checks CPU <-> CUDA agreement and identical sampled tokens at full vocabulary size);
//   3. once each, compute-sanitizer memcheck over the op tests and racecheck over the kernels
//      that use shared memory, failing on any reported error;
//   4. prints "N passed, N failed" (the last line, like scripts/run-tests.js).
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const addonPath = path.join(root, 'build', 'Release', 'grpo_kernels.node');
const env = { ...process.env, GRPO_TEST_GPU: '1', FORCE_COLOR: '0' };
delete env.GRPO_KERNELS_ADDON;

function run(cmd, args, opts = {}) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  return spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
}

function addonInfo() {
  const r = spawnSync(process.execPath, ['-e', `const a=require(${JSON.stringify(addonPath)});console.log(JSON.stringify({b:a.backend(),ok:a.cudaAvailable()}))`], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

let info = fs.existsSync(addonPath) ? addonInfo() : null;
if (!info || !info.b.cuda.compiled) {
  const b = run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--out', 'build'], { stdio: 'inherit' });
  if (b.status !== 0) {
    console.error('test:gpu: building the addon with nvcc failed');
    process.exit(1);
  }
  info = addonInfo();
}
if (!info || !info.b.cuda.compiled) {
  console.error('test:gpu: the addon has no CUDA backend (is nvcc on PATH or at /usr/local/cuda/bin?)');
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}
if (!info.ok) {
  console.error(`test:gpu: no usable CUDA device: ${info.b.cuda.error}`);
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}
console.log(`device: ${info.b.cuda.devices.map((d) => `${d.name} (sm ${d.computeCapability})`).join(', ')}; archs ${info.b.cuda.archList}; driver ${info.b.cuda.driverVersion}`);

let passed = 0, failed = 0;
const t = run(process.execPath, [path.join(root, 'scripts', 'run-tests.js'), 'cuda_'], { stdio: ['ignore', 'pipe', 'inherit'] });
process.stdout.write(t.stdout);
const m = /(\d+) passed, (\d+) failed/.exec(t.stdout.split('\n').filter((l) => /passed, \d+ failed/.test(l)).pop() || '');
passed += m ? +m[1] : 0;
failed += m ? +m[2] : 1;

// compute-sanitizer, once per tool. Node itself is run under it; only device errors count.
const cs = ['/usr/local/cuda/bin/compute-sanitizer', 'compute-sanitizer'].find((c) => spawnSync(c, ['--version']).status === 0);
if (!cs) {
  console.log('compute-sanitizer not found: memcheck / racecheck not run');
  failed += 1;
} else {
  for (const [tool, file] of [['memcheck', 'test/cuda_ops.test.ts'], ['memcheck', 'test/cuda_sample.test.ts'], ['racecheck', 'test/cuda_ops.test.ts'], ['racecheck', 'test/cuda_sample.test.ts']]) {
    const r = run(cs, ['--tool', tool, '--error-exitcode', '99', '--target-processes', 'all', process.execPath, '--import', 'tsx', file]);
    const out = (r.stdout || '') + (r.stderr || '');
    const summary = /ERROR SUMMARY: (\d+) error|RACECHECK SUMMARY: (\d+) hazard/.exec(out);
    const ok = r.status === 0;
    console.log(`${ok ? 'ok  ' : 'FAIL'} compute-sanitizer ${tool} ${file}${summary ? ` (${summary[0]})` : ''}`);
    if (!ok) console.log(out.split('\n').slice(-40).map((l) => '    ' + l).join('\n'));
    ok ? passed++ : failed++;
  }
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
