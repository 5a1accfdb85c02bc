/**
 * Loads grpo_dist.node, the Gloo collectives (native/parallel/), built next to the kernels addon
 * when CMake finds Gloo. Its absence is not an error until a run asks for more than one rank;
 * then the error says what to install.
 */
import * as fs from 'fs';
import * as path from 'path';

type Args = Record<string, unknown>;
export interface DistAddon {
  gloo: boolean;
  init(a: Args, async: true): Promise<unknown>;
  init(a: Args, async: false): unknown;
  allReduce(a: Args, async: boolean): Promise<void> | void;
  broadcast(a: Args, async: boolean): Promise<void> | void;
  allGather(a: Args, async: boolean): Promise<void> | void;
  barrier(a: Args, async: boolean): Promise<void> | void;
  close(a: Args): void;
}

/** Package root: lib/parallel/ under tsx, dist/parallel/ when compiled. */
const ROOT = path.resolve(__dirname, '..', '..');

export const GLOO_INSTALL_HINT =
  'data-parallel training (more than one rank) needs the Gloo collectives addon, built when Gloo is installed: ' +
  '`apt-get install libgloo-dev` (Debian/Ubuntu), then rebuild from source (`GRPO_BUILD_FROM_SOURCE=1 npm rebuild grpo-kernels`, or `npx cmake-js compile --out build` in a clone)';

let cached: DistAddon | null = null;
let cachedError: string | null = null;

/** The addon's path: GRPO_DIST_ADDON, else build/dist/grpo_dist.node of this package. */
export function distAddonPath(): string {
  return process.env.GRPO_DIST_ADDON ? path.resolve(process.env.GRPO_DIST_ADDON) : path.join(ROOT, 'build', 'dist', 'grpo_dist.node');
}

/** The reason the addon cannot be used, or null when it loads. */
export function glooUnavailable(): string | null {
  if (cached) return null;
  if (cachedError) return cachedError;
  const file = distAddonPath();
  if (!fs.existsSync(file)) {
    cachedError = `${GLOO_INSTALL_HINT} (${file} was not built: CMake found no Gloo)`;
    return cachedError;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(file) as DistAddon;
    return null;
  } catch (e) {
    cachedError = `${GLOO_INSTALL_HINT} (${file} could not be loaded: ${(e as Error).message.split('\n')[0]})`;
    return cachedError;
  }
}

/** The addon, or an Error that says what to install. */
export function distNative(): DistAddon {
  const why = glooUnavailable();
  if (why) throw new Error(why);
  return cached!;
}
