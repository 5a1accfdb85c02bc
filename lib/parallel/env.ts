/**
 * Where this process sits in a data-parallel run, from the launcher's environment:
 *   torchrun (and `grpo train --nproc-per-node N`): RANK, WORLD_SIZE, LOCAL_RANK,
 *     LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
 *   Open MPI's mpirun: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK,
 *     OMPI_COMM_WORLD_LOCAL_SIZE; MASTER_ADDR/MASTER_PORT as above (on one machine they default
 *     to 127.0.0.1:29500).
 * Nothing set: one rank.
 */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  launcher: 'torchrun' | 'mpirun' | 'none';
}

export const DEFAULT_MASTER_PORT = 29500;

function int(env: NodeJS.ProcessEnv, name: string, lo: number, hi: number): number {
  const s = env[name];
  const v = Number(s);
  if (s === undefined || s.trim() === '' || !Number.isInteger(v) || v < lo || v > hi)
    throw new RangeError(`data-parallel environment: expected an integer in [${lo}, ${hi}] for ${name} but received ${JSON.stringify(s)}`);
  return v;
}

export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  let launcher: DistEnv['launcher'] = 'none';
  let rank = 0, worldSize = 1, localRank = 0, localWorldSize = 1;
  if (env.WORLD_SIZE !== undefined || env.RANK !== undefined) {
    launcher = 'torchrun';
    worldSize = int(env, 'WORLD_SIZE', 1, 1 << 20);
    rank = int(env, 'RANK', 0, worldSize - 1);
    localRank = env.LOCAL_RANK !== undefined ? int(env, 'LOCAL_RANK', 0, worldSize - 1) : rank;
    localWorldSize = env.LOCAL_WORLD_SIZE !== undefined ? int(env, 'LOCAL_WORLD_SIZE', 1, worldSize) : worldSize;
  } else if (env.OMPI_COMM_WORLD_SIZE !== undefined) {
    launcher = 'mpirun';
    worldSize = int(env, 'OMPI_COMM_WORLD_SIZE', 1, 1 << 20);
    rank = int(env, 'OMPI_COMM_WORLD_RANK', 0, worldSize - 1);
    localRank = env.OMPI_COMM_WORLD_LOCAL_RANK !== undefined ? int(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0, worldSize - 1) : rank;
    localWorldSize = env.OMPI_COMM_WORLD_LOCAL_SIZE !== undefined ? int(env, 'OMPI_COMM_WORLD_LOCAL_SIZE', 1, worldSize) : worldSize;
  }
  let masterAddr = env.MASTER_ADDR ?? '';
  let masterPort = env.MASTER_PORT !== undefined ? int(env, 'MASTER_PORT', 1, 65535) : DEFAULT_MASTER_PORT;
  if (worldSize > 1 && !masterAddr) {
    // every rank on this machine: the store is local
    if (localWorldSize === worldSize) masterAddr = '127.0.0.1';
    else throw new RangeError(`data-parallel environment: ${worldSize} ranks over several machines need MASTER_ADDR (the host of rank 0) and MASTER_PORT`);
  }
  if (worldSize > 1 && launcher === 'torchrun' && env.MASTER_PORT === undefined)
    throw new RangeError('data-parallel environment: WORLD_SIZE > 1 needs MASTER_PORT (the port of the rendezvous store on rank 0)');
  if (!masterAddr) masterAddr = '127.0.0.1';
  if (!Number.isInteger(masterPort)) masterPort = DEFAULT_MASTER_PORT;
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, launcher };
}
