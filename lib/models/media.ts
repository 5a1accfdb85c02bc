/**
 * The multimodal side of the built-in model: the processor (media → placeholder tokens + encoder
 * input rows) and the configuration of the built-in encoders. The splice itself is native
 * (native/model/transformer.cc, Transformer::splice): each encoder returns rows [n, dModel] that
 * replace the embeddings of the n placeholder tokens the prompt carries for that media item.
 *
 * This is the interface a real VLM adapter (a Qwen2-VL-style processor + vision tower) implements
 * too: (1) the processor expands each `<image>` / `<video>` / `<audio>` tag of the prompt into n
 * placeholder ids (n known from the media's size), (2) the encoder maps the media to n rows of
 * d_model plus their (t, h, w) position ids, (3) the decoder takes those rows instead of token
 * embeddings. See README "Multimodal GRPO".
 *
 * Positions. Every spliced row has a (t, h, w) id: t the frame group (video: temporalPatch frames
 * per token, as in Qwen2-VL; 0 for an image, the mel-token index for audio), h, w its patch row
 * and column. The built-in decoder keeps learned
 * absolute positions: a token's decoder position is its sequence index (for text t = h = w =
 * index, so text-only rows get exactly today's positions); (h, w) index the encoder's learned 2-D
 * table `vision.pos` (row h·g + w) and t the learned `vision.temporal` table, added inside the
 * encoder before its projector. A RoPE decoder would instead rotate by (t, h, w) sections
 * (M-RoPE); the ids this processor emits are the ones it would use.
 */
import type { AudioData, ExampleMedia, ImageData, MediaSpec, VideoData } from '../media/types';
import { CharTokenizer, Tokenizer } from './tokenizer';

/** The vision encoder (images and video frames): square images of imageSize, patches of patchSize. */
export interface VisionEncoderConfig {
  imageSize: number;
  patchSize: number;
  /** Encoder hidden size (patch embedding output). */
  hidden: number;
  /** Video: frames per clip; 0 = images only. */
  frames: number;
  /**
   * Frames per video token (Qwen2-VL's temporal_patch_size; absent = 1): each encoder input row
   * holds this many consecutive frames of one patch, frame-major ((t, dy, dx, channel) order); a
   * clip whose frame count it does not divide repeats its last frame, and an image fills every
   * slot with itself (as Qwen2-VL's processor does).
   * Why: a row then sees the change at its position, so comparing frames no longer rests on the
   * decoder's attention alone; the built-in 2-layer model's warm start sits at the answer prior
   * for a shorter time on the direction task (video_direction_2f, patch 4: > 800 steps with one
   * frame per row, ~650 with two; patch 8: ~400 and ~200; bench/results/multimodal.md). It also
   * halves the video tokens, as in Qwen2-VL.
   */
  temporalPatch?: number;
}

/** The audio encoder: log-mel frames, `stride` of them stacked per token (a 1-D conv of kernel = stride). */
export interface AudioEncoderConfig {
  sampleRate: number;
  /** Clips are cut / zero-padded to this many samples. */
  samples: number;
  /** FFT window (Hann) and hop, in samples. */
  window: number;
  hop: number;
  nMels: number;
  stride: number;
  hidden: number;
}

export interface MediaModelConfig {
  /** Placeholder ids (the last ids of the vocabulary, see {@link MediaTokenizer}). */
  imageTokenId: number;
  videoTokenId: number;
  audioTokenId: number;
  vision?: VisionEncoderConfig;
  audio?: AudioEncoderConfig;
  /** ms-swift freeze_vit: the patch embedding and position tables get no updates. */
  freezeVit?: boolean;
  /** ms-swift freeze_aligner: the projectors get no updates. */
  freezeAligner?: boolean;
}

/** Tokens one image takes. */
export const imageTokens = (v: VisionEncoderConfig) => (v.imageSize / v.patchSize) ** 2;
/** Frames per video token (1 when the config predates the option). */
export const temporalPatch = (v: VisionEncoderConfig) => v.temporalPatch ?? 1;
/** Video tokens per patch position: the temporal table's size (frame groups of temporalPatch, the last one padded). */
export const videoGroups = (v: VisionEncoderConfig) => Math.ceil(v.frames / temporalPatch(v));
/** Tokens one video takes (every frame group's patches). */
export const videoTokens = (v: VisionEncoderConfig) => videoGroups(v) * imageTokens(v);
/** Width of one vision encoder input row: temporalPatch frames of p·p RGB pixels. */
export const visionRowWidth = (v: VisionEncoderConfig) => temporalPatch(v) * v.patchSize * v.patchSize * 3;
/** Mel frames of a clip and tokens one clip takes. */
export const melFrames = (a: AudioEncoderConfig) => Math.floor((a.samples - a.window) / a.hop) + 1;
export const audioTokens = (a: AudioEncoderConfig) => Math.floor(melFrames(a) / a.stride);

