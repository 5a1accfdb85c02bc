/**
 * NCCL collectives over device tensors (native/parallel/nccl.cc): libnccl.so.2 is opened at run
 * time from the user's CUDA install (NCCL_LIBRARY names it), so nothing is needed to build or on
 * machines without a GPU. The unique id is made by rank 0 and handed to the others through the
 * process group's store. In place, on the addon's CUDA stream, async with *Sync twins, bounded
 * by the timeout (the communicator is aborted past it).
 */
import { native } from '../native';
import { DeviceTensor } from '../device';
import type { ProcessGroup, ReduceOp } from './process_group';

type Args = Record<string, unknown>;
interface NcclNative {
  ncclInfo(): { available: boolean; version: number; error: string };
  ncclGetUniqueId?(): Uint8Array;
  ncclInit?(a: Args, async: boolean): unknown;
  ncclAllReduce?(a: Args, async: boolean): Promise<void> | void;
  ncclBroadcast?(a: Args, async: boolean): Promise<void> | void;
}
const nn = () => native() as unknown as NcclNative;

/** Whether NCCL can be used here, its version (e.g. 22304 = 2.23.4) and otherwise why not. */
export function ncclInfo(): { available: boolean; version: number; error: string } {
  return nn().ncclInfo();
}

function need(op: string): Required<NcclNative> {
  const i = ncclInfo();
  if (!i.available) throw new Error(`${op}: ${i.error}`);
  return nn() as Required<NcclNative>;
}

function tensorOf(op: string, t: unknown): unknown {
  if (!(t instanceof DeviceTensor)) throw new TypeError(`${op}: expected a DeviceTensor for tensor but received ${(t as object)?.constructor?.name ?? typeof t}`);
  return t.handle(op);
}

export class NcclGroup {
  private constructor(private comm: unknown, readonly rank: number, readonly worldSize: number) {}

  /** One NCCL communicator over the ranks of `pg` (rank 0's unique id through its store). */
  static async init(pg: ProcessGroup, timeoutMs = pg.timeoutMs): Promise<NcclGroup> {
    const n = need('NcclGroup.init');
    const id = pg.rank === 0 ? await pg.exchange('nccl-id', Buffer.from(n.ncclGetUniqueId())) : await pg.exchange('nccl-id');
    const comm = await n.ncclInit({ id: new Uint8Array(id), rank: pg.rank, size: pg.worldSize, timeoutMs }, true);
    return new NcclGroup(comm, pg.rank, pg.worldSize);
  }

  /** In place over a float32/bfloat16/float16 device tensor. */
  allReduce(tensor: DeviceTensor, op: ReduceOp = 'sum'): Promise<void> {
    return need('NcclGroup.allReduce').ncclAllReduce({ comm: this.comm, tensor: tensorOf('NcclGroup.allReduce', tensor), op }, true) as Promise<void>;
  }
  allReduceSync(tensor: DeviceTensor, op: ReduceOp = 'sum'): void {
    need('NcclGroup.allReduceSync').ncclAllReduce({ comm: this.comm, tensor: tensorOf('NcclGroup.allReduceSync', tensor), op }, false);
  }
  broadcast(tensor: DeviceTensor, root = 0): Promise<void> {
    return need('NcclGroup.broadcast').ncclBroadcast({ comm: this.comm, tensor: tensorOf('NcclGroup.broadcast', tensor), root }, true) as Promise<void>;
  }
  broadcastSync(tensor: DeviceTensor, root = 0): void {
    need('NcclGroup.broadcastSync').ncclBroadcast({ comm: this.comm, tensor: tensorOf('NcclGroup.broadcastSync', tensor), root }, false);
  }
}
