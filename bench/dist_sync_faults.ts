// Time from the surviving rank's allReduceSync call to its error naming the failed rank, for a peer
// killed (SIGKILL) or stopped (SIGSTOP) inside allReduceSync #2; rank 1 or rank 0 (the store's
// host) as the victim. 2 ranks over loopback, the rank program of test/dist_sync.test.ts.
// Usage: node --import tsx bench/dist_sync_faults.ts [reps=3] [timeoutMs=3000]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startRanks } from '../test/dist_helpers';

async function once(signal: 'SIGKILL' | 'SIGSTOP', victim: number, timeoutMs: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-sync-bench-'));
  const go = path.join(dir, 'go');
  const ranks = await startRanks(2, ['test/dist_child.ts', 'sync-fault', String(victim), String(timeoutMs), go]);
  try {
    while (!ranks.every((r) => r.stdout.includes('READY'))) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    ranks[victim].proc.kill(signal);
    fs.writeFileSync(go, '');
    await ranks[1 - victim].done;
    const res = ranks[1 - victim].result()!;
    return { ms: res.ms as number, named: JSON.stringify(res.ranks), text: String(res.error).split(' [')[0] };
  } finally {
    for (const r of ranks) if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
    await Promise.all(ranks.map((r) => r.done));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(async () => {
  const reps = Number(process.argv[2] ?? 3), timeoutMs = Number(process.argv[3] ?? 3000);
  console.log(`load: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; timeout ${timeoutMs} ms; ${reps} reps`);
  console.log('| victim | signal | median ms to error (runs) | ranks named | error |\n|---|---|---|---|---|');
  for (const victim of [1, 0])
    for (const sig of ['SIGKILL', 'SIGSTOP'] as const) {
      const rs = [];
      for (let i = 0; i < reps; i++) rs.push(await once(sig, victim, timeoutMs));
      const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
      console.log(`| ${victim} | ${sig} | ${ms[ms.length >> 1]} (${ms.join(', ')}) | ${[...new Set(rs.map((r) => r.named))].join(' ')} | ${rs[0].text} |`);
    }
  console.log(`load: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
})();
