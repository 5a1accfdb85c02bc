// The remote rollout path against real `grpo serve` processes: the same tokens and log-probs as
// the in-process engine for the same seed (any split over servers), weight updates through
// /update_weights_from_disk, and the faults: a server killed mid-step, a hanging server, garbage,
// out-of-vocabulary ids and positive log-probs, half-written weights.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { rollout, type Rollout } from '../lib/trainer/rollout';
import { saveCheckpoint } from '../lib/trainer/checkpoint';
import { RemoteEngine } from '../lib/rollout/remote';
import { writeRolloutWeights } from '../lib/serve/weights';
import { runTrain } from '../lib/trainer/run';
import { readSafetensors } from '../lib/models/safetensors';
import { tok, task, tinyModel } from './trainer_setup';
import { fakeServer, post, spawnServe, type ServeChild } from './rollout_remote_helpers';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-remote-'));
const model = tinyModel(5);
const ck = saveCheckpoint(path.join(root, 'run'), { model, meta: { kind: 'grpo', step: 0, config: {}, state: {} } });
const prompts = task.train.slice(0, 5);
let A: ServeChild, B: ServeChild;

const same = (a: Rollout, b: Rollout) => {
  assert.equal(a.tokens.map((t) => [...t]), b.tokens.map((t) => [...t]));
  // bit-exact: float32 log-probs survive JSON as doubles
  assert.equal(a.logprobs.map((t) => [...t]), b.logprobs.map((t) => [...t]));
  assert.equal(a.truncated, b.truncated);
  assert.equal(a.texts, b.texts);
  assert.equal(a.promptIds.map((t) => [...t]), b.promptIds.map((t) => [...t]));
};

