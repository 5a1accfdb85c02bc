/**
 * Media in dataset rows, ms-swift layout: the prompt's `messages` carry `<image>`, `<audio>` and
 * `<video>` tags, and the row's `images`, `audios`, `videos` lists hold one entry per tag, in the
 * order the tags appear. An entry is
 *   - a path, relative to the dataset file's folder (or absolute, or a file:// URL),
 *   - a `data:` URL (`data:image/png;base64,...`),
 *   - an object `{ bytes, path }` (the Hugging Face `Image()` / `Audio()` column form): `bytes` as
 *     a base64 string or an array of byte values (or Node's `{ type: 'Buffer', data }`), used
 *     when present; `path` otherwise.
 * One dataset may mix rows of every modality with text-only rows.
 *
 * Parsing (sync, with the JSONL) checks the structure and the tag counts; `loadExampleMedia`
 * (async) reads and decodes the files once, sized to the model's MediaSpec, into Example.media.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as nodePath from 'path';
import { fileURLToPath } from 'url';
import type { Example, Task } from '../tasks/types';
import { decodeAudio, decodeImage, decodeVideo, DecodeLimits, MediaDecodeError } from './decode';
import type { AudioData, ExampleMedia, ImageData, MediaData, MediaSpec, VideoData } from './types';

export type MediaKind = 'image' | 'audio' | 'video';
/** The row column holding each kind, and the tag that marks its place in the text. */
export const MEDIA_FIELDS: Record<MediaKind, 'images' | 'audios' | 'videos'> = { image: 'images', audio: 'audios', video: 'videos' };
export const MEDIA_TAGS: Record<MediaKind, string> = { image: '<image>', audio: '<audio>', video: '<video>' };
const KINDS: MediaKind[] = ['image', 'audio', 'video'];

/** One media entry of a row, resolved: where its bytes are. */
export interface MediaRef {
  kind: MediaKind;
  /** 'images' | 'audios' | 'videos'. */
  field: string;
  /** Position in that list (= which tag of the kind, in text order). */
  index: number;
  /** Absolute path of the file, or the bytes themselves (data: URL or `bytes`). */
  path?: string;
  bytes?: Uint8Array;
}

/** Counts each kind's tags across the texts (every turn of `messages`, or the `prompt` / `query`). */
export function countMediaTags(texts: string[]): Record<MediaKind, number> {
  const c = { image: 0, audio: 0, video: 0 };
  for (const t of texts) for (const k of KINDS) c[k] += t.split(MEDIA_TAGS[k]).length - 1;
  return c;
}

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

function decodeBase64(s: string, what: string): Uint8Array {
  const t = s.replace(/\s+/g, '');
  if (!t.length) throw new MediaDecodeError(`${what} is empty`);
  if (!BASE64.test(t) || t.length % 4 === 1) throw new MediaDecodeError(`${what} is not valid base64`);
  return Buffer.from(t, t.includes('-') || t.includes('_') ? 'base64url' : 'base64');
}

/** Bytes of a `data:` URL; throws naming what is wrong with it. */
export function parseDataUrl(url: string): Uint8Array {
  const comma = url.indexOf(',');
  if (!url.startsWith('data:') || comma < 0) throw new MediaDecodeError(`malformed data: URL (expected 'data:<type>;base64,<data>', got '${url.slice(0, 40)}${url.length > 40 ? '…' : ''}')`);
  const head = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  if (/;base64$/i.test(head)) return decodeBase64(payload, 'the data: URL payload');
  // Percent-encoded payload: %XX is one byte, any other character its UTF-8 bytes (RFC 2397).
  const out: number[] = [];
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === '%') {
      const h = payload.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(h)) throw new MediaDecodeError(`the data: URL payload has a bad percent escape at character ${i}`);
      out.push(parseInt(h, 16));
      i += 2;
    } else for (const b of Buffer.from(payload[i], 'utf8')) out.push(b);
  }
  if (!out.length) throw new MediaDecodeError('the data: URL payload is empty');
  return Uint8Array.from(out);
}

