// Collectives of data-parallel training (lib/parallel/process_group.ts over native/parallel/ Gloo): two
// ranks as processes over loopback. Skipped, with the reason, where grpo_dist.node was not built
// (no Gloo: apt-get install libgloo-dev).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NO_GLOO, startRanks } from './dist_helpers';
import { distEnv } from '../lib/parallel/env';

const glooTest = NO_GLOO ? test.skip : test;
if (NO_GLOO) console.log(`dist.test.ts: Gloo collectives skipped: ${NO_GLOO}`);

const val = (r: number, i: number, kind: string) =>
  kind === 'int32' ? ((i * 7 + r * 13) % 201) - 100 : (((i * 5 + r * 11) % 97) - 48) / 4;

glooTest('2 ranks: all-reduce sum/avg/max/min exact for float32/float64/int32 at 1, 7, 1000, 300007 elements; broadcast; all-gather; bad input', async () => {
  const ranks = await startRanks(2, ['test/dist_child.ts', 'collectives']);
  const codes = await Promise.all(ranks.map((r) => r.done));
  assert.equal(codes, [0, 0], ranks.map((r) => r.stderr).join('\n'));
  for (const rk of ranks) {
    const res = rk.result()!;
    const cases = res.cases as { name: string; mismatches: number; first: number[] }[];
    assert.is(cases.length, 3 * 4 * 4 - 4);
    for (const c of cases) {
      assert.is(c.mismatches, 0, c.name);
      // the parent's own reference for the first elements
      const [kind, , op] = c.name.split(' ');
      c.first.forEach((x, i) => {
        const a = val(0, i, kind), b = val(1, i, kind);
        const ref = op === 'sum' ? a + b : op === 'avg' ? (a + b) / 2 : op === 'max' ? Math.max(a, b) : Math.min(a, b);
        assert.is(x, ref, `${c.name} [${i}]`);
      });
    }
    assert.is(res.bcastBad, 0);
    assert.equal(res.gathered, [0, 1, 10, 11]);
    assert.match(res.typeError as string, /expected a Float32Array, Float64Array or Int32Array for data but received Uint8Array/);
    assert.match(res.avgIntError as string, /'avg' needs a Float32Array or Float64Array/);
  }
});

glooTest('a rank that exits: the other\'s collective fails at once and names it', async () => {
  const ranks = await startRanks(2, ['test/dist_child.ts', 'exit', '1', '20000']);
  const codes = await Promise.all(ranks.map((r) => r.done));
  assert.is(codes[1], 3);
  const res = ranks[0].result();
  assert.ok(res, ranks[0].stderr);
  assert.match(res!.error as string, /rank 1 exited/);
  assert.equal(res!.ranks, [1]);
  // a socket error, not the 20 s timeout
  assert.ok((res!.ms as number) < 10000, `took ${res!.ms} ms`);
});

glooTest('a rank that hangs: the other\'s collective fails after the timeout and names it', async () => {
  const ranks = await startRanks(2, ['test/dist_child.ts', 'hang', '1', '1500']);
  const res = await ranks[0].done.then(() => ranks[0].result());
  ranks[1].proc.kill('SIGKILL');
  await ranks[1].done;
  assert.ok(res, ranks[0].stderr);
  assert.match(res!.error as string, /rank 1 did not reach it within 1500 ms/);
  assert.equal(res!.ranks, [1]);
  assert.ok((res!.ms as number) >= 1400 && (res!.ms as number) < 15000, `took ${res!.ms} ms`);
});

test('without the Gloo addon, more than one rank says what to install', async () => {
  const ranks = await startRanks(2, ['test/dist_child.ts', 'no-gloo'], { GRPO_DIST_ADDON: '/nonexistent/grpo_dist.node' });
  await Promise.all(ranks.map((r) => r.done));
  for (const rk of ranks) {
    const res = rk.result();
    assert.ok(res, rk.stderr);
    assert.match(res!.error as string, /apt-get install libgloo-dev/);
    assert.match(res!.error as string, /rebuild/);
  }
});

test('launcher environments: torchrun, mpirun, none; bad values name the variable', () => {
  assert.equal(distEnv({}), { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500, launcher: 'none' });
  assert.equal(distEnv({ RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'node0', MASTER_PORT: '1234' }),
    { rank: 1, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: 'node0', masterPort: 1234, launcher: 'torchrun' });
  assert.equal(distEnv({ OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '3', OMPI_COMM_WORLD_LOCAL_RANK: '2', OMPI_COMM_WORLD_LOCAL_SIZE: '3' }),
    { rank: 2, worldSize: 3, localRank: 2, localWorldSize: 3, masterAddr: '127.0.0.1', masterPort: 29500, launcher: 'mpirun' });
  assert.throws(() => distEnv({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '1' }), /expected an integer in \[0, 1\] for RANK but received "2"/);
  assert.throws(() => distEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'a' }), /needs MASTER_PORT/);
  assert.throws(() => distEnv({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_SIZE: '2' }), /need MASTER_ADDR/);
});

test.run();
