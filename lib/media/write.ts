/**
 * Writing examples with in-memory media as an ms-swift dataset: one JSONL file plus real media
 * files next to it (PNG images, 16-bit WAV audio, GIF or MP4 video), so that a built-in task can
 * be trained from files exactly as a user's data would be (datasetTask + loadExampleMedia).
 *
 * Quantisation of the round trip: PNG stores round(255·v) (exact for values on the k/255 grid,
 * within 0.5/255 otherwise); WAV stores round(32768·s) clamped to [-32768, 32767], read back
 * /32768 (within 1/32768); GIF stores each frame through a palette of ≤ 256 colours (exact for
 * frames with ≤ 256 distinct colours, as the built-in scenes have); MP4 is H.264 RGB at qp 0
 * (libx264rgb, lossless).
 *
 * Nothing existing is overwritten unless `overwrite: true`: every target path is checked before
 * anything is written, each file is written to a temporary name and renamed into place, and a
 * failure removes the files this call created.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as nodePath from 'path';
import type { Example, Task } from '../tasks/types';
import { extractAnswer } from '../tasks/answer';
import { ffmpegAvailable, loadSharp, MediaDecodeError } from './decode';
import { countMediaTags, MEDIA_TAGS } from './dataset';
import type { AudioData, ImageData, VideoData } from './types';

export interface WriteMediaDatasetOptions {
  /** Name of the JSONL file inside `dir`. Default 'data.jsonl'. */
  file?: string;
  /** Sub-folder of `dir` for the media files. Default 'media'. */
  mediaDir?: string;
  /** Video container: 'gif' (sharp; default) or 'mp4' (needs ffmpeg with libx264rgb on PATH). */
  video?: 'gif' | 'mp4';
  /** Replace files that already exist. Default false: an existing target is an error and nothing is written. */
  overwrite?: boolean;
}

export interface WrittenDataset {
  /** Absolute path of the JSONL file. */
  file: string;
  /** Absolute paths of the media files written. */
  media: string[];
  rows: number;
}

const RESERVED = new Set(['messages', 'prompt', 'query', 'solution', 'answer', 'response', 'images', 'audios', 'videos']);

function to8bit(img: ImageData, what: string): Buffer {
  const n = img.width * img.height * 3;
  if (!(img.width > 0 && img.height > 0) || img.data.length !== n) throw new RangeError(`${what}: expected ${img.width}×${img.height}×3 = ${n} floats, got ${img.data.length}`);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    const v = img.data[i];
    if (!Number.isFinite(v)) throw new RangeError(`${what}: value ${i} is ${v}; expected a number in [0, 1]`);
    b[i] = Math.round(Math.min(1, Math.max(0, v)) * 255);
  }
  return b;
}

