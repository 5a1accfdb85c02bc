// ESM consumer: named imports and the default export of the installed package, every kernel's
// async form against the reference.
import { createRequire } from 'node:module';
import * as named from 'grpo-kernels';
import def, { grpoLossFromLogits, sample, backend } from 'grpo-kernels';

const require = createRequire(import.meta.url);
let failed = 0;
const missing = Object.keys(def).filter((k) => k !== 'default' && named[k] !== def[k]);
if (missing.length || typeof grpoLossFromLogits !== 'function' || typeof sample !== 'function') {
  failed++;
  console.log(`FAIL import 'grpo-kernels': named exports missing or different from the default export: ${missing.join(', ')}`);
} else {
  console.log(`ok import 'grpo-kernels': ${Object.keys(def).length} named exports, backend cpuIsa=${backend().cpuIsa}`);
}
failed += await require('./kernels.cjs').run(named, 'async');
process.exit(failed ? 1 : 0);