/**
 * A character tokenizer whose `<image>`, `<video>` and `<audio>` tags become n placeholder ids
 * each (the processor's expansion). Its vocabulary is the base one plus the three placeholder ids.
 */
export class MediaTokenizer implements Tokenizer {
  readonly base: CharTokenizer;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly imageTokenId: number;
  readonly videoTokenId: number;
  readonly audioTokenId: number;
  private readonly counts: { image: number; video: number; audio: number };
  /** The model media config this tokenizer was made for ({@link mediaTokenizer}). */
  media?: MediaModelConfig;

  constructor(counts: { image?: number; video?: number; audio?: number }, base = new CharTokenizer()) {
    this.base = base;
    this.bosId = base.bosId;
    this.eosId = base.eosId;
    this.padId = base.padId;
    this.imageTokenId = base.vocabSize;
    this.videoTokenId = base.vocabSize + 1;
    this.audioTokenId = base.vocabSize + 2;
    this.vocabSize = base.vocabSize + 3;
    this.counts = { image: counts.image ?? 0, video: counts.video ?? 0, audio: counts.audio ?? 0 };
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const part of text.split(/(<image>|<video>|<audio>)/)) {
      const kind = part === '<image>' ? 'image' : part === '<video>' ? 'video' : part === '<audio>' ? 'audio' : null;
      if (!kind) {
        out.push(...this.base.encode(part));
        continue;
      }
      const n = this.counts[kind];
      if (n === 0) throw new RangeError(`MediaTokenizer.encode: the prompt has an <${kind}> tag but the model has no ${kind} encoder`);
      const id = kind === 'image' ? this.imageTokenId : kind === 'video' ? this.videoTokenId : this.audioTokenId;
      for (let i = 0; i < n; i++) out.push(id);
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return this.base.decode(ids); // placeholder ids are >= the base vocabulary: dropped
  }
}

/** The tokenizer that goes with a model's media config. */
export function mediaTokenizer(m: MediaModelConfig): MediaTokenizer {
  const t = new MediaTokenizer({
    image: m.vision ? imageTokens(m.vision) : 0,
    video: m.vision && m.vision.frames > 0 ? videoTokens(m.vision) : 0,
    audio: m.audio ? audioTokens(m.audio) : 0,
  });
  if (t.imageTokenId !== m.imageTokenId || t.videoTokenId !== m.videoTokenId || t.audioTokenId !== m.audioTokenId)
    throw new RangeError(`mediaTokenizer: the media config's placeholder ids (${m.imageTokenId}, ${m.videoTokenId}, ${m.audioTokenId}) are not the character tokenizer's (${t.imageTokenId}, ${t.videoTokenId}, ${t.audioTokenId})`);
  t.media = m;
  return t;
}

/** Sizes of the built-in encoders for a task's media (the CLI's --patch-size, --encoder-hidden, --freeze-*). */
export interface EncoderOptions {
  patchSize?: number;
  /** Frames per video token (default 2 for video: each token compares two frames; images only: 1). */
  temporalPatch?: number;
  encoderHidden?: number;
  freezeVit?: boolean;
  freezeAligner?: boolean;
}

