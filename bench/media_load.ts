// Dataset load throughput of the files path, as `grpo train --task FILE.jsonl` pays it once per
// run: a built-in task exported as ms-swift JSONL + media (`grpo data export`), parsed, its media
// spec read off the first row (inferMediaSpec) and every row's media decoded at that spec
// (loadTaskMedia: 4 decodes in flight, sharp off the event loop, WAV in-process). Reports media
// per second (wall) and this process's CPU time per medium; median of --rounds loads (each round
// parses the JSONL again, so nothing is cached between rounds).
//   node --import tsx bench/media_load.ts [--n 500] [--rounds 3]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { exportTaskDataset } from '../lib/media/write';
import { inferMediaSpec, loadTaskMedia } from '../lib/media/dataset';
import { datasetTask } from '../lib/tasks/dataset';
import { makeTask } from '../lib/tasks';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main() {
  const n = +flag('n', '500');
  const rounds = +flag('rounds', '3');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-bench-load-'));
  const load = (f: string) => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') + (f ? ` (${f})` : '');
  console.log(`load average before: ${load('')}; ${n} train + ${Math.ceil(n / 10)} test rows per task, median of ${rounds} loads`);
  console.log('| task (exported as) | media | decoded to | load wall | media/s | CPU per medium |');
  console.log('|---|---:|---|---:|---:|---:|');
  try {
    for (const [name, what] of [['beep_count', 'WAV, 16-bit'], ['clevr_count', 'PNG'], ['video_direction', 'animated GIF']] as const) {
      const dir = path.join(root, name);
      await exportTaskDataset(makeTask({ task: name, seed: 1, trainSize: n, testSize: Math.ceil(n / 10) }), dir);
      const walls: number[] = [], cpus: number[] = [];
      let count = 0, spec = '';
      for (let r = 0; r < rounds; r++) {
        const c0 = cpuMs(), t0 = performance.now();
        const task = datasetTask({ train: path.join(dir, 'train.jsonl'), test: path.join(dir, 'test.jsonl') });
        const s = await inferMediaSpec(task);
        await loadTaskMedia(task, s);
        walls.push(performance.now() - t0);
        cpus.push(cpuMs() - c0);
        count = task.train.length + task.test.length;
        spec = JSON.stringify(s).replace(/"/g, '');
      }
      const w = median(walls), c = median(cpus);
      console.log(`| ${name} (${what}) | ${count} | ${spec} | ${(w / 1000).toFixed(2)} s | ${((count * 1000) / w).toFixed(0)} | ${(c / count).toFixed(2)} ms |`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  console.log(`load average after: ${load('')}`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
