'use strict';
// A/B timing of two checkouts of the package in one run (e.g. before and after a change):
//   node bench/ab.js <tree A> <tree B> [--rounds 3] [--filter op] [--out FILE.md]
// For every case, rounds × (A then B) child processes (bench/cases/ab_child.js), each timing the
// op and its memory-traffic floor (a copy of the same bytes) in the same process; the table
// gives medians over rounds, each side's ratio to its own floor, and B's speed-up over A. The
// machine's load average is sampled before and after. Each tree needs its addon built.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const argv = process.argv.slice(2);
const trees = argv.filter((a, i) => !a.startsWith('--') && !(argv[i - 1] || '').startsWith('--')).slice(0, 2).map((t) => path.resolve(t));
const opt = (name, d) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : d; };
const rounds = Number(opt('--rounds', 3));
const filter = opt('--filter', '');
const outFile = opt('--out', null);
if (trees.length !== 2) { console.error('usage: node bench/ab.js <tree A> <tree B> [--rounds 3] [--filter op] [--out FILE.md]'); process.exit(2); }

const CASES = [
  { op: 'klPenalty', n: 1 << 22 },
  { op: 'groupAdvantages', S: 1 << 20, G: 16 },
  { op: 'grpoLoss', S: 1024, T: 1024 },
  { op: 'logprobs', N: 256, V: 151936, reps: 7 },
  { op: 'fused', N: 256, V: 151936, reps: 7 },
].filter((k) => !filter || k.op.includes(filter));

function runChild(tree, k) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'cases', 'ab_child.js'), tree, JSON.stringify(k)],
    { cwd: tree, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, FORCE_COLOR: '0' } });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) return { error: (r.stderr || r.stdout || '').slice(-500) };
  return JSON.parse(line.slice(7));
}
const med = (xs) => { const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const label = (k) => Object.entries(k).filter(([n]) => n !== 'op' && n !== 'reps').map(([n, v]) => `${n}=${v}`).join(' ');

const load0 = os.loadavg();
const rows = [];
for (const k of CASES) {
  const res = [[], []];
  for (let r = 0; r < rounds; r++) for (const side of [0, 1]) res[side].push(runChild(trees[side], k));
  const errs = res.flat().filter((x) => x.error);
  if (errs.length) console.error(`${k.op}: ${errs[0].error}`);
  const a = { ms: med(res[0].map((x) => x.ms)), floor: med(res[0].map((x) => x.floor_ms)) };
  const b = { ms: med(res[1].map((x) => x.ms)), floor: med(res[1].map((x) => x.floor_ms)) };
  const gb = med(res.flat().map((x) => x.gbps_floor));
  const row = { op: k.op, shape: label(k), a, b, gb };
  rows.push(row);
  console.log(`${k.op} ${row.shape}: A ${a.ms.toFixed(2)} ms (${(a.ms / a.floor).toFixed(2)}× floor) | B ${b.ms.toFixed(2)} ms (${(b.ms / b.floor).toFixed(2)}× floor) | B/A ${(b.ms / a.ms).toFixed(2)} | copy ${gb.toFixed(1)} GB/s`);
}
const load1 = os.loadavg();
const md = [
  `| op | shape | A ms | A / floor | B ms | B / floor | B / A | floor copy GB/s |`,
  `|---|---|---:|---:|---:|---:|---:|---:|`,
  ...rows.map((r) => `| ${r.op} | ${r.shape} | ${r.a.ms.toFixed(2)} | ${(r.a.ms / r.a.floor).toFixed(2)}× | ${r.b.ms.toFixed(2)} | ${(r.b.ms / r.b.floor).toFixed(2)}× | ${(r.b.ms / r.a.ms).toFixed(2)} | ${r.gb.toFixed(1)} |`),
  '',
  `A = ${trees[0]}, B = ${trees[1]}; ${rounds} rounds of A then B per case, medians; ${os.cpus().length} CPUs (${os.cpus()[0].model}); load average ${load0.map((x) => x.toFixed(1)).join(' ')} before, ${load1.map((x) => x.toFixed(1)).join(' ')} after; ${new Date().toISOString()}.`,
  `Command: node bench/ab.js ${argv.join(' ')}`,
];
console.log(md.join('\n'));
if (outFile) fs.writeFileSync(outFile, md.join('\n') + '\n');
