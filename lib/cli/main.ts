#!/usr/bin/env node
/**
 * grpo: the command-line entry (package "bin"; `npm start` runs `grpo demo`).
 *   grpo sft     supervised warm start
 *   grpo train   GRPO
 *   grpo eval    held-out pass@k
 *   grpo demo    all of it and the HTML report
 *   grpo report  rebuild a run directory's report.html
 *   grpo serve   an OpenAI-compatible completions server for a model
 *   grpo data export   a task written out as an ms-swift JSONL dataset with media files
 * `grpo <command> --help` prints that command's options; `grpo --version` the package version.
 */
import * as fs from 'fs';
import * as path from 'path';
import { helpText, OptionSpec } from '../trainer/config';
import { runDemo, runEval, runSft, runTrain } from '../trainer/run';
import { writeRunReport } from '../report';
import { runServe } from '../serve';
import { COMMANDS, Command, parseArgs, TRL_ALIASES } from './args';
import { launchLocal } from '../parallel/launch';
import { DATA_USAGE, runData } from './data';

interface CommandInfo {
  summary: string;
  usage: string;
  examples: string[];
  /** Option sections that do not apply to the command (new sections show everywhere). */
  skipSections: string[] | 'all';
}

const SFT = 'Supervised warm start (grpo sft)';
export const COMMAND_INFO: Record<Command, CommandInfo> = {
  sft: {
    summary: "supervised warm start on the task's solutions; writes a checkpoint to --output-dir",
    usage: 'grpo sft [options]',
    examples: ['grpo sft --output-dir runs/sft --ops + --sft-stop-accuracy 0.2'],
    skipSections: ['GRPO', 'Rewards', 'Evaluation'],
  },
  train: {
    summary: 'GRPO: generate, score, advantages, update; metrics.jsonl, checkpoints, evaluations, report.html',
    usage: 'grpo train [options]',
    examples: [
      'grpo train --init runs/sft --output-dir runs/grpo --ops + --beta 0.04',
      'grpo train --output-dir runs/grpo --resume --max-steps 400',
      'grpo train --task data/train.jsonl --reward-module ./my_rewards.js --reward-funcs format',
      'grpo train --config grpo.yaml --num-generations 4',
    ],
    skipSections: [SFT],
  },
  eval: {
    summary: 'held-out evaluation of a checkpoint: pass@1, pass@k, maj@k, reward, format, length',
    usage: 'grpo eval [options]',
    examples: ['grpo eval --checkpoint runs/grpo --eval-k 16'],
    skipSections: ['GRPO', SFT, 'Optimisation', 'Model (built-in transformer)'],
  },
  demo: {
    summary: 'sft + train + eval + report.html (what `npm start` runs)',
    usage: 'grpo demo [options]',
    examples: ['grpo demo --output-dir runs/demo --seed 1'],
    skipSections: [],
  },
  report: {
    summary: "rebuild a run directory's report.html from its metrics.jsonl (and eval JSON)",
    usage: 'grpo report DIR   (or --output-dir DIR)',
    examples: ['grpo report runs/grpo'],
    skipSections: 'all',
  },
  serve: {
    summary: 'serve a checkpoint, an HF folder or a fresh model over HTTP (OpenAI /v1/completions, /health, /update_weights_from_disk)',
    usage: 'grpo serve [--checkpoint DIR | --model DIR] [--port N] [--host H]',
    examples: ['grpo serve --checkpoint runs/grpo --port 8000', 'grpo train --rollout-engine remote --rollout-urls http://127.0.0.1:8000'],
    skipSections: ['GRPO', SFT, 'Optimisation', 'Rewards', 'Task', 'Sampling'],
  },
};

function version(): string {
  // dist/cli/main.js and lib/cli/main.ts both sit two levels below the package root
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
}

