/**
 * Built-in multimodal tasks with verifiable answers, generated from a seed (media in memory, in
 * Example.media, as lib/media/types.ts defines it):
 *
 * - `clevr_count`: a CLEVR-like 16×16 scene on a 4×4 grid of cells, 1–6 objects (square, plus,
 *   ring) in red / green / blue / yellow; the prompt asks for the count of all objects
 *   (`<image>all=`) or of one colour (`<image>red=`); the answer is the number.
 *   `clevr_count_all` is the easier variant a tiny model learns in minutes: 1–5 objects, always
 *   the count of all of them (one question, like beep_count's five slots).
 * - `video_direction`: a 3-frame 16×16 clip in which one object moves one cell per frame left,
 *   right, up or down among distractors that stay put; the answer is the direction word.
 *   `video_direction_shuffled` is the control: the same held-out clips with their frames in a
 *   seeded random non-identity order (the answer stays the true direction), so a model that reads
 *   frame order falls towards chance there. `video_direction_2f` (+ `_shuffled`): two frames, the
 *   mover alone; its control swaps the two frames.
 * - `beep_count`: a 1 s, 4 kHz clip with 1–5 tone beeps (400–1200 Hz, 100 ms) in five slots,
 *   light noise; the answer is the number of beeps.
 *
 * Train and held-out are drawn from separate seeded streams and the held-out split never repeats
 * a training scene (checked by each example's layout key).
 */
import type { AudioData, ImageData, MediaSpec, VideoData } from '../media/types';
import { mixSeed, mulberry32, randInt, shuffle } from './rng';
import { Example, Task } from './types';

export interface MultimodalTaskOptions {
  seed?: number;
  trainSize?: number;
  testSize?: number;
}

const COLORS: Record<string, [number, number, number]> = {
  red: [0.9, 0.15, 0.1], green: [0.15, 0.8, 0.2], blue: [0.15, 0.3, 0.95], yellow: [0.95, 0.9, 0.15],
};
const COLOR_NAMES = Object.keys(COLORS);
const SHAPES = ['square', 'plus', 'ring'] as const;
const SIZE = 16, CELL = 4;

/** A 4×4-pixel shape mask inside a cell. */
function shapeMask(shape: (typeof SHAPES)[number], dy: number, dx: number): boolean {
  if (dy > 2 || dx > 2) return false; // 3×3 inside the 4×4 cell: objects never touch
  if (shape === 'square') return true;
  if (shape === 'plus') return dy === 1 || dx === 1;
  return !(dy === 1 && dx === 1); // ring
}

interface Obj { cell: number; color: string; shape: (typeof SHAPES)[number] }

function render(objs: Obj[], r: () => number): ImageData {
  const data = new Float32Array(SIZE * SIZE * 3);
  for (let i = 0; i < data.length; i++) data[i] = 0.45 + 0.05 * (r() - 0.5); // grey floor, light noise
  for (const o of objs) {
    const cy = Math.floor(o.cell / 4) * CELL, cx = (o.cell % 4) * CELL;
    const c = COLORS[o.color];
    for (let dy = 0; dy < CELL; dy++)
      for (let dx = 0; dx < CELL; dx++) {
        if (!shapeMask(o.shape, dy, dx)) continue;
        const at = ((cy + dy) * SIZE + cx + dx) * 3;
        const shade = 0.9 + 0.1 * r();
        for (let k = 0; k < 3; k++) data[at + k] = c[k] * shade;
      }
  }
  return { kind: 'image', width: SIZE, height: SIZE, data };
}

function makeTask(name: string, media: MediaSpec, formatPattern: RegExp, gen: (r: () => number, i: number) => { key: string; ex: Example }, o: MultimodalTaskOptions): Task {
  const seed = o.seed ?? 0;
  const trainSize = o.trainSize ?? 5000, testSize = o.testSize ?? 200;
  const rTest = mulberry32(mixSeed(seed, 0x7e57, name.length));
  const rTrain = mulberry32(mixSeed(seed, 0x7a1, name.length));
  const test: Example[] = [];
  const keys = new Set<string>();
  for (let i = 0; test.length < testSize; i++) {
    const g = gen(rTest, i);
    if (keys.has(g.key)) continue;
    keys.add(g.key);
    test.push(g.ex);
  }
  const train: Example[] = [];
  for (let i = 0; train.length < trainSize; i++) {
    const g = gen(rTrain, i);
    if (keys.has(g.key)) continue; // never a held-out scene
    train.push(g.ex);
  }
  return {
    name, train, test, media, formatPattern,
    extractAnswer(c: string) {
      const m = c.trim().match(formatPattern);
      return m ? c.trim() : null;
    },
    isCorrect(c: string, ex: Example) {
      return c.trim() === ex.answer;
    },
  };
}