function resolvePath(p: string, baseDir: string): string {
  if (!p.length) throw new MediaDecodeError('the path is empty');
  if (/^https?:\/\//i.test(p)) throw new MediaDecodeError(`remote URLs are not fetched ('${p}'); download the file and give its path`);
  if (/^file:\/\//i.test(p)) return fileURLToPath(p);
  return nodePath.resolve(baseDir, p);
}

function entryRef(v: unknown, kind: MediaKind, index: number, baseDir: string): MediaRef {
  const field = MEDIA_FIELDS[kind];
  const ref: MediaRef = { kind, field, index };
  if (typeof v === 'string') {
    if (v.startsWith('data:')) ref.bytes = parseDataUrl(v);
    else ref.path = resolvePath(v, baseDir);
    return ref;
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as { bytes?: unknown; path?: unknown };
    let b = o.bytes;
    if (b && typeof b === 'object' && !Array.isArray(b) && (b as { type?: unknown }).type === 'Buffer') b = (b as { data?: unknown }).data;
    if (typeof b === 'string') {
      ref.bytes = b.startsWith('data:') ? parseDataUrl(b) : decodeBase64(b, "'bytes'");
      return ref;
    }
    if (Array.isArray(b)) {
      if (!b.length) throw new MediaDecodeError("'bytes' is an empty array");
      const bad = b.findIndex((x) => !(Number.isInteger(x) && x >= 0 && x <= 255));
      if (bad >= 0) throw new MediaDecodeError(`'bytes'[${bad}] must be an integer 0..255, got ${JSON.stringify(b[bad])}`);
      ref.bytes = Uint8Array.from(b as number[]);
      return ref;
    }
    if (b !== undefined && b !== null) throw new MediaDecodeError(`'bytes' must be a base64 string or an array of byte values, got ${typeof b}`);
    if (typeof o.path === 'string') {
      ref.path = resolvePath(o.path, baseDir);
      return ref;
    }
    throw new MediaDecodeError("expected { bytes } or { path } with a string path, got neither");
  }
  throw new MediaDecodeError(`expected a path, a data: URL or { bytes | path }, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
}

/** A problem with one row's media: which file, line, field and index. */
export interface MediaRowError {
  /** The dataset file (absolute), or the example id when the row has no file. */
  file: string;
  line?: number;
  field?: string;
  index?: number;
  message: string;
}

export function formatMediaRowError(e: MediaRowError): string {
  const where = e.field === undefined ? '' : ` ${e.field}${e.index === undefined ? '' : `[${e.index}]`}:`;
  return `${e.file}${e.line === undefined ? '' : `:${e.line}`}:${where} ${e.message}`;
}

export class MediaLoadError extends Error {
  constructor(readonly errors: MediaRowError[]) {
    // One row may have several bad entries: the count is of rows (file and line), the list of entries.
    const rows = new Set(errors.map((e) => `${e.file}:${e.line ?? ''}`)).size;
    super(
      `${rows} dataset row${rows === 1 ? '' : 's'} with unusable media:\n` +
        errors.slice(0, 20).map((e) => '  ' + formatMediaRowError(e)).join('\n') +
        (errors.length > 20 ? `\n  ... and ${errors.length - 20} more` : ''),
    );
    this.name = 'MediaLoadError';
  }
}

/**
 * The media entries of one row, checked: each list is an array, each entry well-formed, and each
 * kind's tag count in `texts` equals its list's length. Throws a MediaDecodeError carrying
 * `field` / `index` when something is wrong. Rows with neither lists nor tags give [].
 */
export function parseMediaRefs(row: Record<string, unknown>, texts: string[] | null, baseDir: string): MediaRef[] {
  // null texts: the counts were checked when the row was parsed (loadExampleMedia re-reads the lists only).
  const tags = texts ? countMediaTags(texts) : null;
  const refs: MediaRef[] = [];
  for (const kind of KINDS) {
    const field = MEDIA_FIELDS[kind];
    const list = row[field];
    if (list === undefined || list === null) {
      if (tags?.[kind]) throw Object.assign(new MediaDecodeError(`the text has ${tags[kind]} ${MEDIA_TAGS[kind]} tag${tags[kind] > 1 ? 's' : ''} but the row has no '${field}'`), { field });
      continue;
    }
    if (!Array.isArray(list)) throw Object.assign(new MediaDecodeError(`expected an array, got ${typeof list}`), { field });
    if (tags && list.length !== tags[kind])
      throw Object.assign(new MediaDecodeError(`has ${list.length} entr${list.length === 1 ? 'y' : 'ies'} but the text has ${tags[kind]} ${MEDIA_TAGS[kind]} tag${tags[kind] === 1 ? '' : 's'}; they must match one to one`), { field });
    list.forEach((v, i) => {
      try {
        refs.push(entryRef(v, kind, i, baseDir));
      } catch (e) {
        throw Object.assign(e as Error, { field, index: i });
      }
    });
  }
  return refs;
}

/** The texts whose tags count: every turn of the row's `messages` (assistant included, as ms-swift counts), else its prompt/query. */
export function rowTexts(row: Record<string, unknown>): string[] {
  const m = row.messages ?? (Array.isArray(row.prompt) ? row.prompt : undefined);
  if (Array.isArray(m)) return m.map((t) => (t && typeof t.content === 'string' ? t.content : ''));
  for (const k of ['prompt', 'query']) if (typeof row[k] === 'string') return [row[k] as string];
  return [];
}

/** Whether a parsed Example refers to media (its row had `images` / `audios` / `videos` columns). */
export function hasMediaRefs(ex: Example): boolean {
  return !!ex.meta && KINDS.some((k) => ex.meta![MEDIA_FIELDS[k]] !== undefined);
}

function exampleRefs(ex: Example, baseDir: string | undefined): MediaRef[] {
  const dir = baseDir ?? (ex.source ? nodePath.dirname(ex.source.file) : process.cwd());
  return parseMediaRefs(ex.meta ?? {}, null, dir);
}

export interface LoadMediaOptions extends DecodeLimits {
  /** Folder that relative paths are resolved against when an example has no `source` file. Default: the dataset file's folder. */
  baseDir?: string;
  /**
   * Most bytes of decoded media held by the examples (float32 tensors). With a spec the total
   * is known before decoding and checked first. Default 4 GiB.
   */
  maxBytes?: number;
  /** Decodes in flight at once (sharp and ffmpeg work off the event loop). Default 4. */
  concurrency?: number;
}

function mediaBytes(m: MediaData): number {
  if (m.kind === 'image') return m.data.byteLength;
  if (m.kind === 'audio') return m.samples.byteLength;
  return m.frames.reduce((s, f) => s + f.data.byteLength, 0);
}

function specBytes(kind: MediaKind, spec: MediaSpec): number | undefined {
  if (kind === 'image' && spec.image) return spec.image.width * spec.image.height * 3 * 4;
  if (kind === 'audio' && spec.audio) return Math.ceil(spec.audio.sampleRate * spec.audio.maxSeconds) * 4;
  if (kind === 'video' && spec.video) return spec.video.width * spec.video.height * 3 * 4 * spec.video.numFrames;
  return undefined;
}

/** Which spec each example's media was decoded for, so a second call with the same spec is free. */
const decodedFor = new WeakMap<Example, string>();

/**
 * Reads and decodes the media of every example that has some, sized to `spec` (images resized to
 * spec.image, audio resampled to spec.audio.sampleRate, video frames sampled to spec.video.numFrames
 * at spec.video's size; a kind without a spec keeps the file's own size / rate / frames), and
 * stores it in `example.media`.
 *
 * Caching: decoding happens once per row: `example.media` is the cache, and calling again with
 * the same spec returns at once (the trainer reads `example.media` every step, never the files).
 * Within one call a file (or identical bytes) used by several rows is decoded once and the rows
 * share the tensors. The memory held is the decoded tensors of the rows, bounded by `maxBytes`
 * (checked before decoding when the spec fixes every size).
 *
 * Every failing row is collected; the call then throws one MediaLoadError naming each file, line,
 * field and index, and leaves no example half-filled (media is assigned only when all succeed).
 */
export async function loadExampleMedia(examples: Example[], spec: MediaSpec = {}, opts: LoadMediaOptions = {}): Promise<void> {
  const specKey = JSON.stringify(spec) + JSON.stringify({ p: opts.maxInputPixels, f: opts.maxVideoFrames, a: opts.maxAudioSeconds });
  const maxBytes = opts.maxBytes ?? 4 * 2 ** 30;
  const errors: MediaRowError[] = [];
  const jobs: { ex: Example; refs: MediaRef[] }[] = [];
  const seen = new Set<Example>();
  for (const ex of examples) {
    if (seen.has(ex) || !hasMediaRefs(ex) || decodedFor.get(ex) === specKey) continue;
    seen.add(ex);
    const where = { file: ex.source?.file ?? `example ${ex.id}`, line: ex.source?.line };
    try {
      jobs.push({ ex, refs: exampleRefs(ex, opts.baseDir) });
    } catch (e) {
      const x = e as MediaDecodeError & { field?: string; index?: number };
      errors.push({ ...where, field: x.field, index: x.index, message: x.message });
    }
  }
  let known = 0;
  let allKnown = true;
  for (const j of jobs)
    for (const r of j.refs) {
      const b = specBytes(r.kind, spec);
      if (b === undefined) allKnown = false;
      else known += b;
    }
  if (known > maxBytes)
    throw new RangeError(`decoded media would take ${(known / 2 ** 20).toFixed(0)} MiB (${jobs.length} rows at the MediaSpec's sizes), more than maxBytes ${(maxBytes / 2 ** 20).toFixed(0)} MiB; raise maxBytes or shrink the spec`);

  // Rows sharing a file (same path, size and mtime) or identical bytes share one decode.
  const shared = new Map<string, Promise<MediaData>>();
  let held = 0;
  const decodeRef = (r: MediaRef): Promise<MediaData> => {
    let key: string;
    if (r.bytes) key = createHash('sha1').update(r.bytes).digest('hex');
    else {
      let st: fs.Stats;
      try {
        st = fs.statSync(r.path!);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        return Promise.reject(new MediaDecodeError(code === 'ENOENT' ? `file not found: ${r.path}` : `cannot read ${r.path} (${(e as Error).message})`));
      }
      if (!st.isFile()) return Promise.reject(new MediaDecodeError(`not a file: ${r.path}`));
      key = `${r.path}|${st.size}|${st.mtimeMs}`;
    }
    key = `${r.kind}|${key}`;
    let p = shared.get(key);
    if (!p) {
      p = (async () => {
        let bytes = r.bytes;
        if (!bytes) {
          try {
            bytes = await fs.promises.readFile(r.path!);
          } catch (e) {
            throw new MediaDecodeError(`cannot read ${r.path} (${(e as Error).message})`);
          }
        }
        if (!bytes.length) throw new MediaDecodeError(r.path ? `the file is empty: ${r.path}` : 'no bytes');
        const m: MediaData =
          r.kind === 'image' ? await decodeImage(bytes, spec.image, opts) : r.kind === 'audio' ? await decodeAudio(bytes, spec.audio, opts, r.path) : await decodeVideo(bytes, spec.video, opts, r.path);
        held += mediaBytes(m);
        if (!allKnown && held > maxBytes) throw new MediaDecodeError(`decoded media passed maxBytes ${(maxBytes / 2 ** 20).toFixed(0)} MiB at this entry; raise maxBytes or give a MediaSpec that bounds the sizes`);
        return m;
      })();
      shared.set(key, p);
    }
    return p;
  };

  const results = new Map<Example, ExampleMedia>();
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const { ex, refs } = jobs[next++];
      const media: ExampleMedia = {};
      let ok = true;
      for (const r of refs) {
        try {
          const m = await decodeRef(r);
          if (r.kind === 'image') (media.images ??= []).push(m as ImageData);
          else if (r.kind === 'audio') (media.audios ??= []).push(m as AudioData);
          else (media.videos ??= []).push(m as VideoData);
        } catch (e) {
          ok = false;
          errors.push({ file: ex.source?.file ?? `example ${ex.id}`, line: ex.source?.line, field: r.field, index: r.index, message: (e as Error).message });
        }
      }
      if (ok) results.set(ex, media);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  if (errors.length) {
    // The same row parsed twice (--test-file naming the training file) is reported once.
    const unique = [...new Map(errors.map((e) => [formatMediaRowError(e), e])).values()];
    unique.sort((a, b) => (a.file === b.file ? (a.line ?? 0) - (b.line ?? 0) : a.file < b.file ? -1 : 1));
    throw new MediaLoadError(unique);
  }
  for (const [ex, media] of results) {
    ex.media = media;
    decodedFor.set(ex, specKey);
  }
}

/** Decodes the media of a task's train and held-out examples (see loadExampleMedia). */
export async function loadTaskMedia(task: Task, spec: MediaSpec = {}, opts: LoadMediaOptions = {}): Promise<void> {
  await loadExampleMedia([...task.train, ...task.test], spec, opts);
}

/** Whether any example of the task refers to media files (a JSONL dataset with media columns). */
export function taskHasMediaRefs(task: Task): boolean {
  return task.train.some(hasMediaRefs) || task.test.some(hasMediaRefs);
}

/** Rows of one kind inferMediaSpec tries before giving up (each failing one is reported). */
const SPEC_TRIES = 16;

/**
 * The MediaSpec a built-in model takes for a dataset's media, read off the data: the first row
 * carrying each kind that decodes fixes that encoder's input (its image size, its video's frame
 * count and size, its clip's rate and length); every other row is then resized / resampled /
 * frame-sampled to it by loadExampleMedia, which reports the rows that failed here with the rest.
 * When the first SPEC_TRIES rows of a kind all fail, the call throws a MediaLoadError naming each
 * one (row and field). The built-in vision encoder takes one square size for images and video
 * frames: the image's size wins when both kinds are present.
 */
export async function inferMediaSpec(task: Task, opts: LoadMediaOptions = {}): Promise<MediaSpec> {
  const candidates: Record<MediaKind, { ex: Example; ref: MediaRef }[]> = { image: [], audio: [], video: [] };
  for (const ex of [...task.train, ...task.test]) {
    if (!hasMediaRefs(ex)) continue;
    let refs: MediaRef[];
    try {
      refs = exampleRefs(ex, opts.baseDir);
    } catch (e) {
      const x = e as MediaDecodeError & { field?: string; index?: number };
      throw new MediaLoadError([{ file: ex.source?.file ?? `example ${ex.id}`, line: ex.source?.line, field: x.field, index: x.index, message: x.message }]);
    }
    for (const r of refs) if (candidates[r.kind].length < SPEC_TRIES) candidates[r.kind].push({ ex, ref: r });
    if (KINDS.every((k) => candidates[k].length >= SPEC_TRIES)) break;
  }
  const failed: MediaRowError[] = [];
  const decodeFirst = async (kind: MediaKind): Promise<MediaData | undefined> => {
    const tried: MediaRowError[] = [];
    for (const { ex, ref } of candidates[kind]) {
      try {
        const bytes = ref.bytes ?? (await fs.promises.readFile(ref.path!).catch((e: NodeJS.ErrnoException) => {
          throw new MediaDecodeError(e.code === 'ENOENT' ? `file not found: ${ref.path}` : `cannot read ${ref.path} (${e.message})`);
        }));
        if (!bytes.length) throw new MediaDecodeError(ref.path ? `the file is empty: ${ref.path}` : 'no bytes');
        return kind === 'image' ? await decodeImage(bytes, undefined, opts) : kind === 'audio' ? await decodeAudio(bytes, undefined, opts, ref.path) : await decodeVideo(bytes, undefined, opts, ref.path);
      } catch (e) {
        tried.push({ file: ex.source?.file ?? `example ${ex.id}`, line: ex.source?.line, field: ref.field, index: ref.index, message: (e as Error).message });
      }
    }
    // none of the tried rows decodes: there is no size to read; report them all
    failed.push(...tried);
    return undefined;
  };
  const spec: MediaSpec = {};
  const img = (await decodeFirst('image')) as ImageData | undefined;
  const vid = (await decodeFirst('video')) as VideoData | undefined;
  const aud = (await decodeFirst('audio')) as AudioData | undefined;
  if (failed.length) throw new MediaLoadError([...new Map(failed.map((e) => [formatMediaRowError(e), e])).values()]);
  if (img) spec.image = { width: img.width, height: img.height };
  if (vid) {
    const f0 = vid.frames[0];
    spec.video = { width: img ? img.width : f0.width, height: img ? img.height : f0.height, numFrames: vid.frames.length };
  }
  if (aud) spec.audio = { sampleRate: aud.sampleRate, maxSeconds: aud.samples.length / aud.sampleRate };
  return spec;
}