/** The media config of a built-in model for media of `spec` (placeholders after the character vocabulary). */
export function mediaModelConfig(spec: MediaSpec, o: EncoderOptions = {}): MediaModelConfig {
  const V = new CharTokenizer().vocabSize;
  const m: MediaModelConfig = { imageTokenId: V, videoTokenId: V + 1, audioTokenId: V + 2 };
  const hidden = o.encoderHidden ?? 32;
  const side = spec.image?.width ?? spec.video?.width;
  if (side !== undefined) {
    const h = spec.image?.height ?? spec.video?.height;
    if (h !== side || (spec.image && spec.video && (spec.image.width !== spec.video.width || spec.image.height !== spec.video.height)))
      throw new RangeError(`mediaModelConfig: the built-in vision encoder takes one square size; received ${JSON.stringify(spec)}`);
    const frames = spec.video?.numFrames ?? 0;
    m.vision = { imageSize: side, patchSize: o.patchSize ?? 4, hidden, frames };
    if (side % m.vision.patchSize !== 0) throw new RangeError(`mediaModelConfig: patchSize ${m.vision.patchSize} must divide the image size ${side}`);
    // video: two frames per token by default (see VisionEncoderConfig.temporalPatch); image-only models keep one
    const tp = o.temporalPatch ?? (frames >= 2 ? 2 : 1);
    if (!(Number.isInteger(tp) && tp >= 1 && (frames === 0 ? tp === 1 : tp <= frames)))
      throw new RangeError(`mediaModelConfig: temporalPatch (--temporal-patch) must be an integer in [1, ${Math.max(1, frames)}] (the clip's frames${frames === 0 ? '; 1 without video' : ''}) but received ${tp}`);
    if (tp > 1) m.vision.temporalPatch = tp;
  }
  if (spec.audio) {
    const rate = spec.audio.sampleRate;
    // 32 ms windows, 16 ms hop, 16 mels, 4 frames per token (a 1-D conv of kernel = stride = 4)
    const window = 2 * Math.round((rate * 0.032) / 2);
    m.audio = { sampleRate: rate, samples: Math.round(rate * spec.audio.maxSeconds), window, hop: window / 2, nMels: 16, stride: 4, hidden };
  }
  if (o.freezeVit) m.freezeVit = true;
  if (o.freezeAligner) m.freezeAligner = true;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Encoder inputs (cached per media object: decoded once, patchified once)

const featCache = new WeakMap<object, Float32Array>();

/**
 * Pixel normalisation of the vision processor: x ↦ (x − 0.5) / 0.5, from [0, 1] to [−1, 1] (the
 * mean/std normalisation real VLM processors apply). Why: with raw [0, 1] pixels every patch
 * shares a large common offset (a grey floor is 0.45 in all 48 inputs) and the encoder's rows
 * barely differ between an empty and an occupied patch; the built-in model then never learnt to
 * read images (clevr_count warm start flat at the answer prior, bench/results/multimodal.md),
 * while centred pixels are learnt in a few hundred warm-start steps.
 */
export const PIXEL_MEAN = 0.5, PIXEL_STD = 0.5;

/** Patch rows [g·g, p·p·3] of an image (row (gy·g + gx), pixels in (dy, dx, channel) order, normalised by PIXEL_MEAN / PIXEL_STD). */
export function patchify(img: ImageData, v: VisionEncoderConfig, what: string): Float32Array {
  const hit = featCache.get(img);
  if (hit) return hit;
  const S = v.imageSize, p = v.patchSize, g = S / p;
  if (!img || img.kind !== 'image' || img.width !== S || img.height !== S || !(img.data instanceof Float32Array) || img.data.length !== S * S * 3)
    throw new RangeError(`${what}: expected a ${S}x${S} RGB ImageData (the vision encoder's input) but received ${img && img.kind === 'image' ? `${img.width}x${img.height}` : typeof img}`);
  const P = p * p * 3;
  const out = new Float32Array(g * g * P);
  for (let gy = 0; gy < g; gy++)
    for (let gx = 0; gx < g; gx++) {
      const row = (gy * g + gx) * P;
      for (let dy = 0; dy < p; dy++)
        for (let dx = 0; dx < p; dx++)
          for (let c = 0; c < 3; c++) out[row + (dy * p + dx) * 3 + c] = (img.data[((gy * p + dy) * S + gx * p + dx) * 3 + c] - PIXEL_MEAN) / PIXEL_STD;
    }
  featCache.set(img, out);
  return out;
}

const melCache = new WeakMap<object, Float32Array>();

function hz2mel(f: number) { return 2595 * Math.log10(1 + f / 700); }
function mel2hz(m: number) { return 700 * (10 ** (m / 2595) - 1); }

/** Per-(window, rate, mels) tables of the log-mel transform: built once per process, not per clip. */
interface MelTables { hann: Float64Array; fb: Float64Array; nb: number; fft?: { rev: Uint32Array; cos: Float64Array; sin: Float64Array }; cos?: Float64Array; sin?: Float64Array }
const melTables = new Map<string, MelTables>();

function melTablesFor(a: AudioEncoderConfig): MelTables {
  const key = `${a.window}|${a.sampleRate}|${a.nMels}`;
  let t = melTables.get(key);
  if (t) return t;
  const W = a.window, nb = W / 2 + 1;
  const hann = Float64Array.from({ length: W }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / W));
  // mel filterbank [nMels, nb]
  const mMax = hz2mel(a.sampleRate / 2);
  const edges = Array.from({ length: a.nMels + 2 }, (_, i) => (mel2hz((mMax * i) / (a.nMels + 1)) * W) / a.sampleRate);
  const fb = new Float64Array(a.nMels * nb);
  for (let m = 0; m < a.nMels; m++)
    for (let k = 0; k < nb; k++) {
      const l = edges[m], c = edges[m + 1], r = edges[m + 2];
      fb[m * nb + k] = Math.max(0, Math.min((k - l) / (c - l), (r - k) / (r - c)));
    }
  t = { hann, fb, nb };
  if ((W & (W - 1)) === 0) {
    // power-of-two window (the default windows at 4, 8 and 16 kHz): radix-2 FFT, bit-reversal and twiddles tabulated
    const bits = Math.log2(W);
    const rev = new Uint32Array(W);
    for (let i = 0; i < W; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      rev[i] = r;
    }
    const cos = new Float64Array(W / 2), sin = new Float64Array(W / 2);
    for (let k = 0; k < W / 2; k++) { cos[k] = Math.cos((2 * Math.PI * k) / W); sin[k] = Math.sin((2 * Math.PI * k) / W); }
    t.fft = { rev, cos, sin };
  } else {
    // any other window: a direct DFT against tabulated cos / sin
    const cos = new Float64Array(nb * W), sin = new Float64Array(nb * W);
    for (let k = 0; k < nb; k++) for (let i = 0; i < W; i++) { cos[k * W + i] = Math.cos((2 * Math.PI * k * i) / W); sin[k * W + i] = Math.sin((2 * Math.PI * k * i) / W); }
    t.cos = cos;
    t.sin = sin;
  }
  melTables.set(key, t);
  return t;
}

