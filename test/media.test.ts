// Media in datasets (lib/media): decoders on real files of every supported format written in the
// test (sharp for PNG/JPEG/WebP/GIF, wavefile and ffmpeg for WAV, ffmpeg for FLAC/MP3/MP4/WebM),
// the ms-swift row layout and its loader, the writer's round trip, and malformed media — each an
// error naming the file, line, field and index.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import sharp from 'sharp';
import { WaveFile } from 'wavefile';
import { datasetTask, DatasetError, parseJsonlDataset } from '../lib/tasks/dataset';
import type { Example } from '../lib/tasks/types';
import { decodeAudio, decodeImage, decodeVideo, ffmpegAvailable, resampleAudio, sampleFrameIndices, sniffFormat, vipsReason } from '../lib/media/decode';
import { loadExampleMedia, loadTaskMedia, MediaLoadError } from '../lib/media/dataset';
import { encodeWav, exportTaskDataset, writeMediaDataset } from '../lib/media/write';
import { arithmeticTask } from '../lib/tasks/arithmetic';
import type { AudioData, ImageData, VideoData } from '../lib/media/types';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-media-test-'));
const HAVE_FFMPEG = ffmpegAvailable().ffmpeg && ffmpegAvailable().ffprobe;
const ffTest = HAVE_FFMPEG ? test : test.skip;
if (!HAVE_FFMPEG) console.log('ffmpeg/ffprobe not on PATH: the MP4/WebM/FLAC/MP3 tests are skipped (they need the ffmpeg executables)');

