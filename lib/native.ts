/**
 * Loads the native addon once. node-gyp-build finds build/Release (a source build) or a
 * matching prebuilds/ binary. GRPO_KERNELS_ADDON=/path/to/x.node overrides both (used to test
 * a build made in another directory).
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
  groupAdvantages(args: Args, async: false): { zeroStdFraction: number; numNoReward: number };
  groupAdvantages(args: Args, async: true): Promise<{ zeroStdFraction: number; numNoReward: number }>;
  klPenalty(args: Args, async: false): void;
  klPenalty(args: Args, async: true): Promise<void>;
  grpoLoss(args: Args, async: false): NativeMetrics;
  grpoLoss(args: Args, async: true): Promise<NativeMetrics>;
  grpoLossFromLogits(args: Args, async: false): NativeMetrics;
  grpoLossFromLogits(args: Args, async: true): Promise<NativeMetrics>;
  grpoLossFromHidden(args: Args, async: false): NativeMetrics;
  grpoLossFromHidden(args: Args, async: true): Promise<NativeMetrics>;
  sample(args: Args, async: false): void;
  sample(args: Args, async: true): Promise<void>;
  numThreads(): number;
  setNumThreads(n: number): void;
  backend(): { cpuIsa: string; threads: number; cuda: CudaInfo };
  [key: string]: unknown;
}

let cached: NativeAddon | null = null;

export function native(): NativeAddon {
  if (cached) return cached;
  const override = process.env.GRPO_KERNELS_ADDON;
  if (override) {
    cached = require(path.resolve(override)) as NativeAddon;
  } else {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require('node-gyp-build') as (dir: string) => unknown;
    cached = load(path.resolve(__dirname, '..')) as NativeAddon;
  }
  return cached;
}
