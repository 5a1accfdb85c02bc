// The CUDA emulator addon for tests (build-emu/Release/grpo_kernels_emu.node): the same addon
// with cuda/*.cu compiled by the host compiler against cuda/emu, so every CUDA kernel runs in
// `npm test` without a GPU. Built on first use (and rebuilt when a native or CUDA source is newer
// than it); importing test files then load it through GRPO_KERNELS_ADDON.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '..');
export const EMU_ADDON = path.join(root, 'build-emu', 'Release', 'grpo_kernels_emu.node');

function newestSource(): number {
  let newest = fs.statSync(path.join(root, 'CMakeLists.txt')).mtimeMs;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(cc|h|cu|cuh|inc)$/.test(e.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(root, 'native'));
  walk(path.join(root, 'cuda'));
  return newest;
}

function build(): void {
  // Several test runs may share the checkout: one builds, the others wait for it.
  const lock = path.join(root, 'build-emu.lock');
  const t0 = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // a lock older than any build is left over from a killed run
      let age = 0;
      try {
        age = Date.now() - fs.statSync(lock).mtimeMs;
      } catch {
        continue;
      }
      if (age > 15 * 60e3) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - t0 > 15 * 60e3) throw new Error(`timed out waiting for ${lock} (remove it if no build is running)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (fs.existsSync(EMU_ADDON) && fs.statSync(EMU_ADDON).mtimeMs >= newestSource()) return;
    const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
    const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-emu', '--CDGRPO_CUDA_EMU=ON', '--CDGRPO_CUDA=OFF'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 256 << 20,
    });
    if (r.status !== 0 || !fs.existsSync(EMU_ADDON)) {
      const out = ((r.stdout || '') + (r.stderr || '')).split('\n').filter((l) => /error|FAILED/i.test(l)).slice(0, 40).join('\n');
      throw new Error(`building the CUDA emulator addon failed:\n${out}`);
    }
    fs.utimesSync(EMU_ADDON, new Date(), new Date());  // newer than every source it was built from
  } finally {
    fs.rmdirSync(lock);
  }
}

/**
 * True when the CUDA tests run on a real GPU (`npm run test:gpu` sets GRPO_TEST_GPU=1): the
 * same test files then use the package's own addon (build/) and its device.
 */
export const ON_GPU = process.env.GRPO_TEST_GPU === '1';

/** Builds the emulator addon if needed and makes lib/native.ts load it (not on a real GPU). Call before any op. */
export function useEmulatorAddon(): string {
  if (ON_GPU) return '';
  if (!fs.existsSync(EMU_ADDON) || fs.statSync(EMU_ADDON).mtimeMs < newestSource()) build();
  process.env.GRPO_KERNELS_ADDON = EMU_ADDON;
  return EMU_ADDON;
}

/** The emulator's thread order between barriers (a no-op on a real GPU). */
export function setOrder(order: number, seed = 0): void {
  if (ON_GPU) return;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { native } = require('../lib/native') as typeof import('../lib/native');
  (native() as unknown as EmuAddon).emuSetOrder(order, seed);
}

/** The emulator's extra exports (only in grpo_kernels_emu.node). */
export interface EmuAddon {
  emuSelfTest(name: string): string;
  emuSetOrder(order: number, seed?: number): void;
  emuLaunches(): number;
  emuFailNextLaunch(code: number): void;
}
export const ORDERS = [
  { name: 'forward', order: 0 },
  { name: 'reverse', order: 1 },
  { name: 'shuffled', order: 2 },
] as const;