export async function encodePng(img: ImageData, what = 'image'): Promise<Buffer> {
  const sharp = loadSharp();
  return sharp(to8bit(img, what), { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
}

export function encodeWav(a: AudioData, what = 'audio'): Buffer {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { WaveFile } = require('wavefile') as typeof import('wavefile');
  if (!(Number.isInteger(a.sampleRate) && a.sampleRate > 0)) throw new RangeError(`${what}: sampleRate must be a positive integer, got ${a.sampleRate}`);
  if (!a.samples.length) throw new RangeError(`${what}: no samples`);
  const pcm = new Int16Array(a.samples.length);
  for (let i = 0; i < pcm.length; i++) {
    const s = a.samples[i];
    if (!Number.isFinite(s)) throw new RangeError(`${what}: sample ${i} is ${s}; expected a number in [-1, 1]`);
    pcm[i] = Math.max(-32768, Math.min(32767, Math.round(s * 32768)));
  }
  const w = new WaveFile();
  w.fromScratch(1, a.sampleRate, '16', pcm);
  return Buffer.from(w.toBuffer());
}

function videoRaw(v: VideoData, what: string): { raw: Buffer; width: number; height: number } {
  if (!v.frames.length) throw new RangeError(`${what}: the video has no frames`);
  const { width, height } = v.frames[0];
  const parts = v.frames.map((f, i) => {
    if (f.width !== width || f.height !== height) throw new RangeError(`${what}: frame ${i} is ${f.width}×${f.height}, frame 0 is ${width}×${height}`);
    return to8bit(f, `${what} frame ${i}`);
  });
  return { raw: Buffer.concat(parts), width, height };
}

export async function encodeGif(v: VideoData, what = 'video'): Promise<Buffer> {
  const sharp = loadSharp();
  const { raw, width, height } = videoRaw(v, what);
  // GIF delays are in 1/100 s; the nearest one to the clip's frame period.
  const delay = Math.max(10, Math.round(1000 / (v.fps > 0 ? v.fps : 10) / 10) * 10);
  return sharp(raw, { raw: { width, height: height * v.frames.length, channels: 3, pageHeight: height } })
    .gif({ delay: v.frames.map(() => delay), loop: 0, dither: 0, colours: 256, effort: 10 })
    .toBuffer();
}

export async function encodeMp4(v: VideoData, what = 'video'): Promise<Buffer> {
  if (!ffmpegAvailable().ffmpeg) throw new MediaDecodeError(`${what}: writing MP4 needs ffmpeg on PATH, which is missing (use video: 'gif')`);
  const { raw, width, height } = videoRaw(v, what);
  const fps = v.fps > 0 ? v.fps : 10;
  return new Promise((resolve, reject) => {
    // libx264rgb at qp 0 keeps RGB exactly (no YUV conversion); +faststart puts the index first.
    const p = spawn('ffmpeg', ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0', '-c:v', 'libx264rgb', '-qp', '0', '-pix_fmt', 'rgb24', '-movflags', '+faststart+frag_keyframe+empty_moov', '-f', 'mp4', 'pipe:1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
    p.stdin.on('error', () => undefined); // ffmpeg exiting early is reported by 'close'
    p.on('error', (e) => reject(new MediaDecodeError(`${what}: cannot run ffmpeg: ${e.message}`)));
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new MediaDecodeError(`${what}: ffmpeg failed to write MP4 (exit ${code}): ${err.trim()}`))));
    p.stdin.end(raw);
  });
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'row';
}

/**
 * Writes `rows` (Examples, with media in `example.media`) as `dir/<file>` in the ms-swift layout
 * plus one media file per image / audio / video under `dir/<mediaDir>/`. Each row's prompt turns
 * must already carry one `<image>` / `<audio>` / `<video>` tag per media item, in order.
 * Columns: `messages` (the example's turns, or one user turn with its prompt), the media lists
 * (paths relative to the JSONL), `solution` (the SFT target, or the answer), `answer` when the
 * reference answer is not what the loader would read out of `solution`, and the example's `meta`
 * fields that are not one of those names.
 */
