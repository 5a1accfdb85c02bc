// The CUDA emulator itself (cuda/emu): barriers, warp shuffles and votes, atomics, shared
// memory, bounds checking, under every thread order, and proof that it catches broken kernels
// (a missing barrier, an off-by-one bound). Device tensors: allocate, upload, download,
// dispose, the finalizer, no leaks over 10k cycles, mixed host/device inputs rejected.
import { EMU_ADDON, EmuAddon, ON_GPU, ORDERS, useEmulatorAddon } from './cuda_emu_addon';
useEmulatorAddon();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as v8 from 'v8';
import * as vm from 'vm';

import { cuda, cudaAvailable, DeviceTensor, deviceMemory, placement } from '../lib/device';
import { native } from '../lib/native';

const emu = () => native() as unknown as EmuAddon;

function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

// On a real GPU (npm run test:gpu) only the device-tensor tests apply.
const emuTest = ON_GPU ? test.skip : test;

emuTest('the emulator addon is the one loaded and reports an emulated device', () => {
  assert.ok(process.env.GRPO_KERNELS_ADDON === EMU_ADDON);
  assert.ok(cudaAvailable());
  const b = native().backend();
  assert.ok(b.cuda.compiled);
  assert.is(b.cuda.archList, 'emulated');
  assert.match(b.cuda.devices[0].name, /emulator/);
});

for (const { name, order } of ORDERS) {
  for (const t of ['reduce', 'sum', 'scale', 'warp', 'atomics']) {
    emuTest(`emulator self-test '${t}' passes with ${name} thread order`, () => {
      emu().emuSetOrder(order, 11);
      assert.is(emu().emuSelfTest(t), '');
      emu().emuSetOrder(0);
    });
  }
}

emuTest('a kernel with a missing __syncthreads gives a wrong result (forward and shuffled orders)', () => {
  for (const order of [0, 2]) {
    emu().emuSetOrder(order, 3);
    for (let rep = 0; rep < 3; rep++) assert.match(emu().emuSelfTest('reduce-missing-barrier'), /sum nan|sum -nan|!=/);
  }
  emu().emuSetOrder(0);
});

emuTest('an off-by-one read bound gives a wrong result, an off-by-one write is an illegal address', () => {
  for (const { order } of ORDERS) {
    emu().emuSetOrder(order, 5);
    assert.match(emu().emuSelfTest('sum-read-past-end'), /nan/);
    assert.match(emu().emuSelfTest('scale-write-past-end'), /illegal memory access.*cudaErrorIllegalAddress/);
  }
  emu().emuSetOrder(0);
});

emuTest('a barrier reached by only part of a warp is reported (barrier divergence), never a hang', () => {
  assert.match(emu().emuSelfTest('divergent-barrier'), /unspecified launch failure/);
});

test('device tensors: upload, download, dtype, shape', async () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const t = DeviceTensor.fromHost(a, { shape: [2, 3] });
  assert.is(t.dtype, 'float32');
  assert.equal([...t.shape], [2, 3]);
  assert.is(t.byteLength, 24);
  assert.equal(Array.from(t.toHost()), Array.from(a));
  const u = await DeviceTensor.upload(new Uint16Array([1, 2, 3]), { dtype: 'bfloat16' });
  assert.is(u.dtype, 'bfloat16');
  assert.equal(Array.from(await u.download()), [1, 2, 3]);
  const i = DeviceTensor.fromHost(new Int32Array([7, -1]));
  assert.is(i.dtype, 'int32');
  const out = new Int32Array(2);
  assert.is(i.toHost(out), out);
  assert.equal(Array.from(out), [7, -1]);
  for (const x of [t, u, i]) x.dispose();
  t.dispose();  // idempotent
  assert.ok(t.disposed);
  assert.throws(() => t.toHost(), /disposed/);
});

