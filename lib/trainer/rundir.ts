/**
 * Run directories: what the commands may write, replace and delete under --output-dir.
 *
 * A run directory holds only files of the run format (OWNED below) plus a marker, grpo-run.json,
 * that says which command made it and whether the run completed. The commands never delete a
 * file they did not write: a new run refuses a directory that holds another run or anything
 * else unless told to overwrite (overwriteOutputDir), and even then only the run format's own
 * files are removed; everything else in the directory is left as it was.
 */
import * as fs from 'fs';
import * as path from 'path';

export const RUN_MARKER = 'grpo-run.json';

/** The run format's files, directly under a run directory. */
const OWNED_FILES = [/^metrics\.jsonl(\.tmp-\d+)?$/, /^eval(-step-\d+)?\.json(\.tmp-\d+)?$/, /^report\.html$/, /^summary\.json(\.tmp-\d+)?$/, /^grpo-run\.json(\.tmp-\d+)?$/];
/** Files inside checkpoints/. */
const CHECKPOINT_ENTRY = /^(step-\d+(\.tmp-\d+)?|latest\.json(\.tmp-\d+)?)$/;
const CHECKPOINT_FILE = /^(model|optimizer|reference)\.safetensors(\.tmp-\d+)?$|^trainer_state\.json$/;
/** Folders a run with --model writes at its end (HF layout, PEFT adapter) and the files in them. */
const EXPORT_DIRS = ['hf-model', 'adapter'];
const EXPORT_FILE = /^(config\.json|generation_config\.json|model\.safetensors|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|vocab\.json|merges\.txt|added_tokens\.json|chat_template\.jinja|adapter_config\.json|adapter_model\.safetensors)(\.tmp-\d+)?$/;
/** The sub-runs of `grpo demo`. */
const DEMO_SUBRUNS = ['sft', 'grpo'];

export type RunKind = 'sft' | 'grpo' | 'eval' | 'demo';

export interface RunMarker {
  format: 'grpo-kernels-run';
  kind: RunKind;
  status: 'running' | 'completed' | 'failed';
  startedAt: string;
  finishedAt?: string;
  error?: string;
}

/** The error of a refused output directory (the CLI prints its message alone). */
export class RunDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunDirError';
  }
}

const isOwnedFile = (name: string) => OWNED_FILES.some((re) => re.test(name));

function entries(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') throw new RunDirError(`${dir} is a file, not a directory: choose another --output-dir`);
    throw new RunDirError(`${dir}: cannot be read (${(e as Error).message})`);
  }
}

export function readRunMarker(dir: string): RunMarker | null {
  const p = path.join(dir, RUN_MARKER);
  if (!fs.existsSync(p)) return null;
  try {
    const m = JSON.parse(fs.readFileSync(p, 'utf8'));
    return m && m.format === 'grpo-kernels-run' ? (m as RunMarker) : null;
  } catch {
    return null;
  }
}

/** Whether `dir` holds a run of this package (a marker, metrics.jsonl or checkpoints/). */
export function isRunDir(dir: string): boolean {
  return (
    !!readRunMarker(dir) ||
    fs.existsSync(path.join(dir, 'metrics.jsonl')) ||
    fs.existsSync(path.join(dir, 'checkpoints', 'latest.json')) ||
    DEMO_SUBRUNS.every((s) => fs.existsSync(path.join(dir, s, RUN_MARKER)))
  );
}

const ROLLOUT_WEIGHTS = 'rollout-weights';
const ROLLOUT_WEIGHTS_FILE = /^(model\.safetensors|trainer_state\.json|config\.json|tokenizer\.json|tokenizer_config\.json|generation_config\.json|special_tokens_map\.json|vocab\.json|merges\.txt)$/;

/** Entries of `dir` that the run format does not own (a user's files), for messages. */
function foreignEntries(dir: string, demo: boolean): string[] {
  return entries(dir).filter((e) => !isOwnedFile(e) && e !== 'checkpoints' && e !== ROLLOUT_WEIGHTS && !EXPORT_DIRS.includes(e) && !(demo && DEMO_SUBRUNS.includes(e)));
}

function rmdirIfEmpty(dir: string) {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty (a user's file is in it) or gone: leave it
  }
}

/**
 * Removes the run format's files from `dir` (and, for a demo, from its sft/ and grpo/ runs);
 * anything else stays. Returns the paths removed.
 */
