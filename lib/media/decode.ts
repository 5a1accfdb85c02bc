/**
 * Decoding media bytes into the in-memory forms of lib/media/types.ts, sized to a MediaSpec.
 *
 * No hand-written codecs: images and animated GIF/WebP go through sharp (libvips), WAV through
 * `wavefile`, and everything else (MP4/WebM/MKV/AVI video; FLAC/MP3/OGG/M4A audio) through the
 * `ffmpeg` / `ffprobe` executables when they are on PATH, as a child process emitting raw frames
 * or samples. The only numeric code here is what sits between a decoder and the encoder: the
 * channel / sample-format normalisation, the audio resampler and the frame sampler.
 *
 * Shapes: images HWC float32 in [0, 1] (RGB; alpha dropped like PIL's convert('RGB'), grey
 * expanded to RGB); audio mono float32 in [-1, 1] (channels averaged); video frames in display
 * order, each an image.
 *
 * Every function throws a MediaDecodeError whose message says what was expected and what was
 * found; the dataset loader prefixes it with file, line, field and index.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as nodePath from 'path';
import type { AudioData, ImageData, MediaSpec, VideoData } from './types';

export class MediaDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MediaDecodeError';
  }
}

/** Limits that keep a hostile or broken file from exhausting memory (checked from headers, before decoding). */
export interface DecodeLimits {
  /** Most pixels (width·height) of one image or one video frame. Default 64 Mpx (8192²). */
  maxInputPixels?: number;
  /** Most frames a video may declare. Default 100 000. */
  maxVideoFrames?: number;
  /** Without a spec for audio: the longest clip accepted, in seconds. Default 600. */
  maxAudioSeconds?: number;
}

export const DEFAULT_MAX_INPUT_PIXELS = 8192 * 8192;
const DEFAULT_MAX_VIDEO_FRAMES = 100_000;
const DEFAULT_MAX_AUDIO_SECONDS = 600;

// sharp is loaded on first use: text-only users of the package never load libvips.
type SharpModule = typeof import('sharp');
let sharpModule: SharpModule | undefined;
export function loadSharp(): SharpModule {
  if (!sharpModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      sharpModule = require('sharp') as SharpModule;
    } catch (e) {
      throw new MediaDecodeError(`image decoding needs the 'sharp' package, which failed to load (${(e as Error).message})`);
    }
  }
  return sharpModule;
}

/** Container / codec family recognised from the first bytes (file names and MIME types are not trusted). */
export type SniffedFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'wav' | 'flac' | 'mp3' | 'ogg' | 'mp4' | 'webm' | 'avi' | 'unknown';

export function sniffFormat(b: Uint8Array): SniffedFormat {
  const s = (o: number, t: string) => b.length >= o + t.length && [...t].every((c, i) => b[o + i] === c.charCodeAt(0));
  if (b.length >= 8 && b[0] === 0x89 && s(1, 'PNG')) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (s(0, 'GIF8')) return 'gif';
  if (s(0, 'RIFF') && s(8, 'WEBP')) return 'webp';
  if (s(0, 'RIFF') && s(8, 'WAVE')) return 'wav';
  if (s(0, 'RIFF') && s(8, 'AVI ')) return 'avi';
  if (s(0, 'fLaC')) return 'flac';
  if (s(0, 'OggS')) return 'ogg';
  if (s(0, 'ID3') || (b.length >= 2 && b[0] === 0xff && (b[1] & 0xe0) === 0xe0)) return 'mp3';
  if (s(4, 'ftyp')) return 'mp4';
  if (b.length >= 4 && b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) return 'webm';
  return 'unknown';
}

/**
 * The reason libvips gave for this file, on one line. libvips keeps one process-wide error buffer
 * that sharp reads whole, so while other files decode concurrently a message can carry their
 * errors too (CI saw a GIF's "gifload_buffer: no frames in GIF" after another file's
 * "pngload_buffer: end of stream"). Each line names its loader: the last line that names this
 * file's format is kept, else the last line.
 */
