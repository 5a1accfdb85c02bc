// klFull (exact KL(π‖π_ref) from both logits rows, value and gradient wrt the policy logits) and
// grpoLossFromLogits with klEstimator 'full', against a float64 reference written from the
// definition KL = Σ p·(log p − log q) and central finite differences of the float64 loss;
// float32 / bfloat16 / float16 logits, temperature, coef and accumulate, identical rows (KL = 0),
// the CUDA kernel through the emulator, and bad input.
import { setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { grpoLossFromLogitsSync, grpoLossFromLogits, klFullSync, klFull } from '../lib';
import { cuda, DeviceTensor } from '../lib/device';
import { close, randn, rng } from './helpers';
import { refFusedLoss, refGrpoLossFromLogits } from './reference/grpo_loss_from_logits';
import { refToHalf, refWiden } from './reference/logprobs';
import { aggWeight, fullKlCase, refKl, refKlRow } from './reference/kl_full';

for (const [N, V] of [[1, 1], [5, 37], [3, 1000]] as const) {
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    test(`klFull N=${N} V=${V} ${dtype}: KL and gradient against float64`, () => {
      const r = rng(N * V);
      const z32 = randn(r, N * V, 2), zr32 = randn(r, N * V, 2);
      for (let i = 0; i < V; i++) zr32[i] = z32[i] + 0.1 * (i % 3);  // a close pair: small KL
      const tau = 0.7;
      const z = dtype === 'float32' ? z32 : refToHalf(z32, dtype), zr = dtype === 'float32' ? zr32 : refToHalf(zr32, dtype);
      const got = klFullSync({ logits: z, refLogits: zr, dtype, vocabSize: V, temperature: tau } as never);
      const want = refKl(refWiden(z, dtype), refWiden(zr, dtype), N, V, tau);
      close(got.kl, want.kl, 1e-5, 1e-7, 'kl');
      let gmax = 0;
      for (const g of want.grad) gmax = Math.max(gmax, Math.abs(g));
      const g = dtype === 'float32' ? (got.grad as Float32Array) : refWiden(got.grad as Uint16Array, dtype);
      close(g, want.grad, dtype === 'float32' ? 1e-5 : 1e-2, (dtype === 'float32' ? 1e-6 : 1e-2) * gmax, 'grad');
      for (const k of got.kl) assert.ok(k >= -1e-6, `KL ${k} >= 0`);
    });
  }
}

test('klFull: identical rows give KL exactly 0 and a zero gradient', () => {
  const r = rng(3);
  const z = randn(r, 4 * 50, 3);
  const got = klFullSync({ logits: z, refLogits: z.slice(), vocabSize: 50, temperature: 1.3 });
  assert.equal(Array.from(got.kl), [0, 0, 0, 0]);
  for (const g of got.grad as Float32Array) assert.is(Math.abs(g), 0);
});

test('klFull: gradient by central finite differences of the kernel KL', () => {
  const r = rng(9);
  const N = 2, V = 12, tau = 0.9;
  const z = randn(r, N * V, 1.5), zr = randn(r, N * V, 1.5);
  const got = klFullSync({ logits: z, refLogits: zr, vocabSize: V, temperature: tau });
  const h = 1e-2;
  for (const i of [0, 5, 11, 13, 23]) {
    const n = Math.floor(i / V);
    const zp = z.slice(), zm = z.slice();
    zp[i] += h;
    zm[i] -= h;
    // differences of float64 evaluations at the perturbed float32 inputs (the kernel's own KL is float32)
    const fd = (refKlRow(zp, zr, V, n, tau).kl - refKlRow(zm, zr, V, n, tau).kl) / (zp[i] - zm[i]);
    const kp = klFullSync({ logits: zp, refLogits: zr, vocabSize: V, temperature: tau, grad: false }).kl[n];
    const km = klFullSync({ logits: zm, refLogits: zr, vocabSize: V, temperature: tau, grad: false }).kl[n];
    const fdKernel = (kp - km) / (zp[i] - zm[i]);
    assert.ok(Math.abs((got.grad as Float32Array)[i] - fd) < 2e-4, `grad[${i}] ${(got.grad as Float32Array)[i]} vs fd ${fd}`);
    assert.ok(Math.abs((got.grad as Float32Array)[i] - fdKernel) < 2e-3, `grad[${i}] ${(got.grad as Float32Array)[i]} vs kernel fd ${fdKernel}`);
  }
});