function ffmpeg(args: string[]): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr}`);
}

/** A w×h RGB pattern on the k/255 grid with few colours (so GIF's palette keeps it exactly). */
function pattern(w: number, h: number, seed: number): Uint8Array {
  const colours = [[255, 0, 0], [0, 128, 255], [20, 200, 40], [250, 250, 250], [0, 0, 0], [90, 30, 160]];
  const b = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const c = colours[(x * 7 + y * 3 + seed * 5 + ((x * y) % 4)) % colours.length];
      b.set(c, (y * w + x) * 3);
    }
  return b;
}
const asFloat = (b: Uint8Array) => Float32Array.from(b, (v) => v / 255);
const img = (w: number, h: number, seed: number): ImageData => ({ kind: 'image', width: w, height: h, data: asFloat(pattern(w, h, seed)) });
const rawIn = (b: Uint8Array, w: number, h: number, pages = 1) => sharp(Buffer.from(b), { raw: { width: w, height: h * pages, channels: 3, ...(pages > 1 ? { pageHeight: h } : {}) } });

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
function meanAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

// ---- images -------------------------------------------------------------------------------

test('images: PNG, lossless WebP and GIF decode exactly to k/255 RGB; JPEG close; formats sniffed from bytes', async () => {
  const [w, h] = [13, 9];
  const src = pattern(w, h, 1);
  const want = asFloat(src);
  const png = await rawIn(src, w, h).png().toBuffer();
  const webp = await rawIn(src, w, h).webp({ lossless: true }).toBuffer();
  const gif = await rawIn(src, w, h).gif({ dither: 0 }).toBuffer();
  const jpeg = await rawIn(src, w, h).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
  assert.equal([png, webp, gif, jpeg].map((b) => sniffFormat(b)), ['png', 'webp', 'gif', 'jpeg']);
  for (const [name, b] of [['png', png], ['webp', webp], ['gif', gif]] as const) {
    const d = await decodeImage(b);
    assert.equal([d.width, d.height, d.data.length], [w, h, w * h * 3], name);
    assert.is(maxAbs(d.data, want), 0, `${name} exact`);
  }
  const j = await decodeImage(jpeg);
  assert.ok(meanAbs(j.data, want) < 0.03, `jpeg mean error ${meanAbs(j.data, want)}`);
});

test('images: grey expands to RGB, alpha is dropped, the spec resizes (a flat colour stays flat)', async () => {
  const grey = await sharp(Buffer.from(Uint8Array.from({ length: 12 }, (_, i) => i * 20)), { raw: { width: 4, height: 3, channels: 1 } }).png().toBuffer();
  const g = await decodeImage(grey);
  for (let i = 0; i < 12; i++) assert.equal([g.data[3 * i], g.data[3 * i + 1], g.data[3 * i + 2]].map((v) => Math.round(v * 255)), [i * 20, i * 20, i * 20]);
  const rgba = Buffer.alloc(4 * 3 * 4);
  for (let i = 0; i < 12; i++) rgba.set([10 * i, 255 - 10 * i, 7, i % 2 ? 0 : 255], 4 * i);
  const a = await decodeImage(await sharp(rgba, { raw: { width: 4, height: 3, channels: 4 } }).png().toBuffer());
  for (let i = 0; i < 12; i++) assert.equal([0, 1, 2].map((c) => Math.round(a.data[3 * i + c] * 255)), [10 * i, 255 - 10 * i, 7]);
  const flat = await sharp({ create: { width: 37, height: 23, channels: 3, background: { r: 51, g: 102, b: 204 } } }).png().toBuffer();
  const r = await decodeImage(flat, { width: 8, height: 5 });
  assert.equal([r.width, r.height, r.data.length], [8, 5, 120]);
  for (let i = 0; i < 40; i++) assert.equal([0, 1, 2].map((c) => Math.round(r.data[3 * i + c] * 255)), [51, 102, 204]);
});

// ---- audio --------------------------------------------------------------------------------

function tone(rate: number, seconds: number, hz: number, amp = 0.5): Float32Array {
  return Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => amp * Math.sin((2 * Math.PI * hz * i) / rate));
}

test('audio: WAV PCM 8/16/24/32-bit and float32, stereo averaged to mono, against the sample formula', async () => {
  const x = [0, 0.25, -0.5, 0.999, -1];
  // [bit depth, stored integer (or float), its value in [-1, 1]: signed / 2^(n-1), 8-bit unsigned around 128]
  const cases: [string, (v: number) => number, (q: number) => number][] = [
    ['8', (v) => Math.round(v * 127) + 128, (q) => (q - 128) / 128],
    ['16', (v) => Math.round(v * 32767), (q) => q / 32768],
    ['24', (v) => Math.round(v * 8388607), (q) => q / 8388608],
    ['32', (v) => Math.round(v * 2147483647), (q) => q / 2147483648],
    ['32f', (v) => v, (q) => Math.fround(q)],
    ['64', (v) => v, (q) => Math.fround(q)],
  ];
  for (const [depth, enc, val] of cases) {
    const w = new WaveFile();
    w.fromScratch(1, 8000, depth, x.map(enc));
    const d = await decodeAudio(w.toBuffer());
    assert.is(d.sampleRate, 8000);
    const want = x.map((v) => Math.fround(val(enc(v))));
    assert.is(maxAbs(d.samples, want), 0, `${depth}-bit`);
    assert.ok(maxAbs(d.samples, x) <= 1 / 127, `${depth}-bit near the source`);
  }
  const st = new WaveFile();
  st.fromScratch(2, 22050, '16', [[1000, -2000, 32767], [3000, 2000, -32768]]);
  const m = await decodeAudio(st.toBuffer());
  assert.is(maxAbs(m.samples, [(1000 + 3000) / 65536, 0, (32767 - 32768) / 65536]), 0);
});

test('audio: the resampler keeps an in-band tone (float64 sine reference) and removes an out-of-band one', () => {
  const from = 44100;
  const to = 16000;
  const y = resampleAudio(tone(from, 0.5, 440), from, to);
  assert.is(y.length, 8000);
  let err = 0;
  for (let j = 200; j < y.length - 200; j++) err = Math.max(err, Math.abs(y[j] - 0.5 * Math.sin((2 * Math.PI * 440 * j) / to)));
  assert.ok(err < 2e-3, `in-band error ${err}`);
  // 6 kHz is below the new Nyquist (8 kHz, passband to 0.95·8 kHz less the window's transition): kept;
  // 9 and 12 kHz would alias to 7 and 4 kHz: filtered out.
  const rms = (a: Float32Array) => Math.sqrt(a.slice(200, -200).reduce((s, v) => s + v * v, 0) / (a.length - 400));
  const gain = (hz: number) => rms(resampleAudio(tone(48000, 0.5, hz), 48000, 16000)) / (0.5 / Math.SQRT2);
  assert.ok(Math.abs(gain(1000) - 1) < 1e-3 && Math.abs(gain(6000) - 1) < 1e-3, `passband gains ${gain(1000)} ${gain(6000)}`);
  assert.ok(gain(9000) < 1e-3 && gain(12000) < 1e-3, `stopband gains ${gain(9000)} ${gain(12000)}`);
  // Upsampling: a 1 kHz tone from 8 kHz to 22.05 kHz.
  const u = resampleAudio(tone(8000, 0.5, 1000), 8000, 22050);
  let e2 = 0;
  for (let j = 300; j < u.length - 300; j++) e2 = Math.max(e2, Math.abs(u[j] - 0.5 * Math.sin((2 * Math.PI * 1000 * j) / 22050)));
  assert.ok(e2 < 2e-3, `upsampling error ${e2}`);
  // A non-integer rate takes the untabulated path: the same sine reference.
  const q = resampleAudio(tone(44100, 0.2, 440), 44100, 16000.5);
  let e3 = 0;
  for (let j = 200; j < q.length - 200; j++) e3 = Math.max(e3, Math.abs(q[j] - 0.5 * Math.sin((2 * Math.PI * 440 * j) / 16000.5)));
  assert.ok(e3 < 2e-3, `non-integer rate error ${e3}`);
  const same = tone(16000, 0.1, 300);
  assert.is(resampleAudio(same, 16000, 16000), same);
});

test('audio: a spec resamples WAV to its rate; a clip longer than maxSeconds is an error, not cut', async () => {
  const wav = encodeWav({ kind: 'audio', sampleRate: 32000, samples: tone(32000, 0.25, 500) });
  const d = await decodeAudio(wav, { sampleRate: 16000, maxSeconds: 1 });
  assert.is(d.sampleRate, 16000);
  assert.is(d.samples.length, 4000);
  await decodeAudio(wav, { sampleRate: 16000, maxSeconds: 0.2 }).then(
    () => assert.unreachable('accepted an over-long clip'),
    (e) => assert.match(e.message, /longer than maxSeconds 0\.2/),
  );
});

ffTest('audio: WAV written by ffmpeg, FLAC (exact at 16 bits) and MP3 (lossy: same tone) through ffmpeg', async () => {
  const x = tone(16000, 0.5, 440, 0.6);
  const src = path.join(root, 'src.wav');
  fs.writeFileSync(src, encodeWav({ kind: 'audio', sampleRate: 16000, samples: x }));
  const q = Float32Array.from(x, (v) => Math.round(v * 32768) / 32768);
  const f32 = path.join(root, 'src-f32.wav');
  ffmpeg(['-i', src, '-c:a', 'pcm_f32le', f32]);
  const a = await decodeAudio(fs.readFileSync(f32));
  assert.is(maxAbs(a.samples, q), 0, 'ffmpeg float WAV holds the 16-bit samples exactly');
  const flac = path.join(root, 'src.flac');
  ffmpeg(['-i', src, flac]);
  const fl = await decodeAudio(fs.readFileSync(flac), { sampleRate: 16000, maxSeconds: 2 });
  assert.is(fl.samples.length, x.length);
  assert.ok(maxAbs(fl.samples, q) <= 1e-7, `flac ${maxAbs(fl.samples, q)}`);
  const mp3 = path.join(root, 'src.mp3');
  ffmpeg(['-i', src, '-b:a', '128k', mp3]);
  const m = await decodeAudio(fs.readFileSync(mp3), { sampleRate: 8000, maxSeconds: 2 });
  assert.is(m.sampleRate, 8000);
  // MP3 adds encoder delay and padding: compare the 440 Hz magnitude with the reference's.
  const mag = (s: Float32Array, rate: number) => {
    let re = 0;
    let im = 0;
    for (let i = 0; i < s.length; i++) {
      re += s[i] * Math.cos((2 * Math.PI * 440 * i) / rate);
      im += s[i] * Math.sin((2 * Math.PI * 440 * i) / rate);
    }
    return (2 * Math.hypot(re, im)) / s.length;
  };
  assert.ok(Math.abs(mag(m.samples, 8000) - 0.6) < 0.06, `mp3 440 Hz amplitude ${mag(m.samples, 8000)}`);
});

// ---- video --------------------------------------------------------------------------------

test('video: frame sampling is linspace(0, T-1, n) rounded', () => {
  assert.equal(sampleFrameIndices(5, 3), [0, 2, 4]);
  assert.equal(sampleFrameIndices(10, 4), [0, 3, 6, 9]);
  assert.equal(sampleFrameIndices(2, 4), [0, 0, 1, 1]);
  assert.equal(sampleFrameIndices(7, 1), [3]);
  assert.throws(() => sampleFrameIndices(0, 3), /0 frames/);
});

const FRAMES = 5;
const [VW, VH] = [12, 8];
const frames = Array.from({ length: FRAMES }, (_, k) => pattern(VW, VH, k));
const tall = () => Uint8Array.from(frames.flatMap((f) => [...f]));

test('video: animated GIF and WebP through sharp, sampled to numFrames, exact frames', async () => {
  const gif = await rawIn(tall(), VW, VH, FRAMES).gif({ delay: Array(FRAMES).fill(100), dither: 0 }).toBuffer();
  const webp = await rawIn(tall(), VW, VH, FRAMES).webp({ lossless: true, delay: Array(FRAMES).fill(100) }).toBuffer();
  for (const [name, b] of [['gif', gif], ['webp', webp]] as const) {
    const all = await decodeVideo(b);
    assert.is(all.frames.length, FRAMES, name);
    assert.ok(Math.abs(all.fps - 10) < 1e-9, `${name} fps ${all.fps}`);
    const v = await decodeVideo(b, { width: VW, height: VH, numFrames: 3 });
    assert.is(v.frames.length, 3);
    [0, 2, 4].forEach((k, i) => assert.is(maxAbs(v.frames[i].data, asFloat(frames[k])), 0, `${name} frame ${k}`));
    const small = await decodeVideo(b, { width: 6, height: 4, numFrames: 2 });
    assert.equal(small.frames.map((f) => [f.width, f.height]), [[6, 4], [6, 4]]);
  }
});

ffTest('video: MP4 (H.264 RGB lossless) and WebM (VP9) through ffmpeg, sampled and resized', async () => {
  const rawPath = path.join(root, 'frames.rgb');
  fs.writeFileSync(rawPath, tall());
  const mp4 = path.join(root, 'v.mp4');
  ffmpeg(['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${VW}x${VH}`, '-r', '5', '-i', rawPath, '-c:v', 'libx264rgb', '-qp', '0', mp4]);
  const v = await decodeVideo(fs.readFileSync(mp4), { width: VW, height: VH, numFrames: 3 }, {}, mp4);
  assert.is(v.frames.length, 3);
  [0, 2, 4].forEach((k, i) => assert.is(maxAbs(v.frames[i].data, asFloat(frames[k])), 0, `mp4 frame ${k}`));
  assert.ok(Math.abs(v.fps - 3) < 1e-9, `fps ${v.fps}`); // 3 frames over a 1 s clip
  // From bytes alone (a data: URL or a bytes column): through a temp file.
  const vb = await decodeVideo(fs.readFileSync(mp4), { width: VW, height: VH, numFrames: 5 });
  frames.forEach((f, k) => assert.is(maxAbs(vb.frames[k].data, asFloat(f)), 0));
  const webm = path.join(root, 'v.webm');
  ffmpeg(['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${VW}x${VH}`, '-r', '5', '-i', rawPath, '-c:v', 'libvpx-vp9', '-lossless', '1', '-pix_fmt', 'yuv444p', webm]);
  const w = await decodeVideo(fs.readFileSync(webm), { width: 6, height: 4, numFrames: 5 });
  assert.equal(w.frames.map((f) => [f.width, f.height]).length, 5);
  const full = await decodeVideo(fs.readFileSync(webm));
  // VP9 lossless in YUV 4:4:4: exact up to the RGB↔YUV rounding.
  frames.forEach((f, k) => assert.ok(meanAbs(full.frames[k].data, asFloat(f)) < 4 / 255, `webm frame ${k}: ${meanAbs(full.frames[k].data, asFloat(f))}`));
});

