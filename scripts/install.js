#!/usr/bin/env node
'use strict';
// The package's npm/pnpm "install" script. Installed from the npm tarball, it keeps the prebuilt
// addon (prebuilds/<platform>-<arch>/, made by scripts/prebuild.js at `npm pack`) when it loads
// and exits silently; it builds from source (cmake-js) only when no prebuild loads or the user
// asked for a source build (GRPO_BUILD_FROM_SOURCE=1, or GRPO_CUDA=0/1 to choose the CUDA
// backend). In a clone of the repository it always builds from source, so the repository's own
// tests never run a prebuilt binary. With install scripts disabled this never runs, which is why
// the prebuild has to load on its own (lib/native.ts prints the rebuild command when it cannot).
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const env = process.env;
// An installed package lives under node_modules/ (npm, pnpm's .pnpm store, yarn); a clone does not.
const installed = root.split(path.sep).includes('node_modules');

function isSet(v) {
  return v != null && v !== '';
}
function truthy(v) {
  return isSet(v) && !/^(0|false|off|no)$/i.test(v);
}

const wantSource = !installed || truthy(env.GRPO_BUILD_FROM_SOURCE) || truthy(env.npm_config_build_from_source) || isSet(env.GRPO_CUDA);

if (!wantSource) {
  try {
    require('node-gyp-build')(root);
    process.exit(0);  // the prebuilt addon loads: nothing to build, nothing to say
  } catch (e) {
    // No prebuild for this platform, or the dynamic linker refused it (e.g. an older glibc):
    // build from source below, and say why, since npm shows this output only if the build fails.
    console.error(`grpo-kernels: no prebuilt addon loads here (${process.platform}-${process.arch}): ${String(e.message).split('\n')[0]}`);
    console.error('grpo-kernels: building it from source.');
  }
}

function resolveFrom(request) {
  try {
    return require.resolve(request, { paths: [root] });
  } catch {
    return null;
  }
}

// cmake-js and node-addon-api are not runtime dependencies (the prebuild needs neither), so a
// source build in a consumer project needs them installed next to the package.
const cmakeJsPkg = resolveFrom('cmake-js/package.json');
const addonApi = resolveFrom('node-addon-api');
if (!cmakeJsPkg || !addonApi) {
  const missing = [!cmakeJsPkg && 'cmake-js', !addonApi && 'node-addon-api'].filter(Boolean).join(' and ');
  console.error([
    `grpo-kernels: building the native addon from source needs ${missing}, which are not installed.`,
    'Install the build tools into your project, then rebuild the package:',
    '    npm install --save-dev cmake-js node-addon-api',
    '    npm rebuild grpo-kernels          (pnpm: pnpm rebuild grpo-kernels)',
    'A source build also needs a C++17 compiler and CMake >= 3.18; GRPO_CUDA=0 leaves CUDA out.',
  ].join('\n'));
  process.exit(1);
}

const cmakeJs = path.join(path.dirname(cmakeJsPkg), JSON.parse(fs.readFileSync(cmakeJsPkg, 'utf8')).bin['cmake-js']);
// CMakeLists.txt reads GRPO_CUDA (and GRPO_WERROR) from this environment.
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit', env });
if (r.status !== 0) {
  console.error([
    `grpo-kernels: the source build failed (cmake-js exited with ${r.status == null ? r.signal : r.status}).`,
    'It needs a C++17 compiler (g++ or clang++) and CMake >= 3.18 on PATH; the CUDA backend also',
    'needs nvcc (GRPO_CUDA=0 builds without it). Fix the cause above, then: npm rebuild grpo-kernels',
  ].join('\n'));
  process.exit(r.status || 1);
}
