#!/usr/bin/env node
'use strict';
// Runs every test/**/*.test.ts file with uvu (TypeScript through tsx), each file in its own
// process so a crash in one native call cannot hide the others, then prints one closing line
// "N passed, N failed" (CI reads it). Usage: node scripts/run-tests.js [filter-substring]
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const filter = process.argv[2] || '';
function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.test.ts') ? [p] : [];
  });
}
const files = walk(path.join(root, 'test')).filter((f) => f.includes(filter)).sort();
let passed = 0, failed = 0, skipped = 0;
const failedFiles = [];
for (const file of files) {
  const rel = path.relative(root, file);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
    maxBuffer: 64 << 20,
  });
  const out = (r.stdout || '') + (r.stderr || '');
  const total = /Total:\s+(\d+)/.exec(out);
  const ok = /Passed:\s+(\d+)/.exec(out);
  const sk = /Skipped:\s+(\d+)/.exec(out);
  let p = ok ? +ok[1] : 0;
  let f = total && ok ? +total[1] - +ok[1] : 0;
  if (sk) skipped += +sk[1];
  if (r.status !== 0 && f === 0) f = 1;  // crashed or failed outside a test: count it
  passed += p;
  failed += f;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`${f ? 'FAIL' : 'ok  '} ${rel}  (${p} passed, ${f} failed, ${secs}s)`);
  if (f) {
    failedFiles.push(rel);
    console.log(out.split('\n').map((l) => '    ' + l).join('\n'));
  }
}
if (failedFiles.length) console.log(`\nfailed files: ${failedFiles.join(', ')}`);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed || files.length === 0 ? 1 : 0);
