#!/usr/bin/env node
'use strict';
// Makes the prebuilt addon that goes into the npm tarball: the package's "prepack" script, so
// `npm pack` and `npm publish` always carry a fresh one (`npm run build:prebuilt` runs it alone).
// It is the source build of this checkout (build/, brought up to date by cmake-js: a no-op when
// the tests just built it), checked, stripped and copied to
// prebuilds/<platform>-<arch>/grpo-kernels.napi[.glibc].node, where node-gyp-build finds it when
// a consumer project has no build/ of its own. prebuilds/ is never committed (.gitignore).
// Refuses to write a prebuild without the CUDA backend unless GRPO_CUDA=0 says so: a CPU-only
// binary published by accident would silently take the GPU away from every linux-x64 user.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const tuple = `${process.platform}-${process.arch}`;
// node-gyp-build matches the libc tag, so a glibc binary is never loaded on musl (Alpine).
const libc = process.platform !== 'linux' ? null : process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
const outDir = path.join(root, 'prebuilds', tuple);
const outFile = path.join(outDir, ['grpo-kernels', 'napi', libc].filter(Boolean).join('.') + '.node');
const built = path.join(root, 'build', 'Release', 'grpo_kernels.node');

function fail(msg) {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
}
function step(msg) {
  console.log(`prebuild: ${msg}`);
}

// 1. Bring the source build up to date (GRPO_CUDA / GRPO_WERROR in the environment apply).
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
step('cmake-js compile --out build');
const b = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' });
if (b.status !== 0) fail(`cmake-js compile failed (exit ${b.status == null ? b.signal : b.status})`);
if (!fs.existsSync(built)) fail(`${built} was not produced`);

// 2. Copy and strip (symbols and debug info only: the CUDA fat binaries are allocated sections).
for (const f of fs.existsSync(outDir) ? fs.readdirSync(outDir) : []) {
  if (/^grpo-kernels\..*\.node$/.test(f)) fs.rmSync(path.join(outDir, f));  // our own older output
}
fs.mkdirSync(outDir, { recursive: true });
fs.copyFileSync(built, outFile);
if (process.platform === 'linux' || process.platform === 'darwin') {
  const s = spawnSync('strip', process.platform === 'darwin' ? ['-Sx', outFile] : ['--strip-all', outFile], { stdio: 'inherit' });
  if (s.error || s.status !== 0) console.warn('prebuild: strip unavailable or failed; shipping the unstripped binary');
}

// 3. The copy must load on its own, in a fresh process, and report what it contains.
const probe = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(outFile)}).backend()))`], { encoding: 'utf8' });
if (probe.status !== 0) fail(`the prebuilt addon does not load:\n${probe.stderr}`);
const info = JSON.parse(probe.stdout);
const cudaOff = /^(0|false|off|no)$/i.test(process.env.GRPO_CUDA || '');
if (!info.cuda.compiled && !cudaOff) {
  fs.rmSync(outFile);
  fail('the build has no CUDA backend (no nvcc found?). Install the CUDA toolkit, or set GRPO_CUDA=0 to pack a CPU-only prebuild on purpose.');
}

// 4. What a user's machine needs: the newest glibc symbol version it references.
let glibc = '';
const od = spawnSync('objdump', ['-T', outFile], { encoding: 'utf8', maxBuffer: 64 << 20 });
if (od.status === 0) {
  const versions = [...new Set(od.stdout.match(/GLIBC_[0-9.]+/g) || [])].map((v) => v.slice(6));
  versions.sort((x, y) => { const a = x.split('.').map(Number), c = y.split('.').map(Number); return a[0] - c[0] || (a[1] || 0) - (c[1] || 0) || (a[2] || 0) - (c[2] || 0); });
  if (versions.length) glibc = `, needs glibc >= ${versions[versions.length - 1]}`;
}
const mb = (fs.statSync(outFile).size / 1e6).toFixed(1);
step(`${path.relative(root, outFile)}: ${mb} MB, CPU ISA dispatch (this machine: ${info.cpuIsa}), ` +
  `CUDA ${info.cuda.compiled ? `compiled in (${info.cuda.archList})` : 'not compiled in (GRPO_CUDA=0)'}${glibc}`);
