#!/usr/bin/env node
'use strict';
// Install cost of the npm tarball: `npm install <tgz> --ignore-scripts` (the prebuilt addon)
// against the source build a consumer gets with GRPO_BUILD_FROM_SOURCE=1 (scripts on, cmake-js
// and node-addon-api installed first, as README "Install" says). Each in a fresh consumer project
// in a temp dir, dependencies from the npm cache (--prefer-offline). Prints a markdown table for
// bench/results/install.md.
// Usage: node bench/install.js [--tgz path] [--runs 3] [--source-cuda 0|1] [--no-source]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync, execSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const runs = +arg('--runs', 3);
const sourceCuda = arg('--source-cuda', '0');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-install-bench-'));
const env = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('npm_') || /^npm_config_(cache|registry|userconfig)$/.test(k)) env[k] = v;
delete env.GRPO_WERROR;  // a user's machine: no -Werror

let tgz = arg('--tgz', '');
if (!tgz) {
  const out = execSync(`npm pack --json --pack-destination ${work}`, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  tgz = path.join(work, JSON.parse(out.slice(out.search(/^\[$/m)))[0].filename);
}
const tgzMB = (fs.statSync(tgz).size / 1e6).toFixed(2);

function du(dir) {
  return +execSync(`du -sk ${dir}`, { encoding: 'utf8' }).split('\t')[0] / 1024;
}
function fresh(name) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'c', version: '1.0.0', private: true }));
  return dir;
}
function npm(dir, args, extraEnv = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e9;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const rows = [];
const pre = [];
let preDir = '';
for (let i = 0; i < runs; i++) {
  preDir = fresh(`prebuilt-${i}`);
  pre.push(npm(preDir, ['install', tgz, '--ignore-scripts']));
}
rows.push(['prebuilt (`npm install <tgz> --ignore-scripts`)', `${median(pre).toFixed(1)} s (median of ${runs}: ${pre.map((x) => x.toFixed(1)).join(', ')})`,
  `${du(path.join(preDir, 'node_modules')).toFixed(1)} MB`, 'no']);

if (!process.argv.includes('--no-source')) {
  const dir = fresh('source');
  const tools = npm(dir, ['install', '--save-dev', 'cmake-js', 'node-addon-api']);
  const build = npm(dir, ['install', tgz], { GRPO_BUILD_FROM_SOURCE: '1', GRPO_CUDA: sourceCuda });
  const addon = path.join(dir, 'node_modules', 'grpo-kernels', 'build', 'Release', 'grpo_kernels.node');
  if (!fs.existsSync(addon)) throw new Error('the source build produced no addon');
  const b = JSON.parse(execSync(`node -p "JSON.stringify(require('grpo-kernels').backend())"`, { cwd: dir, encoding: 'utf8' }));
  rows.push([`source build (\`GRPO_BUILD_FROM_SOURCE=1 GRPO_CUDA=${sourceCuda} npm install <tgz>\`, CUDA ${b.cuda.compiled ? 'on' : 'off'})`,
    `${build.toFixed(1)} s (+ ${tools.toFixed(1)} s for \`npm install -D cmake-js node-addon-api\`)`,
    `${du(path.join(dir, 'node_modules')).toFixed(1)} MB (build/: ${du(path.join(dir, 'node_modules', 'grpo-kernels', 'build')).toFixed(1)} MB)`, 'yes']);
}

console.log(`tarball ${path.basename(tgz)}: ${tgzMB} MB; ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (after)`);
console.log('\n| install | time | node_modules | compiler needed |\n|---|---:|---:|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
fs.rmSync(work, { recursive: true, force: true });