export function vipsReason(e: unknown, bytes: Uint8Array): string {
  const lines = String((e as Error)?.message ?? e).split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  if (lines.length === 0) return String(e);
  const fmt = sniffFormat(bytes);
  const names = fmt === 'jpeg' ? ['jpeg', 'jpg'] : fmt === 'unknown' ? [] : [fmt];
  const own = lines.filter((l) => names.some((n) => l.toLowerCase().includes(n)));
  return own.length ? own[own.length - 1] : lines[lines.length - 1];
}

function describe(b: Uint8Array): string {
  const f = sniffFormat(b);
  return f === 'unknown' ? `unrecognised bytes (${b.length} B, starting ${Buffer.from(b.subarray(0, 8)).toString('hex')})` : `${f.toUpperCase()} (${b.length} B)`;
}

function toImageData(raw: Uint8Array, width: number, height: number, channels: number, offset = 0): ImageData {
  // Normalise 8-bit RGB (or grey, expanded) to [0, 1] — the k/255 grid, so a PNG round trip is exact.
  const n = width * height;
  const data = new Float32Array(n * 3);
  if (channels === 3) for (let i = 0; i < n * 3; i++) data[i] = raw[offset + i] / 255;
  else if (channels === 1) for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = raw[offset + i] / 255;
  else throw new MediaDecodeError(`decoder returned ${channels} channels, expected 1 or 3`);
  return { kind: 'image', width, height, data };
}

function checkPixels(width: number, height: number, what: string, limit: number): void {
  if (!(width > 0 && height > 0)) throw new MediaDecodeError(`${what} has no pixels (${width}×${height})`);
  if (width * height > limit)
    throw new MediaDecodeError(`${what} is ${width}×${height} = ${width * height} pixels, more than the limit of ${limit} (maxInputPixels; a decompression-bomb guard)`);
}

/**
 * Decodes one still image (PNG, JPEG, WebP, GIF — the first frame of an animated one — and
 * whatever else libvips reads) to RGB in [0, 1], resized to `spec` (fit 'fill', Lanczos-3) when
 * given and different from the file's size; kept at the file's size otherwise.
 */
export async function decodeImage(bytes: Uint8Array, spec?: MediaSpec['image'], limits: DecodeLimits = {}): Promise<ImageData> {
  const sharp = loadSharp();
  const limit = limits.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  let meta;
  try {
    // Header only: the pixel guard runs before libvips allocates the image.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new MediaDecodeError(`cannot read the image header of ${describe(bytes)}: ${vipsReason(e, bytes)}`);
  }
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  checkPixels(w, h, `the ${meta.format ?? 'image'}`, limit);
  try {
    let p = sharp(bytes, { limitInputPixels: limit, failOn: 'error' });
    if (spec && (spec.width !== w || spec.height !== h)) p = p.resize(spec.width, spec.height, { fit: 'fill', kernel: 'lanczos3' });
    const { data, info } = await p.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    return toImageData(data, info.width, info.height, info.channels);
  } catch (e) {
    if (e instanceof MediaDecodeError) throw e;
    throw new MediaDecodeError(`cannot decode the ${meta.format ?? 'image'} (${w}×${h}): ${vipsReason(e, bytes)}`);
  }
}

/**
 * Indices of the frames kept when `total` frames are sampled down (or up) to `n`: evenly spaced
 * from the first to the last frame, rounded (linspace(0, total-1, n), as Qwen2-VL's processor
 * samples); fewer frames than `n` repeat frames.
 */
export function sampleFrameIndices(total: number, n: number): number[] {
  if (!(Number.isInteger(total) && total > 0)) throw new MediaDecodeError(`the video has ${total} frames; expected at least 1`);
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`numFrames must be a positive integer, got ${n}`);
  if (n === 1) return [Math.floor((total - 1) / 2)];
  return Array.from({ length: n }, (_, k) => Math.round((k * (total - 1)) / (n - 1)));
}

