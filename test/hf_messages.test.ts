// Dataset rows with `messages` reach an HF tokenizer's chat template as their real turns
// (system + user, the reference assistant turn left out), while the built-in CharTokenizer keeps
// the flattened text; `grpo train --model DIR` runs on such a dataset, and `grpo eval` of a run
// trained with --model loads the HF model and reports pass@k.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { runEval, runTrain } from '../lib/trainer/run';
import { HfTokenizer } from '../lib/models/hf';
import { CharTokenizer } from '../lib/models';
import { loadJsonlDataset } from '../lib/tasks/dataset';
import { checkPromptLengths, encodeExamplePrompt } from '../lib/trainer/rollout';
import { ARCHS, randomWeights, writeHfCheckpoint, writeTinyTokenizer } from './hf_helpers';
import type { RefConfig } from './reference/hf_llama';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hfmsg-'));
test.after(() => fs.rmSync(root, { recursive: true, force: true }));
const quiet = { log: () => {} };

const modelDir = path.join(root, 'tiny-qwen3');
const V = writeTinyTokenizer(modelDir);
const cfg: RefConfig = { ...ARCHS.qwen3, V };
writeHfCheckpoint(modelDir, cfg, randomWeights(cfg, 7));

// rows in ms-swift layout: system + user turns; one with a trailing assistant turn as the reference
const data = path.join(root, 'chat.jsonl');
const rows: object[] = [];
for (let i = 0; i < 12; i++)
  rows.push(
    i % 3 === 2
      ? { messages: [{ role: 'system', content: 'Answer with a digit.' }, { role: 'user', content: `${i % 5}+1?` }, { role: 'assistant', content: `${(i % 5) + 1}` }] }
      : { messages: [{ role: 'system', content: 'Answer with a digit.' }, { role: 'user', content: `${i % 4}+2?` }], solution: `${(i % 4) + 2}` },
  );
fs.writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
const testData = path.join(root, 'chat-test.jsonl');
fs.writeFileSync(testData, rows.slice(0, 3).map((r) => JSON.stringify(r)).join('\n') + '\n');

// the tiny tokenizer's template (hf_helpers): '<|im_start|>' + role + '\n' + content + '<|im_end|>\n'
// per turn, then '<|im_start|>assistant\n' for the generation prompt; written out by hand here
const chatml = (turns: [string, string][]) => turns.map(([r, c]) => `<|im_start|>${r}\n${c}<|im_end|>\n`).join('') + '<|im_start|>assistant\n';

test('messages rows: an HF chat template sees the system and user turns (not the flattened text, not the reference)', () => {
  const tok = HfTokenizer.fromDir(modelDir);
  const exs = loadJsonlDataset(data);
  const e0 = exs[0], e2 = exs[2];
  const ids0 = encodeExamplePrompt(tok, e0);
  assert.equal(ids0, tok.encode(chatml([['system', 'Answer with a digit.'], ['user', '0+2?']])));
  // the special tokens are single ids at the turn boundaries
  const imStart = tok.encode('<|im_start|>');
  assert.is(imStart.length, 1);
  assert.is(ids0.filter((x) => x === imStart[0]).length, 3);
  // the flattened text would have been one user turn
  assert.not.equal(ids0, tok.encodePrompt(e0.prompt));
  assert.equal(tok.encodePrompt(e0.prompt), tok.encode(chatml([['user', 'Answer with a digit.\n0+2?']])));
  // a trailing assistant turn is the reference, not part of the prompt
  assert.is(e2.solution, '3');
  assert.equal(encodeExamplePrompt(tok, e2), tok.encode(chatml([['system', 'Answer with a digit.'], ['user', '2+1?']])));
  assert.not.ok(tok.decode(encodeExamplePrompt(tok, e2)).includes('assistant\n3'));
  // the prompt-length check counts the templated turns: the prompt is exactly ids0.length tokens
  checkPromptLengths([e0], tok, ids0.length + 4, 4, 'x');
  assert.throws(() => checkPromptLengths([e0], tok, ids0.length + 3, 4, 'x'), new RegExp(`prompt is ${ids0.length} tokens`));
});