// ---- rows, loader, writer -----------------------------------------------------------------

const dsDir = path.join(root, 'ds');
fs.mkdirSync(path.join(dsDir, 'media'), { recursive: true });

test('loader: one dataset mixes image, audio, video and text-only rows in every entry form; tensors sized to the spec; extra columns kept', async () => {
  const png = await rawIn(pattern(16, 12, 2), 16, 12).png().toBuffer();
  fs.writeFileSync(path.join(dsDir, 'media', 'a.png'), png);
  const wav = encodeWav({ kind: 'audio', sampleRate: 8000, samples: tone(8000, 0.5, 300) });
  const gif = await rawIn(tall(), VW, VH, FRAMES).gif({ delay: Array(FRAMES).fill(100), dither: 0 }).toBuffer();
  fs.writeFileSync(path.join(dsDir, 'media', 'clip.gif'), gif);
  const rows = [
    { messages: [{ role: 'user', content: '<image>How many shapes?' }], images: ['media/a.png'], solution: '3', difficulty: 'easy' },
    { messages: [{ role: 'user', content: 'Count the beeps: <audio>' }], audios: [`data:audio/wav;base64,${wav.toString('base64')}`], solution: '2' },
    { messages: [{ role: 'user', content: '<video>Where does it move?' }], videos: [{ bytes: gif.toString('base64'), path: null }], solution: 'left' },
    { messages: [{ role: 'user', content: 'plain 2+2?' }], solution: '4' },
    { messages: [{ role: 'system', content: 'Look.' }, { role: 'user', content: '<image> vs <image>, then <audio>' }], images: [{ path: 'media/a.png' }, { bytes: [...png] }], audios: [{ bytes: { type: 'Buffer', data: [...wav] } }], solution: 'same' },
  ];
  const file = path.join(dsDir, 'mixed.jsonl');
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
  const task = datasetTask({ train: file, test: file });
  const spec = { image: { width: 8, height: 6 }, audio: { sampleRate: 16000, maxSeconds: 1 }, video: { width: 6, height: 4, numFrames: 3 } };
  await loadTaskMedia(task, spec);
  const [im, au, vi, tx, mix] = task.test;
  assert.equal([im.media!.images![0].width, im.media!.images![0].height, im.media!.images![0].data.length], [8, 6, 144]);
  assert.is(maxAbs(im.media!.images![0].data, (await decodeImage(png, spec.image)).data), 0);
  assert.is(au.media!.audios![0].sampleRate, 16000);
  assert.is(au.media!.audios![0].samples.length, 8000);
  assert.is(maxAbs(au.media!.audios![0].samples, (await decodeAudio(wav, spec.audio)).samples), 0);
  assert.equal(vi.media!.videos![0].frames.map((f) => [f.width, f.height]), [[6, 4], [6, 4], [6, 4]]);
  assert.is(tx.media, undefined);
  assert.equal([mix.media!.images!.length, mix.media!.audios!.length, mix.media!.videos], [2, 1, undefined]);
  // The same picture by path in two rows and as bytes: one decode, shared tensors (by path) and equal values (by bytes).
  assert.is(mix.media!.images![0], im.media!.images![0]);
  assert.is(maxAbs(mix.media!.images![1].data, im.media!.images![0].data), 0);
  assert.is(im.meta!.difficulty, 'easy');
  assert.is(im.answer, '3');
  // Decoded once per row: a second call with the same spec keeps the same tensors.
  const before = im.media!.images![0];
  await loadTaskMedia(task, spec);
  assert.is(im.media!.images![0], before);
});