/** Animated GIF / WebP through sharp: all pages decoded (and resized) by libvips, then sampled. */
async function decodeAnimated(bytes: Uint8Array, spec: MediaSpec['video'] | undefined, limits: DecodeLimits): Promise<VideoData> {
  const sharp = loadSharp();
  const limit = limits.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  let meta;
  try {
    meta = await sharp(bytes, { animated: true, limitInputPixels: false }).metadata();
  } catch (e) {
    throw new MediaDecodeError(`cannot read the header of ${describe(bytes)}: ${vipsReason(e, bytes)}`);
  }
  const pages = meta.pages ?? 1;
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  checkPixels(w, h, `each ${meta.format} frame`, limit);
  if (pages > (limits.maxVideoFrames ?? DEFAULT_MAX_VIDEO_FRAMES)) throw new MediaDecodeError(`the ${meta.format} has ${pages} frames, more than maxVideoFrames ${limits.maxVideoFrames ?? DEFAULT_MAX_VIDEO_FRAMES}`);
  const idx = spec ? sampleFrameIndices(pages, spec.numFrames) : Array.from({ length: pages }, (_, i) => i);
  const W = spec?.width ?? w;
  const H = spec?.height ?? h;
  // Decode only the distinct sampled pages, one sharp call each (page / pages = 1), so a long
  // animation is never held whole in memory.
  const byPage = new Map<number, ImageData>();
  try {
    for (const p of new Set(idx)) {
      let s = sharp(bytes, { page: p, pages: 1, limitInputPixels: limit, failOn: 'error' });
      if (W !== w || H !== h) s = s.resize(W, H, { fit: 'fill', kernel: 'lanczos3' });
      const { data, info } = await s.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      byPage.set(p, toImageData(data, info.width, info.height, info.channels));
    }
  } catch (e) {
    throw new MediaDecodeError(`cannot decode the ${meta.format} frames (${w}×${h}×${pages}): ${vipsReason(e, bytes)}`);
  }
  // GIF / WebP delays are per frame in ms; the clip's rate is frames over its total duration.
  const delays = meta.delay && meta.delay.length ? meta.delay : [100];
  const totalMs = Array.from({ length: pages }, (_, i) => delays[Math.min(i, delays.length - 1)] || 100).reduce((a, b) => a + b, 0);
  const fps = (idx.length * 1000) / totalMs;
  return { kind: 'video', fps, frames: idx.map((i) => byPage.get(i)!) };
}

let ffmpegChecked: { ffmpeg: boolean; ffprobe: boolean } | undefined;
/** Whether `ffmpeg` and `ffprobe` run from PATH (checked once per process). */
export function ffmpegAvailable(): { ffmpeg: boolean; ffprobe: boolean } {
  if (!ffmpegChecked) {
    const ok = (cmd: string) => {
      try {
        return spawnSync(cmd, ['-version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
      } catch {
        return false;
      }
    };
    ffmpegChecked = { ffmpeg: ok('ffmpeg'), ffprobe: ok('ffprobe') };
  }
  return ffmpegChecked;
}

function needFfmpeg(what: string): void {
  const a = ffmpegAvailable();
  const missing = [!a.ffmpeg && 'ffmpeg', !a.ffprobe && 'ffprobe'].filter(Boolean);
  if (missing.length)
    throw new MediaDecodeError(`${what} needs ${missing.join(' and ')} on PATH, which ${missing.length > 1 ? 'are' : 'is'} missing (install ffmpeg, e.g. apt-get install ffmpeg; PNG/JPEG/WebP/GIF images, animated GIF/WebP video and WAV audio need no ffmpeg)`);
}

/** Runs a command and collects its stdout; rejects with its stderr tail on a non-zero exit. */
function run(cmd: string, args: string[], onData?: (chunk: Buffer) => void, maxStdout = 1 << 30): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outLen = 0;
    let err = '';
    let failed: Error | undefined;
    p.stdout.on('data', (c: Buffer) => {
      if (onData) return onData(c);
      outLen += c.length;
      if (outLen > maxStdout) {
        failed = new MediaDecodeError(`${cmd} produced more than ${maxStdout} bytes`);
        p.kill('SIGKILL');
        return;
      }
      out.push(c);
    });
    p.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-2000);
    });
    p.on('error', (e) => reject(new MediaDecodeError(`cannot run ${cmd}: ${e.message}`)));
    p.on('close', (code) => {
      if (failed) reject(failed);
      else if (code !== 0) reject(new MediaDecodeError(`${cmd} failed (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`));
      else resolve(Buffer.concat(out));
    });
  });
}

