// The multimodal built-in model: encoder forward against a float64 reference written from the
// file comment of native/model/transformer.h (patch embedding + positions + GELU + projector,
// rows spliced over the placeholder tokens), encoder gradients against central differences of
// that reference, splice positions, text-only rows giving exactly the text model's logits, the
// KV-cache prefill seeing the media, freeze options, and errors naming the media.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { audioFeatures, buildMediaArgs, createTransformer, mediaModelConfig, mediaTokenizer, Transformer, TransformerConfig } from '../lib/models';
import type { AudioData, ExampleMedia, ImageData, VideoData } from '../lib/media/types';
import { close, normal, rng } from './helpers';
import { randomModel } from './model_helpers';
import { gelu, refForward, toRefParams } from './reference/transformer';

// one frame per video token here (temporalPatch 1); the tubelet tests below use the default 2
const media = mediaModelConfig({ image: { width: 8, height: 8 }, video: { width: 8, height: 8, numFrames: 2 }, audio: { sampleRate: 1000, maxSeconds: 0.2 } }, { patchSize: 4, encoderHidden: 6, temporalPatch: 1 });
const tok = mediaTokenizer(media);
const CFG: TransformerConfig = { vocabSize: tok.vocabSize, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, maxSeqLen: 40, seed: 5, media };

function image(r: () => number, s = 8): ImageData {
  return { kind: 'image', width: s, height: s, data: Float32Array.from({ length: s * s * 3 }, () => r()) };
}
function video(r: () => number): VideoData {
  return { kind: 'video', fps: 2, frames: [image(r), image(r)] };
}
function clip(r: () => number): AudioData {
  return { kind: 'audio', sampleRate: 1000, samples: Float32Array.from({ length: 200 }, () => r() * 2 - 1) };
}

/** Row b: BOS + tokens of `text` (tags expanded), padded to L. */
function batch(texts: string[], L: number): Int32Array {
  const t = new Int32Array(texts.length * L);
  texts.forEach((s, b) => t.set([tok.bosId, ...tok.encode(s)], b * L));
  return t;
}

/** float64 encoder (independent of lib/models/media.ts: pixels indexed directly). */
function refEncode(p: Map<string, Float64Array>, pre: 'vision' | 'audio', feat: number[], spos: number, tpos: number, Hd: number, d: number): Float64Array {
  const W = p.get(`${pre}.patch.weight`)!, b = p.get(`${pre}.patch.bias`)!, pos = p.get(`${pre}.pos`)!, tmp = p.get(`${pre}.temporal`);
  const P = feat.length;
  const h = new Float64Array(Hd);
  for (let k = 0; k < Hd; k++) {
    let s = b[k] + pos[spos * Hd + k] + (tpos >= 0 && tmp ? tmp[tpos * Hd + k] : 0);
    for (let i = 0; i < P; i++) s += feat[i] * W[i * Hd + k];
    h[k] = gelu(s);
  }
  const Wo = p.get(`${pre}.proj.weight`)!, bo = p.get(`${pre}.proj.bias`)!;
  const e = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = bo[j];
    for (let k = 0; k < Hd; k++) s += h[k] * Wo[k * d + j];
    e[j] = s;
  }
  return e;
}

/** Patch (gy, gx) of an image as the vision encoder reads it: (dy, dx, channel) order, pixels mapped [0, 1] → [−1, 1] (x − 0.5) / 0.5. */
function refPatch(img: ImageData, gy: number, gx: number, p = 4): number[] {
  const out: number[] = [];
  for (let dy = 0; dy < p; dy++) for (let dx = 0; dx < p; dx++) for (let c = 0; c < 3; c++) out.push((img.data[((gy * p + dy) * img.width + gx * p + dx) * 3 + c] - 0.5) / 0.5);
  return out;
}

/**
 * The reference splice of one batch: image / video / audio rows by walking the placeholders. With
 * tp frames per video token (Qwen2-VL's temporal patch), token (t, j) of a clip reads patch j of
 * frames t·tp … t·tp + tp − 1 concatenated (past the last frame: the last frame again), and an
 * image's row is its patch repeated tp times.
 */
