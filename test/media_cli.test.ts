// Malformed media end to end through the CLI: `grpo train` / `grpo sft` / `grpo eval` on a JSONL
// dataset whose rows carry a truncated PNG, a WAV with a wrong header, a missing file, a
// zero-frame video or a 20000×20000 image exit 1 with one report naming file:line and
// field[index] (no stack, no signal), and leave nothing behind: no run directory, no checkpoint,
// and an existing run given with --overwrite-output-dir untouched (the data is decoded before
// anything is written).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { pathToFileURL } from 'url';
import sharp from 'sharp';
import { encodeWav } from '../lib/media/write';
import { ffmpegAvailable } from '../lib/media/decode';
import { dirSnapshot } from './helpers';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-media-cli-'));
const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');
const tsxLoader = pathToFileURL(path.resolve(__dirname, '..', 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const grpo = (args: string[]) => spawnSync(process.execPath, ['--import', tsxLoader, bin, ...args], { encoding: 'utf8', timeout: 120_000 });
const tiny = ['--d-model', '16', '--n-layers', '1', '--n-heads', '2', '--d-ff', '32', '--max-completion-length', '2', '--batch-size', '2', '--num-generations', '2',
  '--max-steps', '2', '--save-steps', '1', '--eval-steps', '0', '--eval-limit', '2', '--eval-k', '1', '--no-progress', '--threads', '1', '--seed', '3',
  '--format-pattern', '^\\d$'];
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');


/** A PNG whose header declares 20000×20000 (a decompression bomb; the IDAT is a stub). */
function bombPng(): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(20000, 0);
  ihdr.writeUInt32BE(20000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

const dir = path.join(root, 'data');
fs.mkdirSync(dir);
const row = (kind: 'image' | 'audio' | 'video', file: string, answer = '1') =>
  JSON.stringify({ messages: [{ role: 'user', content: `<${kind}>n=` }], [`${kind}s`]: [file], solution: answer });
const jsonl = (name: string, rows: string[]) => {
  fs.writeFileSync(path.join(dir, name), rows.join('\n') + '\n');
  return path.join(dir, name);
};

test.before(async () => {
  const png = await sharp(Buffer.from(Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256)), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
  fs.writeFileSync(path.join(dir, 'ok.png'), png);
  fs.writeFileSync(path.join(dir, 'trunc.png'), png.subarray(0, png.length - 30));
  fs.writeFileSync(path.join(dir, 'bomb.png'), bombPng());
  const wav = encodeWav({ kind: 'audio', sampleRate: 4000, samples: Float32Array.from({ length: 2000 }, (_, i) => 0.5 * Math.sin(i / 3)) });
  fs.writeFileSync(path.join(dir, 'ok.wav'), wav);
  const bad = Buffer.from(wav);
  bad.write('xxxx', 12, 'latin1'); // RIFF/WAVE, but no 'fmt ' chunk
  fs.writeFileSync(path.join(dir, 'badheader.wav'), bad);
  // zero frames: a GIF with a screen and a two-colour table but no image before its trailer
  const gif = await sharp(Buffer.from(Array.from({ length: 8 * 16 * 3 }, (_, i) => (i < 8 * 8 * 3 ? 200 : 20))), { raw: { width: 8, height: 16, channels: 3, pageHeight: 8 } }).gif().toBuffer();
  fs.writeFileSync(path.join(dir, 'ok.gif'), gif);
  fs.writeFileSync(path.join(dir, 'zero.gif'), Buffer.from([...Buffer.from('GIF89a'), 8, 0, 8, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x3b]));
});

/** The failure every bad command must show: exit 1 (not a signal), one report naming each bad entry, no stack. */
function failsNaming(r: ReturnType<typeof grpo>, entries: [file: string, line: number, field: string, index: number, why: RegExp][]): void {
  assert.is(r.signal, null, `killed by ${r.signal}`);
  assert.is(r.status, 1, `exit ${r.status}: ${r.stderr}`);
  assert.not.match(r.stderr, /^\s+at /m, 'no stack trace');
  const rows = new Set(entries.map(([f, l]) => `${f}:${l}`)).size;
  assert.match(r.stderr, new RegExp(`grpo: ${rows} dataset rows? with unusable media`), r.stderr);
  for (const [file, line, field, index, why] of entries)
    assert.match(r.stderr, new RegExp(`${esc(file)}:${line}: ${field}\\[${index}\\]: ${why.source}`), r.stderr);
  // one line per bad entry under the heading, each reported once
  assert.is(r.stderr.trim().split('\n').length, 1 + entries.length, r.stderr);
}

test('grpo train: a 20000×20000 image in the first row (where a fresh model reads its encoder size), a truncated PNG and a missing file: exit 1 naming each file:line field[index], the size read off the first row that decodes, no run directory', () => {
  const f = jsonl('images.jsonl', [row('image', 'bomb.png'), row('image', 'trunc.png'), row('image', 'ok.png', '2'), row('image', 'gone/missing.png'), row('image', 'ok.png')]);
  const out = path.join(root, 'run-images');
  // --test-file naming the same file: each bad row is still reported once
  const r = grpo(['train', '--task', f, '--test-file', f, '--output-dir', out, ...tiny]);
  failsNaming(r, [
    [f, 1, 'images', 0, /the png is 20000×20000 = 400000000 pixels, more than the limit of 67108864/],
    [f, 2, 'images', 0, /cannot decode the png \(8×8\)/],
    [f, 4, 'images', 0, /file not found: .*gone\/missing\.png/],
  ]);
  assert.not.ok(fs.existsSync(out), 'nothing written');
  // no row of the kind decodes: there is no size to read, and each row tried is named
  const g = jsonl('allbad.jsonl', [row('image', 'bomb.png'), row('image', 'trunc.png')]);
  failsNaming(grpo(['train', '--task', g, '--test-file', g, '--output-dir', out, ...tiny]), [
    [g, 1, 'images', 0, /the png is 20000×20000/], [g, 2, 'images', 0, /cannot decode the png \(8×8\)/],
  ]);
  assert.not.ok(fs.existsSync(out));
});

test('grpo train --overwrite-output-dir over an existing run: a WAV with a wrong header and a zero-frame video fail the run and the old run is untouched', () => {
  const good = jsonl('good.jsonl', [row('audio', 'ok.wav', '1'), row('audio', 'ok.wav', '2'), row('audio', 'ok.wav', '3'), row('audio', 'ok.wav', '1')]);
  const out = path.join(root, 'run-audio');
  const ok = grpo(['train', '--task', good, '--test-file', good, '--output-dir', out, ...tiny]);
  assert.is(ok.status, 0, ok.stderr);
  assert.ok(fs.existsSync(path.join(out, 'checkpoints', 'latest.json')), 'the good run has a checkpoint');
  const before = dirSnapshot(out);
  const f = jsonl('mixed.jsonl', [row('audio', 'ok.wav'), row('audio', 'badheader.wav'), row('video', 'zero.gif'), row('video', 'ok.gif'), row('audio', 'ok.wav')]);
  const r = grpo(['train', '--task', f, '--test-file', f, '--output-dir', out, '--overwrite-output-dir', ...tiny]);
  failsNaming(r, [[f, 2, 'audios', 0, /cannot parse the WAV header: Could not find the "fmt " chunk/], [f, 3, 'videos', 0, /cannot read the header of GIF \(20 B\): .*no frames in GIF/]]);
  assert.equal(dirSnapshot(out), before, 'the existing run is byte for byte what it was');
});

test('grpo sft and grpo eval fail the same way on bad media; sft writes no checkpoint', () => {
  const f = jsonl('sft.jsonl', [row('audio', 'ok.wav'), row('audio', 'ok.wav'), row('audio', 'badheader.wav'), row('audio', 'ok.wav')]);
  const out = path.join(root, 'sft');
  const r = grpo(['sft', '--task', f, '--test-file', f, '--output-dir', out, '--sft-steps', '2', '--sft-batch-size', '2', ...tiny]);
  failsNaming(r, [[f, 3, 'audios', 0, /cannot parse the WAV header/]]);
  assert.not.ok(fs.existsSync(path.join(out, 'checkpoints')), 'no checkpoint');
  // eval of the good run against a held-out file with a missing clip
  const run = path.join(root, 'run-audio');
  const t = jsonl('heldout.jsonl', [row('audio', 'ok.wav'), row('audio', 'nowhere.wav')]);
  const before = dirSnapshot(run);
  const e = grpo(['eval', '--output-dir', run, '--task', t, '--test-file', t, '--eval-limit', '2', '--eval-k', '1', '--no-progress']);
  failsNaming(e, [[t, 2, 'audios', 0, /file not found: .*nowhere\.wav/]]);
  assert.equal(dirSnapshot(run), before, 'eval wrote nothing into the run');
});

// the real ffmpeg makes the file; PATH is emptied for the run only
(ffmpegAvailable().ffmpeg ? test : test.skip)('no ffmpeg on PATH: an MP4 row fails naming the row, the field and what is missing (not a spawn crash)', () => {
  const mp4 = path.join(dir, 'clip.mp4');
  const g = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=c=red:s=8x8:d=0.4:r=5', '-pix_fmt', 'yuv420p', mp4]);
  assert.is(g.status, 0, String(g.stderr));
  const f = jsonl('mp4.jsonl', [row('video', 'clip.mp4'), row('video', 'clip.mp4')]);
  const out = path.join(root, 'run-mp4');
  const r = spawnSync(process.execPath, ['--import', tsxLoader, bin, 'train', '--task', f, '--test-file', f, '--output-dir', out, ...tiny], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, PATH: path.join(root, 'empty-path') },
  });
  failsNaming(r, [1, 2].map((line) => [f, line, 'videos', 0, /decoding MP4 \(\d+ B\) video needs ffmpeg and ffprobe on PATH, which are missing \(install ffmpeg/] as [string, number, string, number, RegExp]));
  assert.not.ok(fs.existsSync(out));
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));
test.run();