/**
 * Count objects (all, or of one colour) in a generated scene. `allOnly`: the `clevr_count_all`
 * variant (1–5 objects, always the count of all).
 */
export function clevrCountTask(o: MultimodalTaskOptions & { allOnly?: boolean } = {}): Task {
  return makeTask(o.allOnly ? 'clevr_count_all' : 'clevr_count', { image: { width: SIZE, height: SIZE } }, /^\d$/, (r, i) => {
    const n = randInt(r, 1, o.allOnly ? 5 : 6);
    const cells = shuffle(Array.from({ length: 16 }, (_, k) => k), r).slice(0, n);
    const objs: Obj[] = cells.map((cell) => ({ cell, color: COLOR_NAMES[randInt(r, 0, 3)], shape: SHAPES[randInt(r, 0, 2)] }));
    const ask = o.allOnly || r() < 0.5 ? 'all' : COLOR_NAMES[randInt(r, 0, 3)];
    const count = ask === 'all' ? n : objs.filter((x) => x.color === ask).length;
    const key = `${ask}|${objs.map((x) => `${x.cell}${x.color[0]}${x.shape[0]}`).sort().join(',')}`;
    const ans = String(count);
    return { key, ex: { id: `clevr-${i}`, prompt: `<image>${ask}=`, answer: ans, solution: ans, media: { images: [render(objs, r)] }, meta: { ask, objects: objs } } };
  }, o);
}

const DIRS: Record<string, [number, number]> = { left: [0, -1], right: [0, 1], up: [-1, 0], down: [1, 0] };
const DIR_NAMES = Object.keys(DIRS);
export const VIDEO_FRAMES = 3;

/** `frames`-frame clips; `distractors`: up to that many still objects (0 for the two-frame variant). */
function directionExample(frames: number, distractors: number): (r: () => number, i: number) => { key: string; ex: Example } {
  return (r, i) => {
    const dir = DIR_NAMES[randInt(r, 0, 3)];
    const [vy, vx] = DIRS[dir];
    // start so that every cell of the path stays on the 4×4 grid
    const span = frames - 1;
    const ys = vy === 0 ? [0, 3] : vy > 0 ? [0, 3 - span] : [span, 3];
    const xs = vx === 0 ? [0, 3] : vx > 0 ? [0, 3 - span] : [span, 3];
    const y0 = randInt(r, ys[0], ys[1]), x0 = randInt(r, xs[0], xs[1]);
    const path = Array.from({ length: frames }, (_, t) => (y0 + vy * t) * 4 + x0 + vx * t);
    const mover: Omit<Obj, 'cell'> = { color: COLOR_NAMES[randInt(r, 0, 3)], shape: SHAPES[randInt(r, 0, 2)] };
    const free = shuffle(Array.from({ length: 16 }, (_, k) => k).filter((k) => !path.includes(k)), r);
    const still: Obj[] = free.slice(0, randInt(r, 0, distractors)).map((cell) => ({ cell, color: COLOR_NAMES[randInt(r, 0, 3)], shape: SHAPES[randInt(r, 0, 2)] }));
    const clip = path.map((cell) => render([...still, { ...mover, cell }], r));
    const video: VideoData = { kind: 'video', fps: 4, frames: clip };
    const key = `${dir}|${path.join('.')}|${mover.color}${mover.shape}|${still.map((s) => s.cell).join('.')}`;
    return { key, ex: { id: `dir-${i}`, prompt: '<video>dir=', answer: dir, solution: dir, media: { videos: [video] }, meta: { path } } };
  };
}