test('loader: tag counts must match the lists, entries must be well-formed — DatasetError names line and field[index]', () => {
  const text = [
    JSON.stringify({ messages: [{ role: 'user', content: '<image><image>' }], images: ['a.png'], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: 'no tag' }], audios: ['a.wav'], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<video>' }], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<image>' }], images: [42], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<image>' }], images: ['data:image/png;base64,@@@@'], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<image>' }], images: [{ bytes: [1, 300] }], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<audio>' }], audios: 'x.wav', solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<image>' }], images: ['https://example.com/a.png'], solution: '1' }),
    JSON.stringify({ messages: [{ role: 'user', content: '<image>' }], images: ['fine.png'], solution: '1' }),
  ].join('\n');
  const { examples, errors } = parseJsonlDataset(text, path.join(dsDir, 'bad.jsonl'));
  assert.is(examples.length, 1);
  assert.equal(errors.map((e) => [e.line, e.field, e.index]), [
    [1, 'images', undefined], [2, 'audios', undefined], [3, 'videos', undefined], [4, 'images', 0], [5, 'images', 0], [6, 'images', 0], [7, 'audios', undefined], [8, 'images', 0],
  ]);
  assert.match(errors[0].message, /images: has 1 entry but the text has 2 <image> tags/);
  assert.match(errors[3].message, /images\[0\]: expected a path, a data: URL or \{ bytes \| path \}, got number/);
  assert.match(errors[4].message, /not valid base64/);
  assert.match(errors[5].message, /'bytes'\[1\] must be an integer 0\.\.255, got 300/);
  assert.match(errors[7].message, /remote URLs are not fetched/);
  fs.writeFileSync(path.join(dsDir, 'bad.jsonl'), text);
  try {
    datasetTask({ train: path.join(dsDir, 'bad.jsonl') });
    assert.unreachable('loaded');
  } catch (e) {
    assert.instance(e, DatasetError);
    assert.match((e as Error).message, /bad\.jsonl: 8 malformed lines/);
    assert.match((e as Error).message, /line 6: images\[0\]: 'bytes'\[1\]/);
  }
});

