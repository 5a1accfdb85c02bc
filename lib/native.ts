/**
 * Loads the native addon once. Order: GRPO_KERNELS_ADDON=/path/to/x.node (a build made in
 * another directory), else node-gyp-build, which takes build/Release (a source build: this
 * repository's own builds, or `npm rebuild grpo-kernels` in a consumer project) before
 * prebuilds/<platform>-<arch>/ (the binary `npm pack` puts in the published tarball). So the
 * repository's tests always run the source build, and a source build a user made wins over the
 * prebuilt one. When nothing loads, the error says how to build it.
 */
import * as path from 'path';

/** Scalar results the native loss ops return. */
export interface NativeMetrics {
  loss: number;
  kl: number;
  entropy: number;
  clipLow: number;
  clipHigh: number;
  clipRegion: number;
  ratio: number;
  maskedTokens: number;
  isWeightMean: number;
  isClippedFrac: number;
}

export interface CudaInfo {
  compiled: boolean;
  archList: string;
  runtimeVersion: number;
  driverVersion: number;
  error: string;
  devices: { index: number; name: string; computeCapability: string; totalMemory: number }[];
}

type Args = Record<string, unknown>;

/** The addon's export table (native/binding.cc). Every op is op(args, async). */
export interface NativeAddon {
  logprobs(args: Args, async: false): void;
  logprobs(args: Args, async: true): Promise<void>;
  /** firstInf: index into rewards of the first ±Infinity (the op throws), or −1. */
  groupAdvantages(args: Args, async: false): { zeroStdFraction: number; numNoReward: number; firstInf: number };
  groupAdvantages(args: Args, async: true): Promise<{ zeroStdFraction: number; numNoReward: number; firstInf: number }>;
  /** Returns whether every logp and refLogp was finite. */
  klPenalty(args: Args, async: false): boolean;
  klPenalty(args: Args, async: true): Promise<boolean>;
  klFull(args: Args, async: false): void;
  klFull(args: Args, async: true): Promise<void>;
  // inputsOk: false when the kernel's first pass found a bad mask value or a non-finite masked input (nothing written)
  grpoLoss(args: Args, async: false): NativeMetrics & { inputsOk: boolean };
  grpoLoss(args: Args, async: true): Promise<NativeMetrics & { inputsOk: boolean }>;
  grpoLossFromLogits(args: Args, async: false): NativeMetrics;
  grpoLossFromLogits(args: Args, async: true): Promise<NativeMetrics>;
  grpoLossFromHidden(args: Args, async: false): NativeMetrics;
  grpoLossFromHidden(args: Args, async: true): Promise<NativeMetrics>;
  sample(args: Args, async: false): void;
  sample(args: Args, async: true): Promise<void>;
  numThreads(): number;
  setNumThreads(n: number): void;
  backend(): { cpuIsa: string; threads: number; cuda: CudaInfo };
  /** native/common/buffer_pool.cc: an ArrayBuffer of at least `bytes` (reused memory when free). */
  pooledArrayBuffer(bytes: number): ArrayBuffer;
  pooledMemory(free?: boolean): { blocks: number; bytes: number; free: number; reused: number; fresh: number };
  [key: string]: unknown;
}

let cached: NativeAddon | null = null;
let cachedFile = '';

/** Where the loaded addon came from: a source build, the packaged prebuild, or GRPO_KERNELS_ADDON. */
export type AddonKind = 'source' | 'prebuilt' | 'override';

export function native(): NativeAddon {
  if (cached) return cached;
  const loaded = loadAddon(path.resolve(__dirname, '..'), process.env.GRPO_KERNELS_ADDON);
  cachedFile = loaded.file;
  cached = loaded.addon;
  return cached;
}

/** The absolute path of the loaded addon and what kind of build it is (loads it if needed). */
export function addonInfo(): { file: string; kind: AddonKind } {
  native();
  return { file: cachedFile, kind: addonKind(cachedFile, path.resolve(__dirname, '..'), process.env.GRPO_KERNELS_ADDON) };
}

function addonKind(file: string, root: string, override?: string): AddonKind {
  if (override) return 'override';
  return path.relative(path.join(root, 'prebuilds'), file).startsWith('..') ? 'source' : 'prebuilt';
}

/**
 * Resolves and loads the addon of the package rooted at `root` (exported for the loader test).
 * Any failure, from "nothing found" to a binary the dynamic linker refuses (older glibc, another
 * architecture), becomes one error that names the platform, the cause and the rebuild command.
 */
export function loadAddon(root: string, override?: string): { addon: NativeAddon; file: string } {
  let file: string | undefined;
  try {
    if (override) {
      file = path.resolve(override);
    } else {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const gypBuild = require('node-gyp-build') as { resolve(dir: string): string };
      file = gypBuild.resolve(root);
    }
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return { addon: require(file) as NativeAddon, file };
  } catch (e) {
    throw new Error(loadErrorMessage(root, file, override, e));
  }
}

function loadErrorMessage(root: string, file: string | undefined, override: string | undefined, e: unknown): string {
  const cause = String((e as Error)?.message ?? e).trim().split('\n').map((l) => '    ' + l.trim()).join('\n');
  const target = `${process.platform}-${process.arch}, Node ${process.version}`;
  const head = override
    ? `grpo-kernels: the addon named by GRPO_KERNELS_ADDON (${file}) could not be loaded (${target}):`
    : file
      ? `grpo-kernels: the native addon ${path.relative(root, file)} could not be loaded (${target}):`
      : `grpo-kernels: no native addon was found for ${target}:`;
  // An installed package lives under node_modules/; anything else is a clone of the repository.
  const installed = root.split(path.sep).includes('node_modules');
  const fix = installed
    ? [
        'The npm package ships a prebuilt addon for linux-x64 (glibc >= 2.34); elsewhere it is built',
        'from source when the package is installed, which needs install scripts enabled, a C++17',
        'compiler, CMake >= 3.18, and cmake-js + node-addon-api in the project. To build it now:',
        '    npm install --save-dev cmake-js node-addon-api',
        '    npm rebuild grpo-kernels          (pnpm: pnpm rebuild grpo-kernels)',
        'GRPO_CUDA=0 in the environment of the rebuild leaves the CUDA backend out.',
      ]
    : [
        'In a clone of the repository, build it with:',
        '    npm run build:native              (npx cmake-js compile --out build)',
      ];
  return [head, cause, ...fix].join('\n');
}
