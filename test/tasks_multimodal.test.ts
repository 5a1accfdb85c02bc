// The built-in multimodal tasks (lib/tasks/multimodal.ts): seeded determinism, every answer checked
// against what the rendered media shows (read back from the pixels / samples by a reader written
// here, independent of the generator's bookkeeping), and held-out scenes never in training.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { beepCountTask, clevrCountTask, videoDirectionTask } from '../lib/tasks/multimodal';
import type { Example } from '../lib/tasks/types';
import type { ImageData } from '../lib/media/types';
import { taskTokenizer } from '../lib/trainer/run';
import type { MediaTokenizer } from '../lib/models';

const GRID = 4;

/** What a scene shows, read off the pixels: per grid cell, null (floor) or its colour name and shape (by its pixel count). */
function readScene(img: ImageData): (string | null)[] {
  const S = img.width, cell = S / GRID;
  const cells: (string | null)[] = [];
  for (let gy = 0; gy < GRID; gy++)
    for (let gx = 0; gx < GRID; gx++) {
      let n = 0;
      const sum = [0, 0, 0];
      for (let y = gy * cell; y < (gy + 1) * cell; y++)
        for (let x = gx * cell; x < (gx + 1) * cell; x++) {
          const p = (y * S + x) * 3;
          const px = [img.data[p], img.data[p + 1], img.data[p + 2]];
          // the floor is grey 0.45 ± 0.025 in every channel; an object pixel is far from it in some channel
          if (px.some((v) => Math.abs(v - 0.45) > 0.2)) {
            n++;
            for (let k = 0; k < 3; k++) sum[k] += px[k];
          }
        }
      if (!n) {
        cells.push(null);
        continue;
      }
      const [r, g, b] = sum.map((v) => v / n);
      const name = r > 0.6 && g > 0.6 && b < 0.4 ? 'yellow' : r > 0.6 && g < 0.4 && b < 0.4 ? 'red' : g > 0.6 && r < 0.4 && b < 0.4 ? 'green' : b > 0.6 && r < 0.4 ? 'blue' : `?(${r.toFixed(2)},${g.toFixed(2)},${b.toFixed(2)})`;
      cells.push(`${name}:${n}`);
    }
  return cells;
}

function sameMedia(a: Example[], b: Example[]): boolean {
  return JSON.stringify(a.map((e) => [e.prompt, e.answer, e.media])) === JSON.stringify(b.map((e) => [e.prompt, e.answer, e.media]));
}

test('clevr_count: seeded; every answer is the count the pixels show; held-out scenes not in train', () => {
  const t = clevrCountTask({ seed: 4, trainSize: 600, testSize: 100 });
  assert.ok(sameMedia(t.train.slice(0, 20), clevrCountTask({ seed: 4, trainSize: 20, testSize: 100 }).train), 'same seed, same examples');
  assert.not.ok(sameMedia(t.train.slice(0, 20), clevrCountTask({ seed: 5, trainSize: 20, testSize: 100 }).train), 'another seed, other examples');
  const key = (e: Example) => {
    const scene = readScene(e.media!.images![0]);
    for (const c of scene) assert.ok(c === null || !c.startsWith('?'), `${e.id}: unreadable colour ${c}`);
    const m = /^<image>(\w+)=$/.exec(e.prompt)!;
    assert.ok(m, e.prompt);
    const want = m[1] === 'all' ? scene.filter((c) => c !== null).length : scene.filter((c) => c?.split(':')[0] === m[1]).length;
    assert.is(e.answer, String(want), `${e.id}: ${e.prompt} shows ${want}`);
    assert.ok(t.isCorrect(String(want), e) && !t.isCorrect(String(want + 1), e));
    return `${m[1]}|${scene.join(',')}`;
  };
  const train = new Set(t.train.map(key));
  const asks = new Set<string>();
  for (const e of t.test) {
    const k = key(e);
    asks.add(k.split('|')[0]);
    // the same question about the same layout of colours and shapes would be a training scene
    assert.not.ok(train.has(k), `${e.id} is a training scene`);
  }
  assert.ok(asks.size >= 3, 'several questions asked');
});