/**
 * Direction of the moving object across frames (left/right/up/down). `twoFrames`: the
 * `video_direction_2f` variant (two frames, the mover alone), whose control can only swap the
 * frames: a model that reads frame order then answers the opposite direction.
 */
export function videoDirectionTask(o: MultimodalTaskOptions & { shuffleFrames?: boolean; twoFrames?: boolean } = {}): Task {
  const frames = o.twoFrames ? 2 : VIDEO_FRAMES;
  const spec: MediaSpec = { video: { width: SIZE, height: SIZE, numFrames: frames } };
  const name = o.twoFrames ? 'video_direction_2f' : 'video_direction';
  const t = makeTask(name, spec, /^(left|right|up|down)$/, directionExample(frames, o.twoFrames ? 0 : 2), o);
  if (!o.shuffleFrames) return t;
  // the control: the very same held-out clips with their frames in a seeded non-identity order
  // (content unchanged, only the order is lost; the answer stays the true direction)
  const r = mulberry32(mixSeed(o.seed ?? 0, 0x5f1e));
  const test = t.test.map((e) => {
    const v = e.media!.videos![0];
    let order = v.frames.map((_, k) => k);
    do order = shuffle(order.slice(), r); while (order.every((x, k) => x === k));
    return { ...e, media: { videos: [{ ...v, frames: order.map((k) => v.frames[k]) }] }, meta: { ...e.meta, order } };
  });
  return { ...t, name: `${name}_shuffled`, test };
}

export const BEEP_RATE = 4000, BEEP_SAMPLES = 4000;
const SLOTS = 5, SLOT = 768, BEEP = 400;

/** Count the beeps in a generated clip. */
export function beepCountTask(o: MultimodalTaskOptions = {}): Task {
  return makeTask('beep_count', { audio: { sampleRate: BEEP_RATE, maxSeconds: BEEP_SAMPLES / BEEP_RATE } }, /^\d$/, (r, i) => {
    const n = randInt(r, 1, SLOTS);
    const slots = shuffle(Array.from({ length: SLOTS }, (_, k) => k), r).slice(0, n).sort((a, b) => a - b);
    const freqs = slots.map(() => 400 + 100 * randInt(r, 0, 8));
    const samples = new Float32Array(BEEP_SAMPLES);
    for (let s = 0; s < samples.length; s++) samples[s] = 0.02 * (r() * 2 - 1);
    slots.forEach((slot, k) => {
      const at = 64 + slot * SLOT + randInt(r, 0, 64), f = freqs[k], amp = 0.3 + 0.4 * r();
      for (let s = 0; s < BEEP; s++) {
        const env = Math.min(1, s / 40, (BEEP - s) / 40); // short ramps: no clicks
        samples[at + s] += amp * env * Math.sin((2 * Math.PI * f * s) / BEEP_RATE);
      }
    });
    const clip: AudioData = { kind: 'audio', sampleRate: BEEP_RATE, samples };
    const ans = String(n);
    return { key: `${slots.join('.')}|${freqs.join('.')}`, ex: { id: `beep-${i}`, prompt: '<audio>beeps=', answer: ans, solution: ans, media: { audios: [clip] }, meta: { slots, freqs } } };
  }, o);
}

export const MULTIMODAL_TASKS = ['clevr_count', 'clevr_count_all', 'video_direction', 'video_direction_shuffled', 'video_direction_2f', 'video_direction_2f_shuffled', 'beep_count'] as const;

export function multimodalTask(name: string, o: MultimodalTaskOptions): Task | null {
  if (name === 'clevr_count') return clevrCountTask(o);
  if (name === 'clevr_count_all') return clevrCountTask({ ...o, allOnly: true });
  if (name === 'video_direction') return videoDirectionTask(o);
  if (name === 'video_direction_shuffled') return videoDirectionTask({ ...o, shuffleFrames: true });
  if (name === 'video_direction_2f') return videoDirectionTask({ ...o, twoFrames: true });
  if (name === 'video_direction_2f_shuffled') return videoDirectionTask({ ...o, twoFrames: true, shuffleFrames: true });
  if (name === 'beep_count') return beepCountTask(o);
  return null;
}
