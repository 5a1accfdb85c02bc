/**
 * Command-line parsing: `grpo <command> [--flag value | --flag=value | --bool | --no-bool]...`.
 * Flags are the option names in kebab-case (camelCase accepted too); `--config file.json` loads
 * options from JSON first, and flags given on the command line override them.
 */
import * as fs from 'fs';
import { coerceOption, Options, optionSpec, validateOptions } from '../trainer/config';

export const COMMANDS = ['sft', 'train', 'eval', 'demo'] as const;
export type Command = (typeof COMMANDS)[number];

export interface ParsedArgs {
  command: Command | 'help';
  options: Options;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const args = [...argv];
  let command: ParsedArgs['command'] = 'help';
  if (args.length && !args[0].startsWith('-')) {
    const c = args.shift()!;
    if (c === 'help') command = 'help';
    else if ((COMMANDS as readonly string[]).includes(c)) command = c as Command;
    else throw new RangeError(`unknown command '${c}': expected one of ${COMMANDS.join(', ')} (grpo --help)`);
  }
  const flags: Options = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') return { command: 'help', options: {} };
    if (!a.startsWith('--')) throw new RangeError(`unexpected argument '${a}' (flags look like --name value)`);
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let spec = optionSpec(name);
    let negated = false;
    if (!spec && name.startsWith('no-')) {
      spec = optionSpec(name.slice(3));
      negated = !!spec && spec.type === 'boolean';
      if (!negated) spec = undefined;
    }
    if (!spec) throw new RangeError(`unknown option --${name} (grpo --help lists every option)`);
    if (spec.type === 'boolean') {
      if (negated) flags[spec.name] = false;
      else if (value !== undefined) flags[spec.name] = coerceOption(spec, value, 'flag');
      else if (args[i + 1] === 'true' || args[i + 1] === 'false') flags[spec.name] = coerceOption(spec, args[++i], 'flag');
      else flags[spec.name] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= args.length) throw new RangeError(`option --${name} needs a value`);
      value = args[++i];
    }
    flags[spec.name] = coerceOption(spec, value, 'flag');
  }
  let options: Options = {};
  if (typeof flags.config === 'string') {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(flags.config, 'utf8'));
    } catch (e) {
      throw new Error(`--config ${flags.config}: ${(e as Error).message}`);
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error(`--config ${flags.config}: expected a JSON object of options`);
    options = validateOptions(json as Record<string, unknown>, `--config ${flags.config}:`);
  }
  return { command, options: { ...options, ...flags } };
}