export async function writeMediaDataset(dir: string, rows: Example[], opts: WriteMediaDatasetOptions = {}): Promise<WrittenDataset> {
  const fileName = opts.file ?? 'data.jsonl';
  const mediaDirName = opts.mediaDir ?? 'media';
  const video = opts.video ?? 'gif';
  if (video !== 'gif' && video !== 'mp4') throw new RangeError(`video must be 'gif' or 'mp4', got ${JSON.stringify(video)}`);
  if (!Array.isArray(rows) || !rows.length) throw new RangeError('rows must be a non-empty array of examples');
  const root = nodePath.resolve(dir);
  const jsonlPath = nodePath.join(root, fileName);
  const mediaRoot = nodePath.join(root, mediaDirName);

  // Plan every file and line first: bad rows and existing targets are reported before anything is written.
  type Planned = { path: string; encode: () => Promise<Buffer> };
  const planned: Planned[] = [];
  const lines: string[] = [];
  const usedNames = new Set<string>();
  rows.forEach((ex, r) => {
    const what = `row ${r} (id ${ex.id})`;
    const messages = ex.messages ? ex.messages.map((m) => ({ role: m.role, content: m.content })) : [{ role: 'user', content: ex.prompt }];
    const tags = countMediaTags(messages.map((m) => m.content));
    const media = ex.media ?? {};
    const lists = { image: media.images ?? [], audio: media.audios ?? [], video: media.videos ?? [] };
    for (const k of ['image', 'audio', 'video'] as const)
      if (lists[k].length !== tags[k]) throw new RangeError(`${what}: has ${lists[k].length} ${k}${lists[k].length === 1 ? '' : 's'} but its prompt has ${tags[k]} ${MEDIA_TAGS[k]} tag${tags[k] === 1 ? '' : 's'}; they must match one to one`);
    let base = safeName(ex.id);
    for (let k = 2; usedNames.has(base); k++) base = `${safeName(ex.id)}~${k}`;
    usedNames.add(base);
    const rel = (name: string) => `${mediaDirName}/${name}`.split(nodePath.sep).join('/');
    const row: Record<string, unknown> = { messages };
    const add = (field: string, name: string, encode: () => Promise<Buffer>) => {
      planned.push({ path: nodePath.join(mediaRoot, name), encode });
      ((row[field] ??= []) as string[]).push(rel(name));
    };
    lists.image.forEach((m, i) => add('images', `${base}-image-${i}.png`, () => encodePng(m, `${what} images[${i}]`)));
    lists.audio.forEach((m, i) => add('audios', `${base}-audio-${i}.wav`, async () => encodeWav(m, `${what} audios[${i}]`)));
    lists.video.forEach((m, i) =>
      add('videos', `${base}-video-${i}.${video}`, () => (video === 'gif' ? encodeGif(m, `${what} videos[${i}]`) : encodeMp4(m, `${what} videos[${i}]`))),
    );
    const solution = ex.solution ?? ex.answer;
    row.solution = solution;
    if ((extractAnswer(solution) ?? solution.trim()) !== ex.answer) row.answer = ex.answer;
    for (const [k, v] of Object.entries(ex.meta ?? {})) if (!RESERVED.has(k)) row[k] = v;
    lines.push(JSON.stringify(row));
  });
  const targets = [jsonlPath, ...planned.map((p) => p.path)];
  if (!opts.overwrite) {
    const existing = targets.filter((p) => fs.existsSync(p));
    if (existing.length) throw new Error(`writeMediaDataset: ${existing.length} target file${existing.length === 1 ? '' : 's'} already exist (${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''}); pass overwrite: true to replace them`);
  }
  if (video === 'mp4' && planned.some((p) => p.path.endsWith('.mp4')) && !ffmpegAvailable().ffmpeg) throw new MediaDecodeError("writing MP4 video needs ffmpeg on PATH, which is missing (use video: 'gif')");

  const created: string[] = [];
  const tmpOf = (p: string) => `${p}.tmp-${process.pid}`;
  try {
    await fs.promises.mkdir(mediaRoot, { recursive: true });
    for (const p of planned) {
      const bytes = await p.encode();
      await fs.promises.writeFile(tmpOf(p.path), bytes, { flag: 'wx' });
      created.push(tmpOf(p.path));
      await fs.promises.rename(tmpOf(p.path), p.path);
      created[created.length - 1] = p.path;
    }
    // The JSONL last: a dataset file exists only when every file it names does.
    await fs.promises.writeFile(tmpOf(jsonlPath), lines.join('\n') + '\n', { flag: 'wx' });
    created.push(tmpOf(jsonlPath));
    await fs.promises.rename(tmpOf(jsonlPath), jsonlPath);
  } catch (e) {
    // Remove only what this call wrote (files replaced under overwrite: true cannot be restored).
    for (const p of created) await fs.promises.rm(p, { force: true });
    throw e;
  }
  return { file: jsonlPath, media: planned.map((p) => p.path), rows: rows.length };
}

/**
 * Writes a task's train and held-out examples as `dir/train.jsonl` and `dir/test.jsonl` with their
 * media under `dir/media/train/` and `dir/media/test/`, so the same run can train from files:
 * `datasetTask({ train: 'dir/train.jsonl', test: 'dir/test.jsonl' })` then `loadTaskMedia`.
 * Existing targets are an error unless `overwrite`; when the held-out half fails, the train
 * half this call wrote is removed.
 */
export async function exportTaskDataset(task: Task, dir: string, opts: Omit<WriteMediaDatasetOptions, 'file' | 'mediaDir'> = {}): Promise<{ train: WrittenDataset; test: WrittenDataset }> {
  const root = nodePath.resolve(dir);
  if (!opts.overwrite) {
    const existing = ['train.jsonl', 'test.jsonl', 'media/train', 'media/test'].map((p) => nodePath.join(root, p)).filter((p) => fs.existsSync(p));
    if (existing.length) throw new Error(`exportTaskDataset: ${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; pass overwrite: true to replace`);
  }
  const train = await writeMediaDataset(root, task.train, { ...opts, file: 'train.jsonl', mediaDir: 'media/train' });
  try {
    const test = await writeMediaDataset(root, task.test, { ...opts, file: 'test.jsonl', mediaDir: 'media/test' });
    return { train, test };
  } catch (e) {
    if (!opts.overwrite) for (const p of [train.file, ...train.media]) await fs.promises.rm(p, { force: true });
    throw e;
  }
}