test('klFull: coef scales each row, accumulate adds; async equals sync', async () => {
  const r = rng(4);
  const N = 3, V = 20;
  const z = randn(r, N * V), zr = randn(r, N * V);
  const base = klFullSync({ logits: z, refLogits: zr, vocabSize: V });
  const coef = new Float32Array([2, 0, -0.5]);
  const g0 = randn(r, N * V);
  const acc = klFullSync({ logits: z, refLogits: zr, vocabSize: V, coef, accumulate: true, out: { grad: g0.slice() } });
  const want = Array.from(g0, (x, i) => x + coef[Math.floor(i / V)] * (base.grad as Float32Array)[i]);
  close(acc.grad as Float32Array, want, 1e-6, 1e-7, 'accumulate');
  const a = await klFull({ logits: z, refLogits: zr, vocabSize: V });
  assert.equal(Array.from(a.kl), Array.from(base.kl));
  assert.equal(Array.from(a.grad as Float32Array), Array.from(base.grad as Float32Array));
});

test('klFull rejects bad input with the argument named', () => {
  const z = new Float32Array(20), zr = new Float32Array(20);
  assert.throws(() => klFullSync({ logits: z, refLogits: new Float32Array(10), vocabSize: 10 }), /refLogits/);
  assert.throws(() => klFullSync({ logits: z, refLogits: new Uint16Array(20) as never, vocabSize: 10 }), /refLogits/);
  assert.throws(() => klFullSync({ logits: z, refLogits: zr, vocabSize: 10, temperature: 0 }), /temperature/);
  assert.throws(() => klFullSync({ logits: z, refLogits: zr, vocabSize: 10, coef: new Float32Array(3) }), /coef/);
  assert.throws(() => klFullSync({ logits: z, refLogits: zr, vocabSize: 10, accumulate: true }), /out\.grad/);
  assert.throws(() => klFullSync({ logits: z, refLogits: zr, vocabSize: 10, out: { grad: z } }), /alias|overlap|out\.grad/i);
});

// ---- grpoLossFromLogits with klEstimator 'full' ----