/** ffmpeg reads files; bytes from a data: URL or a `bytes` column go through a private temp file (removed after). */
async function withFile<T>(bytes: Uint8Array, path: string | undefined, fn: (p: string) => Promise<T>): Promise<T> {
  if (path) return fn(path);
  const dir = await fs.promises.mkdtemp(nodePath.join(os.tmpdir(), 'grpo-media-'));
  const p = nodePath.join(dir, 'input');
  try {
    await fs.promises.writeFile(p, bytes);
    return await fn(p);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** Video through ffmpeg (MP4, WebM, MKV, AVI, …): ffprobe counts the frames, ffmpeg streams raw RGB at the spec size, the sampled frames are kept. */
async function decodeFfmpegVideo(bytes: Uint8Array, path: string | undefined, spec: MediaSpec['video'] | undefined, limits: DecodeLimits): Promise<VideoData> {
  needFfmpeg(`decoding ${describe(bytes)} video`);
  const limit = limits.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  return withFile(bytes, path, async (file) => {
    // -count_frames decodes once to count: exact even when the container's nb_frames is absent (WebM).
    const probe = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames,avg_frame_rate,r_frame_rate', '-of', 'json', file]);
    let st: { width?: number; height?: number; nb_read_frames?: string; avg_frame_rate?: string; r_frame_rate?: string } | undefined;
    try {
      st = JSON.parse(probe.toString()).streams?.[0];
    } catch {
      /* handled below */
    }
    if (!st) throw new MediaDecodeError(`ffprobe found no video stream in ${describe(bytes)}`);
    const w = st.width ?? 0;
    const h = st.height ?? 0;
    checkPixels(w, h, 'each video frame', limit);
    const total = Number(st.nb_read_frames ?? 0);
    if (!(total > 0)) throw new MediaDecodeError(`the video has 0 frames (ffprobe read none)`);
    if (total > (limits.maxVideoFrames ?? DEFAULT_MAX_VIDEO_FRAMES)) throw new MediaDecodeError(`the video has ${total} frames, more than maxVideoFrames ${limits.maxVideoFrames ?? DEFAULT_MAX_VIDEO_FRAMES}`);
    const rate = (r?: string) => {
      const [a, b] = (r ?? '').split('/').map(Number);
      return a > 0 && b > 0 ? a / b : 0;
    };
    const srcFps = rate(st.avg_frame_rate) || rate(st.r_frame_rate) || 25;
    const idx = spec ? sampleFrameIndices(total, spec.numFrames) : Array.from({ length: total }, (_, i) => i);
    const W = spec?.width ?? w;
    const H = spec?.height ?? h;
    const frameBytes = W * H * 3;
    const want = new Set(idx);
    const kept = new Map<number, ImageData>();
    // Stream the frames; only the sampled ones are converted and kept (bounded memory for long clips).
    let pending: Buffer = Buffer.alloc(0);
    let frameNo = 0;
    const args = ['-v', 'error', '-nostdin', '-i', file, '-map', '0:v:0', '-vsync', 'passthrough', '-vf', `scale=${W}:${H}:flags=lanczos`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
    await run('ffmpeg', args, (chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let off = 0;
      while (pending.length - off >= frameBytes) {
        if (want.has(frameNo)) kept.set(frameNo, toImageData(pending, W, H, 3, off));
        frameNo++;
        off += frameBytes;
      }
      pending = pending.subarray(off);
    });
    if (frameNo === 0) throw new MediaDecodeError('ffmpeg decoded 0 frames');
    // ffprobe's count and ffmpeg's output can differ by a frame at the end; clamp to what arrived.
    const frames = idx.map((i) => {
      const j = Math.min(i, frameNo - 1);
      let f = kept.get(j);
      for (let k = j; !f && k >= 0; k--) f = kept.get(k);
      if (!f) throw new MediaDecodeError(`ffmpeg decoded ${frameNo} frames but frame ${i} (of ${total} reported by ffprobe) was not among them`);
      return f;
    });
    return { kind: 'video', fps: (idx.length * srcFps) / total, frames };
  });
}

/**
 * Decodes a video to frames, sampled to `spec.numFrames` and resized to `spec.width`×`spec.height`
 * when a spec is given (all frames at the file's size otherwise): animated GIF / WebP through
 * sharp, everything else through ffmpeg (`path` lets ffmpeg read the file directly).
 */
export async function decodeVideo(bytes: Uint8Array, spec?: MediaSpec['video'], limits: DecodeLimits = {}, path?: string): Promise<VideoData> {
  const f = sniffFormat(bytes);
  if (f === 'gif' || f === 'webp') return decodeAnimated(bytes, spec, limits);
  if (f === 'png' || f === 'jpeg') throw new MediaDecodeError(`expected a video (animated GIF/WebP, MP4, WebM, …), got a still ${f.toUpperCase()} image`);
  if (f === 'wav' || f === 'flac' || f === 'mp3') throw new MediaDecodeError(`expected a video, got ${f.toUpperCase()} audio`);
  return decodeFfmpegVideo(bytes, path, spec, limits);
}

/**
 * Band-limited resampling of mono float audio from `fromRate` to `toRate` (Hz): a windowed-sinc
 * interpolator (Blackman window, 16 zero crossings each side of the centre), its cutoff at the
 * lower of the two Nyquist frequencies (×0.95 of it, leaving a transition band so the window's
 * roll-off stays below the new Nyquist), evaluated at each output instant t = j·fromRate/toRate.
 * Same rate: the samples are returned as they are. Cost O(out · 32·max(1, from/to)); with integer
 * rates the weights are tabulated per output phase (to/gcd phases) first.
 */
export function resampleAudio(x: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (!(fromRate > 0 && toRate > 0)) throw new RangeError(`sample rates must be positive, got ${fromRate} → ${toRate}`);
  if (fromRate === toRate) return x;
  const ratio = toRate / fromRate;
  const nOut = Math.max(0, Math.round(x.length * ratio));
  const out = new Float32Array(nOut);
  const cutoff = 0.95 * Math.min(1, ratio); // as a fraction of the input Nyquist
  const zeros = 16;
  const half = zeros / cutoff; // kernel half-width in input samples
  // h(d): the filter's weight for an input sample d input periods from the output instant.
  const h = (d: number) => {
    if (Math.abs(d) >= half) return 0;
    const u = d * cutoff; // in units of the (lowered) sampling period
    const sinc = u === 0 ? 1 : Math.sin(Math.PI * u) / (Math.PI * u);
    const r = d / half; // window position in [-1, 1]
    return cutoff * sinc * (0.42 + 0.5 * Math.cos(Math.PI * r) + 0.08 * Math.cos(2 * Math.PI * r));
  };
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  const K = Math.ceil(half) + 1; // taps k = -K+1 .. K around floor(t)
  const taps = 2 * K;
  const integral = Number.isInteger(fromRate) && Number.isInteger(toRate);
  const L = integral ? toRate / gcd(fromRate, toRate) : 0; // distinct output phases
  if (integral && L * taps <= 1 << 22) {
    // Integer rates: the output instants t = j·M/L fall on L fractional phases, so the weights
    // are tabulated once per phase and the inner loop is a dot product (no trig per tap).
    const M = fromRate / gcd(fromRate, toRate);
    const table = new Float64Array(L * taps);
    for (let p = 0; p < L; p++) for (let k = 0; k < taps; k++) table[p * taps + k] = h(k - K + 1 - p / L);
    for (let j = 0; j < nOut; j++) {
      const base = Math.floor((j * M) / L);
      const p = (j * M) % L;
      const row = p * taps;
      const i0 = base - K + 1;
      const lo = Math.max(0, -i0);
      const hi = Math.min(taps, x.length - i0);
      let acc = 0;
      for (let k = lo; k < hi; k++) acc += x[i0 + k] * table[row + k];
      out[j] = acc;
    }
    return out;
  }
  for (let j = 0; j < nOut; j++) {
    const t = j / ratio;
    const lo = Math.max(0, Math.ceil(t - half));
    const hi = Math.min(x.length - 1, Math.floor(t + half));
    let acc = 0;
    for (let i = lo; i <= hi; i++) acc += x[i] * h(i - t);
    out[j] = acc;
  }
  return out;
}

/** WAV through wavefile: PCM 8/16/24/32-bit and float 32/64, any channel count (averaged to mono). */
function decodeWav(bytes: Uint8Array): { rate: number; samples: Float32Array } {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { WaveFile } = require('wavefile') as typeof import('wavefile');
  let wav: InstanceType<typeof WaveFile>;
  try {
    wav = new WaveFile(bytes);
  } catch (e) {
    throw new MediaDecodeError(`cannot parse the WAV header: ${(e as Error).message}`);
  }
  const fmt = wav.fmt as { audioFormat: number; numChannels: number; sampleRate: number; bitsPerSample: number };
  const data = wav.data as { chunkSize: number; samples: Uint8Array };
  const bits = fmt.bitsPerSample;
  // 0xFFFE (extensible, what ffmpeg writes for float) carries PCM (1) or float (3) in its sub-format GUID's first field.
  const sub = (wav.fmt as { subformat?: number[] }).subformat?.[0];
  const isFloat = fmt.audioFormat === 3 || (fmt.audioFormat === 0xfffe && sub === 3);
  const isPcm = fmt.audioFormat === 1 || (fmt.audioFormat === 0xfffe && sub === 1);
  if (!isPcm && !isFloat) throw new MediaDecodeError(`unsupported WAV encoding (audioFormat ${fmt.audioFormat}); expected PCM (1) or IEEE float (3)`);
  if (isFloat && bits !== 32 && bits !== 64) throw new MediaDecodeError(`unsupported WAV float bit depth ${bits}; expected 32 or 64`);
  if (isPcm && ![8, 16, 24, 32].includes(bits)) throw new MediaDecodeError(`unsupported WAV PCM bit depth ${bits}; expected 8, 16, 24 or 32`);
  if (!(fmt.numChannels >= 1) || !(fmt.sampleRate > 0)) throw new MediaDecodeError(`bad WAV header: ${fmt.numChannels} channels at ${fmt.sampleRate} Hz`);
  // wavefile reads what is there; a header promising more sample bytes than the file holds is a truncated file.
  if (data.chunkSize > data.samples.length) throw new MediaDecodeError(`truncated WAV: the data chunk declares ${data.chunkSize} bytes, the file holds ${data.samples.length}`);
  if (data.samples.length === 0) throw new MediaDecodeError('the WAV has no samples');
  let chans: Float64Array[];
  if (isFloat && fmt.audioFormat === 0xfffe) {
    // wavefile reads extensible float as integers; the samples are little-endian IEEE floats, interleaved.
    const dv = new DataView(data.samples.buffer, data.samples.byteOffset, data.samples.length);
    const step = bits / 8;
    const frames = Math.floor(data.samples.length / (step * fmt.numChannels));
    chans = Array.from({ length: fmt.numChannels }, () => new Float64Array(frames));
    for (let i = 0; i < frames; i++)
      for (let c = 0; c < fmt.numChannels; c++) {
        const o = (i * fmt.numChannels + c) * step;
        chans[c][i] = bits === 32 ? dv.getFloat32(o, true) : dv.getFloat64(o, true);
      }
  } else {
    const ch = wav.getSamples(false, Float64Array) as unknown as Float64Array[] | Float64Array;
    chans = fmt.numChannels === 1 ? [ch as Float64Array] : (ch as Float64Array[]);
  }
  // Integer PCM to [-1, 1): signed n-bit / 2^(n-1); 8-bit WAV is unsigned with 128 as zero.
  const scale = isFloat ? 1 : bits === 8 ? 1 / 128 : 1 / 2 ** (bits - 1);
  const bias = !isFloat && bits === 8 ? 128 : 0;
  const n = chans[0].length;
  const samples = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const c of chans) s += (c[i] - bias) * scale;
    samples[i] = s / chans.length;
  }
  return { rate: fmt.sampleRate, samples };
}

/** Non-WAV audio through ffmpeg: decoded, down-mixed and resampled by ffmpeg (its swresample) to float32. */
async function decodeFfmpegAudio(bytes: Uint8Array, path: string | undefined, rate: number | undefined, maxSeconds: number): Promise<{ rate: number; samples: Float32Array }> {
  needFfmpeg(`decoding ${describe(bytes)} audio`);
  return withFile(bytes, path, async (file) => {
    let outRate = rate;
    if (!outRate) {
      const probe = await run('ffprobe', ['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=sample_rate', '-of', 'json', file]);
      outRate = Number(JSON.parse(probe.toString()).streams?.[0]?.sample_rate ?? 0);
      if (!(outRate > 0)) throw new MediaDecodeError(`ffprobe found no audio stream in ${describe(bytes)}`);
    }
    // One second more than allowed is read so an over-long clip is reported, not silently cut.
    const cap = Math.ceil((maxSeconds + 1) * outRate) * 4;
    const out = await run('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:a:0', '-t', String(maxSeconds + 1), '-ac', '1', '-ar', String(outRate), '-f', 'f32le', 'pipe:1'], undefined, cap);
    const samples = new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + (out.length & ~3)));
    if (!samples.length) throw new MediaDecodeError('ffmpeg decoded 0 audio samples');
    return { rate: outRate, samples };
  });
}