test('clevr_count_all: 1–5 objects, always asked for all of them; the answer is what the pixels show', () => {
  const t = clevrCountTask({ seed: 4, trainSize: 300, testSize: 100, allOnly: true });
  assert.is(t.name, 'clevr_count_all');
  const counts = new Set<string>();
  for (const e of [...t.test, ...t.train]) {
    assert.is(e.prompt, '<image>all=');
    assert.is(e.answer, String(readScene(e.media!.images![0]).filter((c) => c !== null).length), e.id);
    counts.add(e.answer);
  }
  assert.equal([...counts].sort(), ['1', '2', '3', '4', '5']);
});

test('video_direction: the answer is the way the only moving object goes, read off the frames; the control shuffles the frames only', () => {
  const t = videoDirectionTask({ seed: 6, trainSize: 300, testSize: 80 });
  assert.ok(sameMedia(t.test, videoDirectionTask({ seed: 6, trainSize: 10, testSize: 80 }).test));
  const read = (e: Example, order?: number[]) => {
    let frames = e.media!.videos![0].frames.map(readScene);
    if (order) {
      // undo the control's permutation: frame k of the shuffled clip is original frame order[k]
      const orig: (string | null)[][] = [];
      order.forEach((o, k) => (orig[o] = frames[k]));
      frames = orig;
    }
    // the moving object: the occupied cell of each frame that is not occupied in every frame
    const moving = frames.map((f) => f.map((c, i) => (c !== null && frames.some((g) => g[i] === null) ? i : -1)).filter((i) => i >= 0));
    for (const m of moving) assert.is(m.length, 1, `${e.id}: one moving object per frame`);
    const [a, b] = [moving[0][0], moving[moving.length - 1][0]];
    const dy = Math.floor(b / GRID) - Math.floor(a / GRID), dx = (b % GRID) - (a % GRID);
    return dy === 0 ? (dx > 0 ? 'right' : 'left') : dy > 0 ? 'down' : 'up';
  };
  const keys = new Set<string>();
  for (const e of t.train) keys.add(JSON.stringify(e.media!.videos![0].frames.map(readScene)) + e.answer);
  const seen = new Set<string>();
  for (const e of t.test) {
    assert.is(e.answer, read(e), e.id);
    seen.add(e.answer);
    assert.not.ok(keys.has(JSON.stringify(e.media!.videos![0].frames.map(readScene)) + e.answer), `${e.id} is a training clip`);
  }
  assert.is(seen.size, 4);
  for (const e of t.train.slice(0, 100)) assert.is(e.answer, read(e), e.id);
  const c = videoDirectionTask({ seed: 6, trainSize: 300, testSize: 80, shuffleFrames: true });
  assert.is(c.name, 'video_direction_shuffled');
  c.test.forEach((e, i) => {
    const order = e.meta!.order as number[];
    assert.not.equal(order, order.map((_, k) => k), 'a non-identity order');
    assert.is(e.answer, t.test[i].answer, 'the true direction stays the answer');
    assert.is(read(e, order), e.answer);
  });
});