for (const lossType of ['grpo', 'bnpo', 'dr_grpo'] as const) {
  test(`grpoLossFromLogits klEstimator 'full' ${lossType}: loss, kl metric and gradient against float64 and finite differences`, () => {
    const c = fullKlCase(lossType.length);
    const beta = 0.3;
    const cfg = { lossType, beta: 0, epsilon: 0.2 };
    const got = grpoLossFromLogitsSync({
      logits: c.z, refLogits: c.zr, vocabSize: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp,
      temperature: c.tau, lossType, beta, klEstimator: 'full', epsilon: 0.2,
    });
    const inp = { z: refWiden(c.z), V: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp, temperature: c.tau };
    const pol = refGrpoLossFromLogits(inp, cfg);
    const kl = refKl(c.z, c.zr, c.N, c.V, c.tau);
    let want = pol.loss, klMean = 0, cnt = 0;
    const gradWant = Float64Array.from(pol.gradLogits);
    for (let n = 0; n < c.N; n++) {
      const w = aggWeight(lossType, c.S, c.T, c.mask, n) * c.mask[n];
      want += beta * w * kl.kl[n];
      for (let v = 0; v < c.V; v++) gradWant[n * c.V + v] += beta * w * kl.grad[n * c.V + v];
      if (c.mask[n]) {
        klMean += kl.kl[n];
        cnt++;
      }
    }
    assert.ok(Math.abs(got.loss - want) < 1e-6 * Math.max(1, Math.abs(want)), `loss ${got.loss} vs ${want}`);
    assert.ok(Math.abs(got.metrics.kl - klMean / cnt) < 1e-6, `kl metric ${got.metrics.kl} vs ${klMean / cnt}`);
    close(got.gradLogits as Float32Array, gradWant, 1e-5, 1e-7, 'gradLogits');
    // central finite differences of the float64 loss (policy part + β·Σ a·m·KL)
    const full = (zz: Float64Array) => {
      let L = refFusedLoss({ ...inp, z: zz }, cfg);
      const k = refKl(zz, c.zr, c.N, c.V, c.tau);
      for (let n = 0; n < c.N; n++) L += beta * aggWeight(lossType, c.S, c.T, c.mask, n) * c.mask[n] * k.kl[n];
      return L;
    };
    const h = 1e-5;
    for (const i of [0, 4, 10, 20, 33, 53]) {
      const zp = Float64Array.from(inp.z), zm = Float64Array.from(inp.z);
      zp[i] += h;
      zm[i] -= h;
      const fd = (full(zp) - full(zm)) / (2 * h);
      assert.ok(Math.abs((got.gradLogits as Float32Array)[i] - fd) < 1e-5, `grad[${i}] ${(got.gradLogits as Float32Array)[i]} vs fd ${fd}`);
    }
    // gradient: 'inplace' (policy term fused into klFull's pass over the logits): the same loss,
    // metrics and ∂L/∂ℓ bits, and the float64 gradient, written over the caller's logits
    const zc = Float32Array.from(c.z);
    const ip = grpoLossFromLogitsSync({
      logits: zc, refLogits: c.zr, vocabSize: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp,
      temperature: c.tau, lossType, beta, klEstimator: 'full', epsilon: 0.2, gradient: 'inplace',
    });
    assert.ok(ip.gradLogits === zc, 'the gradient is the logits buffer');
    assert.is(ip.loss, got.loss, 'in place: loss bits');
    assert.equal(ip.metrics, got.metrics, 'in place: metrics');
    assert.equal(Array.from(ip.gradLogp), Array.from(got.gradLogp), 'in place: gradLogp bits');
    close(zc, gradWant, 1e-5, 1e-7, 'in place: gradLogits vs float64');
  });
}

test("grpoLossFromLogits klEstimator 'full' in place with the entropy bonus and bfloat16 logits: the separate gradient's values", async () => {
  const c = fullKlCase(9);
  const o = {
    refLogits: c.zr, vocabSize: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp, temperature: c.tau,
    beta: 0.2, klEstimator: 'full' as const, entropyCoef: 0.07, lossType: 'grpo' as const, topEntropyQuantile: 0.5,
  };
  // float32: the separate form against float64 (reference: policy term + β·a·m·∇KL), then in place
  const sep = grpoLossFromLogitsSync({ ...o, logits: c.z });
  const inp = { z: refWiden(c.z), V: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp, temperature: c.tau };
  const pol = refGrpoLossFromLogits(inp, { entropyCoef: 0.07, lossType: 'grpo', topEntropyQuantile: 0.5 });
  const kl = refKl(c.z, c.zr, c.N, c.V, c.tau);
  const gradWant = Float64Array.from(pol.gradLogits);
  for (let n = 0; n < c.N; n++)
    for (let v = 0; v < c.V; v++) gradWant[n * c.V + v] += 0.2 * aggWeight('grpo', c.S, c.T, c.mask, n) * c.mask[n] * kl.grad[n * c.V + v];
  close(sep.gradLogits as Float32Array, gradWant, 1e-5, 1e-7, 'separate vs float64');
  const zc = Float32Array.from(c.z);
  const ip = await grpoLossFromLogits({ ...o, logits: zc, gradient: 'inplace' });
  assert.is(ip.loss, sep.loss);
  close(zc, gradWant, 1e-5, 1e-7, 'in place vs float64');
  // bfloat16: in place equals the separate gradient to bf16 rounding (one rounding vs two)
  const zb = refToHalf(c.z, 'bfloat16'), zrb = refToHalf(c.zr, 'bfloat16');
  const sb = grpoLossFromLogitsSync({ ...o, logits: zb, refLogits: zrb, dtype: 'bfloat16' });
  const zbc = Uint16Array.from(zb);
  const ib = grpoLossFromLogitsSync({ ...o, logits: zbc, refLogits: zrb, dtype: 'bfloat16', gradient: 'inplace' });
  assert.is(ib.loss, sb.loss);
  close(refWiden(zbc, 'bfloat16') as unknown as Float32Array, refWiden(sb.gradLogits as Uint16Array, 'bfloat16'), 1e-2, 1e-5, 'bf16 in place vs separate');
});