/** A PNG whose header says 20000×20000 (a decompression bomb's shape; its pixel data is never read). */
function bombPng(): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(20000, 0);
  ihdr.writeUInt32BE(20000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(20001 * 4))), chunk('IEND', Buffer.alloc(0))]);
}

test('malformed media: truncated PNG, bad WAV header, empty WAV, zero-frame video, 20000×20000 image, missing file, bad data: URL — one error naming each file:line field[index], no crash, no media assigned', async () => {
  const dir = path.join(root, 'malformed');
  fs.mkdirSync(dir);
  const png = await rawIn(pattern(16, 12, 3), 16, 12).png().toBuffer();
  fs.writeFileSync(path.join(dir, 'ok.png'), png);
  fs.writeFileSync(path.join(dir, 'trunc.png'), png.subarray(0, png.length - 30));
  fs.writeFileSync(path.join(dir, 'bomb.png'), bombPng());
  const wav = encodeWav({ kind: 'audio', sampleRate: 8000, samples: tone(8000, 0.1, 300) });
  const badHeader = Buffer.from(wav);
  badHeader.write('xxxx', 12, 'latin1'); // RIFF/WAVE, but no 'fmt ' chunk
  fs.writeFileSync(path.join(dir, 'badheader.wav'), badHeader);
  const fmtOnly = Buffer.from(wav.subarray(0, 44)); // a well-formed WAV with a zero-length data chunk
  fmtOnly.writeUInt32LE(36, 4);
  fmtOnly.writeUInt32LE(0, 40);
  fs.writeFileSync(path.join(dir, 'empty.wav'), fmtOnly);
  const truncWav = wav.subarray(0, 44 + 100);
  fs.writeFileSync(path.join(dir, 'trunc.wav'), truncWav);
  // Zero frames: a GIF with a screen and a colour table but no image (always), and an MP4 with only
  // an audio stream when ffmpeg can make one (else the GIF again).
  let zeroFrames = 'zero.gif';
  fs.writeFileSync(path.join(dir, 'zero.gif'), Buffer.from([...Buffer.from('GIF89a'), VW, 0, VH, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x3b]));
  if (HAVE_FFMPEG) {
    ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=0.2', path.join(dir, 'noframes.mp4')]);
    zeroFrames = 'noframes.mp4';
  }
  const rows = [
    { messages: [{ role: 'user', content: '<image>' }], images: ['ok.png'], solution: '1' },
    { messages: [{ role: 'user', content: '<image><image>' }], images: ['ok.png', 'trunc.png'], solution: '1' },
    { messages: [{ role: 'user', content: '<audio>' }], audios: ['badheader.wav'], solution: '1' },
    { messages: [{ role: 'user', content: '<video>' }], videos: [zeroFrames], solution: '1' },
    { messages: [{ role: 'user', content: '<image>' }], images: ['bomb.png'], solution: '1' },
    { messages: [{ role: 'user', content: '<image>' }], images: ['nope/missing.png'], solution: '1' },
    { messages: [{ role: 'user', content: '<image>' }], images: ['data:image/png;base64,iVBORw0KGgo='], solution: '1' },
    { messages: [{ role: 'user', content: '<audio>' }], audios: ['empty.wav'], solution: '1' },
    { messages: [{ role: 'user', content: '<audio>' }], audios: ['trunc.wav'], solution: '1' },
    { messages: [{ role: 'user', content: '<image>' }], images: ['badheader.wav'], solution: '1' },
    { messages: [{ role: 'user', content: '<video>' }], videos: ['ok.png'], solution: '1' },
    { messages: [{ role: 'user', content: '<video>' }], videos: ['zero.gif'], solution: '1' },
  ];
  const file = path.join(dir, 'd.jsonl');
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
  const task = datasetTask({ train: file, test: file });
  let err: MediaLoadError | undefined;
  try {
    await loadTaskMedia(task, { image: { width: 8, height: 8 }, audio: { sampleRate: 8000, maxSeconds: 5 }, video: { width: 8, height: 8, numFrames: 2 } });
  } catch (e) {
    err = e as MediaLoadError;
  }
  assert.instance(err, MediaLoadError);
  const by = new Map(err!.errors.map((e) => [e.line, e]));
  assert.equal([...by.keys()].sort((a, b) => a! - b!), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  for (const e of err!.errors) assert.is(e.file, file);
  const expect: [number, string, number, RegExp][] = [
    [2, 'images', 1, /cannot decode the png/],
    [3, 'audios', 0, /cannot parse the WAV header: Could not find the "fmt " chunk/],
    [4, 'videos', 0, HAVE_FFMPEG ? /ffprobe found no video stream|0 frames/ : /no frames in GIF/],
    [5, 'images', 0, /20000×20000 = 400000000 pixels, more than the limit of 67108864/],
    [6, 'images', 0, /file not found: .*nope\/missing\.png/],
    [7, 'images', 0, /cannot (read the image header|decode the png)/],
    [8, 'audios', 0, /no samples/],
    [9, 'audios', 0, /truncated WAV: the data chunk declares 1600 bytes, the file holds 100/],
    [10, 'images', 0, /cannot read the image header of WAV/],
    [11, 'videos', 0, /expected a video .* got a still PNG image/],
    [12, 'videos', 0, /cannot read the header of GIF \(20 B\): .*no frames in GIF/],
  ];
  for (const [line, field, index, re] of expect) {
    const e = by.get(line)!;
    assert.equal([e.field, e.index], [field, index], `line ${line}`);
    assert.match(e.message, re, `line ${line}: ${e.message}`);
    // One line per bad entry, naming only this file's reason (libvips's shared error buffer can
    // hold other files' earlier errors while they decode concurrently).
    assert.not.match(e.message, /\n/, `line ${line}: ${JSON.stringify(e.message)}`);
  }
  assert.match(err!.message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5: images\\[0\\]: the png is 20000×20000`));
  // All or nothing: not even the good row was given media.
  assert.ok(task.test.every((ex) => ex.media === undefined));
});

function synthRows(): Example[] {
  const rng = (() => {
    let s = 12345;
    return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  })();
  const audio: AudioData = { kind: 'audio', sampleRate: 8000, samples: Float32Array.from({ length: 800 }, () => rng() * 2 - 1) };
  audio.samples[0] = 1; // the clamped end of the 16-bit range
  audio.samples[1] = -1;
  const video: VideoData = { kind: 'video', fps: 5, frames: Array.from({ length: 4 }, (_, k) => img(VW, VH, k)) };
  return [
    { id: 'img-0', prompt: '<image>How many?', answer: '3', solution: '<think>count</think><answer>3</answer>', media: { images: [img(10, 7, 0)] }, meta: { colour: 'red' } },
    { id: 'aud/1', prompt: 'Beeps: <audio>', answer: '2', media: { audios: [audio] } },
    { id: 'vid 2', prompt: '<video> Direction?', answer: 'left', solution: 'it goes left', media: { videos: [video] } },
    { id: 'txt', prompt: 'plain', answer: '7' },
    { id: 'all', prompt: 's\n<image><audio><video>', answer: 'x', messages: [{ role: 'system', content: 's' }, { role: 'user', content: '<image><audio><video>' }], media: { images: [img(4, 4, 5)], audios: [audio], videos: [video] } },
  ];
}

async function roundTrip(video: 'gif' | 'mp4') {
  const dir = path.join(root, `rt-${video}`);
  const rows = synthRows();
  const w = await writeMediaDataset(dir, rows, { video });
  assert.is(w.rows, 5);
  assert.equal(w.media.map((p) => path.relative(dir, p)).sort(), [
    'media/all-audio-0.wav', 'media/all-image-0.png', `media/all-video-0.${video}`, 'media/aud_1-audio-0.wav', 'media/img-0-image-0.png', `media/vid_2-video-0.${video}`,
  ]);
  const task = datasetTask({ train: w.file, test: w.file });
  await loadTaskMedia(task, {}); // no spec: the files' own sizes, rates and frames
  const back = task.test;
  for (let r = 0; r < rows.length; r++) {
    const a = rows[r];
    const b = back[r];
    assert.is(b.answer, a.answer, `row ${r} answer`);
    assert.is(b.solution, a.solution ?? a.answer, `row ${r} solution`);
    for (const [i, im] of (a.media?.images ?? []).entries()) assert.is(maxAbs(b.media!.images![i].data, im.data), 0, `row ${r} image ${i} (PNG exact at 8 bits)`);
    for (const [i, au] of (a.media?.audios ?? []).entries()) {
      assert.is(b.media!.audios![i].sampleRate, au.sampleRate);
      const e = maxAbs(b.media!.audios![i].samples, au.samples);
      assert.ok(e <= 1 / 32768, `row ${r} audio ${i}: ${e * 32768}/32768`);
    }
    for (const [i, v] of (a.media?.videos ?? []).entries()) {
      const bv = b.media!.videos![i];
      assert.is(bv.frames.length, v.frames.length);
      assert.ok(Math.abs(bv.fps - v.fps) < 1e-6, `fps ${bv.fps}`);
      v.frames.forEach((f, k) => assert.is(maxAbs(bv.frames[k].data, f.data), 0, `row ${r} video ${i} frame ${k}`));
    }
    if (!a.media) assert.is(b.media, undefined);
  }
  assert.is(back[0].meta!.colour, 'red');
  assert.equal(back[4].messages, rows[4].messages);
  return { dir, w };
}

test('writer: write then load gives the same tensors (PNG exact at 8 bits, WAV within 1/32768, GIF exact for ≤ 256 colours)', async () => {
  await roundTrip('gif');
});

ffTest('writer: MP4 video (libx264rgb qp 0) round-trips exactly', async () => {
  await roundTrip('mp4');
});

test('writer: never overwrites existing files unless asked; a bad row writes nothing', async () => {
  const dir = path.join(root, 'rt-gif');
  const jsonl = path.join(dir, 'data.jsonl');
  fs.writeFileSync(jsonl, 'user data\n');
  const png = path.join(dir, 'media', 'img-0-image-0.png');
  const before = fs.readFileSync(png);
  await writeMediaDataset(dir, synthRows()).then(
    () => assert.unreachable('overwrote'),
    (e) => assert.match(e.message, /target files already exist .*data\.jsonl.*pass overwrite: true/),
  );
  assert.is(fs.readFileSync(jsonl, 'utf8'), 'user data\n');
  assert.ok(fs.readFileSync(png).equals(before));
  await writeMediaDataset(dir, synthRows(), { overwrite: true });
  assert.match(fs.readFileSync(jsonl, 'utf8'), /"images":\["media\/img-0-image-0.png"\]/);
  const fresh = path.join(root, 'rt-bad');
  const rows = synthRows();
  rows[2] = { ...rows[2], prompt: 'no tag here' };
  await writeMediaDataset(fresh, rows).then(
    () => assert.unreachable('wrote a row whose tags do not match'),
    (e) => assert.match(e.message, /row 2 \(id vid 2\): has 1 video but its prompt has 0 <video> tags/),
  );
  assert.not.ok(fs.existsSync(fresh), 'nothing written');
  const zero = synthRows();
  zero[2].media!.videos![0] = { kind: 'video', fps: 5, frames: [] };
  const zdir = path.join(root, 'rt-zero');
  await writeMediaDataset(zdir, zero).then(
    () => assert.unreachable('wrote a zero-frame video'),
    (e) => assert.match(e.message, /row 2 \(id vid 2\) videos\[0\]: the video has no frames/),
  );
  assert.not.ok(fs.existsSync(path.join(zdir, 'data.jsonl')), 'no dataset file after a failed write');
  assert.equal(fs.readdirSync(path.join(zdir, 'media')).filter((f) => !f.startsWith('img-0') && !f.startsWith('aud_1')), []);
  assert.equal(fs.readdirSync(path.join(zdir, 'media')), [], 'the files written before the failure were removed');
});

test('exportTaskDataset: a task (synthetic multimodal; built-in text) written as train/test JSONL + media trains from files with the same examples', async () => {
  const rows = synthRows();
  const mm = { ...arithmeticTask({ seed: 1, trainSize: 3, testSize: 2 }), name: 'synthetic-mm', train: rows.slice(0, 3), test: rows.slice(3) };
  const dir = path.join(root, 'export');
  const { train, test: held } = await exportTaskDataset(mm, dir);
  assert.equal([path.basename(train.file), path.basename(held.file), train.rows, held.rows], ['train.jsonl', 'test.jsonl', 3, 2]);
  const back = datasetTask({ train: train.file, test: held.file });
  await loadTaskMedia(back, {});
  assert.equal(back.train.map((e) => [e.prompt, e.answer]), rows.slice(0, 3).map((e) => [e.prompt, e.answer]));
  assert.equal(back.test.map((e) => [e.prompt, e.answer]), rows.slice(3).map((e) => [e.prompt, e.answer]));
  assert.is(maxAbs(back.train[0].media!.images![0].data, rows[0].media!.images![0].data), 0);
  assert.is(maxAbs(back.test[1].media!.videos![0].frames[3].data, rows[4].media!.videos![0].frames[3].data), 0);
  await exportTaskDataset(mm, dir).then(
    () => assert.unreachable('overwrote'),
    (e) => assert.match(e.message, /train\.jsonl.*already exist/),
  );
  const arith = arithmeticTask({ seed: 2, trainSize: 20, testSize: 5 });
  const adir = path.join(root, 'export-arith');
  await exportTaskDataset(arith, adir);
  const a2 = datasetTask({ train: path.join(adir, 'train.jsonl'), test: path.join(adir, 'test.jsonl') });
  assert.equal(a2.test.map((e) => [e.prompt, e.answer]), arith.test.map((e) => [e.prompt, e.answer]));
  for (const e of a2.test) assert.ok(a2.isCorrect(e.answer, e) && !a2.isCorrect(String(+e.answer + 1), e));
  assert.equal(a2.test.map((e) => e.meta), arith.test.map((e) => e.meta));
});

test('loader: maxBytes bounds the decoded media before decoding', async () => {
  const ex: Example = { id: 'x', prompt: '<image>', answer: '1', meta: { images: [path.join(dsDir, 'media', 'a.png')] } };
  await loadExampleMedia([ex], { image: { width: 1024, height: 1024 } }, { maxBytes: 1 << 20 }).then(
    () => assert.unreachable('ignored maxBytes'),
    (e) => assert.match(e.message, /would take 12 MiB .* more than maxBytes 1 MiB/),
  );
  assert.is(ex.media, undefined);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));
// libvips's error buffer is shared by every decode in flight: a message can hold another file's
// lines, in either order. The reason kept is this file's loader's line (else the last line).
test('vipsReason keeps the line of the file\'s own loader', () => {
  const gif = new TextEncoder().encode('GIF89a\0\0\0\0'), png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const both = 'pngload_buffer: end of stream\ngifload_buffer: no frames in GIF\n';
  const swapped = 'gifload_buffer: no frames in GIF\npngload_buffer: end of stream\n';
  assert.is(vipsReason(new Error(both), gif), 'gifload_buffer: no frames in GIF');
  assert.is(vipsReason(new Error(swapped), gif), 'gifload_buffer: no frames in GIF');
  assert.is(vipsReason(new Error(swapped), png), 'pngload_buffer: end of stream');
  assert.is(vipsReason(new Error('VipsForeignLoad: buffer is not in a known format\n'), Uint8Array.from([1, 2, 3])), 'VipsForeignLoad: buffer is not in a known format');
  assert.is(vipsReason(new Error(both), Uint8Array.from([1, 2, 3])), 'gifload_buffer: no frames in GIF', 'unknown bytes: the last line');
});

test.run();