test('messages rows: the built-in CharTokenizer keeps the flattened text', () => {
  const tok = new CharTokenizer();
  const e0 = loadJsonlDataset(data)[0];
  assert.equal(encodeExamplePrompt(tok, e0), [tok.bosId, ...tok.encode('Answer with a digit.\n0+2?')]);
});

// a dense signal for a random model (accuracy alone is 0 everywhere): the fraction of digit characters
const rewardFile = path.join(root, 'digits.js');
fs.writeFileSync(rewardFile, "module.exports = function digits(cs) { return cs.map((t) => (t.length ? t.replace(/[^0-9]/g, '').length / t.length : 0)); };\n");
const opts = {
  model: modelDir, task: data, testFile: testData, batchSize: 2, maxCompletionLength: 4, numGenerations: 4, warmupRatio: 0,
  rewards: ['accuracy'], rewardModule: rewardFile, evalSteps: 0, evalLimit: 2, evalK: 4, learningRate: 5e-2, beta: 0.04, progress: false, seed: 5,
};
const evalFields = (r: Record<string, unknown>, k: number) => {
  for (const f of ['pass@1', 'pass@k', 'maj@k', 'formatRate', 'meanLength', 'truncatedRate']) {
    assert.type(r[f], 'number', f);
    assert.ok((r[f] as number) >= 0 && (f === 'meanLength' || (r[f] as number) <= 1), `${f} = ${r[f]}`);
  }
  assert.is(r.k, k);
  assert.is(r.prompts, 2);
  assert.ok((r.meanLength as number) > 0);
};

test('train --model DIR on a messages dataset runs', async () => {
  const r = await runTrain({ ...opts, outputDir: path.join(root, 'run'), maxSteps: 2 }, quiet);
  assert.is(r.steps, 2);
  assert.ok(fs.existsSync(r.checkpoint));
});

test('eval of a run trained with --model: the HF model with the trained weights, pass@k reported', async () => {
  const run = path.join(root, 'run');
  const r = await runEval({ outputDir: run }, quiet);
  evalFields(r as unknown as Record<string, unknown>, 4);
  const j = JSON.parse(fs.readFileSync(path.join(run, 'eval.json'), 'utf8'));
  assert.is(j.step, 2);
  assert.is(j['pass@k'], r['pass@k']);
  // `--model DIR` and no checkpoint: the folder's own weights; same prompts and seed, so the
  // completions differ only because the run's trained weights were loaded above
  const base = await runEval({ model: modelDir, task: data, testFile: testData, outputDir: path.join(root, 'base-eval'), evalLimit: 2, evalK: 4, maxCompletionLength: 4, rewards: ['accuracy'], seed: 5 }, quiet);
  evalFields(base as unknown as Record<string, unknown>, 4);
  assert.is(JSON.parse(fs.readFileSync(path.join(root, 'base-eval', 'eval.json'), 'utf8')).step, 0);
  assert.equal(base.samples.map((x) => x.prompt), r.samples.map((x) => x.prompt));
  assert.not.equal(base.samples.map((x) => x.completion), r.samples.map((x) => x.completion), 'eval did not use the trained weights');
});

test('eval of a run trained with --model --use-peft: the adapters load and eval runs', async () => {
  const run = path.join(root, 'peft');
  await runTrain({ ...opts, usePeft: true, loraR: 2, loraAlpha: 4, loraTargetModules: ['q_proj', 'v_proj'], outputDir: run, maxSteps: 1 }, quiet);
  const r = await runEval({ checkpoint: run }, quiet);
  evalFields(r as unknown as Record<string, unknown>, 4);
});

test.run();
