// Decode throughput of the dataset media path (lib/media/decode.ts), per format: media decoded
// per second, one at a time (what one loader slot does), sized to a typical small-encoder
// MediaSpec. Inputs are generated here (sharp, the writer, ffmpeg). Median over --rounds rounds
// of --n decodes each; formats alternate within a round so load changes hit them alike.
//   node --import tsx bench/media_decode.ts [--n 20] [--rounds 5] [--out bench/results/media_decode.md]
import { execSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { decodeAudio, decodeImage, decodeVideo, ffmpegAvailable } from '../lib/media/decode';
import { encodeGif, encodeWav } from '../lib/media/write';
import type { MediaSpec, VideoData } from '../lib/media/types';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

function scene(w: number, h: number, seed: number): Buffer {
  // A gradient with soft noise: compresses like a photo-ish image, not like a flat test card.
  const b = Buffer.alloc(w * h * 3);
  let s = seed * 7919 + 1;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) {
        s = (s * 1103515245 + 12345) % 2 ** 31;
        b[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(((x + y * (c + 1)) * 255) / (w + 3 * h) + ((s / 2 ** 31) * 24 - 12))));
      }
  return b;
}

async function main() {
  const n = +flag('n', '20');
  const rounds = +flag('rounds', '5');
  const out = flag('out', '');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-media-'));
  const spec: Required<MediaSpec> = { image: { width: 64, height: 64 }, audio: { sampleRate: 16000, maxSeconds: 10 }, video: { width: 64, height: 64, numFrames: 8 } };
  const W = 256;
  const raw = scene(W, W, 1);
  const img = () => sharp(raw, { raw: { width: W, height: W, channels: 3 } });
  const tone = (rate: number, sec: number) => Float32Array.from({ length: rate * sec }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / rate));
  const frames = 32;
  const video: VideoData = {
    kind: 'video',
    fps: 10,
    frames: Array.from({ length: frames }, (_, k) => ({ kind: 'image' as const, width: 128, height: 128, data: Float32Array.from(scene(128, 128, k + 2), (v) => Math.round((v / 255) * 7) / 7) })),
  };
  type Case = { name: string; input: string; run: () => Promise<unknown> };
  const cases: Case[] = [];
  const add = (name: string, input: string, bytes: Buffer, fn: (b: Buffer, p: string) => Promise<unknown>) => {
    const p = path.join(dir, name.replace(/[^a-z0-9]+/gi, '_'));
    fs.writeFileSync(p, bytes);
    cases.push({ name, input: `${input}, ${(bytes.length / 1024).toFixed(1)} KiB`, run: () => fn(bytes, p) });
  };
  add('PNG image', `${W}×${W} RGB → 64×64`, await img().png().toBuffer(), (b) => decodeImage(b, spec.image));
  add('JPEG image', `${W}×${W} q90 → 64×64`, await img().jpeg({ quality: 90 }).toBuffer(), (b) => decodeImage(b, spec.image));
  add('WebP image', `${W}×${W} q90 → 64×64`, await img().webp({ quality: 90 }).toBuffer(), (b) => decodeImage(b, spec.image));
  add('GIF image', `${W}×${W} → 64×64`, await img().gif().toBuffer(), (b) => decodeImage(b, spec.image));
  add('WAV audio', '5 s 16-bit 16 kHz (no resampling)', encodeWav({ kind: 'audio', sampleRate: 16000, samples: tone(16000, 5) }), (b) => decodeAudio(b, spec.audio));
  add('WAV audio, resampled', '5 s 16-bit 44.1 kHz → 16 kHz (windowed sinc)', encodeWav({ kind: 'audio', sampleRate: 44100, samples: tone(44100, 5) }), (b) => decodeAudio(b, spec.audio));
  add('GIF video', `${frames} frames 128×128 → 8 × 64×64`, await encodeGif(video), (b) => decodeVideo(b, spec.video));
  const ff = ffmpegAvailable();
  const haveFf = ff.ffmpeg && ff.ffprobe;
  if (haveFf) {
    const wav = path.join(dir, 'a.wav');
    fs.writeFileSync(wav, encodeWav({ kind: 'audio', sampleRate: 44100, samples: tone(44100, 5) }));
    const conv = (args: string[], outName: string) => {
      const o = path.join(dir, outName);
      const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args, o]);
      if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr}`);
      return fs.readFileSync(o);
    };
    add('FLAC audio (ffmpeg)', '5 s 44.1 kHz → 16 kHz', conv(['-i', wav], 'a.flac'), (b, p) => decodeAudio(b, spec.audio, {}, p));
    add('MP3 audio (ffmpeg)', '5 s 128 kb/s 44.1 kHz → 16 kHz', conv(['-i', wav, '-b:a', '128k'], 'a.mp3'), (b, p) => decodeAudio(b, spec.audio, {}, p));
    const rawv = path.join(dir, 'v.rgb');
    fs.writeFileSync(rawv, Buffer.concat(video.frames.map((f) => Buffer.from(Uint8Array.from(f.data, (v) => Math.round(v * 255))))));
    const vin = ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '128x128', '-r', '10', '-i', rawv];
    add('MP4 video (ffmpeg)', `${frames} frames 128×128 H.264 → 8 × 64×64`, conv([...vin, '-c:v', 'libx264', '-pix_fmt', 'yuv420p'], 'v.mp4'), (b, p) => decodeVideo(b, spec.video, {}, p));
    add('WebM video (ffmpeg)', `${frames} frames 128×128 VP9 → 8 × 64×64`, conv([...vin, '-c:v', 'libvpx-vp9', '-b:v', '200k'], 'v.webm'), (b, p) => decodeVideo(b, spec.video, {}, p));
  }
  for (const c of cases) await c.run(); // warm-up (sharp / ffmpeg caches, JIT)
  const perRound = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++)
    for (const c of cases) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await c.run();
      perRound.get(c.name)!.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '# Media decode throughput (dataset loader)',
    '',
    `\`node --import tsx bench/media_decode.ts --n ${n} --rounds ${rounds}${out ? ` --out ${out}` : ''}\`, ${new Date().toISOString().slice(0, 10)}.`,
    `${cpu} (${os.cpus().length} logical CPUs), node ${process.version}, sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}), ${haveFf ? execSync('ffmpeg -version').toString().split('\n')[0] : 'no ffmpeg on PATH (ffmpeg rows skipped)'}.`,
    `Load average before: ${LOAD0}; after: ${os.loadavg().map((v) => v.toFixed(1)).join(' ')} (a shared box: other builds and tests ran meanwhile).`,
    '',
    `One decode at a time (a loader slot; loadExampleMedia runs 4 at once by default), to the spec image 64×64, audio 16 kHz, video 8 frames of 64×64; median of ${rounds} rounds of ${n}, formats alternating.`,
    '',
    '| format | input | media/s (median) | ms each | min–max media/s |',
    '|---|---|---:|---:|---:|',
    ...cases.map((c) => {
      const v = perRound.get(c.name)!;
      const m = median(v);
      return `| ${c.name} | ${c.input} | ${m.toFixed(1)} | ${(1000 / m).toFixed(2)} | ${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)} |`;
    }),
    '',
    'ffmpeg rows include starting ffprobe + ffmpeg processes (two per video: frame count, then frames; one per audio clip), which dominates at these sizes.',
    'Decoding happens once per dataset row (Example.media is the cache), so these rates bound dataset loading, not the GRPO step.',
  ];
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  if (out) fs.writeFileSync(out, text);
  fs.rmSync(dir, { recursive: true, force: true });
}

const LOAD0 = os.loadavg().map((v) => v.toFixed(1)).join(' ');
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
