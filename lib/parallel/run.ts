/** The data-parallel side of `grpo train` (lib/trainer/run.ts): the group from the launcher's environment. */
import { DataParallel } from './data_parallel';
import { distEnv } from './env';
import { ProcessGroup } from './process_group';

/** null for a one-rank run (no launcher, or WORLD_SIZE=1): nothing changes and no Gloo is needed. */
export async function openDataParallel(o: Record<string, unknown>, log: (m: string) => void): Promise<DataParallel | null> {
  const e = distEnv();
  if (e.worldSize === 1) return null;
  const timeout = (o.distTimeout as number | undefined) ?? 300;
  if (!(timeout > 0)) throw new RangeError(`--dist-timeout: expected a number of seconds > 0 but received ${timeout}`);
  const pg = await ProcessGroup.init({ rank: e.rank, worldSize: e.worldSize, masterAddr: e.masterAddr, masterPort: e.masterPort, timeoutMs: Math.round(timeout * 1000) });
  if (e.rank === 0) log(`train: data parallel over ${e.worldSize} ranks (${e.launcher}; store ${e.masterAddr}:${e.masterPort}; Gloo; timeout ${timeout} s)`);
  return new DataParallel(pg);
}

/** Ends a data-parallel run: a barrier after success (rank 0 may still be writing), then close. */
export async function closeDataParallel(dp: DataParallel | null, ok: boolean): Promise<void> {
  if (!dp) return;
  try {
    if (ok) await dp.pg.barrier();
  } finally {
    await dp.pg.close();
  }
}
