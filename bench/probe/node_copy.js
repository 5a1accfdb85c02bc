'use strict';
// In-process copy probe: TypedArray.prototype.set between two 1 GiB buffers (V8 lowers it to
// memmove), median of `reps` after one warm-up that also faults the pages in. Reported as bytes
// moved per second, read + write counted: 2 * size / time. Single-threaded by nature.
// bench/run.js calls it in its own process, so the floor comes from the same run.

function nodeCopyProbe({ mib = 1024, reps = 7 } = {}) {
  const n = (mib << 20) / 8;
  const src = new Float64Array(n).fill(1);
  const dst = new Float64Array(n);
  dst.set(src);  // warm-up + page faults
  const t = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    dst.set(src);
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  const bytes = 2 * n * 8;
  return { tool: 'TypedArray.set', mib, reps, copy_gbs: bytes / t[reps >> 1] / 1e9, copy_best_gbs: bytes / t[0] / 1e9 };
}

module.exports = { nodeCopyProbe };

if (require.main === module) console.log(JSON.stringify(nodeCopyProbe({ mib: +(process.argv[2] || 1024) })));
