// The *Sync collectives' faults (lib/parallel/process_group.ts, store_agent.ts): two ranks as
// processes over loopback, a peer killed (SIGKILL) or stopped (SIGSTOP) while inside
// allReduceSync. Skipped, with the reason, where grpo_dist.node was not built (no Gloo).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NO_GLOO, startRanks } from './dist_helpers';

const glooTest = NO_GLOO ? test.skip : test;
if (NO_GLOO) console.log(`dist_sync.test.ts: Gloo collectives skipped: ${NO_GLOO}`);

// *Sync twins: the store (rank 0) and the heartbeats run on a worker thread, so a rank blocked in
// allReduceSync still serves and beats, and its failure path asks the store who failed.
async function syncFault(signal: 'SIGKILL' | 'SIGSTOP', victim: number, timeoutMs: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-sync-'));
  const go = path.join(dir, 'go');
  const ranks = await startRanks(2, ['test/dist_child.ts', 'sync-fault', String(victim), String(timeoutMs), go]);
  const survivor = ranks[1 - victim];
  try {
    const deadline = Date.now() + 60000;
    while (!ranks.every((r) => r.stdout.includes('READY'))) {
      if (Date.now() > deadline || ranks.some((r) => r.proc.exitCode !== null)) assert.unreachable(`ranks not ready:\n${ranks.map((r) => r.stderr).join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // let the victim get inside allReduceSync #2 (it enters right after READY)
    await new Promise((r) => setTimeout(r, 300));
    ranks[victim].proc.kill(signal);
    fs.writeFileSync(go, '');
    // never waits forever: the survivor must finish well within this
    const code = await Promise.race([survivor.done, new Promise<string>((r) => setTimeout(() => r('hung'), 60000).unref())]);
    assert.is(code, 0, `survivor: ${code}\n${survivor.stderr}`);
    const res = survivor.result();
    assert.ok(res, survivor.stderr);
    assert.is(res!.first, 3, 'allReduceSync #1: 1 + 2');
    return res!;
  } finally {
    for (const r of ranks) if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
    await Promise.all(ranks.map((r) => r.done));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

glooTest('allReduceSync, peer killed mid-call: fails at once on rank 0 and names rank 1', async () => {
  const res = await syncFault('SIGKILL', 1, 20000);
  assert.match(res.error as string, /^rank 0: collective #2 \(allReduce\) failed: rank 1 exited/);
  assert.equal(res.ranks, [1]);
  assert.ok((res.ms as number) < 10000, `took ${res.ms} ms (a socket error, not the 20 s timeout)`);
});

glooTest('allReduceSync, peer stopped (SIGSTOP) mid-call: fails after the timeout on rank 0 and names rank 1', async () => {
  const res = await syncFault('SIGSTOP', 1, 3000);
  assert.match(res.error as string, /^rank 0: collective #2 \(allReduce\) failed: rank 1 stopped responding \(no heartbeat for/);
  assert.equal(res.ranks, [1]);
  assert.ok((res.ms as number) >= 2900 && (res.ms as number) < 15000, `took ${res.ms} ms`);
});

glooTest('allReduceSync, rank 0 (the store) killed or stopped: rank 1 fails within the timeout and names rank 0', async () => {
  for (const sig of ['SIGKILL', 'SIGSTOP'] as const) {
    const res = await syncFault(sig, 0, 1500);
    assert.match(res.error as string, /^rank 1: collective #2 \(allReduce\) failed: rank 0 exited or hung/, sig);
    assert.equal(res.ranks, [0], sig);
    assert.ok((res.ms as number) < 15000, `${sig}: took ${res.ms} ms`);
  }
});

test.run();