test("grpoLossFromLogits klEstimator 'full': async equals sync, gradient 'none', bad input named", async () => {
  const c = fullKlCase(5);
  const o = { logits: c.z, refLogits: c.zr, vocabSize: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, temperature: c.tau, beta: 0.1, klEstimator: 'full' as const };
  const s = grpoLossFromLogitsSync(o);
  const a = await grpoLossFromLogits(o);
  assert.is(a.loss, s.loss);
  assert.equal(Array.from(a.gradLogits as Float32Array), Array.from(s.gradLogits as Float32Array));
  const none = grpoLossFromLogitsSync({ ...o, gradient: 'none' });
  assert.is(none.loss, s.loss);
  assert.is(none.gradLogits, null);
  assert.throws(() => grpoLossFromLogitsSync({ ...o, gradient: 'inplace', out: { gradLogits: new Float32Array(c.N * c.V) } }), /out\.gradLogits/);
  assert.throws(() => grpoLossFromLogitsSync({ ...o, refLogits: undefined }), /refLogits/);
  assert.throws(() => grpoLossFromLogitsSync({ ...o, refLogp: new Float32Array(c.N) }), /refLogp/);
  assert.throws(() => grpoLossFromLogitsSync({ ...o, klEstimator: 'k3', refLogp: new Float32Array(c.N) }), /refLogits/);
});

test('cuda klFull (emulator): matches the CPU kernel to rounding, every dtype and thread order', () => {
  const r = rng(12);
  const N = 4, V = 300, tau = 0.9;
  const z32 = randn(r, N * V, 2), zr32 = randn(r, N * V, 2);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const z = dtype === 'float32' ? z32 : refToHalf(z32, dtype), zr = dtype === 'float32' ? zr32 : refToHalf(zr32, dtype);
    const coef = new Float32Array([1, -2, 0.5, 0]);
    const cpu = klFullSync({ logits: z, refLogits: zr, dtype, vocabSize: V, temperature: tau, coef } as never);
    const dz = DeviceTensor.fromHost(z as never, { dtype } as never), dzr = DeviceTensor.fromHost(zr as never, { dtype } as never), dc = DeviceTensor.fromHost(coef);
    for (const order of [0, 1, 2]) {
      setOrder(order, 5);
      try {
        const g = cuda.klFullSync({ logits: dz, refLogits: dzr, vocabSize: V, temperature: tau, coef: dc });
        close(g.kl.toHost() as Float32Array, cpu.kl, 1e-6, 1e-9, `${dtype} kl`);
        const gg = g.grad!.toHost() as Float32Array | Uint16Array;
        const a = dtype === 'float32' ? gg : refWiden(gg as Uint16Array, dtype), b = dtype === 'float32' ? cpu.grad! : refWiden(cpu.grad as Uint16Array, dtype);
        close(a as ArrayLike<number> as Float32Array, b as ArrayLike<number> as Float32Array, dtype === 'float32' ? 1e-6 : 1e-2, 1e-9, `${dtype} grad`);
        g.kl.dispose();
        g.grad!.dispose();
      } finally {
        setOrder(0);
      }
    }
    dz.dispose();
    dzr.dispose();
    dc.dispose();
  }
});

test.run();
