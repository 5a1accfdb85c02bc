#!/usr/bin/env node
'use strict';
// CI check of the package as users get it (`npm run check:pack`, run by .ci/run after the tests):
//  1. `npm pack` (its prepack makes the prebuilt addon: scripts/prebuild.js), then the tarball's
//     contents: the prebuild, LICENSE, no test-only emulator sources, no build tools as deps.
//  2. A fresh consumer project in a temp dir installs the tarball with install scripts disabled
//     and every compiler shadowed on PATH by a stub that logs and fails (so any attempt to
//     compile is seen), dependencies from the npm cache (--prefer-offline, registry otherwise).
//  3. It loads the package from CommonJS, ESM and TypeScript (`tsc --strict`, then runs the
//     output), runs every kernel against a float64 reference (scripts/pack-check/kernels.cjs),
//     and runs `npx grpo --help`.
//  4. With scripts enabled (`npm rebuild grpo-kernels`) the install script keeps the prebuild,
//     silently; with the prebuild gone, loading and the install script both print the rebuild
//     command.
// Prints "ok"/"FAIL" per check and a closing "pack check: N passed, N failed"; exits 1 on any
// failure. `--keep` keeps the temp dir. Timings go to stdout (bench/results/install.md has them).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const keep = process.argv.includes('--keep');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-pack-check-'));
const consumer = path.join(work, 'consumer');
const blockBin = path.join(work, 'no-compilers');
const compilerLog = path.join(work, 'compiler-calls.log');
let passed = 0, failed = 0;
const t0 = Date.now();

function ok(msg) {
  passed++;
  console.log(`ok   ${msg}`);
}
function bad(msg, detail) {
  failed++;
  console.log(`FAIL ${msg}`);
  if (detail) console.log(String(detail).trim().split('\n').slice(-40).map((l) => '       ' + l).join('\n'));
}
function check(cond, msg, detail) {
  (cond ? ok : bad)(msg, cond ? undefined : detail);
  return cond;
}
const secs = (ms) => (ms / 1000).toFixed(1) + ' s';

// The consumer's environment: the caller's, minus the npm_* variables of a surrounding `npm run`
// (they would point npm at this repository), with every compiler shadowed by a failing stub.
const blocked = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'cmake', 'nvcc', 'make', 'ninja', 'cmake-js'];
fs.mkdirSync(blockBin);
for (const c of blocked) {
  fs.writeFileSync(path.join(blockBin, c),
    `#!/bin/sh\necho "${c} $*" >> '${compilerLog}'\necho "check-pack: ${c} is blocked: the package must not compile" >&2\nexit 127\n`, { mode: 0o755 });
}
const env = {};
for (const [k, v] of Object.entries(process.env)) {
  if (!k.startsWith('npm_') || /^npm_config_(cache|registry|userconfig)$/.test(k)) env[k] = v;
}
env.PATH = `${blockBin}${path.delimiter}${process.env.PATH}`;
env.CUDACXX = path.join(blockBin, 'nvcc');
delete env.GRPO_KERNELS_ADDON;
delete env.GRPO_CUDA;

function run(cmd, args, opts = {}) {
  const t = Date.now();
  const r = spawnSync(cmd, args, { cwd: consumer, env, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300e3, ...opts });
  return { status: r.status, out: (r.stdout || '') + (r.stderr || '') + (r.error ? String(r.error) : ''), stdout: r.stdout || '', stderr: r.stderr || '', ms: Date.now() - t };
}
// "ok"/"FAIL" lines printed by the consumer scripts count as checks of their own.
function runConsumer(label, cmd, args) {
  const r = run(cmd, args);
  const lines = r.stdout.split('\n').filter((l) => /^(ok|FAIL) /.test(l));
  for (const l of lines) (l.startsWith('ok') ? ok : bad)(`${label}: ${l.replace(/^(ok|FAIL) /, '')}`);
  if (r.status !== 0 && !lines.some((l) => l.startsWith('FAIL'))) bad(`${label} exited with ${r.status}`, r.out);
  else if (r.status === 0 && !lines.length) bad(`${label} printed no result`, r.out);
  return r;
}
function compilerCalls() {
  return fs.existsSync(compilerLog) ? fs.readFileSync(compilerLog, 'utf8').trim() : '';
}