/** Power spectrum |X_k|² (k = 0..W/2) of the real frame x (length W) into pw. re / im: scratch of length W. */
function powerSpectrum(t: MelTables, x: Float64Array, pw: Float64Array, re: Float64Array, im: Float64Array): void {
  const W = x.length, nb = t.nb;
  if (t.fft) {
    // iterative radix-2 decimation in time: X_k = Σ x_i e^{−2πi·ki/W}
    const { rev, cos, sin } = t.fft;
    for (let i = 0; i < W; i++) { re[i] = x[rev[i]]; im[i] = 0; }
    for (let len = 2; len <= W; len <<= 1) {
      const half = len >> 1, step = W / len;
      for (let s = 0; s < W; s += len)
        for (let j = 0; j < half; j++) {
          const wr = cos[j * step], wi = -sin[j * step];
          const a = s + j, b = a + half;
          const tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
          re[b] = re[a] - tr; im[b] = im[a] - ti;
          re[a] += tr; im[a] += ti;
        }
    }
    for (let k = 0; k < nb; k++) pw[k] = re[k] * re[k] + im[k] * im[k];
    return;
  }
  const cos = t.cos!, sin = t.sin!;
  for (let k = 0; k < nb; k++) {
    let r = 0, m = 0;
    for (let i = 0; i < W; i++) { r += x[i] * cos[k * W + i]; m -= x[i] * sin[k * W + i]; }
    pw[k] = r * r + m * m;
  }
}

/**
 * Log-mel features of a clip, then `stride` frames stacked per token: rows [tokens, stride·nMels].
 * Hann window, power spectrum (a radix-2 FFT for power-of-two windows, a direct DFT otherwise;
 * the window, filterbank and twiddle tables are built once per configuration), triangular mel
 * filters (HTK mel scale) from 0 to Nyquist, log(1e-6 + energy). Cached per clip.
 */