/**
 * Decodes audio to mono float32: WAV through wavefile (then resampled here), FLAC / MP3 / OGG /
 * M4A / … through ffmpeg (resampled by ffmpeg). With a spec the result is at `spec.sampleRate`
 * and a clip longer than `spec.maxSeconds` is an error (cutting it could change the answer).
 */
export async function decodeAudio(bytes: Uint8Array, spec?: MediaSpec['audio'], limits: DecodeLimits = {}, path?: string): Promise<AudioData> {
  const maxSeconds = spec?.maxSeconds ?? limits.maxAudioSeconds ?? DEFAULT_MAX_AUDIO_SECONDS;
  const f = sniffFormat(bytes);
  if (['png', 'jpeg', 'gif', 'webp'].includes(f)) throw new MediaDecodeError(`expected audio, got a ${f.toUpperCase()} image`);
  let r: { rate: number; samples: Float32Array };
  if (f === 'wav') {
    r = decodeWav(bytes);
    if (r.samples.length / r.rate > maxSeconds + 1e-9) throw new MediaDecodeError(`the clip is ${(r.samples.length / r.rate).toFixed(3)} s, longer than maxSeconds ${maxSeconds}`);
    if (spec) r = { rate: spec.sampleRate, samples: resampleAudio(r.samples, r.rate, spec.sampleRate) };
  } else {
    r = await decodeFfmpegAudio(bytes, path, spec?.sampleRate, maxSeconds);
  }
  if (r.samples.length / r.rate > maxSeconds + 1e-9) throw new MediaDecodeError(`the clip is longer than maxSeconds ${maxSeconds} (${(r.samples.length / r.rate).toFixed(3)} s read)`);
  return { kind: 'audio', sampleRate: r.rate, samples: r.samples };
}
