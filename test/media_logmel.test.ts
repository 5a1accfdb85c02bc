// The audio processor's log-mel features (lib/models/media.ts audioFeatures) against a float64
// reference written from the documented definition: Hann window, power spectrum by the DFT sum
// itself (one cos / sin per term, no tables, no FFT), HTK-mel triangular filters from 0 to
// Nyquist, log(1e-6 + energy) / 10, `stride` frames stacked per token. Both code paths are
// checked: the radix-2 FFT (power-of-two windows, the defaults at 4/8/16 kHz) and the tabulated
// direct DFT (any other window).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { audioFeatures, mediaModelConfig } from '../lib/models/media';
import type { AudioEncoderConfig } from '../lib/models/media';
import type { AudioData } from '../lib/media/types';

function reference(x: Float32Array, a: AudioEncoderConfig): Float64Array {
  const W = a.window, nb = Math.floor(W / 2) + 1;
  const F = Math.floor((a.samples - W) / a.hop) + 1;
  const T = Math.floor(F / a.stride);
  const mel = (f: number) => 2595 * Math.log10(1 + f / 700);
  const hz = (m: number) => 700 * (10 ** (m / 2595) - 1);
  const edges = Array.from({ length: a.nMels + 2 }, (_, i) => (hz((mel(a.sampleRate / 2) * i) / (a.nMels + 1)) * W) / a.sampleRate);
  const out = new Float64Array(T * a.stride * a.nMels);
  for (let f = 0; f < T * a.stride; f++) {
    const pw: number[] = [];
    for (let k = 0; k < nb; k++) {
      let re = 0, im = 0;
      for (let i = 0; i < W; i++) {
        const s = f * a.hop + i;
        const v = (s < x.length ? x[s] : 0) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / W));
        re += v * Math.cos((2 * Math.PI * k * i) / W);
        im -= v * Math.sin((2 * Math.PI * k * i) / W);
      }
      pw.push(re * re + im * im);
    }
    for (let m = 0; m < a.nMels; m++) {
      let e = 0;
      for (let k = 0; k < nb; k++) {
        const [l, c, r] = [edges[m], edges[m + 1], edges[m + 2]];
        e += Math.max(0, Math.min((k - l) / (c - l), (r - k) / (r - c))) * pw[k];
      }
      out[f * a.nMels + m] = Math.log(1e-6 + e) / 10;
    }
  }
  return out;
}

function clip(rate: number, n: number, seed: number): AudioData {
  let s = seed;
  const u = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const f1 = 50 + u() * (rate / 2 - 100), f2 = 50 + u() * (rate / 2 - 100);
  // two tones, a silent gap (the log floor) and noise: every band and the floor are exercised
  const samples = Float32Array.from({ length: n }, (_, i) =>
    i > n * 0.4 && i < n * 0.55 ? 0 : 0.5 * Math.sin((2 * Math.PI * f1 * i) / rate) + 0.3 * Math.sin((2 * Math.PI * f2 * i) / rate) + 0.05 * (u() * 2 - 1));
  return { kind: 'audio', sampleRate: rate, samples };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('log-mel: the FFT path (power-of-two windows: 4 kHz → 128, 8 kHz → 256) equals the float64 DFT reference', () => {
  for (const rate of [4000, 8000]) {
    const a = mediaModelConfig({ audio: { sampleRate: rate, maxSeconds: 0.5 } }, { encoderHidden: 8 }).audio!;
    assert.is(a.window & (a.window - 1), 0, `window ${a.window} is a power of two`);
    for (const seed of [1, 2]) {
      // a clip shorter than the encoder's input: the tail is zero-padded in both
      const c = clip(rate, Math.round(a.samples * 0.9), seed);
      const got = audioFeatures(c, a, 't');
      const want = reference(c.samples, a);
      const e = maxAbs(got, want);
      assert.ok(e < 2e-6, `rate ${rate} seed ${seed}: max |Δ| ${e}`);
      assert.ok(Math.max(...want) - Math.min(...want) > 1, 'the reference spans the floor and the tones');
    }
  }
});

test('log-mel: the direct-DFT path (a window that is not a power of two) equals the float64 reference; an FFT configuration alongside keeps its own tables', () => {
  const a: AudioEncoderConfig = { sampleRate: 3000, samples: 1500, window: 96, hop: 48, nMels: 12, stride: 3, hidden: 8 };
  const b: AudioEncoderConfig = { ...a, window: 64, hop: 32, nMels: 10 }; // an FFT configuration in the same process, between two uses of the DFT one
  for (const cfg of [a, b, a]) {
    const c = clip(3000, 1500, cfg.window);
    const e = maxAbs(audioFeatures(c, cfg, 't'), reference(c.samples, cfg));
    assert.ok(e < 2e-6, `window ${cfg.window}: max |Δ| ${e}`);
  }
});

test('log-mel: computed once per clip (the same array back), a wrong rate is an error naming the argument', () => {
  const a = mediaModelConfig({ audio: { sampleRate: 4000, maxSeconds: 0.25 } }, { encoderHidden: 8 }).audio!;
  const c = clip(4000, 1000, 7);
  assert.is(audioFeatures(c, a, 'x'), audioFeatures(c, a, 'x'));
  assert.throws(() => audioFeatures(clip(8000, 1000, 7), a, 'media[3].audios[0]'), /media\[3\]\.audios\[0\]: expected AudioData at 4000 Hz .* received 8000 Hz/);
});

test.run();