test('video_direction_2f: two frames, the mover alone; its control swaps them', () => {
  const t = videoDirectionTask({ seed: 6, trainSize: 200, testSize: 60, twoFrames: true });
  const c = videoDirectionTask({ seed: 6, trainSize: 200, testSize: 60, twoFrames: true, shuffleFrames: true });
  assert.equal([t.name, c.name], ['video_direction_2f', 'video_direction_2f_shuffled']);
  const cellOf = (img: ImageData) => {
    const occ = readScene(img).map((x, i) => (x === null ? -1 : i)).filter((i) => i >= 0);
    assert.is(occ.length, 1, 'the mover alone');
    return occ[0];
  };
  const dirOf = (a: number, b: number) => (Math.floor(b / GRID) - Math.floor(a / GRID) === 0 ? ((b % GRID) - (a % GRID) > 0 ? 'right' : 'left') : b > a ? 'down' : 'up');
  const opposite: Record<string, string> = { left: 'right', right: 'left', up: 'down', down: 'up' };
  t.test.forEach((e, i) => {
    const [f0, f1] = e.media!.videos![0].frames;
    assert.is(e.media!.videos![0].frames.length, 2);
    const [a, b] = [cellOf(f0), cellOf(f1)];
    assert.is(Math.abs(Math.floor(b / GRID) - Math.floor(a / GRID)) + Math.abs((b % GRID) - (a % GRID)), 1, 'one cell per frame');
    assert.is(e.answer, dirOf(a, b), e.id);
    const [g0, g1] = c.test[i].media!.videos![0].frames;
    assert.equal(c.test[i].meta!.order, [1, 0]);
    assert.is(dirOf(cellOf(g0), cellOf(g1)), opposite[e.answer], 'the swapped clip shows the opposite move');
    assert.is(c.test[i].answer, e.answer);
  });
});

test('beep_count: seeded; the answer is the number of tone bursts in the samples; held-out clips not in train', () => {
  const t = beepCountTask({ seed: 8, trainSize: 200, testSize: 60 });
  assert.ok(sameMedia(t.test, beepCountTask({ seed: 8, trainSize: 5, testSize: 60 }).test));
  assert.not.ok(sameMedia(t.test, beepCountTask({ seed: 9, trainSize: 5, testSize: 60 }).test));
  /** Bursts: runs of 50-sample windows with RMS above 0.08 (noise RMS ≈ 0.012, tones ≥ 0.2). */
  const bursts = (x: Float32Array) => {
    let n = 0, on = false;
    const starts: number[] = [];
    for (let s = 0; s + 50 <= x.length; s += 50) {
      let e = 0;
      for (let i = s; i < s + 50; i++) e += x[i] * x[i];
      const loud = Math.sqrt(e / 50) > 0.08;
      if (loud && !on) (n++, starts.push(s));
      on = loud;
    }
    return { n, starts };
  };
  const train = new Set(t.train.map((e) => JSON.stringify(bursts(e.media!.audios![0].samples).starts) + '|' + JSON.stringify(e.meta!.freqs)));
  const counts = new Set<string>();
  for (const e of [...t.test, ...t.train.slice(0, 60)]) {
    const b = bursts(e.media!.audios![0].samples);
    assert.is(e.answer, String(b.n), `${e.id}: ${b.n} bursts at ${b.starts}`);
    counts.add(e.answer);
  }
  for (const e of t.test) assert.not.ok(train.has(JSON.stringify(bursts(e.media!.audios![0].samples).starts) + '|' + JSON.stringify(e.meta!.freqs)), `${e.id} is a training clip`);
  assert.equal([...counts].sort(), ['1', '2', '3', '4', '5']);
});

test('the CLI model options reach the video encoder: --patch-size and --temporal-patch set the tokens per clip', () => {
  const t = videoDirectionTask({ seed: 3, trainSize: 2, testSize: 2 });
  const n = (o: Record<string, unknown>) => {
    const tok = taskTokenizer(t, o) as MediaTokenizer;
    return [tok.encode('<video>').length, tok.media!.vision!.temporalPatch ?? 1];
  };
  // 3 frames of 16×16: patch 4 → 16 patches per frame group; 2 frames per token → groups (0, 1), (2, 2)
  assert.equal(n({}), [32, 2]);
  assert.equal(n({ temporalPatch: 1 }), [48, 1]);
  assert.equal(n({ temporalPatch: 3 }), [16, 3]);
  assert.equal(n({ patchSize: 8 }), [8, 2]);
  assert.throws(() => n({ temporalPatch: 4 }), /--temporal-patch.*\[1, 3\].*received 4/);
  // an image task keeps one frame per token
  assert.is((taskTokenizer(clevrCountTask({ seed: 3, trainSize: 2, testSize: 2 }), {}) as MediaTokenizer).media!.vision!.temporalPatch, undefined);
});

test.run();