try {
  // 1. Pack (in the repository, with the caller's environment: prepack builds the prebuild).
  console.log(`pack check in ${work}`);
  const pack = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, env: process.env });
  let info = null;
  try {
    // npm prints the lifecycle scripts' output before the JSON array, which starts a line alone.
    info = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[$/m)))[0];
  } catch { /* reported below */ }
  if (!check(pack.status === 0 && info, `npm pack (prepack: prebuild) in ${secs(pack.ms)}`, pack.out)) throw new Error('no tarball');
  const tgz = path.join(work, info.filename);
  const files = info.files.map((f) => f.path);
  const tuple = `${process.platform}-${process.arch}`;
  console.log(`     tarball ${info.filename}: ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${files.length} files`);
  const prebuilt = files.filter((f) => f.startsWith(`prebuilds/${tuple}/`) && f.endsWith('.node'));
  check(prebuilt.length === 1, `tarball has one prebuilt addon for ${tuple}: ${prebuilt.join(', ')}`, files.filter((f) => f.startsWith('prebuilds/')).join('\n') || 'no prebuilds/');
  for (const f of ['LICENSE', 'README.md', 'scripts/install.js', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'CMakeLists.txt']) {
    check(files.includes(f), `tarball has ${f}`);
  }
  const unwanted = files.filter((f) => /^(cuda\/emu\/|test\/|bench\/|build[^/]*\/|\.ci\/|runs\/)|\.node$/.test(f) && !prebuilt.includes(f));
  check(!unwanted.length, 'tarball has no emulator sources, tests, benchmarks, build outputs or stray binaries', unwanted.join('\n'));
  const pj = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  // the public repository URL is not known yet (no remote): homepage is the package's npm page
  check(pj.homepage, 'package.json has a homepage');
  const buildDeps = ['cmake-js', 'node-addon-api', 'prebuildify', 'node-gyp'].filter((d) => (pj.dependencies || {})[d]);
  check(!buildDeps.length, 'no build tools among the runtime dependencies', buildDeps.join(', '));

  // 2. A fresh consumer project installs the tarball: scripts off, no compiler.
  fs.mkdirSync(consumer);
  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'grpo-consumer', version: '1.0.0', private: true }, null, 2));
  for (const f of fs.readdirSync(path.join(__dirname, 'pack-check'))) fs.copyFileSync(path.join(__dirname, 'pack-check', f), path.join(consumer, f));
  const inst = run('npm', ['install', tgz, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error']);
  if (!check(inst.status === 0, `npm install <tarball> --ignore-scripts, no compiler on PATH, in ${secs(inst.ms)}`, inst.out)) throw new Error('install failed');
  const pkgDir = path.join(consumer, 'node_modules', 'grpo-kernels');
  check(!fs.existsSync(path.join(pkgDir, 'build')), 'the installed package has no build/ (the prebuild is what loads)');
  const devTools = ['cmake-js', 'node-addon-api', 'typescript'].filter((d) => fs.existsSync(path.join(consumer, 'node_modules', d)));
  check(!devTools.length, 'no build tools were installed into the consumer', devTools.join(', '));

  // 3. CommonJS, ESM, TypeScript, every kernel, the CLI.
  runConsumer('CommonJS', process.execPath, ['cjs.cjs']);
  runConsumer('ESM', process.execPath, ['esm.mjs']);
  fs.writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', outDir: 'out',
      // A consumer brings its own @types/node; this one borrows the repository's.
      typeRoots: [path.join(root, 'node_modules', '@types')], types: ['node'],
    },
    files: ['consumer.ts', 'consumer.mts'],
  }, null, 2));
  const tsc = run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  if (check(tsc.status === 0, `tsc --strict on a consumer .ts and .mts (module nodenext) in ${secs(tsc.ms)}`, tsc.out)) {
    runConsumer('TypeScript CJS', process.execPath, ['out/consumer.js']);
    runConsumer('TypeScript ESM', process.execPath, ['out/consumer.mjs']);
  }
  const help = run('npx', ['--no', '--', 'grpo', '--help']);
  check(help.status === 0 && /grpo/i.test(help.out) && /train/.test(help.out), '`npx grpo --help` exits 0 and prints the usage', help.out);

  // 4. The install script with scripts enabled keeps the prebuild without a word.
  const rebuild = run('npm', ['rebuild', 'grpo-kernels', '--foreground-scripts', '--loglevel=error']);
  check(rebuild.status === 0 && !/grpo-kernels:|error/i.test(rebuild.out) && !fs.existsSync(path.join(pkgDir, 'build')),
    '`npm rebuild grpo-kernels` (install script) keeps the prebuild: exit 0, no output, nothing built', rebuild.out);
  check(!compilerCalls(), 'no compiler was invoked by install, load or rebuild', compilerCalls());

  // ... and without a loadable binary, both say how to build one.
  fs.renameSync(path.join(pkgDir, 'prebuilds'), path.join(pkgDir, 'prebuilds.off'));
  try {
    const load = run(process.execPath, ['-e', "require('grpo-kernels').klPenaltySync({ logp: new Float32Array(1), refLogp: new Float32Array(1) })"]);
    check(load.status !== 0 && load.out.includes('npm rebuild grpo-kernels') && load.out.includes(`${tuple}`),
      'no binary: using a kernel fails with the platform and `npm rebuild grpo-kernels`', load.out);
    const noTools = run('npm', ['rebuild', 'grpo-kernels', '--foreground-scripts']);
    check(noTools.status !== 0 && noTools.out.includes('npm install --save-dev cmake-js node-addon-api'),
      'no binary, no cmake-js: the install script fails naming the build tools to install', noTools.out);
  } finally {
    fs.renameSync(path.join(pkgDir, 'prebuilds.off'), path.join(pkgDir, 'prebuilds'));
  }
} catch (e) {
  if (!failed) bad(`pack check stopped: ${e && e.message}`, e && e.stack);
} finally {
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
}
console.log(`pack check: ${passed} passed, ${failed} failed (${secs(Date.now() - t0)})`);
process.exit(failed ? 1 : 0);
