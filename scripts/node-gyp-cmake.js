#!/usr/bin/env node
// prebuildify drives node-gyp; this stands in for node-gyp (PREBUILD_NODE_GYP) and turns its
// `rebuild --target=.. --arch=.. --release` into the equivalent cmake-js build, so prebuilds/
// is produced by the same CMakeLists.txt as a source install.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');
const args = process.argv.slice(2);
const out = ['rebuild', '--out', 'build'];
for (const a of args) {
  if (a.startsWith('--arch=')) out.push('--arch', a.slice(7));
  if (a === '--debug') out.push('--debug');
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, ...out], { stdio: 'inherit', cwd: path.resolve(__dirname, '..') });
process.exit(r.status == null ? 1 : r.status);
