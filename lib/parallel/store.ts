/**
 * The rendezvous store of a data-parallel run: a small TCP key-value server on rank 0
 * (MASTER_ADDR:MASTER_PORT, as torchrun's), and its client. Gloo's rendezvous (native/parallel/
 * store_client.cc, the same wire format) publishes each rank's pair addresses through it; the
 * NCCL unique id would be handed out the same way. It also knows which ranks are alive (each
 * rank's client says hello with its rank; a closed connection marks that rank gone) and how far
 * each rank got (`progress/<rank>`), so a failed collective can name the rank that died or hung.
 *
 * Wire format (little endian): request u8 op, u32 keyLen, key, u32 valLen, val.
 *   'S' set key = val                      -> u8 0
 *   'G' get key (val = u32 timeout in ms)  -> u8 status (0 ok, 1 timed out), u32 len, data
 *   'H' hello: key = this client's rank    -> u8 0
 *   'B' heartbeat: key = this client's rank -> u8 0 (the server notes the time)
 *   'L' status                             -> u8 0, u32 len, JSON {gone: number[], progress: {rank: value}, silentMs: {rank: ms}}
 * A rank's client beats every HEARTBEAT_MS: a rank that is stopped or stuck (SIGSTOP, a deadlock,
 * swapping) goes silent while its sockets stay open. ProcessGroup runs the server and the beating
 * client on a worker thread (store_agent.ts), so a *Sync collective on the main thread stops neither.
 */
import * as net from 'net';

interface Waiter {
  resolve: (v: Buffer) => void;
  timer: NodeJS.Timeout;
}

function frame(status: number, data?: Buffer): Buffer {
  const head = Buffer.alloc(data ? 5 : 1);
  head[0] = status;
  if (data) head.writeUInt32LE(data.length, 1);
  return data ? Buffer.concat([head, data]) : head;
}

/** The server (rank 0). close() stops it. */
export class StoreServer {
  private server: net.Server;
  private map = new Map<string, Buffer>();
  private waiters = new Map<string, Waiter[]>();
  private gone = new Set<number>();
  private beats = new Map<number, number>();
  private sockets = new Set<net.Socket>();
  private constructor(server: net.Server) {
    this.server = server;
  }

