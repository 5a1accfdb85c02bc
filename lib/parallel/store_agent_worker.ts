/**
 * The worker-thread side of store_agent.ts: rank 0's rendezvous store server, and on every rank
 * the store connection that says hello, beats, records progress and answers status queries. It
 * runs on its own event loop so that a `*Sync` collective blocking the main thread stops neither
 * the server (the other ranks' diagnosis needs it) nor this rank's heartbeat (a rank waiting in a
 * collective is not hung); a stopped process (SIGSTOP) stops this thread too, so it goes silent.
 *
 * Status replies to a synchronous query go into a SharedArrayBuffer (the main thread waits on it
 * with Atomics.wait): ctrl[0] = id of the answered query, ctrl[1] = byte length, ctrl[2] = 1 ok /
 * 2 error; the JSON (or the error text) from byte 16 on.
 */
import { parentPort, workerData } from 'worker_threads';
import { StoreClient, StoreServer } from './store';

interface Data {
  rank: number;
  host: string;
  port: number;
  timeoutMs: number;
  /** Rank 0: listen here first. */
  listen?: string;
  sab: SharedArrayBuffer;
}

const d = workerData as Data;
const port = parentPort!;
const ctrl = new Int32Array(d.sab, 0, 4);
const bytes = new Uint8Array(d.sab, 16);
let server: StoreServer | null = null;
let client: StoreClient | null = null;

function replySync(id: number, ok: boolean, text: string) {
  let b = Buffer.from(text);
  if (b.length > bytes.length) b = Buffer.from(ok ? '{"gone":[],"progress":{},"silentMs":{}}' : 'reply too long');
  bytes.set(b);
  Atomics.store(ctrl, 1, b.length);
  Atomics.store(ctrl, 2, ok ? 1 : 2);
  Atomics.store(ctrl, 0, id);
  Atomics.notify(ctrl, 0);
}

async function start() {
  try {
    if (d.listen !== undefined) server = await StoreServer.listen(d.listen, d.port);
    client = await StoreClient.connect(d.host, d.port, d.timeoutMs);
    await client.hello(d.rank);
    port.postMessage({ type: 'ready' });
  } catch (e) {
    port.postMessage({ type: 'error', message: (e as Error).message });
  }
}

port.on('message', async (m: { type: string; id?: number; value?: string; sync?: boolean }) => {
  if (m.type === 'progress') {
    client?.set(`progress/${d.rank}`, m.value!).catch(() => {});
  } else if (m.type === 'status') {
    let ok = true;
    let text: string;
    try {
      if (!client) throw new Error('not connected');
      const st = await Promise.race([
        client.status(),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('store did not answer')), 2000)),
      ]);
      text = JSON.stringify(st);
    } catch (e) {
      ok = false;
      text = (e as Error).message;
    }
    if (m.sync) replySync(m.id!, ok, text);
    else port.postMessage({ type: 'status', id: m.id, ok, text });
  } else if (m.type === 'close') {
    client?.close();
    client = null;
    await server?.close();
    server = null;
    port.postMessage({ type: 'closed' });
    port.close();
  }
});

start();
