// One rank of the data-parallel tests (test/dist*.test.ts): started as a child process with
// torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); argv[2] names the scenario.
// Prints one JSON line "RESULT {...}" for the parent to check.
import * as fs from 'fs';
import { ProcessGroup, DistError } from '../lib/parallel/process_group';
import { distEnv } from '../lib/parallel/env';

const mode = process.argv[2];
const e = distEnv();
const out = (o: unknown) => process.stdout.write('RESULT ' + JSON.stringify(o) + '\n');

// data[i] on rank r: small integers and quarters, so every sum, mean, max and min is exact in
// float32/float64/int32 and the reference is plain arithmetic
const val = (r: number, i: number, kind: string) =>
  kind === 'int32' ? ((i * 7 + r * 13) % 201) - 100 : (((i * 5 + r * 11) % 97) - 48) / 4;
const ctor = { float32: Float32Array, float64: Float64Array, int32: Int32Array } as const;

async function collectives() {
  const pg = await ProcessGroup.init({ ...e, timeoutMs: 30000 });
  const W = e.worldSize;
  const cases: { name: string; mismatches: number; first: number[] }[] = [];
  for (const kind of ['float32', 'float64', 'int32'] as const)
    for (const n of [1, 7, 1000, 300007])
      for (const op of ['sum', 'avg', 'max', 'min'] as const) {
        if (op === 'avg' && kind === 'int32') continue;
        const a = new ctor[kind](n);
        for (let i = 0; i < n; i++) a[i] = val(e.rank, i, kind);
        // the async form for most, the Sync twin for n = 7
        if (n === 7) pg.allReduceSync(a, op);
        else await pg.allReduce(a, op);
        let bad = 0;
        for (let i = 0; i < n; i++) {
          const xs = Array.from({ length: W }, (_, r) => val(r, i, kind));
          const ref = op === 'sum' ? xs.reduce((s, x) => s + x, 0) : op === 'avg' ? xs.reduce((s, x) => s + x, 0) / W : op === 'max' ? Math.max(...xs) : Math.min(...xs);
          if (a[i] !== ref) bad++;
        }
        cases.push({ name: `${kind} n=${n} ${op}`, mismatches: bad, first: Array.from(a.subarray(0, 3)) });
      }
  // broadcast from the last rank, all-gather, barrier
  const b = new Float64Array(1001).map((_, i) => (e.rank === W - 1 ? i * 0.5 : -1));
  await pg.broadcast(b, W - 1);
  const bcastBad = b.filter((x, i) => x !== i * 0.5).length;
  const g = await pg.allGather(Int32Array.of(e.rank * 10, e.rank * 10 + 1));
  await pg.barrier();
  await pg.barrier();
  let typeError = '';
  try {
    await pg.allReduce(new Uint8Array(4) as unknown as Int32Array);
  } catch (err) {
    typeError = (err as Error).message;
  }
  let avgIntError = '';
  try {
    await pg.allReduce(new Int32Array(4), 'avg');
  } catch (err) {
    avgIntError = (err as Error).message;
  }
  await pg.barrier();
  await pg.close();
  out({ rank: e.rank, cases, bcastBad, gathered: Array.from(g), typeError, avgIntError });
}

// rank `victim` exits (or stops calling collectives) before collective #2; the others report
// their error and how long it took
async function fault(kind: 'exit' | 'hang', victim: number, timeoutMs: number) {
  const pg = await ProcessGroup.init({ ...e, timeoutMs });
  await pg.allReduce(new Float32Array(16), 'sum');
  if (e.rank === victim) {
    if (kind === 'exit') process.exit(3);
    await new Promise((r) => setTimeout(r, 60000));  // alive, sockets open, never calls the next collective
    process.exit(0);
  }
  const t0 = Date.now();
  try {
    await pg.allReduce(new Float32Array(1 << 16), 'sum');
    out({ rank: e.rank, error: null });
  } catch (err) {
    out({ rank: e.rank, error: (err as Error).message, ranks: err instanceof DistError ? err.ranks : null, ms: Date.now() - t0 });
  }
  process.exit(0);
}

// *Sync collectives with a peer that is killed (SIGKILL) or stopped (SIGSTOP) by the parent while
// it waits inside allReduceSync #2. Every rank prints READY after #1; the victim then enters #2
// at once, the others wait for the parent's go file (written after the signal) and then run #2
// themselves, reporting the error and how long it took.
async function syncFault(victim: number, timeoutMs: number, goFile: string) {
  const pg = await ProcessGroup.init({ ...e, timeoutMs });
  const a = new Float32Array(16).fill(e.rank + 1);
  pg.allReduceSync(a, 'sum');
  const first = a[0];
  process.stdout.write('READY\n');
  if (e.rank === victim) {
    try {
      pg.allReduceSync(new Float32Array(1 << 16), 'sum');
    } catch {
      // the parent kills or stops this rank first; if not, it exits without a RESULT
    }
    process.exit(0);
  }
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const waitUntil = Date.now() + 60000;
  while (!fs.existsSync(goFile) && Date.now() < waitUntil) Atomics.wait(nap, 0, 0, 20);
  const t0 = Date.now();
  try {
    pg.allReduceSync(new Float32Array(1 << 16), 'sum');
    out({ rank: e.rank, first, error: null });
  } catch (err) {
    out({ rank: e.rank, first, error: (err as Error).message, ranks: err instanceof DistError ? err.ranks : null, ms: Date.now() - t0 });
  }
  process.exit(0);
}

async function main() {
  if (mode === 'collectives') await collectives();
  else if (mode === 'exit' || mode === 'hang') await fault(mode, Number(process.argv[3]), Number(process.argv[4]));
  else if (mode === 'sync-fault') await syncFault(Number(process.argv[3]), Number(process.argv[4]), process.argv[5]);
  else if (mode === 'no-gloo') {
    try {
      await ProcessGroup.init({ ...e, timeoutMs: 1000 });
      out({ error: null });
    } catch (err) {
      out({ error: (err as Error).message });
    }
  } else throw new Error(`dist_child: unknown mode ${mode}`);
}
main().catch((err) => {
  fs.writeSync(2, `rank ${e.rank}: ${err?.stack ?? err}\n`);
  process.exit(1);
});
