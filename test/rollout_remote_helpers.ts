// Shared by the remote-rollout tests: `grpo serve` child processes and a scripted fake server.
import { spawn, ChildProcess } from 'child_process';
import * as http from 'http';
import * as path from 'path';

const bin = path.resolve(__dirname, '..', 'lib', 'cli', 'main.ts');

export interface ServeChild {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Starts `grpo serve --port 0 ...args` and resolves with its URL once it listens. */
export function spawnServe(args: string[]): Promise<ServeChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', bin, 'serve', '--port', '0', '--threads', '1', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`grpo serve did not start within 60 s: ${err}`)), 60000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`grpo serve exited with ${code} before listening: ${err}`));
    });
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        url: m[1], child, stderr: () => err,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGCONT');
            child.kill('SIGKILL');
          }),
      });
    });
  });
}

/** An HTTP server answering every request with what `reply` returns (status, raw body). */
export function fakeServer(reply: (body: any, url: string) => { status?: number; body: string } | null): Promise<{ url: string; close(): Promise<void>; hits: () => number }> {
  let hits = 0;
  const s = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      hits++;
      let body: any = null;
      try {
        body = JSON.parse(text);
      } catch {}
      const r = reply(body, req.url ?? '/');
      if (!r) return; // never answer (a hang)
      res.writeHead(r.status ?? 200, { 'content-type': 'application/json' });
      res.end(r.body);
    });
  });
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(s.address() as { port: number }).port}`,
        hits: () => hits,
        close: () => new Promise<void>((done) => {
          s.closeAllConnections();
          s.close(() => done());
        }),
      }),
    ),
  );
}

export async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}
