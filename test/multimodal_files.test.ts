// The files path of the multimodal tasks: `grpo data export` writes a built-in task as ms-swift
// JSONL + media files (never over existing files without --overwrite), `grpo train --task
// FILE.jsonl` trains from them (the media decoded at the sizes read off the data, the model given
// the encoder the data needs), and the tensors the model sees from the files equal the in-memory
// task's up to the 16-bit WAV quantisation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runData } from '../lib/cli/data';
import { runEval, runTrain, taskTokenizer, withDefaults, withTaskMedia } from '../lib/trainer/run';
import { loadCheckpoint } from '../lib/trainer/checkpoint';
import { datasetTask } from '../lib/tasks/dataset';
import { beepCountTask } from '../lib/tasks/multimodal';
import { buildMediaArgs, mediaModelConfig, MediaTokenizer, TransformerConfig } from '../lib/models';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-mm-files-'));
const quiet = { log: () => {} };
const SIZES = { seed: 3, trainSize: 8, testSize: 4 };

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('grpo data export: beep_count as JSONL + WAV files; an existing export is kept unless --overwrite', async () => {
  const dir = path.join(root, 'beeps');
  const args = ['export', '--task', 'beep_count', '--out', dir, '--seed', '3', '--train-size', '8', '--test-size', '4'];
  const logs: string[] = [];
  assert.is(await runData(args, (m) => logs.push(m)), 0);
  assert.match(logs.join('\n'), /\(8 rows\).*\(4 rows\), 12 media files/);
  const rows = fs.readFileSync(path.join(dir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.is(rows.length, 8);
  assert.equal(rows[0].messages, [{ role: 'user', content: '<audio>beeps=' }]);
  assert.match(rows[0].audios[0], /^media\/train\/.*\.wav$/);
  assert.ok(fs.readFileSync(path.join(dir, rows[0].audios[0])).subarray(0, 4).toString() === 'RIFF');
  const before = fs.statSync(path.join(dir, 'train.jsonl')).mtimeMs;
  await runData(args, () => {}).then(
    () => assert.unreachable('overwrote an export'),
    (e) => assert.match(e.message, /already exist.*overwrite/),
  );
  assert.is(fs.statSync(path.join(dir, 'train.jsonl')).mtimeMs, before, 'the refused export left the files alone');
  assert.is(await runData([...args, '--overwrite'], () => {}), 0);
  await runData(['export', '--task', 'beep_count'], () => {}).then(
    () => assert.unreachable('no --out'),
    (e) => assert.match(e.message, /--out DIR is required/),
  );
});

test('from files: the model sees the in-memory task\'s tokens and encoder inputs (up to 16-bit WAV)', async () => {
  const dir = path.join(root, 'beeps');
  const mem = beepCountTask(SIZES);
  const files = await withTaskMedia(datasetTask({ train: path.join(dir, 'train.jsonl'), test: path.join(dir, 'test.jsonl') }), undefined);
  assert.equal(files.media, mem.media, 'the MediaSpec read off the files is the task\'s');
  const o = withDefaults({});
  const tokF = taskTokenizer(files, o) as MediaTokenizer, tokM = taskTokenizer(mem, o) as MediaTokenizer;
  assert.equal(tokF.media, tokM.media);
  assert.ok(tokF.media!.audio && !tokF.media!.vision, 'an audio encoder only');
  for (const [fs_, ms] of [[files.train, mem.train], [files.test, mem.test]]) {
    assert.is(fs_.length, ms.length);
    for (let i = 0; i < ms.length; i++) {
      const f = fs_[i], m = ms[i];
      assert.is(f.answer, m.answer);
      const ids = tokF.encode(f.prompt);
      assert.equal(ids, tokM.encode(m.prompt));
      assert.is(ids.filter((t) => t === tokF.audioTokenId).length, 15, 'the <audio> tag became 15 placeholders');
      // samples: 16-bit PCM, at most half a step from the float clip
      assert.ok(maxAbs(f.media!.audios![0].samples, m.media!.audios![0].samples) <= 0.5 / 32768 + 1e-7);
      // what the native encoder receives: same destinations, positions, and log-mel rows within the quantisation's effect
      const tokens = Int32Array.from(ids);
      const a = buildMediaArgs('t', tokF.media!, tokens, [0], [ids.length], [f.media]);
      const b = buildMediaArgs('t', tokM.media!, tokens, [0], [ids.length], [m.media]);
      assert.equal(Array.from(a.audioDest as Int32Array), Array.from(b.audioDest as Int32Array));
      assert.equal(Array.from(a.audioSpos as Int32Array), Array.from(b.audioSpos as Int32Array));
      assert.ok(maxAbs(a.audioFeat as Float32Array, b.audioFeat as Float32Array) < 2e-3, `row ${i}: log-mel features differ by ${maxAbs(a.audioFeat as Float32Array, b.audioFeat as Float32Array)}`);
    }
  }
});

test('grpo train --task FILE.jsonl: 2 GRPO steps from the exported files; the model has the audio encoder', async () => {
  const dir = path.join(root, 'beeps');
  const out = path.join(root, 'run');
  const r = await runTrain({
    task: path.join(dir, 'train.jsonl'), testFile: path.join(dir, 'test.jsonl'), rewards: ['accuracy'],
    dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, maxSeqLen: 32, encoderHidden: 8, maxCompletionLength: 2,
    batchSize: 2, numGenerations: 4, maxSteps: 2, evalSteps: 2, saveSteps: 2, evalLimit: 4, evalK: 1, progress: false, threads: 1, seed: 3, outputDir: out,
  }, quiet);
  assert.is(r.steps, 2);
  const ck = loadCheckpoint(out);
  const media = (ck.meta.modelConfig as TransformerConfig).media!;
  assert.equal(media.audio, mediaModelConfig(beepCountTask(SIZES).media!, { encoderHidden: 8 }).audio);
  assert.is(media.vision, undefined);
  // grpo eval of the run decodes the held-out files at the checkpoint's encoder sizes
  const ev = await runEval({ outputDir: out, evalK: 1, evalLimit: 4 }, quiet);
  assert.is(ev.k, 1);
  assert.ok(ev['pass@1'] >= 0 && ev['pass@1'] <= 1);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));
test.run();