function refSplice(p: Map<string, Float64Array>, tokens: Int32Array, B: number, L: number, md: (ExampleMedia | undefined)[], mc = media): Map<number, Float64Array> {
  const out = new Map<number, Float64Array>();
  const Hd = mc.vision!.hidden, d = CFG.dModel;
  const tp = mc.vision!.temporalPatch ?? 1, F = mc.vision!.frames, groups = Math.ceil(F / tp);
  for (let b = 0; b < B; b++) {
    let ni = 0, nv = 0, na = 0;
    for (let i = 0; i < L; i++) {
      const id = tokens[b * L + i];
      if (id === media.imageTokenId) {
        const k = ni++, img = md[b]!.images![Math.floor(k / 4)], j = k % 4;
        const row: number[] = [];
        for (let s = 0; s < tp; s++) row.push(...refPatch(img, Math.floor(j / 2), j % 2));
        out.set(b * L + i, refEncode(p, 'vision', row, j, -1, Hd, d));
      } else if (id === media.videoTokenId) {
        const k = nv++, v = md[b]!.videos![Math.floor(k / (4 * groups))], t = Math.floor((k % (4 * groups)) / 4), j = k % 4;
        const row: number[] = [];
        for (let s = 0; s < tp; s++) row.push(...refPatch(v.frames[Math.min(t * tp + s, F - 1)], Math.floor(j / 2), j % 2));
        out.set(b * L + i, refEncode(p, 'vision', row, j, t, Hd, d));
      } else if (id === media.audioTokenId) {
        const k = na++, a = md[b]!.audios![0];
        const f = audioFeatures(a, mc.audio!, 'ref');
        const P = mc.audio!.stride * mc.audio!.nMels;
        out.set(b * L + i, refEncode(p, 'audio', Array.from(f.subarray(k * P, (k + 1) * P)), k, -1, mc.audio!.hidden, d));
      }
    }
  }
  return out;
}

const REF = { vocabSize: CFG.vocabSize, dModel: CFG.dModel, nLayers: CFG.nLayers, nHeads: CFG.nHeads, dFF: CFG.dFF, maxSeqLen: CFG.maxSeqLen };

function setup(seed: number) {
  const r = rng(seed);
  const m = randomModel(CFG, seed);
  const md: (ExampleMedia | undefined)[] = [
    { images: [image(r)], audios: [clip(r)] },
    { videos: [video(r)] },
    undefined,
  ];
  const texts = ['a<image>b<audio>=', '<video>x=', '12+3='];
  const len = Math.max(...texts.map((s) => tok.encode(s).length + 1));
  return { r, m, md, texts, L: len, tokens: batch(texts, len) };
}

test('the media config, tokenizer expansion and token counts', () => {
  assert.equal(media.vision, { imageSize: 8, patchSize: 4, hidden: 6, frames: 2 });
  // 4 patches per image, 2 frames × 4 per video, floor(((200 − 32)/16 + 1) / 4) = 2 audio tokens
  const ids = tok.encode('a<image>b<video><audio>');
  assert.equal(ids.filter((x) => x === tok.imageTokenId).length, 4);
  assert.equal(ids.filter((x) => x === tok.videoTokenId).length, 8);
  assert.equal(ids.filter((x) => x === tok.audioTokenId).length, 2);
  assert.is(tok.decode(ids), 'ab');
  assert.is(tok.vocabSize, media.audioTokenId + 1);
});