const TRL_NOTE = `TRL's names are accepted too: snake_case flags (--num_generations 8), ${Object.keys(TRL_ALIASES)
  .map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()))
  .join(', ')}; list options take space- or comma-separated values (--reward-funcs accuracy format).`;

export function usage(cmd?: Command): string {
  if (!cmd) {
    return [
      'Usage: grpo <command> [options]      grpo <command> --help      grpo --version',
      '',
      'Commands:',
      ...COMMANDS.map((c) => `  ${c.padEnd(7)} ${COMMAND_INFO[c].summary}`),
      `  ${'data'.padEnd(7)} grpo data export --task NAME --out DIR: a task as ms-swift JSONL + media files (grpo data --help)`,
      '',
      'Examples:',
      ...COMMANDS.flatMap((c) => COMMAND_INFO[c].examples.map((e) => '  ' + e)),
      '',
      'Options (flags in kebab-case; --config file.yaml|file.json gives them as a mapping, keys camelCase or snake_case).',
      TRL_NOTE,
      helpText(),
    ].join('\n');
  }
  const info = COMMAND_INFO[cmd];
  const skip = info.skipSections;
  const include = (s: OptionSpec) => skip !== 'all' && !skip.includes(s.section);
  return [
    `Usage: ${info.usage}`,
    '',
    info.summary,
    '',
    'Examples:',
    ...info.examples.map((e) => '  ' + e),
    ...(skip === 'all' ? [] : ['', `Options of grpo ${cmd} (grpo --help lists every option):`, TRL_NOTE, helpText(include)]),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'data' || (argv[0] === 'help' && argv[1] === 'data')) {
    if (argv[0] === 'help') {
      process.stdout.write(DATA_USAGE + '\n');
      return 0;
    }
    try {
      return await runData(argv.slice(1));
    } catch (e) {
      process.stderr.write(`grpo data: ${(e as Error).message}\n`);
      return e instanceof RangeError ? 2 : 1;
    }
  }
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`grpo: ${(e as Error).message}\n`);
    return 2;
  }
  const { command, options } = parsed;
  if (command === 'version') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  if (command === 'help') {
    process.stdout.write(usage(parsed.helpFor) + '\n');
    return 0;
  }
  if (command === 'sft') await runSft(options);
  else if (command === 'train' && (options.nprocPerNode as number) > 1 && process.env.RANK === undefined)
    // --nproc-per-node N: this process only launches the ranks (each runs this same command)
    return launchLocal(options.nprocPerNode as number, { argv: process.argv.slice(1) });
  else if (command === 'train') await runTrain(options);
  else if (command === 'eval') await runEval(options);
  else if (command === 'demo') await runDemo(options);
  else if (command === 'serve') await runServe(options);
  else if (command === 'report') {
    if (parsed.positionals.length > 1) {
      process.stderr.write(`grpo report: expected one run directory but received ${parsed.positionals.length}: ${parsed.positionals.join(' ')}\n`);
      return 2;
    }
    const dir = parsed.positionals[0] ?? (options.outputDir as string | undefined);
    if (!dir) {
      process.stderr.write('grpo report: expected a run directory (grpo report DIR)\n');
      return 2;
    }
    process.stderr.write(`written ${writeRunReport(dir)}\n`);
  }
  return 0;
}

if (require.main === module) {
  // A command whose promise never settles (e.g. an awaited callback that never returns) would let
  // the event loop drain and the process exit 0 with nothing written: report it and exit 1 instead.
  let settled = false;
  process.on('beforeExit', () => {
    if (settled) return;
    process.stderr.write('grpo: the command stopped before it finished (something it awaited never settled); the run did not complete\n');
    process.exit(1);
  });

  main(process.argv.slice(2)).finally(() => (settled = true)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`grpo: ${e instanceof Error ? e.message : String(e)}\n`);
      if (process.env.GRPO_DEBUG) process.stderr.write(String((e as Error)?.stack) + '\n');
      process.exit(1);
    },
  );
}
