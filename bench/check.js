'use strict';
// Before timing anything, bench/run.js checks that the implementations it compares compute the
// same thing: the fused loss (loss, logp, dL/dlogits) of ours (separate and in place), the
// torch peers (TRL-as-written and both hand-tuned forms) and the simple peer, on one shared
// small input (S=2, T=8, V=1000, temperature 0.7). The simple peer (float64 accumulation) is
// the reference. Run as  node --import tsx bench/check.js  ; prints one line per implementation
// and "RESULT <json>"; exits 1 on a mismatch.

const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const c = require('./cases/common');
const simple = require('./peers/simple');

const S = 2, T = 8, V = 1000, N = S * T, temperature = 0.7;
const r = c.rng(11);
const logits = c.randn(r, N * V, 2);
const targets = c.randint(r, N, V);
const advantages = c.randn(r, S);
const mask = new Uint8Array(N).fill(1);

const refGrad = new Float32Array(N * V);
const ref = simple.grpoLossFromLogits({ logits, targets, S, T, V, temperature, advantages, mask, grad: refGrad });
let gmax = 0;
for (const g of refGrad) gmax = Math.max(gmax, Math.abs(g));

const rows = [];
function compare(name, loss, logp, grad) {
  let ge = 0, le = 0;
  for (let i = 0; i < grad.length; i++) ge = Math.max(ge, Math.abs(grad[i] - refGrad[i]));
  if (logp) for (let i = 0; i < N; i++) le = Math.max(le, Math.abs(logp[i] - ref.logp[i]));
  const lossErr = Math.abs(loss - ref.loss) / Math.max(Math.abs(ref.loss), 1e-30);
  const ok = ge <= 1e-4 * gmax && le <= 1e-4 && lossErr <= 1e-4;
  rows.push({ name, ok, gradMaxAbsErr: ge / gmax, logpMaxAbsErr: le, lossRelErr: lossErr });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name.padEnd(22)} grad err ${(ge / gmax).toExponential(2)} (of max |grad|)  logp err ${le.toExponential(2)}  loss rel err ${lossErr.toExponential(2)}`);
}

// ours
let lib = null;
try { lib = require('../lib'); } catch (e) { console.log(`ours: lib does not load: ${e.message}`); }
if (lib && typeof lib.grpoLossFromLogitsSync === 'function') {
  const base = { logits, vocabSize: V, targets, advantages, mask, temperature, epsilon: 0.2, beta: 0, lossType: 'dapo' };
  const grad = new Float32Array(N * V);
  const a = lib.grpoLossFromLogitsSync({ ...base, out: { gradLogits: grad } });
  compare('ours (separate)', a.loss, a.logp, grad);
  const z = logits.slice();
  const b = lib.grpoLossFromLogitsSync({ ...base, logits: z, gradient: 'inplace' });
  compare('ours (inplace)', b.loss, b.logp, z);
} else {
  console.log('skip ours: grpoLossFromLogitsSync is not exported by lib/ yet');
}

// torch peers
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-check-'));
try {
  const w = (name, a) => fs.writeFileSync(path.join(dir, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  w('logits.f32', logits);
  w('targets.i32', targets);
  w('advantages.f32', advantages);
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ S, T, V, temperature }));
  const py = spawnSync('/usr/bin/python3', [path.join(__dirname, 'peers', 'torch_peers.py'), '--check', dir], { encoding: 'utf8' });
  const line = (py.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) {
    console.log(`skip torch peers: ${(py.stderr || String(py.error)).slice(-300)}`);
  } else {
    const res = JSON.parse(line.slice(7));
    for (const [name, v] of Object.entries(res)) {
      const buf = fs.readFileSync(path.join(dir, `grad_${name}.f32`));
      compare(name, v.loss, v.logp, new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`RESULT ${JSON.stringify(rows)}`);
process.exit(rows.every((x) => x.ok) ? 0 : 1);
