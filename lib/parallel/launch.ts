/**
 * `grpo train --nproc-per-node N`: starts N local ranks as child processes of this one (the same
 * command without the flag, with torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port), waits for them, and as
 * torchrun does, stops the others when one fails. Exit code: 0 when every rank exited 0, else
 * the first failing rank's code (1 when it was killed by a signal).
 */
import { spawn, type ChildProcess } from 'child_process';
import * as net from 'net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface LaunchOptions {
  /** Script and arguments each rank runs with process.execPath (default: this process's, less --nproc-per-node). */
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** Once a rank failed, how long the others get to exit on their own before SIGTERM (ms, default 10000). */
  graceMs?: number;
  log?: (msg: string) => void;
}

export async function launchLocal(nproc: number, o: LaunchOptions): Promise<number> {
  if (!Number.isInteger(nproc) || nproc < 1) throw new RangeError(`--nproc-per-node: expected an integer >= 1 but received ${nproc}`);
  const port = await freePort();
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const kids: ChildProcess[] = [];
  const codes: (number | null)[] = new Array(nproc).fill(null);
  let firstFail = -1;
  await new Promise<void>((resolve) => {
    let left = nproc;
    for (let r = 0; r < nproc; r++) {
      const env = {
        ...process.env, ...o.env,
        RANK: String(r), WORLD_SIZE: String(nproc), LOCAL_RANK: String(r), LOCAL_WORLD_SIZE: String(nproc),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
      };
      const kid = spawn(process.execPath, [...process.execArgv, ...o.argv], { env, stdio: 'inherit' });
      kids.push(kid);
      kid.on('exit', (code, signal) => {
        codes[r] = code ?? 1;
        if (codes[r] !== 0 && firstFail < 0) {
          firstFail = r;
          log(`grpo: rank ${r} exited with ${signal ? `signal ${signal}` : `code ${code}`}; stopping the other ranks in ${(o.graceMs ?? 10000) / 1000} s unless they exit first`);
          const t = setTimeout(() => kids.forEach((k, i) => codes[i] === null && k.kill('SIGTERM')), o.graceMs ?? 10000);
          t.unref();
        }
        if (--left === 0) resolve();
      });
    }
  });
  return firstFail < 0 ? 0 : codes[firstFail]!;
}
