// NCCL over device tensors (native/parallel/nccl.cc, lib/parallel/nccl.ts), opened with dlopen at
// run time. Here (no GPU, no NCCL) the tests check the errors; on a machine with a GPU and NCCL
// the 1-rank test runs the collectives (a single GPU allows no more ranks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { ncclInfo, NcclGroup } from '../lib/parallel/nccl';
import { ProcessGroup } from '../lib/parallel/process_group';
import { backend } from '../lib/index';
import { DeviceTensor, cudaAvailable } from '../lib/device';

const info = ncclInfo();
const cudaBuilt = backend().cuda.compiled;
const withNccl = info.available && cudaAvailable();
if (!withNccl) console.log(`dist_nccl.test.ts: the NCCL collectives test is skipped: ${info.available ? 'no CUDA device' : info.error}`);

test('ncclInfo says why NCCL cannot be used, and NcclGroup.init fails with that reason', async () => {
  if (info.available) return;  // a machine with NCCL: the GPU test below covers it
  assert.match(info.error, cudaBuilt ? /NCCL was not found .*install it.*NCCL_LIBRARY/ : /no CUDA backend/);
  const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 1 });
  try {
    await NcclGroup.init(pg);
    assert.unreachable('NcclGroup.init should fail without NCCL');
  } catch (e) {
    assert.match((e as Error).message, /^NcclGroup\.init: /);
    assert.ok((e as Error).message.includes(info.error));
  }
});

test('NCCL_LIBRARY naming a library that is not NCCL: the error names the missing entry point', () => {
  if (!cudaBuilt) return;  // no CUDA backend: the library is never opened
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "console.log(JSON.stringify(require('./lib/parallel/nccl').ncclInfo()))"],
    { cwd: path.resolve(__dirname, '..'), encoding: 'utf8', env: { ...process.env, NCCL_LIBRARY: 'libm.so.6' } });
  assert.is(r.status, 0, r.stderr);
  const i = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(i.available, false);
  assert.match(i.error, /the NCCL library lacks ncclGetVersion/);
});

(withNccl ? test : test.skip)('1 rank on the GPU: all-reduce sum/avg/max and broadcast of a device tensor leave it as it was', async () => {
  const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 1 });
  const g = await NcclGroup.init(pg, 30000);
  const host = Float32Array.from({ length: 1000 }, (_, i) => (i % 17) - 8.25);
  for (const op of ['sum', 'avg', 'max'] as const) {
    const t = DeviceTensor.fromHost(host);
    await g.allReduce(t, op);
    assert.equal(Array.from(t.toHost() as Float32Array), Array.from(host), op);
    t.dispose();
  }
  const t = DeviceTensor.fromHost(host);
  g.broadcastSync(t, 0);
  assert.equal(Array.from(t.toHost() as Float32Array), Array.from(host));
  t.dispose();
});

test.run();
