// `grpo eval --endpoint`: evaluation with the samples from a server. Exact values on a scripted
// server (pass@k, maj@k, reward, format, length and the reasoning-efficiency measures computed by
// hand from their definitions), and the same result as an in-process evaluation against `grpo serve`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { evaluate, evaluateEngine, tokensToFirstCorrect } from '../lib/eval';
import { RemoteEngine } from '../lib/rollout/remote';
import { arithmeticTask } from '../lib/tasks';
import { saveCheckpoint } from '../lib/trainer/checkpoint';
import { runEval } from '../lib/trainer/run';
import type { RewardFunction } from '../lib/rewards';
import { tok, tinyModel } from './trainer_setup';
import { fakeServer, spawnServe } from './rollout_remote_helpers';

const task = arithmeticTask({ seed: 4, digits: 1, ops: ['+'], trainSize: 10, testSize: 2 });
const lengthReward: RewardFunction = { name: 'len', compute: (c) => c.completionLengths.map((x) => x) };

test('exact values on a scripted server: pass@k, maj@k, reward, format, length, tokens to / after the first correct answer, token efficiency', async () => {
  const [e0, e1] = task.test;
  const a0 = e0.answer, a1 = e1.answer;
  assert.is.not(a1, '1');
  const E = tok.eosId;
  const ids = (s: string, eos: boolean) => [...tok.encode(s), ...(eos ? [E] : [])];
  // per prompt, k = 3 scripted completions: [ids, finish_reason]
  const script: [number[], string][][] = [
    [[ids(a0, true), 'stop'], [ids(a0 + '  ', true), 'stop'], [ids('x', true), 'stop']],
    [[ids(a1, false), 'length'], [ids('1', true), 'stop'], [ids(a1, true), 'stop']],
  ];
  const f = await fakeServer((body) => {
    const choices = (body.prompt as number[][]).flatMap((_, p) => script[p].map(([t, fr], j) => ({
      index: p * 3 + j, text: tok.decode(t), token_ids: t, logprobs: { token_logprobs: t.map(() => -0.5) }, finish_reason: fr,
    })));
    return { body: JSON.stringify({ choices }) };
  });
  try {
    const engine = new RemoteEngine({ urls: [f.url], tokenizer: tok, vocabSize: tok.vocabSize });
    const r = await evaluateEngine(engine, tok, task, { k: 3, seed: 1, maxCompletionLength: 6, rewardFunctions: [lengthReward], passAt: [2] });
    const L0 = a0.length, L1 = a1.length;
    const T = [L0 + 1, L0 + 3, 2, L1, 2, L1 + 1];
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    assert.is(r.prompts, 2);
    // prompt 0: 2 of 3 correct, prompt 1: 1 of 3 (the truncated one does not count)
    const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
    near(r['pass@1'], (2 / 3 + 1 / 3) / 2);
    // prompt 1: 1 − C(2,2)/C(3,2) = 2/3
    near(r.passAt['pass@2'], (1 + 2 / 3) / 2);
    assert.is(r['pass@k'], 1);
    // majority: prompt 0 → a0 (right); prompt 1 → '1' and a1 tie, '1' seen first (wrong)
    assert.is(r['maj@k'], 0.5);
    // /^-?\d+$/ on the text: a0, '1', a1 (not 'a0  ', 'x', nor the truncated one)
    assert.is(r.formatRate, 3 / 6);
    assert.is(r.truncatedRate, 1 / 6);
    near(r.meanLength, mean(T));
    near(r.tokensPerCompletion, mean(T));
    near(r.meanReward, mean(T));
    // correct completions: a0+EOS, a0+'  '+EOS, a1+EOS; the answer is complete after L0, L0, L1 tokens
    assert.is(r.correctCompletions, 3);
    assert.ok(Math.abs(r.tokensToFirstCorrect - (2 * L0 + L1) / 3) < 1e-12);
    assert.ok(Math.abs(r.tokensAfterFirstCorrect - (1 + 3 + 1) / 3) < 1e-12);
    assert.ok(Math.abs(r.tokenEfficiency - (L0 / (L0 + 1) + L0 / (L0 + 3) + L1 / (L1 + 1)) / 3) < 1e-12);
  } finally {
    await f.close();
  }
});

test('tokensToFirstCorrect: the shortest prefix the task already judges correct', () => {
  const e = { id: 'x', prompt: '2+3=', answer: '5' };
  assert.is(tokensToFirstCorrect(tok, task, e, [...tok.encode('5'), tok.eosId]), 1);
  assert.is(tokensToFirstCorrect(tok, task, e, [...tok.encode('5 5'), tok.eosId]), 1, "'5' is already right; '5 5' is not, but the answer was given");
  assert.is(tokensToFirstCorrect(tok, task, e, tok.encode(' 5')), 2);
  const e2 = { id: 'y', prompt: '9+9=', answer: '18' };
  assert.is(tokensToFirstCorrect(tok, task, e2, tok.encode('18')), 2);
});

test('grpo eval --endpoint against grpo serve = the in-process evaluation of the same weights; eval.json written', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-remote-eval-'));
  const model = tinyModel(21);
  const t = arithmeticTask({ seed: 1, digits: 1, ops: ['+'], trainSize: 60, testSize: 20 });
  const ck = saveCheckpoint(path.join(root, 'run'), { model, meta: { kind: 'grpo', step: 0, config: {}, state: {} } });
  const s = await spawnServe(['--checkpoint', ck]);
  try {
    const o = { k: 4, seed: 9, maxCompletionLength: 4, temperature: 1 };
    const local = await evaluate(model, tok, t, o);
    const remote = await evaluateEngine(new RemoteEngine({ urls: [s.url], tokenizer: tok, vocabSize: tok.vocabSize }), tok, t, o);
    const strip = (r: typeof local) => ({ ...r, seconds: 0 });
    assert.equal(strip(remote), strip(local));
    // the CLI path: task options from flags, no checkpoint
    const out = path.join(root, 'eval');
    const r = await runEval(
      { endpoint: s.url, outputDir: out, digits: 1, ops: ['+'], trainSize: 60, testSize: 20, seed: 1, evalK: 4, maxCompletionLength: 4, rewards: ['format'], progress: false },
      { log: () => {} },
    );
    const j = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
    assert.is(j.endpoint, s.url);
    assert.is(j['pass@1'], r['pass@1']);
    assert.ok(Number.isFinite(j.tokensPerCompletion));
    await runEval({ endpoint: s.url, checkpoint: ck, outputDir: out }, { log: () => {} }).then(
      () => assert.unreachable('no error'),
      (e: Error) => assert.match(e.message, '--endpoint and --checkpoint exclude each other'),
    );
  } finally {
    await s.stop();
    model.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