export function audioFeatures(clip: AudioData, a: AudioEncoderConfig, what: string): Float32Array {
  const hit = melCache.get(clip);
  if (hit) return hit;
  if (!clip || clip.kind !== 'audio' || clip.sampleRate !== a.sampleRate || !(clip.samples instanceof Float32Array))
    throw new RangeError(`${what}: expected AudioData at ${a.sampleRate} Hz (the audio encoder's rate) but received ${clip && clip.kind === 'audio' ? `${clip.sampleRate} Hz` : typeof clip}`);
  const W = a.window, F = melFrames(a), T = audioTokens(a);
  const t = melTablesFor(a);
  const { hann, fb, nb } = t;
  const mel = new Float32Array(F * a.nMels);
  const x = new Float64Array(W), pw = new Float64Array(nb), re = new Float64Array(W), im = new Float64Array(W);
  for (let f = 0; f < F; f++) {
    for (let i = 0; i < W; i++) {
      const s = f * a.hop + i;
      x[i] = (s < clip.samples.length ? clip.samples[s] : 0) * hann[i];
    }
    powerSpectrum(t, x, pw, re, im);
    for (let m = 0; m < a.nMels; m++) {
      let e = 0;
      for (let k = 0; k < nb; k++) e += fb[m * nb + k] * pw[k];
      mel[f * a.nMels + m] = Math.log(1e-6 + e) / 10; // /10: log-energies to O(1) for the patch layer
    }
  }
  const out = mel.slice(0, T * a.stride * a.nMels); // token t = frames t·stride .. t·stride+stride−1, stacked
  melCache.set(clip, out);
  return out;
}

/** Native media arguments for one call (see native/model/model_binding.cc read_media). */
export type MediaArgs = Record<string, number | Float32Array | Int32Array>;

/**
 * Finds the placeholder tokens of each row and builds the encoder inputs: row b's k-th run of
 * image placeholders is `media[b].images[k]`, and so on; (t, h, w) → spos = h·g + w, tpos = t
 * (for video the frame group: frames t·temporalPatch …; an image's row repeats it temporalPatch times).
 * `rowStart[b]` is where row b's tokens start in `tokens`, `rowLen[b]` how many there are.
 */
