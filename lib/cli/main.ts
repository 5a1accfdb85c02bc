#!/usr/bin/env node
/**
 * grpo: the command-line entry (package "bin"; `npm start` runs `grpo demo`).
 *   grpo sft    supervised warm start
 *   grpo train  GRPO
 *   grpo eval   held-out pass@k
 *   grpo demo   all of it and the HTML report
 */
import { helpText } from '../trainer/config';
import { runDemo, runEval, runSft, runTrain } from '../trainer/run';
import { parseArgs } from './args';

const USAGE = `Usage: grpo <command> [options]

Commands:
  sft     supervised warm start on the task's solutions; writes a checkpoint to --output-dir
  train   GRPO: generate, score, advantages, update; metrics.jsonl, checkpoints, evaluations
  eval    held-out evaluation of a checkpoint: pass@1, pass@k, maj@k, reward, format, length
  demo    sft + train + eval + report.html (what \`npm start\` runs)

Examples:
  grpo sft --output-dir runs/sft --sft-steps 300
  grpo train --init runs/sft --output-dir runs/grpo --max-steps 60 --beta 0.04
  grpo train --output-dir runs/grpo --resume
  grpo eval --checkpoint runs/grpo --eval-k 16
  grpo train --task data/train.jsonl --reward-module ./my_rewards.js --rewards format

Options (flags in kebab-case; --config file.json gives them as a JSON object with camelCase keys):`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`grpo: ${(e as Error).message}\n`);
    return 2;
  }
  const { command, options } = parsed;
  if (command === 'help') {
    process.stdout.write(USAGE + helpText() + '\n');
    return 0;
  }
  if (command === 'sft') await runSft(options);
  else if (command === 'train') await runTrain(options);
  else if (command === 'eval') await runEval(options);
  else if (command === 'demo') await runDemo(options);
  return 0;
}

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
