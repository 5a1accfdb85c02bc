// Starting the ranks of a data-parallel test as child processes over loopback.
import { spawn, type ChildProcess } from 'child_process';
import * as path from 'path';
import { freePort } from '../lib/parallel/launch';
import { glooUnavailable } from '../lib/parallel/native';

export const ROOT = path.resolve(__dirname, '..');
/** Why the data-parallel tests cannot run here, or null (grpo_dist.node is built and loads). */
export const NO_GLOO = glooUnavailable();

export interface Rank {
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  done: Promise<number | null>;
  result(): Record<string, unknown> | null;
}

/** Starts `world` ranks of `argv` (node --import tsx argv...) with torchrun's environment. */
export async function startRanks(world: number, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Rank[]> {
  const port = await freePort();
  return Array.from({ length: world }, (_, r) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', ...argv], {
      cwd: ROOT,
      env: { ...process.env, ...env, RANK: String(r), WORLD_SIZE: String(world), LOCAL_RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const rk: Rank = {
      proc, stdout: '', stderr: '',
      done: new Promise((res) => proc.on('exit', (c) => res(c))),
      result() {
        const line = rk.stdout.split('\n').find((l) => l.startsWith('RESULT '));
        return line ? JSON.parse(line.slice(7)) : null;
      },
    };
    proc.stdout!.on('data', (d) => (rk.stdout += d));
    proc.stderr!.on('data', (d) => (rk.stderr += d));
    return rk;
  });
}
