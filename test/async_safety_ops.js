'use strict';
// Raw argument objects for every async entry point of the addon (native/binding.cc and
// native/model/model_binding.cc), sized so an op is still running when the caller's next
// statement executes. Shared by test/async_safety_child.ts and the worker of the teardown test
// (plain JS so a worker starts without a TypeScript loader). Each case lists its typed-array
// arguments (`arrays`), the ones that are id arrays (`ids`, with their valid range), and
// `call(args, async)`.

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function f32(r, n, scale = 1, shift = 0) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale + shift;
  return a;
}
function i32(r, n, hi) {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * hi);
  return a;
}

const LOSS_OPTS = { level: 0, policyLoss: 0, epsilonLow: 0.2, epsilonHigh: 0.2, clipRatioC: 3, beta: 0.04, klEstimator: 3, clampLogRatio: true, lossType: 2 };
const MODEL_CFG = { vocabSize: 96, dModel: 32, nLayers: 2, nHeads: 2, dFF: 64, maxSeqLen: 64, seedLo: 7, seedHi: 0 };

// scale < 1 shrinks the cases (the worker test runs many of them).
function cases(addon, scale = 1) {
  const V = 32768;
  const N = Math.max(8, Math.round(64 * scale));
  const big = Math.max(1024, Math.round(((1 << 21) * scale) / 64) * 64);
  const list = [
    {
      name: 'logprobs',
      make(seed) {
        const r = rng(seed);
        return { N, V, logits: f32(r, N * V, 4), logitsDtype: 'float32', targets: i32(r, N, V), temperature: 0.9, logp: new Float32Array(N), entropy: new Float32Array(N) };
      },
      outputs: ['logp', 'entropy'],
      ids: { targets: V },
      call: (a, async) => addon.logprobs(a, async),
    },
    {
      name: 'groupAdvantages',
      make(seed) {
        const r = rng(seed);
        const S = big, G = S / 8;
        const group = new Int32Array(S);
        for (let i = 0; i < S; i++) group[i] = i >> 3;
        return {
          S, K: 1, numGroups: G, rewards: f32(r, S), weights: new Float32Array([1]), group, estimator: 0, scale: 1, eps: 1e-4, unbiased: true,
          advantages: new Float32Array(S), reward: new Float32Array(S), groupMean: new Float32Array(G), groupStd: new Float32Array(G),
        };
      },
      outputs: ['advantages', 'reward', 'groupMean', 'groupStd'],
      ids: { group: big / 8 },
      call: (a, async) => addon.groupAdvantages(a, async),
    },
    {
      name: 'klPenalty',
      make(seed) {
        const r = rng(seed);
        const n = big * 2;
        return { n, logp: f32(r, n, 2, -3), refLogp: f32(r, n, 2, -3), estimator: 3, clampLogRatio: true, kl: new Float32Array(n), grad: new Float32Array(n) };
      },
      outputs: ['kl', 'grad'],
      ids: {},
      call: (a, async) => addon.klPenalty(a, async),
    },
    {
      name: 'grpoLoss',
      make(seed) {
        const r = rng(seed);
        const S = 64, T = Math.max(16, big / 64), NN = S * T;
        const mask = new Uint8Array(NN);
        for (let i = 0; i < NN; i++) mask[i] = r() < 0.9 ? 1 : 0;
        return {
          S, T, logp: f32(r, NN, 1, -2), oldLogp: f32(r, NN, 1, -2), refLogp: f32(r, NN, 1, -2), advantages: f32(r, S), mask, entropy: f32(r, NN, 1, 2),
          ...LOSS_OPTS, gradLogp: new Float32Array(NN), perTokenLoss: new Float32Array(NN),
        };
      },
      outputs: ['gradLogp', 'perTokenLoss'],
      ids: {},
      call: (a, async) => addon.grpoLoss(a, async),
    },
    {
      name: 'grpoLossFromLogits',
      make(seed) {
        const r = rng(seed);
        const S = 4, T = N / 4;
        const mask = new Uint8Array(N).fill(1);
        return {
          S, T, V, logits: f32(r, N * V, 4), logitsDtype: 'float32', targets: i32(r, N, V), temperature: 1, oldLogp: f32(r, N, 0.1, -10.5), refLogp: f32(r, N, 0.1, -10.5),
          advantages: f32(r, S), mask, ...LOSS_OPTS, gradMode: 1, gradLogits: new Float32Array(N * V), gradLogitsDtype: 'float32',
          logp: new Float32Array(N), entropy: new Float32Array(N), gradLogp: new Float32Array(N),
        };
      },
      outputs: ['gradLogits', 'logp', 'entropy', 'gradLogp'],
      ids: { targets: V },
      call: (a, async) => addon.grpoLossFromLogits(a, async),
    },
    {
      name: 'sample',
      make(seed) {
        const r = rng(seed);
        const R = N;
        const rowIds = new Uint32Array(R);
        for (let i = 0; i < R; i++) rowIds[i] = i * 3 + 1;
        return {
          R, V, logits: f32(r, R * V, 4), logitsDtype: 'float32', temperature: new Float32Array(R).fill(0.8), topK: new Int32Array(R).fill(50),
          topP: new Float32Array(R).fill(0.95), minP: new Float32Array(R).fill(0), seedLo: seed >>> 0, seedHi: 1, step: 3, rowIds,
          tokens: new Int32Array(R), logp: new Float32Array(R), truncLogp: new Float32Array(R),
        };
      },
      outputs: ['tokens', 'logp', 'truncLogp'],
      ids: {},
      call: (a, async) => addon.sample(a, async),
    },
  ];
  const model = () => new addon.NativeTransformer(MODEL_CFG);
  const Vm = MODEL_CFG.vocabSize, Lm = MODEL_CFG.maxSeqLen, Bm = Math.max(2, Math.round(24 * scale));
  list.push(
    {
      name: 'model.forward',
      model,
      make(seed) {
        const r = rng(seed);
        return { B: Bm, L: Lm, tokens: i32(r, Bm * Lm, Vm), logits: new Float32Array(Bm * Lm * Vm), train: false };
      },
      outputs: ['logits'],
      ids: { tokens: Vm },
      call: (a, async, m) => m.forward(a, async),
    },
    {
      name: 'model.backward',
      model,
      // backward needs a train forward of the same N first (done synchronously by prepare()).
      prepare(m, a) {
        m.forward({ B: Bm, L: Lm, tokens: a._tokens, logits: new Float32Array(Bm * Lm * Vm), train: true }, false);
      },
      make(seed) {
        const r = rng(seed);
        return { N: Bm * Lm, gradLogits: f32(r, Bm * Lm * Vm, 1e-3), _tokens: i32(r, Bm * Lm, Vm) };
      },
      outputs: [],
      ids: {},
      // the result lives in the model's gradient buffer
      read(m) {
        const g = new Float32Array(m.layout().reduce((s, e) => Math.max(s, e.offset + e.size), 0));
        m.copy(1, g, false);
        return g;
      },
      call: (a, async, m) => m.backward(a, async),
    },
    {
      name: 'model.decode',
      model,
      make(seed) {
        const r = rng(seed);
        const slots = Bm, ctx = Lm, R = Bm;
        const count = new Int32Array(R).fill(Lm / 2);
        const start = new Int32Array(R).fill(0);
        const slot = new Int32Array(R);
        for (let i = 0; i < R; i++) slot[i] = R - 1 - i;
        return {
          slots, ctx, cache: new Float32Array(2 * MODEL_CFG.nLayers * slots * ctx * MODEL_CFG.dModel), R, slot, start, count,
          tokens: i32(r, R * (Lm / 2), Vm), logits: new Float32Array(R * Vm),
        };
      },
      outputs: ['cache', 'logits'],
      ids: { tokens: Vm, slot: Bm, start: 1, count: Lm / 2 + 1 },
      call: (a, async, m) => m.decode(a, async),
    },
  );
  // Device ops (a CUDA build with a device, or the CUDA emulator addon of the tests): the host
  // buffer of an async deviceCopy is pinned like any op's; klPenaltyCuda works on device tensors.
  if (process.env.GRPO_SAFETY_DEVICE === '1' && addon.deviceAlloc && addon.cudaAvailable()) {
    const n = Math.max(4096, Math.round(big / 4));
    const dev = (host) => {
      const h = addon.deviceAlloc(0, host.length);
      addon.deviceCopy(h, host, true, false);
      return h;
    };
    list.push(
      {
        name: 'deviceCopy upload',
        make(seed) {
          const r = rng(seed);
          return { tensor: addon.deviceAlloc(0, n), data: f32(r, n) };
        },
        outputs: [],
        ids: {},
        call: (a, async) => addon.deviceCopy(a.tensor, a.data, true, async),
      },
      {
        name: 'deviceCopy download',
        make(seed) {
          const r = rng(seed);
          return { tensor: dev(f32(r, n)), data: new Float32Array(n) };
        },
        outputs: ['data'],
        ids: {},
        call: (a, async) => addon.deviceCopy(a.tensor, a.data, false, async),
      },
      {
        name: 'klPenaltyCuda',
        make(seed) {
          const r = rng(seed);
          return { n, logp: dev(f32(r, n, 2, -3)), refLogp: dev(f32(r, n, 2, -3)), estimator: 3, clampLogRatio: true, kl: addon.deviceAlloc(0, n), grad: addon.deviceAlloc(0, n) };
        },
        outputs: [],
        ids: {},
        call: (a, async) => addon.klPenaltyCuda(a, async),
      },
    );
  }
  return list;
}

/** The typed-array arguments of an argument object (names starting with _ are test-only). */
function arraysOf(args) {
  return Object.keys(args).filter((k) => !k.startsWith('_') && ArrayBuffer.isView(args[k]));
}

/** A deep copy of an argument object: fresh buffers with the same contents. */
function cloneArgs(args) {
  const out = {};
  for (const [k, v] of Object.entries(args)) out[k] = ArrayBuffer.isView(v) ? v.slice() : v;
  return out;
}

module.exports = { cases, arraysOf, cloneArgs, rng, MODEL_CFG };