  /** Listens on host:port (port 0: any free port; see `port`). */
  static listen(host: string, port: number): Promise<StoreServer> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer();
      const s = new StoreServer(srv);
      srv.on('connection', (sock) => s.serve(sock));
      srv.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`data-parallel store: cannot listen on ${host}:${port} (MASTER_ADDR:MASTER_PORT): ${e.code ?? e.message}`)),
      );
      srv.listen(port, host, () => resolve(s));
    });
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private set(key: string, val: Buffer) {
    this.map.set(key, val);
    const ws = this.waiters.get(key);
    if (ws) {
      this.waiters.delete(key);
      for (const w of ws) {
        clearTimeout(w.timer);
        w.resolve(frame(0, val));
      }
    }
  }

  private get(key: string, timeoutMs: number): Promise<Buffer> {
    const v = this.map.get(key);
    if (v) return Promise.resolve(frame(0, v));
    return new Promise((resolve) => {
      const w: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const ws = this.waiters.get(key) ?? [];
          ws.splice(ws.indexOf(w), 1);
          resolve(frame(1, Buffer.alloc(0)));
        }, timeoutMs),
      };
      const ws = this.waiters.get(key) ?? [];
      ws.push(w);
      this.waiters.set(key, ws);
    });
  }

  private status(): Buffer {
    const progress: Record<string, string> = {};
    for (const [k, v] of this.map) if (k.startsWith('progress/')) progress[k.slice(9)] = v.toString();
    const now = Date.now();
    const silentMs = Object.fromEntries([...this.beats].map(([r, t]) => [r, now - t]));
    return frame(0, Buffer.from(JSON.stringify({ gone: [...this.gone].sort((a, b) => a - b), progress, silentMs })));
  }

  private serve(sock: net.Socket) {
    this.sockets.add(sock);
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let rank = -1;
    // replies go out in request order, even when a get waits and a later set does not
    let chain: Promise<void> = Promise.resolve();
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 5) return;
        const kl = buf.readUInt32LE(1);
        if (buf.length < 9 + kl) return;
        const vl = buf.readUInt32LE(5 + kl);
        if (buf.length < 9 + kl + vl) return;
        const op = String.fromCharCode(buf[0]);
        const key = buf.subarray(5, 5 + kl).toString();
        const val = Buffer.from(buf.subarray(9 + kl, 9 + kl + vl));
        buf = buf.subarray(9 + kl + vl);
        let reply: Promise<Buffer>;
        if (op === 'S') {
          this.set(key, val);
          reply = Promise.resolve(frame(0));
        } else if (op === 'G') reply = this.get(key, val.readUInt32LE(0));
        else if (op === 'H') {
          rank = Number(key);
          this.gone.delete(rank);
          this.beats.set(rank, Date.now());
          reply = Promise.resolve(frame(0));
        } else if (op === 'B') {
          this.beats.set(Number(key), Date.now());
          reply = Promise.resolve(frame(0));
        } else if (op === 'L') reply = Promise.resolve(this.status());
        else {
          sock.destroy();
          return;
        }
        chain = chain.then(async () => {
          const r = await reply;
          if (!sock.destroyed) sock.write(r);
        });
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.sockets.delete(sock);
      if (rank >= 0) this.gone.add(rank);
    });
  }

  close(): Promise<void> {
    for (const ws of this.waiters.values()) for (const w of ws) clearTimeout(w.timer);
    this.waiters.clear();
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A rank's connection to the store. */
export const HEARTBEAT_MS = 500;

export class StoreClient {
  private sock: net.Socket;
  private beat: NodeJS.Timeout | null = null;
  private buf = Buffer.alloc(0);
  private pending: { withData: boolean; resolve: (b: { status: number; data: Buffer }) => void; reject: (e: Error) => void }[] = [];
  private error: Error | null = null;
  private constructor(sock: net.Socket, readonly where: string) {
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (d) => this.onData(d));
    const fail = (e: Error) => {
      this.error ??= e;
      for (const p of this.pending.splice(0)) p.reject(this.error);
    };
    sock.on('error', (e) => fail(new Error(`data-parallel store at ${where}: ${e.message}`)));
    sock.on('close', () => fail(new Error(`data-parallel store at ${where} closed the connection (rank 0 exited?)`)));
  }

  /** Connects, retrying until timeoutMs (rank 0 may start later than this rank). */
  static async connect(host: string, port: number, timeoutMs: number): Promise<StoreClient> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host, port }, () => resolve(s));
          s.once('error', reject);
        });
        return new StoreClient(sock, `${host}:${port}`);
      } catch (e) {
        last = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`data-parallel store at ${host}:${port} (MASTER_ADDR:MASTER_PORT) unreachable for ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private onData(d: Buffer) {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.pending.length) {
      const p = this.pending[0];
      if (!p.withData) {
        if (this.buf.length < 1) return;
        this.pending.shift();
        const status = this.buf[0];
        this.buf = this.buf.subarray(1);
        p.resolve({ status, data: Buffer.alloc(0) });
      } else {
        if (this.buf.length < 5) return;
        const n = this.buf.readUInt32LE(1);
        if (this.buf.length < 5 + n) return;
        this.pending.shift();
        const status = this.buf[0];
        const data = Buffer.from(this.buf.subarray(5, 5 + n));
        this.buf = this.buf.subarray(5 + n);
        p.resolve({ status, data });
      }
    }
  }

  private request(op: string, key: string, val: Buffer, withData: boolean): Promise<{ status: number; data: Buffer }> {
    if (this.error) return Promise.reject(this.error);
    const k = Buffer.from(key);
    const head = Buffer.alloc(9 + k.length);
    head[0] = op.charCodeAt(0);
    head.writeUInt32LE(k.length, 1);
    k.copy(head, 5);
    head.writeUInt32LE(val.length, 5 + k.length);
    return new Promise((resolve, reject) => {
      this.pending.push({ withData, resolve, reject });
      this.sock.write(Buffer.concat([head, val]));
    });
  }

  async set(key: string, value: string | Buffer): Promise<void> {
    await this.request('S', key, Buffer.from(value), false);
  }

  /** The value of key, waiting up to timeoutMs for some rank to set it. */
  async get(key: string, timeoutMs: number): Promise<Buffer> {
    const t = Buffer.alloc(4);
    t.writeUInt32LE(Math.max(0, Math.min(0xffffffff, Math.round(timeoutMs))));
    const r = await this.request('G', key, t, true);
    if (r.status !== 0) throw new Error(`data-parallel store: key '${key}' not set within ${timeoutMs} ms (a rank did not start, or died)`);
    return r.data;
  }

  /** Registers this connection as `rank`'s and starts its heartbeat (unref'd: never keeps the process alive). */
  async hello(rank: number): Promise<void> {
    await this.request('H', String(rank), Buffer.alloc(0), false);
    this.beat = setInterval(() => this.request('B', String(rank), Buffer.alloc(0), false).catch(() => {}), HEARTBEAT_MS);
    this.beat.unref();
  }

  /** Ranks whose connection closed, and each rank's last `progress/<rank>` value. */
  async status(): Promise<{ gone: number[]; progress: Record<string, string>; silentMs: Record<string, number> }> {
    const r = await this.request('L', '', Buffer.alloc(0), true);
    return JSON.parse(r.data.toString());
  }

  close(): void {
    if (this.beat) clearInterval(this.beat);
    this.error ??= new Error('data-parallel store: client closed');
    this.sock.destroy();
  }
}
