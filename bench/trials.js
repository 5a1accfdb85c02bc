'use strict';
// The trials table: every measured case of `npm run bench`, one row each, each run in its own
// process by bench/run.js. A row names the kernel, the implementation (`ours` = the package's
// public API; `simple` = bench/peers/simple.js; `torch_*` = bench/peers/torch_peers.py), the
// sizes and the repetitions. The memory-traffic model of each kernel (bytes, floor) is here too.
//
// Shapes: S sequences × T tokens, N = S·T rows, V vocabulary entries (Qwen2.5's 151936),
// R sampling rows, G group size, n per-token elements.

const V = 151936;
const BYTES = { float32: 4, bfloat16: 2 };

/**
 * Traffic model per kernel, given a trial's params. `bytes`: what must cross the memory bus
 * at least (used for achieved GB/s). `floorBytes` and `bw`: the floor is floorBytes divided by
 * the probe's bandwidth of that kind ('copy' = copy bandwidth counting read + write bytes,
 * 'read' = read-only bandwidth).
 */
const TRAFFIC = {
  // Fused loss fwd+bwd: read logits once, write dL/dlogits once (separate or in place).
  // The floor is the "three-pass floor": read, read, write of N·V elements at the
  // copy bandwidth: 3·N·V·s / copyBW.
  loss: (p) => {
    const nv = p.S * p.T * p.V * BYTES[p.dtype];
    return { bytes: 2 * nv, floorBytes: 3 * nv, bw: 'copy', floorName: '3-pass' };
  },
  // Forward only: one read of the logits.
  logprobs: (p) => {
    const nv = p.N * p.V * BYTES[p.dtype];
    return { bytes: nv, floorBytes: nv, bw: 'read', floorName: '1 read' };
  },
  sample: (p) => {
    const rv = p.R * p.V * 4;
    return { bytes: rv, floorBytes: rv, bw: 'read', floorName: '1 read' };
  },
  // logp (4 B) + mask (1 B) in, gradLogp (4 B) out per token; advantages per sequence.
  grpoLoss: (p) => {
    const b = p.S * p.T * 9 + p.S * 4;
    return { bytes: b, floorBytes: b, bw: 'copy', floorName: 'r+w' };
  },
  // rewards in; advantages and rewards out per sequence, groupMean, groupStd and groupIds out per
  // group: every output the case asks for (the op writes them all; counting only rewards in and
  // advantages out, 8 bytes per sequence, was the floor of a smaller op).
  groupAdvantages: (p) => {
    const b = p.S * 12 + (p.S / p.G) * 12;
    return { bytes: b, floorBytes: b, bw: 'copy', floorName: 'r+w' };
  },
  // logp, refLogp in; kl, grad out.
  klPenalty: (p) => ({ bytes: p.n * 16, floorBytes: p.n * 16, bw: 'copy', floorName: 'r+w' }),
};

function sizeLabel(kernel, p) {
  switch (kernel) {
    case 'loss': return `N=${p.S * p.T} (S=${p.S},T=${p.T}) V=${p.V} ${p.dtype}`;
    case 'logprobs': return `N=${p.N} V=${p.V} ${p.dtype}`;
    case 'sample': return `R=${p.R} V=${p.V} top-k ${p.topK} top-p ${p.topP}`;
    case 'grpoLoss': return `N=${p.S * p.T} (S=${p.S},T=${p.T})`;
    case 'groupAdvantages': return `S=${p.S} G=${p.G}`;
    case 'klPenalty': return `n=${p.n}`;
    default: return JSON.stringify(p);
  }
}

/** Big cases run fewer repetitions for the slow peers. */
function trials({ quick }) {
  const out = [];
  const add = (kernel, impl, params, extra = {}) => {
    const group = `${kernel} ${sizeLabel(kernel, params)}`;
    const label = impl + (params.mode && impl === 'ours' ? ` (${params.mode})` : '');
    out.push({ id: `${group} | ${label}`, group, kernel, impl, label, params, ...extra });
  };

  const lossSizes = quick ? [{ S: 2, T: 128 }] : [{ S: 2, T: 128 }, { S: 16, T: 128 }];
  for (const dtype of ['float32', 'bfloat16']) {
    for (const { S, T } of lossSizes) {
      const big = S * T >= 2048;
      const p = { S, T, V, dtype, temperature: 1 };
      add('loss', 'ours', { ...p, mode: 'separate' }, { reps: 7 });
      add('loss', 'ours', { ...p, mode: 'inplace' }, { reps: 7 });
      add('loss', 'simple', { ...p, mode: 'separate' }, big ? { reps: 2, warmup: 0 } : { reps: 3 });  // 15-50 s a call at N = 2048
      add('loss', 'torch_trl', p, { reps: big ? 3 : 5 });
      add('loss', 'torch_tuned', p, { reps: 3 });
    }
  }

  for (const dtype of ['float32', 'bfloat16']) {
    for (const N of quick ? [256] : [256, 2048]) {
      const p = { N, S: N / 128, V, dtype, temperature: 1 };
      add('logprobs', 'ours', p, { reps: 7 });
      add('logprobs', 'simple', p, N >= 2048 ? { reps: 2, warmup: 0 } : { reps: 3 });
      add('logprobs', 'torch_trl', p, { reps: 3 });
    }
  }

  {
    const p = { R: 64, V, topK: 50, topP: 0.9, temperature: 1 };
    add('sample', 'ours', p, { reps: 15 });
    add('sample', 'simple', p, { reps: 3 });
    add('sample', 'torch_vllm', p, { reps: 5 });
  }

  for (const [S, T] of quick ? [[16, 128]] : [[16, 128], [1024, 1024]]) {
    for (const impl of ['ours', 'simple', 'torch_trl']) add('grpoLoss', impl, { S, T });
  }
  for (const S of quick ? [2048] : [2048, 1 << 20]) {
    for (const impl of ['ours', 'simple', 'torch_trl']) add('groupAdvantages', impl, { S, G: 16 });
  }
  for (const n of quick ? [2048] : [2048, 1 << 22]) {
    for (const impl of ['ours', 'simple', 'torch_trl']) add('klPenalty', impl, { n });
  }
  return out;
}

module.exports = { trials, TRAFFIC, V };
