/**
 * `grpo data export --task NAME --out DIR [--overwrite] [--video gif|mp4] [task options]`: writes a
 * task's train and held-out examples as an ms-swift JSONL dataset with real media files
 * (exportTaskDataset: DIR/train.jsonl, DIR/test.jsonl, DIR/media/{train,test}/), so the same run
 * works from files: `grpo train --task DIR/train.jsonl --test-file DIR/test.jsonl`.
 * Existing files are never replaced without --overwrite. The task options (--seed, --train-size,
 * --test-size, ...) are `grpo train`'s, parsed by the same parser.
 */
import { exportTaskDataset } from '../media/write';
import { buildTask, withDefaults } from '../trainer/run';
import { parseArgs } from './args';

export const DATA_USAGE = [
  'Usage: grpo data export --task NAME --out DIR [--overwrite] [--video gif|mp4] [--seed N] [--train-size N] [--test-size N]',
  '',
  "writes a task's train and held-out splits as ms-swift JSONL (DIR/train.jsonl, DIR/test.jsonl) with",
  'its media as files (PNG, WAV, GIF or MP4) under DIR/media/; existing files are kept unless --overwrite.',
  'Then: grpo train --task DIR/train.jsonl --test-file DIR/test.jsonl',
].join('\n');

/** Runs `grpo data ...` (argv after 'data'); returns the exit code, messages through `log`. */
export async function runData(argv: string[], log: (m: string) => void = (m) => process.stderr.write(m + '\n')): Promise<number> {
  if (!argv.length || argv.includes('--help') || argv.includes('-h')) {
    log(DATA_USAGE);
    return argv.length ? 0 : 2;
  }
  if (argv[0] !== 'export') {
    log(`grpo data: unknown subcommand '${argv[0]}': expected 'export'\n${DATA_USAGE}`);
    return 2;
  }
  const rest: string[] = [];
  let out: string | undefined;
  let overwrite = false;
  let video: 'gif' | 'mp4' = 'gif';
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new RangeError(`option ${flag} needs a value`);
      return v;
    };
    if (flag === '--out') out = value();
    else if (flag === '--overwrite') overwrite = true;
    else if (flag === '--video') {
      const v = value();
      if (v !== 'gif' && v !== 'mp4') throw new RangeError(`--video: expected 'gif' or 'mp4' but received '${v}'`);
      video = v;
    } else rest.push(a);
  }
  if (!out) throw new RangeError('grpo data export: --out DIR is required (the folder the dataset is written to)');
  const parsed = parseArgs(['train', ...rest]);
  if (parsed.options.task === undefined) throw new RangeError('grpo data export: --task NAME is required (e.g. clevr_count, beep_count, video_direction)');
  const task = buildTask(withDefaults(parsed.options));
  const r = await exportTaskDataset(task, out, { overwrite, video });
  log(`written ${r.train.file} (${r.train.rows} rows) and ${r.test.file} (${r.test.rows} rows), ${r.train.media.length + r.test.media.length} media files`);
  return 0;
}