export function buildMediaArgs(
  op: string, m: MediaModelConfig, tokens: Int32Array, rowStart: number[], rowLen: number[],
  media: readonly (ExampleMedia | undefined)[],
): MediaArgs {
  const vis = { feat: [] as Float32Array[], spos: [] as number[], tpos: [] as number[], dest: [] as number[] };
  const aud = { feat: [] as Float32Array[], spos: [] as number[], tpos: [] as number[], dest: [] as number[] };
  for (let b = 0; b < rowStart.length; b++) {
    const md = media[b];
    const used = { image: 0, video: 0, audio: 0 };
    const s0 = rowStart[b];
    // placeholders spliced per kind: the row's items × tokens per item. Placeholders past that are
    // ordinary tokens (their own embedding): a policy may sample a placeholder id in a completion.
    const want = {
      image: (md?.images?.length ?? 0) * (m.vision ? imageTokens(m.vision) : 0),
      video: (md?.videos?.length ?? 0) * (m.vision && m.vision.frames > 0 ? videoTokens(m.vision) : 0),
      audio: (md?.audios?.length ?? 0) * (m.audio ? audioTokens(m.audio) : 0),
    };
    for (let i = 0; i < rowLen[b]; i++) {
      const id = tokens[s0 + i];
      if (id !== m.imageTokenId && id !== m.videoTokenId && id !== m.audioTokenId) continue;
      const kind = id === m.imageTokenId ? 'image' : id === m.videoTokenId ? 'video' : 'audio';
      if (used[kind] >= want[kind]) continue;
      if (id === m.audioTokenId) {
        const a = m.audio;
        if (!a) throw new RangeError(`${op}: row ${b} has audio placeholder tokens but the model has no audio encoder`);
        const per = audioTokens(a), k = Math.floor(used.audio / per), j = used.audio % per;
        const clip = md?.audios?.[k];
        if (!clip) throw new RangeError(`${op}: media[${b}].audios[${k}]: row ${b} has audio placeholder tokens for it but no such clip`);
        const f = audioFeatures(clip, a, `${op}: media[${b}].audios[${k}]`);
        const P = a.stride * a.nMels;
        aud.feat.push(f.subarray(j * P, (j + 1) * P));
        aud.spos.push(j);
        aud.tpos.push(-1);
        aud.dest.push(s0 + i);
        used.audio++;
        continue;
      }
      const v = m.vision;
      if (!v) throw new RangeError(`${op}: row ${b} has image/video placeholder tokens but the model has no vision encoder`);
      const per = imageTokens(v), P = v.patchSize * v.patchSize * 3, tp = temporalPatch(v);
      if (id === m.imageTokenId) {
        const k = Math.floor(used.image / per), j = used.image % per;
        const img = md?.images?.[k];
        if (!img) throw new RangeError(`${op}: media[${b}].images[${k}]: row ${b} has image placeholder tokens for it but no such image`);
        const f = patchify(img, v, `${op}: media[${b}].images[${k}]`);
        for (let s = 0; s < tp; s++) vis.feat.push(f.subarray(j * P, (j + 1) * P)); // every temporal slot: the image itself
        vis.spos.push(j);
        vis.tpos.push(-1);
        used.image++;
      } else {
        const pv = videoTokens(v), k = Math.floor(used.video / pv), j = used.video % pv;
        const vid: VideoData | undefined = md?.videos?.[k];
        if (!vid) throw new RangeError(`${op}: media[${b}].videos[${k}]: row ${b} has video placeholder tokens for it but no such video`);
        if (!Array.isArray(vid.frames) || vid.frames.length !== v.frames)
          throw new RangeError(`${op}: media[${b}].videos[${k}].frames: expected ${v.frames} frames (the vision encoder's clip length) but received ${Array.isArray(vid.frames) ? vid.frames.length : typeof vid.frames}`);
        const t = Math.floor(j / per), jj = j % per;
        // token (t, jj): patch jj of frames t·tp .. t·tp + tp − 1 (past the clip: its last frame)
        for (let s = 0; s < tp; s++) {
          const fi = Math.min(t * tp + s, v.frames - 1);
          const f = patchify(vid.frames[fi], v, `${op}: media[${b}].videos[${k}].frames[${fi}]`);
          vis.feat.push(f.subarray(jj * P, (jj + 1) * P));
        }
        vis.spos.push(jj);
        vis.tpos.push(t);
        used.video++;
      }
      vis.dest.push(s0 + i);
    }
    // every media item must have been consumed whole: fewer placeholders means the prompt and its media disagree
    for (const kind of ['image', 'video', 'audio'] as const)
      if (used[kind] !== want[kind])
        throw new RangeError(`${op}: media[${b}]: expected ${want[kind]} ${kind} placeholder tokens for its ${kind}s but the row has ${used[kind]}`);
  }
  const out: MediaArgs = {};
  const cat = (rows: Float32Array[]) => {
    const n = rows.reduce((s, r) => s + r.length, 0);
    const o = new Float32Array(n);
    let at = 0;
    for (const r of rows) { o.set(r, at); at += r.length; }
    return o;
  };
  for (const [pre, x] of [['vision', vis], ['audio', aud]] as const) {
    if (!x.dest.length) continue;
    out[`${pre}M`] = x.dest.length;
    out[`${pre}Feat`] = cat(x.feat);
    out[`${pre}Spos`] = Int32Array.from(x.spos);
    out[`${pre}Tpos`] = Int32Array.from(x.tpos);
    out[`${pre}Dest`] = Int32Array.from(x.dest);
  }
  return out;
}

/** Native constructor fields of a media config. */
export function nativeEncoderConfig(m: MediaModelConfig | undefined): Record<string, number | boolean> {
  if (!m) return {};
  const o: Record<string, number | boolean> = { freezeEncoder: !!m.freezeVit, freezeProjector: !!m.freezeAligner };
  if (m.vision) {
    const v = m.vision;
    Object.assign(o, { visionP: visionRowWidth(v), visionHidden: v.hidden, visionPositions: imageTokens(v), visionFrames: v.frames > 0 ? videoGroups(v) : 0 });
  }
  if (m.audio) {
    const a = m.audio;
    Object.assign(o, { audioP: a.stride * a.nMels, audioHidden: a.hidden, audioPositions: audioTokens(a), audioFrames: 0 });
  }
  return o;
}

/**
 * The media sizes a built-in model's encoders take (the inverse of mediaModelConfig): what a
 * dataset's media is decoded to when training or evaluating a checkpoint.
 */
export function mediaSpecOf(m: MediaModelConfig): MediaSpec {
  const s: MediaSpec = {};
  if (m.vision) {
    s.image = { width: m.vision.imageSize, height: m.vision.imageSize };
    if (m.vision.frames > 0) s.video = { width: m.vision.imageSize, height: m.vision.imageSize, numFrames: m.vision.frames };
  }
  if (m.audio) s.audio = { sampleRate: m.audio.sampleRate, maxSeconds: m.audio.samples / m.audio.sampleRate };
  return s;
}