export function removeRunFiles(dir: string, demo = false): string[] {
  const removed: string[] = [];
  const rm = (p: string) => {
    fs.rmSync(p, { force: true });
    removed.push(p);
  };
  for (const e of entries(dir)) if (isOwnedFile(e)) rm(path.join(dir, e));
  const ck = path.join(dir, 'checkpoints');
  for (const e of entries(ck)) {
    if (!CHECKPOINT_ENTRY.test(e)) continue;
    const p = path.join(ck, e);
    if (fs.statSync(p).isDirectory()) {
      for (const f of entries(p)) if (CHECKPOINT_FILE.test(f)) rm(path.join(p, f));
      rmdirIfEmpty(p);
    } else rm(p);
  }
  rmdirIfEmpty(ck);
  // the remote rollout engine's weights for its servers (lib/serve/weights.ts): v-NNNNNN/ directories
  const rw = path.join(dir, ROLLOUT_WEIGHTS);
  for (const e of entries(rw)) {
    if (!/^v-\d+(\.tmp-\d+)?$/.test(e)) continue;
    const p = path.join(rw, e);
    if (!fs.statSync(p).isDirectory()) continue;
    for (const f of entries(p)) if (ROLLOUT_WEIGHTS_FILE.test(f) || EXPORT_FILE.test(f)) rm(path.join(p, f));
    rmdirIfEmpty(p);
  }
  rmdirIfEmpty(rw);
  for (const d of EXPORT_DIRS) {
    const p = path.join(dir, d);
    for (const f of entries(p)) if (EXPORT_FILE.test(f)) rm(path.join(p, f));
    rmdirIfEmpty(p);
  }
  if (demo)
    for (const s of DEMO_SUBRUNS) {
      const sub = path.join(dir, s);
      if (!fs.existsSync(sub)) continue;
      removed.push(...removeRunFiles(sub));
      rmdirIfEmpty(sub);
    }
  return removed;
}

export interface PrepareRunDirOptions {
  kind: RunKind;
  /** Remove an earlier run's files (only those) instead of refusing the directory. */
  overwrite?: boolean;
  /** Continue the run already in the directory (nothing is removed). */
  resume?: boolean;
  /** `grpo demo` replaces its own earlier demo (only the run format's files). */
  replaceOwnKind?: boolean;
}

const hint = '--overwrite-output-dir (removes only the files a run writes)';

/**
 * Makes `dir` ready for a run: creates it, or checks that an existing one may be written, and
 * writes the marker (status 'running'). Refuses, naming what is there:
 *   - a directory holding an earlier run, unless resuming or overwriting (then only the run's own
 *     files are removed; `replaceOwnKind` does the same for a run of the same kind),
 *   - a non-empty directory that is not a run, unless overwriting (nothing of it is removed).
 */
export function prepareRunDir(dir: string, o: PrepareRunDirOptions): void {
  const demo = o.kind === 'demo';
  const existing = entries(dir);
  if (o.resume) {
    if (!existing.length) throw new RunDirError(`--resume: ${dir} holds no run to resume`);
  } else if (existing.length) {
    const marker = readRunMarker(dir);
    const run = isRunDir(dir);
    const foreign = foreignEntries(dir, demo);
    // a run of the same kind, or (from before the marker existed) a directory of only its files
    const sameKind = o.replaceOwnKind && (marker ? marker.kind === o.kind : !foreign.length);
    const list = foreign.length ? foreign : existing;
    const shown = list.slice(0, 3).map((e) => `'${e}'`).join(', ') + (list.length > 3 ? `, ... ${list.length} in all` : '');
    if (!o.overwrite && !sameKind) {
      if (run)
        throw new RunDirError(
          `${dir} already holds a run${marker ? ` (${marker.kind}, ${marker.status})` : ''}; ` +
            `continue it with --resume, choose another --output-dir, or replace it with ${hint}`,
        );
      throw new RunDirError(
        `${dir} is not empty and is not a grpo run (it holds ${shown}); ` +
          `choose an empty or new --output-dir, or write into it with ${hint}`,
      );
    }
    if (sameKind && !o.overwrite && foreign.length)
      throw new RunDirError(
        `${dir} holds an earlier grpo ${o.kind} and other files (${shown}); ` +
          `choose another --output-dir, or replace the run's files with ${hint}`,
      );
    removeRunFiles(dir, demo);
  }
  fs.mkdirSync(dir, { recursive: true });
  const prev = o.resume ? readRunMarker(dir) : null;
  writeRunMarker(dir, { format: 'grpo-kernels-run', kind: prev?.kind ?? o.kind, status: 'running', startedAt: new Date().toISOString() });
}

/** Writes a whole file or nothing (temporary file, then rename): a kill never leaves half a file. */
export function writeTextAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export function writeRunMarker(dir: string, m: RunMarker): void {
  writeTextAtomic(path.join(dir, RUN_MARKER), JSON.stringify(m, null, 2) + '\n');
}

/** Records how the run ended in its marker (a failed run keeps its error for later). */
export function finishRunDir(dir: string, error?: unknown): void {
  const m = readRunMarker(dir);
  if (!m) return;
  writeRunMarker(dir, {
    ...m,
    status: error === undefined ? 'completed' : 'failed',
    finishedAt: new Date().toISOString(),
    ...(error === undefined ? { error: undefined } : { error: error instanceof Error ? error.message : String(error) }),
  });
}

/**
 * Reads metrics.jsonl. A last line without its newline that does not parse is a torn write
 * (the process was killed mid-append): it is returned as `torn` instead of failing. Any other
 * line that does not parse is an error naming the file and line.
 */
export function readMetricsFile(file: string): { rows: Record<string, unknown>[]; torn: string | null } {
  if (!fs.existsSync(file)) return { rows: [], torn: null };
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const rows: Record<string, unknown>[] = [];
  let torn: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (!l.trim()) continue;
    try {
      const r = JSON.parse(l);
      if (!r || typeof r !== 'object' || Array.isArray(r)) throw new Error('not a JSON object');
      rows.push(r);
    } catch (e) {
      if (i === lines.length - 1) torn = l;
      else throw new Error(`${file}: line ${i + 1} is not a JSON object (${(e as Error).message})`);
    }
  }
  return { rows, torn };
}
