// Atomicity against a real crash: a child process saves checkpoints in a loop and is killed
// with SIGKILL at an arbitrary moment; the run directory must still hold a complete,
// loadable checkpoint (never a half-written one).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn } from 'child_process';
import { createTransformer } from '../lib/models';
import { loadCheckpoint } from '../lib/trainer/checkpoint';

const CHILD = `
const { createTransformer, CharTokenizer } = require('../lib/models');
const { saveCheckpoint } = require('../lib/trainer/checkpoint');
const tok = new CharTokenizer();
// big enough that a save takes a while: the kill usually lands inside one
const m = createTransformer({ vocabSize: tok.vocabSize, dModel: 256, nLayers: 4, nHeads: 4, dFF: 1024, maxSeqLen: 64, seed: 1 });
const dir = process.argv[2];
for (let step = 1; ; step++) {
  const sd = m.stateDict();
  for (const t of sd.values()) t.data.fill(step);  // every weight = step: a torn file is easy to see
  m.loadStateDict(sd);
  saveCheckpoint(dir, { model: m, meta: { kind: 'grpo', step, config: {}, state: { step } }, keep: 2 });
  if (step === 1) process.stdout.write('saved\\n');
}
`;

for (const delayMs of [0, 37, 150]) {
  test(`SIGKILL ${delayMs} ms after the first save: the latest checkpoint is complete`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-kill-'));
    const script = path.join(__dirname, `.checkpoint_kill_child_${process.pid}.cjs`);
    fs.writeFileSync(script, CHILD);
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d) => String(d).includes('saved') && resolve());
        child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
      });
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    } finally {
      fs.rmSync(script, { force: true });
    }
    const ck = loadCheckpoint(dir);
    const step = ck.meta.step;
    assert.ok(step >= 1);
    for (const [name, t] of ck.weights) for (let i = 0; i < t.data.length; i++) if (t.data[i] !== step) assert.unreachable(`${name}[${i}] = ${t.data[i]} in the step-${step} checkpoint`);
    const m = createTransformer(ck.meta.modelConfig);
    m.loadStateDict(ck.weights);
    m.dispose();
  });
}

test.run();
