// cuda.grpoLossFromLogits with klEstimator 'full' (device tensors, through the CUDA emulator):
// the device composition (fused loss + grpoLoss weights + the klFull kernel, separate gradient,
// in place, none) gives the host form's loss, metrics, ℓ, H, ∂L/∂ℓ and gradient to rounding,
// and both match the float64 reference (policy term + β·Σ a_n·m_n·KL_n, reference/kl_full.ts);
// every emulator thread order; bad input named; no device memory left behind.
import { EmuAddon, ON_GPU, ORDERS, setOrder, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { grpoLossFromLogitsSync } from '../lib';
import { cuda, deviceMemory, DeviceTensor } from '../lib/device';
import { native } from '../lib/native';
import type { GrpoLossConfig } from '../lib/ops/grpo_loss';
import { close } from './helpers';
import { refGrpoLossFromLogits } from './reference/grpo_loss_from_logits';
import { aggWeight, fullKlCase, refKl } from './reference/kl_full';
import { refToHalf, refWiden } from './reference/logprobs';


const CONFIGS: { name: string; cfg: GrpoLossConfig & { lossType: 'grpo' | 'bnpo' | 'dr_grpo' } }[] = [
  { name: 'grpo', cfg: { lossType: 'grpo', epsilon: 0.2 } },
  { name: 'bnpo + entropy bonus + top-entropy', cfg: { lossType: 'bnpo', epsilon: 0.2, entropyCoef: 0.07, topEntropyQuantile: 0.5 } },
  { name: 'dr_grpo sequence-level', cfg: { lossType: 'dr_grpo', importanceSamplingLevel: 'sequence' } },
];
const BETA = 0.3;

function upload(c: ReturnType<typeof fullKlCase>, dtype: 'float32' | 'bfloat16') {
  const z = dtype === 'float32' ? c.z : refToHalf(c.z, dtype), zr = dtype === 'float32' ? c.zr : refToHalf(c.zr, dtype);
  return {
    hz: z, hzr: zr,
    d: {
      logits: DeviceTensor.fromHost(z as never, { dtype } as never), refLogits: DeviceTensor.fromHost(zr as never, { dtype } as never),
      targets: DeviceTensor.fromHost(c.targets), advantages: DeviceTensor.fromHost(c.advantages), mask: DeviceTensor.fromHost(c.mask),
      oldLogp: DeviceTensor.fromHost(c.oldLogp),
    },
  };
}
const wide = (x: Float32Array | Uint16Array, dtype: 'float32' | 'bfloat16') => (dtype === 'float32' ? x : refWiden(x as Uint16Array, dtype));

for (const dtype of ['float32', 'bfloat16'] as const) {
  for (const { name, cfg } of CONFIGS) {
    test(`cuda grpoLossFromLogits 'full' ${dtype} ${name}: separate, in place and none equal the host form and float64`, async () => {
      const c = fullKlCase(name.length, 37);
      const before = deviceMemory().liveBuffers;
      const { hz, hzr, d } = upload(c, dtype);
      const hostOpts = {
        refLogits: hzr, dtype, vocabSize: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp,
        temperature: c.tau, beta: BETA, klEstimator: 'full' as const, ...cfg,
      };
      const host = grpoLossFromLogitsSync({ ...hostOpts, logits: hz } as never);
      // float64: the policy term's reference plus β·a_n·m_n·(KL_n, ∇KL_n), on the logits as stored
      const zw = refWiden(hz as never, dtype), zrw = refWiden(hzr as never, dtype);
      const pol = refGrpoLossFromLogits({ z: zw, V: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp, temperature: c.tau }, cfg);
      const kl = refKl(zw, zrw, c.N, c.V, c.tau);
      let want = pol.loss;
      const gradWant = Float64Array.from(pol.gradLogits);
      for (let n = 0; n < c.N; n++) {
        const w = BETA * aggWeight(cfg.lossType, c.S, c.T, c.mask, n) * c.mask[n];
        want += w * kl.kl[n];
        for (let v = 0; v < c.V; v++) gradWant[n * c.V + v] += w * kl.grad[n * c.V + v];
      }
      const gtol = dtype === 'float32' ? 1e-5 : 1e-2, gatol = dtype === 'float32' ? 1e-7 : 1e-4;
      assert.ok(Math.abs(host.loss - want) < 1e-5 * Math.max(1, Math.abs(want)), `host loss ${host.loss} vs float64 ${want}`);
      const devOpts = {
        ...d, temperature: c.tau, vocabSize: c.V, beta: BETA, klEstimator: 'full' as const, ...cfg,
      };
      for (const { name: order, order: o } of ORDERS) {
        setOrder(o, 3);
        try {
          for (const gradient of ['separate', 'none', 'inplace'] as const) {
            const logits = gradient === 'inplace' ? DeviceTensor.fromHost(hz as never, { dtype } as never) : d.logits;
            const useAsync = o === 1;  // the async form once per gradient mode
            const o2 = { ...devOpts, logits, gradient };
            const got = useAsync ? await cuda.grpoLossFromLogits(o2) : cuda.grpoLossFromLogitsSync(o2);
            const what = `${dtype} ${name} ${gradient} ${order}`;
            assert.ok(Math.abs(got.loss - host.loss) <= 1e-6 * Math.max(1, Math.abs(host.loss)), `${what}: loss ${got.loss} vs host ${host.loss}`);
            assert.ok(Math.abs(got.loss - want) < 1e-5 * Math.max(1, Math.abs(want)), `${what}: loss vs float64`);
            for (const k of Object.keys(host.metrics) as (keyof typeof host.metrics)[])
              assert.ok(Math.abs(got.metrics[k] - host.metrics[k]) <= 1e-6 * Math.max(1, Math.abs(host.metrics[k])), `${what}: metrics.${k} ${got.metrics[k]} vs ${host.metrics[k]}`);
            close(got.logp.toHost() as Float32Array, host.logp, 1e-6, 1e-7, `${what}: logp`);
            close(got.entropy.toHost() as Float32Array, host.entropy, 1e-5, 1e-7, `${what}: entropy`);
            close(got.gradLogp.toHost() as Float32Array, host.gradLogp, 1e-5, 1e-8, `${what}: gradLogp`);
            if (gradient === 'none') {
              assert.is(got.gradLogits, null);
            } else {
              if (gradient === 'inplace') assert.ok(got.gradLogits === logits, 'in place: the gradient is the logits tensor');
              const g = wide(got.gradLogits!.toHost() as Float32Array | Uint16Array, dtype);
              close(g, wide(host.gradLogits as Float32Array | Uint16Array, dtype), gtol, gatol, `${what}: gradLogits vs host`);
              close(g, gradWant, gtol, gatol, `${what}: gradLogits vs float64`);
            }
            for (const t of [got.logp, got.entropy, got.gradLogp, got.gradLogits]) t?.dispose();
            if (gradient === 'inplace') logits.dispose();
          }
        } finally {
          setOrder(0);
        }
      }
      for (const t of Object.values(d)) t.dispose();
      assert.is(deviceMemory().liveBuffers, before, 'every temporary device tensor was freed');
    });
  }
}

test("cuda grpoLossFromLogits 'full': bad input named, nothing written, no tensor left", async () => {
  const c = fullKlCase(4, 37);
  const { d } = upload(c, 'float32');
  const before = deviceMemory().liveBuffers;
  const o = { ...d, temperature: c.tau, vocabSize: c.V, beta: 0.1, klEstimator: 'full' as const };
  assert.throws(() => cuda.grpoLossFromLogitsSync({ ...o, refLogits: undefined }), /DeviceTensor for refLogits/);
  const short = DeviceTensor.fromHost(new Float32Array(c.N));
  assert.throws(() => cuda.grpoLossFromLogitsSync({ ...o, refLogits: short }), /refLogits/);
  short.dispose();
  assert.throws(() => cuda.grpoLossFromLogitsSync({ ...o, refLogp: d.oldLogp }), /refLogp/);
  assert.throws(() => cuda.grpoLossFromLogitsSync({ ...o, klEstimator: 'k3', refLogp: d.oldLogp } as never), /refLogits/);
  // in place over the logits while the same tensor is the reference: refused by name
  assert.throws(() => cuda.grpoLossFromLogitsSync({ ...o, refLogits: d.logits, gradient: 'inplace' }), /refLogits.*logits/);
  await cuda.grpoLossFromLogits({ ...o, refLogits: d.logits, gradient: 'inplace' }).then(() => assert.unreachable('resolved'), (e: Error) => assert.match(e.message, /refLogits/));
  // the first step's validation (a bad epsilon) names the option and leaks nothing
  assert.throws(() => cuda.grpoLossFromLogitsSync({ ...o, epsilon: -1 }), /epsilon/);
  assert.is(deviceMemory().liveBuffers, before, 'no tensor left behind by the refusals');
  // the same tensor as logits and refLogits with a separate gradient is harmless: KL = 0, the policy gradient
  const same = cuda.grpoLossFromLogitsSync({ ...o, refLogits: d.logits });
  const { refLogits: _r, klEstimator: _k, ...rest } = o;
  const plain = cuda.grpoLossFromLogitsSync({ ...rest, beta: 0 });
  assert.is(same.metrics.kl, 0);
  close(same.gradLogits!.toHost() as Float32Array, plain.gradLogits!.toHost() as Float32Array, 1e-6, 1e-9, 'same tensor: policy gradient only');
  for (const r of [same, plain]) for (const t of [r.logp, r.entropy, r.gradLogp, r.gradLogits]) t?.dispose();
  // the package entry point routes device tensors to this form, and names a host refLogits among device tensors
  const routed = grpoLossFromLogitsSync(o);
  const direct = cuda.grpoLossFromLogitsSync(o);
  assert.is(routed.loss, direct.loss);
  assert.throws(() => grpoLossFromLogitsSync({ ...o, refLogits: c.zr } as never), /refLogits is a host array|DeviceTensor.*refLogits|refLogits.*host/);
  for (const r of [routed, direct]) for (const t of [r.logp, r.entropy, r.gradLogp, r.gradLogits]) t?.dispose();
  for (const t of Object.values(d)) t.dispose();
});

test("grpoLossFromLogits 'full' with rollout IS: the IS weight on the policy term only (TRL: the KL is added after it); host separate = in place = device", async () => {
  const c = fullKlCase(8, 37);
  const beta = 0.25;
  const rolloutLogp = Float32Array.from(c.oldLogp, (x, i) => x + 0.3 * Math.sin(i + 1));
  const cfg = { lossType: 'grpo' as const, rolloutImportanceSamplingMode: 'token_truncate' as const, rolloutImportanceSamplingThreshold: 1.2 };
  const base = { vocabSize: c.V, targets: c.targets, advantages: c.advantages, mask: c.mask, oldLogp: c.oldLogp, rolloutLogp, temperature: c.tau, ...cfg };
  const full = grpoLossFromLogitsSync({ ...base, logits: c.z, refLogits: c.zr, beta, klEstimator: 'full' });
  // the policy term alone (IS on, β = 0) from the plain fused op, plus β·a_n·m_n·KL_n in float64
  const pol = grpoLossFromLogitsSync({ ...base, logits: c.z });
  const kl = refKl(c.z, c.zr, c.N, c.V, c.tau);
  let want = pol.loss;
  const gradWant = Float64Array.from(pol.gradLogits as Float32Array);
  for (let n = 0; n < c.N; n++) {
    const w = beta * aggWeight('grpo', c.S, c.T, c.mask, n) * c.mask[n];
    want += w * kl.kl[n];
    for (let v = 0; v < c.V; v++) gradWant[n * c.V + v] += w * kl.grad[n * c.V + v];
  }
  assert.ok(Math.abs(full.loss - want) < 1e-6 * Math.max(1, Math.abs(want)), `loss ${full.loss} vs ${want}`);
  close(full.gradLogits as Float32Array, gradWant, 1e-5, 1e-7, 'separate gradient');
  assert.ok(pol.metrics.isWeightMean !== 1, 'the IS weight is active in this case');
  const zc = Float32Array.from(c.z);
  const ip = grpoLossFromLogitsSync({ ...base, logits: zc, refLogits: c.zr, beta, klEstimator: 'full', gradient: 'inplace' });
  assert.is(ip.loss, full.loss);
  close(zc, gradWant, 1e-5, 1e-7, 'in place gradient');
  const { d } = upload(c, 'float32');
  const dr = DeviceTensor.fromHost(rolloutLogp);
  for (const gradient of ['separate', 'inplace'] as const) {
    const logits = gradient === 'inplace' ? DeviceTensor.fromHost(c.z) : d.logits;
    const g = cuda.grpoLossFromLogitsSync({ ...d, logits, rolloutLogp: dr, temperature: c.tau, vocabSize: c.V, beta, klEstimator: 'full', gradient, ...cfg });
    assert.ok(Math.abs(g.loss - full.loss) <= 1e-6 * Math.max(1, Math.abs(full.loss)), `device ${gradient} loss ${g.loss} vs ${full.loss}`);
    close(g.gradLogits!.toHost() as Float32Array, gradWant, 1e-5, 1e-7, `device ${gradient} gradient`);
    for (const t of [g.logp, g.entropy, g.gradLogp, g.gradLogits]) t?.dispose();
  }
  for (const t of [...Object.values(d), dr]) t.dispose();
});

test("cuda grpoLossFromLogits 'full': a CUDA failure in the last step (klFull) frees every tensor the call made, keeps the caller's", async () => {
  if (ON_GPU) return;  // the emulator's fault injection
  const c = fullKlCase(6, 37);
  const { d } = upload(c, 'float32');
  const addon = native() as unknown as Record<string, unknown> & EmuAddon;
  const real = addon.klFullCuda as (a: unknown, async: boolean) => unknown;
  const before = deviceMemory().liveBuffers;
  addon.klFullCuda = (a: unknown, async: boolean) => {
    addon.emuFailNextLaunch(2);  // cudaErrorMemoryAllocation, raised by klFull's kernel launch
    return real(a, async);
  };
  try {
    for (const gradient of ['separate', 'inplace', 'none'] as const) {
      const o = { ...d, temperature: c.tau, vocabSize: c.V, beta: 0.1, klEstimator: 'full' as const, gradient };
      assert.throws(() => cuda.grpoLossFromLogitsSync(o), /memory|alloc|kl_full/i, `${gradient} sync`);
      await cuda.grpoLossFromLogits(o).then(() => assert.unreachable('resolved'), (e: Error) => assert.match(e.message, /memory|alloc|kl_full/i));
      assert.is(deviceMemory().liveBuffers, before, `${gradient}: no tensor left behind`);
    }
  } finally {
    addon.klFullCuda = real;
  }
  assert.equal(Array.from(d.logits.toHost() as Float32Array), Array.from(c.z), 'the caller\'s logits are intact and usable');
  for (const t of Object.values(d)) t.dispose();
});

test.run();