test.before(async () => {
  [A, B] = await Promise.all([spawnServe(['--checkpoint', ck]), spawnServe(['--checkpoint', ck])]);
});
test.after(async () => {
  await Promise.all([A?.stop(), B?.stop()]);
  model.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

test('remote vs in-process: identical tokens, log-probs, truncation and texts for the same seed (1 and 2 servers, top-k/p, min-p, greedy, stop)', async () => {
  const settings = [
    { maxCompletionLength: 4, temperature: 1, seed: 11 },
    { maxCompletionLength: 5, temperature: 0.7, topK: 6, topP: 0.9, minP: 0.02, seed: 12345678901 },
    { maxCompletionLength: 4, temperature: 0, seed: 3 },
    { maxCompletionLength: 6, temperature: 1.3, seed: 8, stop: ['g', 'x', 'J'] },
  ];
  for (const o of settings) {
    const ref = await rollout(model, tok, prompts, 3, o);
    const one = new RemoteEngine({ urls: [A.url], tokenizer: tok, vocabSize: model.vocabSize });
    const two = new RemoteEngine({ urls: [A.url, B.url + '/v1'], tokenizer: tok, vocabSize: model.vocabSize });
    same(await one.generate(prompts, 3, o), ref);
    const r2 = await two.generate(prompts, 3, o);
    same(r2, ref);
    assert.equal(r2.policyVersion, new Array(15).fill(0));
    assert.is(two.stats.requests, 2, 'one request per server');
    // fewer prompts than servers: the sequences are split (n = 1 per sent prompt), same tokens
    const solo = new RemoteEngine({ urls: [A.url, B.url], tokenizer: tok, vocabSize: model.vocabSize });
    same(await solo.generate(prompts.slice(0, 1), 3, o), await rollout(model, tok, prompts.slice(0, 1), 3, o));
    assert.is(solo.stats.requests, 2);
  }
  // the stop strings really cut something in the last setting (else the case proves nothing)
  const ref = await rollout(model, tok, prompts, 3, settings[3]);
  assert.ok(ref.tokens.some((t, i) => !ref.truncated[i] && t.length < 6 && t[t.length - 1] !== tok.eosId));
});

test('grpo serve answers as vLLM does: text prompts, n, choices[].text/token_ids/logprobs, finish_reason; row_offset = sequence index', async () => {
  const o = { maxCompletionLength: 4, temperature: 1, seed: 21 };
  const ref = await rollout(model, tok, prompts.slice(0, 2), 2, o);
  const r = await post(`${A.url}/v1/completions`, {
    prompt: prompts.slice(0, 2).map((e) => e.prompt), n: 2, max_tokens: 4, seed: 21, logprobs: 0, return_token_ids: true,
  });
  assert.is(r.status, 200);
  assert.is(r.json.object, 'text_completion');
  assert.is(r.json.choices.length, 4);
  r.json.choices.forEach((c: any, i: number) => {
    assert.is(c.index, i);
    assert.equal(c.token_ids, [...ref.tokens[i]]);
    assert.equal(c.logprobs.token_logprobs, [...ref.logprobs[i]]);
    assert.is(c.text, ref.texts[i]);
    assert.equal(c.prompt_token_ids, [...ref.promptIds[i]]);
    assert.is(c.finish_reason, ref.truncated[i] ? 'length' : 'stop');
  });
  assert.is(r.json.usage.completion_tokens, ref.tokens.reduce((a, t) => a + t.length, 0));
  // the second prompt alone with row_offset 2 = sequences 2, 3 of the whole rollout
  const r2 = await post(`${A.url}/v1/completions`, { prompt: [...ref.promptIds[2]], n: 2, max_tokens: 4, seed: 21, row_offset: 2 });
  assert.equal(r2.json.choices.map((c: any) => c.text), [ref.texts[2], ref.texts[3]]);
  assert.is(r2.json.choices[0].logprobs, null, 'no logprobs unless asked');
  assert.is(r2.json.usage.completion_tokens, ref.tokens[2].length + ref.tokens[3].length, 'counted without return_token_ids too');
  assert.is(r2.json.choices[0].token_ids, undefined);
  const h = await fetch(`${A.url}/health`);
  assert.is(h.status, 200);
  assert.equal(await h.json(), { status: 'ok', weight_version: 0 });
  const m = await (await fetch(`${A.url}/v1/models`)).json();
  assert.is(m.data[0].id, 'grpo');
  assert.is(m.data[0].max_model_len, 16);
});

test('bad requests: HTTP 400 with an OpenAI-style error naming the field', async () => {
  const cases: [unknown, number, string][] = [
    [{ prompt: [1, 5], max_tokens: 2, temperature: -1 }, 400, 'temperature'],
    [{ prompt: [1, 5], max_tokens: 2, top_p: 0 }, 400, 'top_p'],
    [{ prompt: [1, 5], max_tokens: 2, min_p: 2 }, 400, 'min_p'],
    [{ prompt: [1, 5], max_tokens: 2, top_k: 1.5 }, 400, 'top_k'],
    [{ prompt: [1, 5], max_tokens: 2, n: 0 }, 400, 'n'],
    [{ prompt: [1, 5], max_tokens: 15 }, 400, 'max_tokens'],
    [{ prompt: [1, 5], max_tokens: 2, seed: -3 }, 400, 'seed'],
    [{ prompt: [[1, 5], [1, 999]], max_tokens: 2 }, 400, 'prompt[1][1]'],
    [{ prompt: [] }, 400, 'prompt'],
    [{}, 400, 'prompt'],
    [{ prompt: [1, 5], max_tokens: 2, logprobs: 5 }, 400, 'logprobs'],
    [{ prompt: [1, 5], max_tokens: 2, stop: [3] }, 400, 'stop[0]'],
    [{ prompt: [1, 5], max_tokens: 2, stream: true }, 400, 'stream'],
    [{ prompt: [1, 5], max_tokens: 2, temprature: 1 }, 400, 'temprature'],
    [{ prompt: [1, 5], max_tokens: 2, model: 'gpt-4' }, 404, 'model'],
    [{ prompt: [1, 5] }, 400, 'max_tokens'],
  ];
  for (const [body, status, param] of cases) {
    const r = await post(`${A.url}/v1/completions`, body);
    assert.is(r.status, status, JSON.stringify(body));
    assert.is(r.json.error.param, param, JSON.stringify(body));
    assert.match(r.json.error.message, param + ':');
    assert.is(r.json.error.type, status === 400 ? 'invalid_request_error' : 'not_found_error');
  }
  const r = await post(`${A.url}/v1/completions`, '{"prompt": [1,');
  assert.is(r.status, 400);
  assert.match(r.json.error.message, 'not valid JSON');
  const nf = await fetch(`${A.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
  assert.is(nf.status, 404);
  // the server still works after all of that
  assert.is((await post(`${A.url}/v1/completions`, { prompt: [1, 5], max_tokens: 2, seed: 1 })).status, 200);
});

test('garbage answers: the error names the engine, the URL, the request and the field; retried on another server', async () => {
  const good = await rollout(model, tok, prompts.slice(0, 2), 2, { maxCompletionLength: 4, seed: 5 });
  const choice = (ids: number[], lps: number[], fr = 'stop') => ({ index: 0, text: '', token_ids: ids, logprobs: { token_logprobs: lps }, finish_reason: fr });
  const bodies: [string, string][] = [
    ['<html>oops</html>', 'not JSON'],
    [JSON.stringify({ choices: [choice([5], [-1])] }), 'choices: expected 4 choices'],
    [JSON.stringify({ choices: [0, 1, 2, 3].map((i) => ({ ...choice([5, 9999], [-1, -2]), index: i })) }), `choices[0].token_ids[1]: expected a token id in [0, ${tok.vocabSize})`],
    [JSON.stringify({ choices: [0, 1, 2, 3].map((i) => ({ ...choice([5, 6], [-1, 0.25]), index: i })) }), 'choices[0].logprobs.token_logprobs[1]: expected a finite log-prob <= 0 but received 0.25'],
    [JSON.stringify({ choices: [0, 1, 2, 3].map((i) => ({ ...choice([5, 6], [-1, null as unknown as number]), index: i })) }), 'choices[0].logprobs.token_logprobs[1]'],
    [JSON.stringify({ choices: [0, 1, 2, 3].map((i) => ({ ...choice([5, 6], [-1]), index: i })) }), 'expected 2 log-probs'],
    [JSON.stringify({ choices: [0, 1, 2, 3].map((i) => ({ ...choice([5, 6], [-1, -1], 'eos'), index: i })) }), 'choices[0].finish_reason'],
    [JSON.stringify({ choices: [0, 1, 2, 3].map((i) => ({ index: i, text: 'x', finish_reason: 'stop', logprobs: null })) }), 'choices[0].token_ids: expected an array of token ids'],
  ];
  for (const [body, msg] of bodies) {
    const f = await fakeServer(() => ({ body }));
    const e = new RemoteEngine({ urls: [f.url], tokenizer: tok, vocabSize: model.vocabSize, retries: 1 });
    let err: Error | null = null;
    try {
      await e.generate(prompts.slice(0, 2), 2, { maxCompletionLength: 4, seed: 5 });
    } catch (x) {
      err = x as Error;
    }
    assert.ok(err, `no error for ${body}`);
    assert.match(err!.message, `rollout engine remote:${f.url}`);
    assert.match(err!.message, 'request for prompts 0..1 × n 2 (seed 5, row_offset 0)');
    assert.match(err!.message, msg);
    assert.match(err!.message, 'after 2 attempts');
    assert.is(f.hits(), 2, 'retried');
    // with a healthy second server the step goes on, with exactly the in-process tokens
    const mixed = new RemoteEngine({ urls: [f.url, A.url], tokenizer: tok, vocabSize: model.vocabSize, retries: 1 });
    same(await mixed.generate(prompts.slice(0, 2), 2, { maxCompletionLength: 4, seed: 5 }), good);
    assert.is(mixed.stats.retries, 1);
    await f.close();
  }
  // an HTTP error's message comes through
  const f = await fakeServer(() => ({ status: 503, body: JSON.stringify({ error: { message: 'overloaded', param: null } }) }));
  const e = new RemoteEngine({ urls: [f.url], tokenizer: tok, vocabSize: model.vocabSize, retries: 0 });
  await e.generate(prompts.slice(0, 1), 1, { maxCompletionLength: 4, seed: 5 }).then(
    () => assert.unreachable('no error'),
    (x: Error) => assert.match(x.message, `${f.url}: HTTP 503: overloaded`),
  );
  await f.close();
});

test('a hanging server: the request times out and is retried on the other; alone, the step fails naming the timeout', async () => {
  const o = { maxCompletionLength: 4, temperature: 1, seed: 77 };
  const ref = await rollout(model, tok, prompts, 2, o);
  B.child.kill('SIGSTOP');
  try {
    const alone = new RemoteEngine({ urls: [B.url], tokenizer: tok, vocabSize: model.vocabSize, timeout: 0.5, retries: 1 });
    const t0 = Date.now();
    await alone.generate(prompts, 2, o).then(
      () => assert.unreachable('no error'),
      (x: Error) => {
        assert.match(x.message, `rollout engine remote:${B.url}`);
        assert.match(x.message, `${B.url}: no answer within 0.5 s (timeout)`);
        assert.match(x.message, 'request for prompts 0..4 × n 2 (seed 77, row_offset 0)');
      },
    );
    assert.ok(Date.now() - t0 < 5000, 'bounded by the timeout');
    const both = new RemoteEngine({ urls: [A.url, B.url], tokenizer: tok, vocabSize: model.vocabSize, timeout: 0.5, retries: 1 });
    same(await both.generate(prompts, 2, o), ref);
    assert.is(both.stats.retries, 1);
  } finally {
    B.child.kill('SIGCONT');
  }
});

test('a server killed mid-step: its request is retried on the other instance, same tokens', async () => {
  const o = { maxCompletionLength: 4, temperature: 1, seed: 99 };
  const ref = await rollout(model, tok, prompts, 3, o);
  const victim = await spawnServe(['--checkpoint', ck]);
  try {
    victim.child.kill('SIGSTOP'); // the request is accepted by the kernel and waits: then the process dies
    const eng = new RemoteEngine({ urls: [A.url, victim.url], tokenizer: tok, vocabSize: model.vocabSize, timeout: 30, retries: 1 });
    const p = eng.generate(prompts, 3, o);
    await new Promise((r) => setTimeout(r, 300));
    victim.child.kill('SIGKILL');
    same(await p, ref);
    assert.is(eng.stats.retries, 1);
    assert.match(eng.stats.failures[0], `${victim.url}: connection failed`);
    // the dead server: every request goes to the live one
    same(await eng.generate(prompts, 3, o), ref);
  } finally {
    await victim.stop();
  }
});

test('syncWeights: atomic weights in the run directory, every server reloads them, tokens follow the new weights', async () => {
  const dir = path.join(root, 'sync', 'rollout-weights');
  const m2 = tinyModel(9);
  const eng = new RemoteEngine({ urls: [A.url, B.url], tokenizer: tok, vocabSize: model.vocabSize, weightsDir: dir });
  try {
    const o = { maxCompletionLength: 4, temperature: 1, seed: 4 };
    await eng.syncWeights(m2, 3);
    assert.equal(fs.readdirSync(dir), ['v-000003']);
    const r = await eng.generate(prompts, 2, o);
    same(r, await rollout(m2, tok, prompts, 2, o));
    assert.equal(r.policyVersion, new Array(10).fill(3));
    assert.equal(await (await fetch(`${B.url}/health`)).json(), { status: 'ok', weight_version: 3 });
    // a newer version replaces it; the older directory is pruned once every server moved on
    await eng.syncWeights(model, 4);
    assert.equal(fs.readdirSync(dir), ['v-000004']);
    same(await eng.generate(prompts, 2, o), await rollout(model, tok, prompts, 2, o));
  } finally {
    m2.dispose();
  }
});

test('no half-written weights: a failed write leaves nothing a server could load; a bad directory is refused and the old weights stay', async () => {
  const dir = path.join(root, 'half', 'rollout-weights');
  const m2 = tinyModel(13);
  try {
    assert.throws(() => writeRolloutWeights(dir, m2, 7, { beforeCommit: () => { throw new Error('killed'); } }), /killed/);
    assert.equal(fs.readdirSync(dir), [], 'neither v-000007 nor its temporary directory');
    // a kill mid-write leaves a temporary directory: never named v-NNNNNN, removed by the next write
    fs.mkdirSync(path.join(dir, 'v-000008.tmp-4242'));
    fs.writeFileSync(path.join(dir, 'v-000008.tmp-4242', 'model.safetensors'), 'partial');
    writeRolloutWeights(dir, m2, 8);
    assert.equal(fs.readdirSync(dir), ['v-000008']);
    // a server asked to load an incomplete directory answers 400 naming the file and keeps its weights
    const bad = path.join(root, 'half', 'incomplete');
    fs.mkdirSync(bad);
    fs.copyFileSync(path.join(dir, 'v-000008', 'trainer_state.json'), path.join(bad, 'trainer_state.json'));
    const r = await post(`${A.url}/update_weights_from_disk`, { model_path: bad });
    assert.is(r.status, 400);
    assert.is(r.json.success, false);
    assert.is(r.json.error.param, 'model_path');
    assert.match(r.json.message, path.join(bad, 'model.safetensors'));
    const o = { maxCompletionLength: 4, seed: 31 };
    const eng = new RemoteEngine({ urls: [A.url], tokenizer: tok, vocabSize: model.vocabSize });
    same(await eng.generate(prompts, 2, o), await rollout(model, tok, prompts, 2, o));
    // a sync that a server refuses fails naming the engine, the URL and the version
    const f = await fakeServer(() => ({ status: 400, body: JSON.stringify({ success: false, message: 'nope', error: { message: 'model_path: nope', param: 'model_path' } }) }));
    const e2 = new RemoteEngine({ urls: [A.url, f.url], tokenizer: tok, vocabSize: model.vocabSize, weightsDir: path.join(root, 'half', 'w2') });
    await e2.syncWeights(model, 1).then(
      () => assert.unreachable('no error'),
      (x: Error) => assert.match(x.message, `rollout engine remote:${A.url},${f.url}: weight update to version 1`) && assert.match(x.message, `${f.url}: HTTP 400: model_path: nope`),
    );
    await f.close();
  } finally {
    m2.dispose();
  }
});

test('grpo train --rollout-engine remote: the same run, bit for bit, as in-process; servers follow every update', async () => {
  const base = {
    digits: 1, ops: ['+'], trainSize: 30, testSize: 4, seed: 5, dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 16,
    maxSteps: 2, batchSize: 3, numGenerations: 2, numIterations: 2, maxCompletionLength: 4, evalSteps: 0, evalLimit: 4, evalK: 2,
    rewards: ['format'], progress: false, saveSteps: 0,
  };
  const quiet = { log: () => {} };
  const local = await runTrain({ ...base, outputDir: path.join(root, 'train-local') }, quiet);
  const remoteDir = path.join(root, 'train-remote');
  const remote = await runTrain({ ...base, outputDir: remoteDir, rolloutEngine: 'remote', rolloutUrls: [A.url, B.url], rolloutTimeout: 60 }, quiet);
  const a = readSafetensors(path.join(local.checkpoint, 'model.safetensors')).tensors;
  const b = readSafetensors(path.join(remote.checkpoint, 'model.safetensors')).tensors;
  assert.equal([...a.keys()], [...b.keys()]);
  for (const [k, t] of a) assert.ok(Buffer.from(t.data.buffer).equals(Buffer.from(b.get(k)!.data.buffer)), k);
  // 2 steps × μ 2 = 4 updates: both servers serve version 4, only its weights directory is left
  for (const s of [A, B]) assert.equal(await (await fetch(`${s.url}/health`)).json(), { status: 'ok', weight_version: 4 });
  assert.equal(fs.readdirSync(path.join(remoteDir, 'rollout-weights')), ['v-000004']);
  // no servers: the run fails naming the option
  await runTrain({ ...base, outputDir: path.join(root, 'train-none'), rolloutEngine: 'remote' }, quiet).then(
    () => assert.unreachable('no error'),
    (e: Error) => assert.match(e.message, '--rollout-urls'),
  );
});

test('RemoteEngine options are checked', () => {
  assert.throws(() => new RemoteEngine({ urls: [], tokenizer: tok, vocabSize: 98 }), /urls/);
  assert.throws(() => new RemoteEngine({ urls: ['ftp://x'], tokenizer: tok, vocabSize: 98 }), /urls\[0\]/);
  assert.throws(() => new RemoteEngine({ urls: ['http://x'], tokenizer: tok, vocabSize: 98, timeout: 0 }), /timeout/);
  assert.throws(() => new RemoteEngine({ urls: ['http://x'], tokenizer: tok, vocabSize: 98, retries: -1 }), /retries/);
});

test.run();