test('splice positions: dest, spatial (h·g + w) and temporal ids of every placeholder', () => {
  const { md, tokens, L } = setup(1);
  const a = buildMediaArgs('t', media, tokens, [0, L, 2 * L], [L, L, L], md);
  // row 0: BOS a [4 image] b [2 audio] =  → image dests 2..5, audio 7, 8
  assert.equal(Array.from(a.visionDest as Int32Array), [2, 3, 4, 5, ...Array.from({ length: 8 }, (_, i) => L + 1 + i)]);
  assert.equal(Array.from(a.visionSpos as Int32Array), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  assert.equal(Array.from(a.visionTpos as Int32Array), [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]);
  assert.equal(Array.from(a.audioDest as Int32Array), [7, 8]);
  assert.equal(Array.from(a.audioSpos as Int32Array), [0, 1]);
  assert.is(a.visionM, 12);
  assert.is(a.audioM, 2);
});

test('forward with image, video and audio rows matches the float64 reference splice', async () => {
  const { m, md, tokens, L } = setup(2);
  const got = await m.forward(tokens, 3, L, { media: md });
  const p = toRefParams(m.stateDict());
  const want = refForward(REF, p, tokens, 3, L, refSplice(p, tokens, 3, L, md));
  let scale = 0;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  close(got, want, 1e-5, 1e-5 * scale, 'logits');
  // the media matter: without the splice (placeholder embeddings) the logits differ
  const plain = refForward(REF, p, tokens, 3, L);
  let diff = 0;
  for (let i = 0; i < L * CFG.vocabSize; i++) diff = Math.max(diff, Math.abs(plain[i] - want[i]));
  assert.ok(diff > 1e-3, `splice changes row 0 (max diff ${diff})`);
  m.dispose();
});

test('encoder gradients match central differences of the float64 reference; placeholders give wte no gradient', () => {
  const { r, m, md, tokens, L } = setup(3);
  const w = Float32Array.from({ length: 3 * L * CFG.vocabSize }, () => normal(r));
  m.zeroGrad();
  m.forwardSync(tokens, 3, L, { train: true, media: md });
  m.backwardSync(w);
  const grads = m.gradients();
  const p = toRefParams(m.stateDict());
  const loss = () => {
    const lg = refForward(REF, p, tokens, 3, L, refSplice(p, tokens, 3, L, md));
    let s = 0;
    for (let i = 0; i < lg.length; i++) s += w[i] * lg[i];
    return s;
  };
  const names = ['vision.patch.weight', 'vision.patch.bias', 'vision.pos', 'vision.temporal', 'vision.proj.weight', 'vision.proj.bias',
    'audio.patch.weight', 'audio.patch.bias', 'audio.pos', 'audio.proj.weight', 'audio.proj.bias', 'wpe', 'blocks.0.attn.q.weight'];
  checkByCentralDifferences(names, grads, p, loss, (name, k, len) => Math.floor(r() * len));
  // the placeholders' own embeddings are never read, so they get nothing
  const wte = grads.get('wte')!.data, d = CFG.dModel;
  for (const id of [media.imageTokenId, media.videoTokenId, media.audioTokenId])
    for (let j = 0; j < d; j++) assert.is(wte[id * d + j], 0, `wte[${id}]`);
  m.dispose();
});

test('text-only rows give exactly the text model\'s logits (bit-identical), with or without media in the batch', async () => {
  const { m, md, tokens, L } = setup(4);
  const textCfg: TransformerConfig = { ...CFG };
  delete textCfg.media;
  const t = createTransformer(textCfg);
  const sd = m.stateDict();
  for (const k of [...sd.keys()]) if (k.startsWith('vision.') || k.startsWith('audio.')) sd.delete(k);
  t.loadStateDict(sd);
  // the text model's layout is the multimodal one's prefix: same names, same offsets
  assert.equal(t.parameters.map((x) => [x.name, x.offset]), m.parameters.slice(0, t.parameters.length).map((x) => [x.name, x.offset]));
  const row2 = tokens.slice(2 * L, 3 * L);
  const a = await t.forward(row2, 1, L);
  const b = await m.forward(row2, 1, L);
  const c = await m.forward(row2, 1, L, { media: [undefined] });
  const full = await m.forward(tokens, 3, L, { media: md });
  const V = CFG.vocabSize;
  const eq = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  assert.ok(eq(a, b) && eq(a, c), 'text row alone');
  assert.ok(eq(a, full.subarray(2 * L * V, 3 * L * V)), 'text row next to media rows');
  t.dispose();
  m.dispose();
});

test('placeholders past a row\'s media (e.g. sampled in a completion) are ordinary tokens', async () => {
  const { m, md, tokens, L } = setup(9);
  // row 2 (text) with a sampled image placeholder and a video placeholder: no media, plain embeddings
  const row = tokens.slice(2 * L, 3 * L);
  row[L - 1] = media.imageTokenId;
  row[L - 2] = media.videoTokenId;
  const p = toRefParams(m.stateDict());
  close(await m.forward(row, 1, L, { media: [undefined] }), refForward(REF, p, row, 1, L), 1e-5, 1e-4, 'text row');
  close(await m.forward(row, 1, L), refForward(REF, p, row, 1, L), 1e-5, 1e-4, 'no media option');
  // row 0 with one extra image placeholder after its image run: spliced rows unchanged, the extra one plain
  const t0 = tokens.slice(0, L);
  const t1 = Int32Array.from([...t0, media.imageTokenId]);
  const got = await m.forward(t1, 1, L + 1, { media: [md[0]] });
  const want = refForward(REF, p, t1, 1, L + 1, refSplice(p, t0, 1, L, md)); // the splice of row 0's first L tokens only
  close(got, want, 1e-5, 1e-4, 'extra placeholder');
  m.dispose();
});

test('generate: the KV-cache prefill sees the media (greedy token and log-prob = the forward\'s)', async () => {
  const { m, md, texts } = setup(5);
  const prompts = texts.map((s) => [tok.bosId, ...tok.encode(s)]);
  const g = await m.generate(prompts, { maxNewTokens: 1, temperature: 0, seed: 1, media: md });
  const V = CFG.vocabSize;
  for (let b = 0; b < 3; b++) {
    const P = prompts[b].length;
    const lg = await m.forward(Int32Array.from(prompts[b]), 1, P, { media: [md[b]] });
    const row = lg.subarray((P - 1) * V, P * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    assert.is(g.tokens[b][0], best, `row ${b}`);
    close(g.logprobs[b], [row[best] - mx - Math.log(s)], 1e-5, 1e-5, `logprob ${b}`);
  }
  m.dispose();
});

test('freezeVit / freezeAligner: frozen tensors get no gradient and no update', () => {
  const frozen = mediaModelConfig({ image: { width: 8, height: 8 } }, { patchSize: 4, encoderHidden: 6, freezeVit: true });
  const cfg: TransformerConfig = { ...CFG, media: frozen };
  const m = randomModel(cfg, 6);
  const r = rng(6);
  const md = [{ images: [image(r)] }];
  const tokens = Int32Array.from([tok.bosId, ...tok.encode('<image>all=')]);
  const before = m.stateDict();
  m.zeroGrad();
  m.forwardSync(tokens, 1, tokens.length, { train: true, media: md });
  m.backwardSync(Float32Array.from({ length: tokens.length * cfg.vocabSize }, () => normal(r)));
  const g = m.gradients();
  for (const n of ['vision.patch.weight', 'vision.patch.bias', 'vision.pos']) assert.ok(g.get(n)!.data.every((x) => x === 0), n);
  assert.ok(g.get('vision.proj.weight')!.data.some((x) => x !== 0));
  m.step({ lr: 1e-2, weightDecay: 0.1 });
  const after = m.stateDict();
  for (const n of ['vision.patch.weight', 'vision.pos']) assert.equal(after.get(n)!.data, before.get(n)!.data, n);
  assert.not.equal(after.get('vision.proj.weight')!.data, before.get('vision.proj.weight')!.data);
  assert.ok(m.parameters.find((p) => p.name === 'vision.pos')!.frozen);
  m.dispose();
  const m2 = randomModel({ ...CFG, media: { ...frozen, freezeVit: false, freezeAligner: true } }, 7);
  m2.zeroGrad();
  m2.forwardSync(tokens, 1, tokens.length, { train: true, media: md });
  m2.backwardSync(Float32Array.from({ length: tokens.length * cfg.vocabSize }, () => normal(r)));
  const g2 = m2.gradients();
  assert.ok(g2.get('vision.proj.weight')!.data.every((x) => x === 0));
  assert.ok(g2.get('vision.patch.weight')!.data.some((x) => x !== 0));
  m2.dispose();
});

test('log-mel features: a pure tone puts its energy in the mel band around its frequency', () => {
  const a = media.audio!;
  const f0 = 250;
  const c: AudioData = { kind: 'audio', sampleRate: 1000, samples: Float32Array.from({ length: 200 }, (_, i) => Math.sin((2 * Math.PI * f0 * i) / 1000)) };
  const f = audioFeatures(c, a, 't');
  // HTK mel band centres from 0 to Nyquist: the band whose centre is nearest 250 Hz is the loudest
  const mel = (x: number) => 2595 * Math.log10(1 + x / 700);
  const centres = Array.from({ length: a.nMels }, (_, m) => 700 * (10 ** (((mel(500) * (m + 1)) / (a.nMels + 1)) / 2595) - 1));
  const want = centres.reduce((bi, c2, i) => (Math.abs(c2 - f0) < Math.abs(centres[bi] - f0) ? i : bi), 0);
  const row = Array.from(f.subarray(0, a.nMels));
  const got = row.indexOf(Math.max(...row));
  assert.ok(Math.abs(got - want) <= 1, `loudest band ${got}, expected ~${want}`);
  // silence is log(1e-6)/10 everywhere
  const s = audioFeatures({ kind: 'audio', sampleRate: 1000, samples: new Float32Array(200) }, a, 't');
  close(s, new Array(s.length).fill(Math.log(1e-6) / 10), 1e-6, 1e-6, 'silence');
});

test('bad media give errors naming the row and the field, before native code runs', async () => {
  const { m, tokens, L, md } = setup(8);
  const r = rng(8);
  await rejects(() => m.forward(tokens, 3, L, { media: [{ images: [image(r, 12)], audios: md[0]!.audios }, md[1], undefined] }), /media\[0\]\.images\[0\].*8x8.*12x12/);
  await rejects(() => m.forward(tokens, 3, L, { media: [md[0], { videos: [{ kind: 'video', fps: 1, frames: [] }] }, undefined] }), /media\[1\]\.videos\[0\]\.frames: expected 2 frames.*received 0/);
  await rejects(() => m.forward(tokens, 3, L, { media: [md[0], md[1], { images: [image(r)] }] }), /media\[2\]: expected 4 image placeholder tokens.*has 0/);
  await rejects(() => m.forward(tokens, 3, L, { media: [md[0]] }), /opts\.media/);
  const text = createTransformer({ ...CFG, media: undefined });
  await rejects(() => text.forward(tokens.slice(2 * L), 1, L, { media: [{ images: [image(r)] }] }), /no encoders/);
  text.dispose();
  assert.throws(() => tok.encode('<image>') && mediaTokenizer(mediaModelConfig({ audio: { sampleRate: 1000, maxSeconds: 0.2 } })).encode('<image>'), /no image encoder/);
  m.dispose();
});

// Tubelets (temporalPatch 2, the default for video): a 3-frame clip is 2 frame groups, (0, 1) and
// (2, 2 again); every video token's row holds its patch in both frames of its group.
const media2 = mediaModelConfig({ image: { width: 8, height: 8 }, video: { width: 8, height: 8, numFrames: 3 }, audio: { sampleRate: 1000, maxSeconds: 0.2 } }, { patchSize: 4, encoderHidden: 6 });
const CFG2: TransformerConfig = { ...CFG, media: media2 };
const tok2 = mediaTokenizer(media2);

function setup2(seed: number) {
  const r = rng(seed);
  const m = randomModel(CFG2, seed);
  const clip3: VideoData = { kind: 'video', fps: 2, frames: [image(r), image(r), image(r)] };
  const md: (ExampleMedia | undefined)[] = [{ images: [image(r)], audios: [clip(r)] }, { videos: [clip3] }, undefined];
  const texts = ['a<image>b<audio>=', '<video>x=', '12+3='];
  const len = Math.max(...texts.map((s) => tok2.encode(s).length + 1));
  const t = new Int32Array(3 * len);
  texts.forEach((s, b) => t.set([tok2.bosId, ...tok2.encode(s)], b * len));
  return { r, m, md, L: len, tokens: t };
}

test('temporalPatch: default 2 for video, 1 for images only; tokens, row width and ids of a tubelet clip', () => {
  assert.equal(media2.vision, { imageSize: 8, patchSize: 4, hidden: 6, frames: 3, temporalPatch: 2 });
  assert.equal(mediaModelConfig({ image: { width: 8, height: 8 } }, { patchSize: 4 }).vision, { imageSize: 8, patchSize: 4, hidden: 32, frames: 0 });
  assert.throws(() => mediaModelConfig({ video: { width: 8, height: 8, numFrames: 3 } }, { temporalPatch: 4 }), /temporalPatch \(--temporal-patch\) must be an integer in \[1, 3\].*received 4/);
  assert.throws(() => mediaModelConfig({ image: { width: 8, height: 8 } }, { temporalPatch: 2 }), /temporalPatch.*1 without video.*received 2/);
  assert.throws(() => createTransformer({ ...CFG2, media: { ...media2, vision: { ...media2.vision!, temporalPatch: 5 } } }), /\[1, 3\] for config\.media\.vision\.temporalPatch but received 5/);
  // 2 groups × 4 patches = 8 video tokens (3 frames, one per token, would be 12)
  assert.is(tok2.encode('<video>').length, 8);
  const m = randomModel(CFG2, 1);
  // the patch embedding reads 2 frames × 4·4·3 pixels; the temporal table has one row per group
  assert.equal(m.parameters.find((x) => x.name === 'vision.patch.weight')!.shape, [96, 6]);
  assert.equal(m.parameters.find((x) => x.name === 'vision.temporal')!.shape, [2, 6]);
  m.dispose();
  const { md, tokens, L } = setup2(1);
  const a = buildMediaArgs('t', media2, tokens, [0, L, 2 * L], [L, L, L], md);
  assert.equal(Array.from(a.visionTpos as Int32Array), [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]);
  assert.equal(Array.from(a.visionSpos as Int32Array), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  // row values: video token (t = 1, patch 3) = patch (1, 1) of frame 2, then of frame 2 again (padding);
  // token (0, 2) = patch (1, 0) of frame 0 then frame 1; image token 1 = its patch (0, 1) twice
  const feat = a.visionFeat as Float32Array, W = 96;
  const v = md[1]!.videos![0];
  close(feat.subarray(11 * W, 12 * W), [...refPatch(v.frames[2], 1, 1), ...refPatch(v.frames[2], 1, 1)], 1e-6, 1e-6, 'padded group');
  close(feat.subarray(6 * W, 7 * W), [...refPatch(v.frames[0], 1, 0), ...refPatch(v.frames[1], 1, 0)], 1e-6, 1e-6, 'group 0');
  close(feat.subarray(1 * W, 2 * W), [...refPatch(md[0]!.images![0], 0, 1), ...refPatch(md[0]!.images![0], 0, 1)], 1e-6, 1e-6, 'image');
});

test('temporalPatch 2: forward matches the float64 tubelet splice, and one token row sees both frames', async () => {
  const { m, md, tokens, L } = setup2(2);
  const got = await m.forward(tokens, 3, L, { media: md });
  const p = toRefParams(m.stateDict());
  const want = refForward(REF, p, tokens, 3, L, refSplice(p, tokens, 3, L, md, media2));
  let scale = 0;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  close(got, want, 1e-5, 1e-5 * scale, 'logits');
  // moving the object between frame 0 and frame 1 inside one patch changes that token's row: the
  // embedding of video token (0, 0) (sequence index 1 of row 1) must depend on frame 1's pixels
  const v = md[1]!.videos![0];
  const f1 = { ...v.frames[1], data: Float32Array.from(v.frames[1].data, (x, i) => (i < 3 ? 1 - x : x)) };
  const md2 = [md[0], { videos: [{ ...v, frames: [v.frames[0], f1, v.frames[2]] }] }, undefined];
  const s1 = refSplice(p, tokens, 3, L, md, media2).get(L + 1)!, s2 = refSplice(p, tokens, 3, L, md2, media2).get(L + 1)!;
  let d = 0;
  for (let j = 0; j < s1.length; j++) d = Math.max(d, Math.abs(s1[j] - s2[j]));
  assert.ok(d > 1e-3, `token (0, 0) reads frame 1 (max change ${d})`);
  close(await m.forward(tokens, 3, L, { media: md2 }), refForward(REF, p, tokens, 3, L, refSplice(p, tokens, 3, L, md2, media2)), 1e-5, 1e-5 * scale, 'logits, frame 1 changed');
  m.dispose();
});

test('temporalPatch 2: vision encoder gradients match central differences of the float64 reference', () => {
  const { r, m, md, tokens, L } = setup2(3);
  const w = Float32Array.from({ length: 3 * L * CFG.vocabSize }, () => normal(r));
  m.zeroGrad();
  m.forwardSync(tokens, 3, L, { train: true, media: md });
  m.backwardSync(w);
  const grads = m.gradients();
  const p = toRefParams(m.stateDict());
  const loss = () => {
    const lg = refForward(REF, p, tokens, 3, L, refSplice(p, tokens, 3, L, md, media2));
    let s = 0;
    for (let i = 0; i < lg.length; i++) s += w[i] * lg[i];
    return s;
  };
  // rows 48.. of patch.weight are the second frame's pixels: sample them as well as the first's
  checkByCentralDifferences(['vision.patch.weight', 'vision.patch.bias', 'vision.pos', 'vision.temporal', 'vision.proj.weight'], grads, p, loss,
    (name, k, len) => (name === 'vision.patch.weight' ? (k % 2 ? 48 * 6 : 0) + Math.floor(r() * 48 * 6) : Math.floor(r() * len)));
  m.dispose();
});

/**
 * Each named parameter has a non-zero native gradient, and at 12 sampled indices (pick) it matches
 * the central difference (h = 1e-5) of the float64 loss over the reference parameters p.
 */
function checkByCentralDifferences(names: string[], grads: Map<string, { data: Float32Array }>, p: Map<string, Float64Array>, loss: () => number,
  pick: (name: string, k: number, len: number) => number) {
  const h = 1e-5;
  for (const name of names) {
    const g = grads.get(name)!.data, q = p.get(name)!;
    let gmax = 0;
    for (const x of g) gmax = Math.max(gmax, Math.abs(x));
    assert.ok(gmax > 0, `${name} has a gradient`);
    for (let k = 0; k < 12; k++) {
      const j = pick(name, k, q.length);
      const orig = q[j];
      q[j] = orig + h;
      const lp = loss();
      q[j] = orig - h;
      const lm = loss();
      q[j] = orig;
      const fd = (lp - lm) / (2 * h);
      const tol = 2e-3 * Math.abs(fd) + 1e-4 * gmax + 1e-6;
      if (!(Math.abs(g[j] - fd) <= tol)) assert.unreachable(`${name}[${j}]: native ${g[j]}, finite difference ${fd} (tol ${tol})`);
    }
  }
}

void Transformer;
async function rejects(f: () => Promise<unknown>, re: RegExp) {
  try {
    await f();
  } catch (e) {
    assert.match(String((e as Error).message), re);
    return;
  }
  assert.unreachable(`expected an error matching ${re}`);
}
test.run();