test('device tensors: bad arguments are named errors', () => {
  assert.throws(() => DeviceTensor.fromHost(new Uint16Array(3)), /dtype/);
  assert.throws(() => DeviceTensor.fromHost(new Float32Array(3), { shape: [2, 2] }), /shape/);
  assert.throws(() => DeviceTensor.fromHost(new Float32Array(3), { dtype: 'int32' }), /Int32Array/);
  assert.throws(() => DeviceTensor.empty('float8' as never, [1]), /dtype/);
  const t = DeviceTensor.empty('float32', [4]);
  assert.throws(() => t.toHost(new Float32Array(3)), /out/);
  t.dispose();
});

test('mixing host and device inputs is a clear error', () => {
  const t = DeviceTensor.empty('float32', [4]);
  assert.throws(() => placement('klPenalty', { logp: t, refLogp: new Float32Array(4) }), /logp is a DeviceTensor but refLogp is a host array/);
  assert.is(placement('klPenalty', { logp: t, refLogp: t, grad: undefined }), 'cuda');
  assert.is(placement('klPenalty', { logp: new Float32Array(1) }), 'cpu');
  t.dispose();
});

test('device tensors: no leak over 10k allocate/free cycles (live bytes back to 0, RSS flat)', () => {
  const gc = exposeGc();
  const before = deviceMemory();
  const host = new Float32Array(1024);
  const cycle = (n: number) => {
    for (let k = 0; k < n; k++) {
      const t = DeviceTensor.fromHost(host);
      t.dispose();
    }
  };
  cycle(1000);  // warm up allocator and JIT
  gc();
  const rss0 = process.memoryUsage().rss;
  cycle(10000);
  gc();
  const rss1 = process.memoryUsage().rss;
  const after = deviceMemory();
  assert.is(after.liveBytes, before.liveBytes);
  assert.is(after.liveBuffers, before.liveBuffers);
  // 10k x 4 KiB = 40 MiB went through the allocator: a leak of any of it would show
  assert.ok(rss1 - rss0 < 8 << 20, `RSS grew by ${((rss1 - rss0) / 1048576).toFixed(1)} MiB over 10k cycles`);
});

test('device tensors: a forgotten tensor is freed by the finalizer', async () => {
  const gc = exposeGc();
  const before = deviceMemory().liveBytes;
  (() => {
    for (let k = 0; k < 200; k++) DeviceTensor.fromHost(new Float32Array(4096));
  })();
  assert.ok(deviceMemory().liveBytes >= before + 200 * 4096 * 4);
  for (let k = 0; k < 20 && deviceMemory().liveBytes > before; k++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.is(deviceMemory().liveBytes, before);
});

emuTest('a failing kernel rejects the promise (sync: throws) with the CUDA error text; outputs are freed, the process lives', async () => {
  const dl = DeviceTensor.fromHost(new Float32Array([-1, -2])), dr = DeviceTensor.fromHost(new Float32Array([-2, -1]));
  const live = deviceMemory().liveBuffers;
  emu().emuFailNextLaunch(700);  // cudaErrorIllegalAddress
  let err: Error | undefined;
  await cuda.klPenalty({ logp: dl, refLogp: dr }).catch((e: Error) => (err = e));
  assert.ok(err, 'rejected');
  assert.match(err!.message, /kl_penalty_kernel: an illegal memory access was encountered \(cudaErrorIllegalAddress\)/);
  emu().emuFailNextLaunch(4);  // cudaErrorLaunchFailure
  assert.throws(() => cuda.klPenaltySync({ logp: dl, refLogp: dr }), /unspecified launch failure/);
  assert.is(deviceMemory().liveBuffers, live, 'the outputs of the failed calls were freed');
  const ok = cuda.klPenaltySync({ logp: dl, refLogp: dr });  // and the next call works
  assert.ok(Math.abs((ok.kl.toHost() as Float32Array)[0] - (Math.exp(-1) - (-1) - 1)) < 1e-6);
  for (const t of [dl, dr, ok.kl, ok.grad]) t?.dispose();
});

test('an async copy keeps its tensor alive through dispose()', async () => {
  const t = DeviceTensor.fromHost(new Float32Array([1, 2, 3]));
  const p = t.download();
  t.dispose();
  assert.equal(Array.from(await p), [1, 2, 3]);
});

test.run();
