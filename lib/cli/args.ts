/**
 * Command-line parsing: `grpo <command> [positional] [--flag value | --flag=value | --bool | --no-bool]...`.
 * Flags are the option names in kebab-case (camelCase and snake_case accepted too, so TRL's
 * `--num_generations 8` works); list options take comma-separated or space-separated values
 * (`--reward-funcs accuracy format`, as TRL's and ms-swift's parsers do). `--config file.yaml`
 * (or .yml / .json) loads options first, and flags given on the command line override them.
 * TRL's names for options we name differently are aliases (TRL_ALIASES). Unknown flags and
 * config keys are errors with a did-you-mean.
 */
import * as fs from 'fs';
import * as YAML from 'yaml';
import { coerceOption, defaultOptions, flagName, Options, OPTIONS, OptionSpec, optionSpec } from '../trainer/config';
import { editDistance } from '../validate';

export const COMMANDS = ['sft', 'train', 'eval', 'demo', 'report', 'serve'] as const;
export type Command = (typeof COMMANDS)[number];

export interface ParsedArgs {
  /** 'help' for `grpo`, `grpo --help`, `grpo help [command]` and `grpo <command> --help`. */
  command: Command | 'help' | 'version';
  /** With command 'help': the command whose help was asked for (undefined: the overview). */
  helpFor?: Command;
  options: Options;
  /** Arguments that are not flags (only `grpo report DIR` takes one). */
  positionals: string[];
}

/**
 * TRL's GRPOConfig / `trl grpo` (and ms-swift's) names for options named differently here.
 * `perDeviceTrainBatchSize` counts completions (TRL) and is converted to prompts per step
 * (batchSize) after parsing; `resumeFromCheckpoint` takes a checkpoint path or nothing.
 */
export const TRL_ALIASES: Record<string, string> = {
  rewardFuncs: 'rewards',
  perDeviceTrainBatchSize: 'perDeviceTrainBatchSize',
  advEstimator: 'advantageEstimator',  // verl algorithm.adv_estimator
};

const loose = (s: string) => s.replace(/[-_]/g, '').toLowerCase();
const ALIAS_BY_LOOSE = new Map(Object.entries(TRL_ALIASES).map(([k, v]) => [loose(k), v]));

/** Options only the parser knows (turned into table options after parsing). */
const PARSER_SPECS: Record<string, OptionSpec> = {
  perDeviceTrainBatchSize: { section: '', name: 'perDeviceTrainBatchSize', type: 'int', default: undefined, help: '' },
};

/** The option a flag or config key names (our name in any case style, or a TRL alias). */
function lookup(name: string): OptionSpec | undefined {
  const alias = ALIAS_BY_LOOSE.get(loose(name));
  if (alias) return PARSER_SPECS[alias] ?? optionSpec(alias);
  return optionSpec(name);
}

/** The candidate closest to `name` (compared without case, '-' and '_'), if it is close enough to be a typo. */
export function didYouMean(name: string, candidates: readonly string[]): string | undefined {
  const n = loose(name);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    // a truncated name ("--epsilonhi") prefers the option it starts ("--epsilon-high") on a tie
    const d = editDistance(n, loose(c)) - (loose(c).startsWith(n) ? 0.5 : 0);
    if (d < bestD) (bestD = d), (best = c);
  }
  // prefix typos ("--max-step") and a few wrong letters; never a guess from nothing
  return best !== undefined && bestD <= Math.max(2, Math.floor(n.length / 4)) ? best : undefined;
}

const FLAG_NAMES = () => [
  ...OPTIONS.map((o) => flagName(o.name)),
  ...OPTIONS.filter((o) => o.type === 'boolean').map((o) => 'no-' + flagName(o.name)),
  ...Object.keys(TRL_ALIASES).map(flagName),
];

function unknownFlag(name: string): RangeError {
  const s = didYouMean(name, FLAG_NAMES());
  return new RangeError(`unknown option --${name}${s ? ` (did you mean --${s}?)` : ''} (grpo --help lists every option)`);
}

/** TRL writes booleans as True/False; scaleRewards also takes TRL's booleans (True = group, False = none). */
function coerce(spec: OptionSpec, raw: unknown, where: string): unknown {
  let v = raw;
  if (typeof v === 'string' && /^(true|false)$/i.test(v) && (spec.type === 'boolean' || spec.name === 'scaleRewards')) v = v.toLowerCase() === 'true';
  if (spec.name === 'scaleRewards' && typeof v === 'boolean') v = v ? 'group' : 'none';
  return coerceOption(spec, v, where);
}

const isList = (s: OptionSpec) => s.type === 'strings' || s.type === 'numbers';

/** Reads a --config file: YAML for .yaml/.yml, JSON otherwise; an object of options. */
export function readConfigFile(file: string): Options {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--config ${file}: cannot read (${(e as Error).message})`);
  }
  let obj: unknown;
  const yaml = /\.ya?ml$/i.test(file);
  try {
    obj = yaml ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(`--config ${file}: invalid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new Error(`--config ${file}: expected a ${yaml ? 'YAML mapping' : 'JSON object'} of options`);
  const out: Options = {};
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const spec = lookup(k);
    if (!spec) {
      const s = didYouMean(k, OPTIONS.map((o) => o.name));
      throw new RangeError(`--config ${file}: unknown option '${k}'${s ? ` (did you mean '${s}'?)` : ''} (see grpo --help)`);
    }
    if (spec.name === 'config') throw new RangeError(`--config ${file}: a config file cannot name another config file`);
    if (v === null) continue;
    if (spec.name === 'resumeFromCheckpoint' && (v === true || v === false)) {
      out.resume = v;
      continue;
    }
    out[spec.name] = coerce(spec, v, `--config ${file}:`);
  }
  return out;
}

/** perDeviceTrainBatchSize (TRL: completions per device per micro-batch) → batchSize (prompts per step). */
function convertTrlOptions(o: Options): Options {
  const r = { ...o };
  if (r.perDeviceTrainBatchSize !== undefined) {
    const d = defaultOptions();
    const pd = r.perDeviceTrainBatchSize as number;
    const G = (r.numGenerations ?? d.numGenerations) as number;
    const gas = (r.gradientAccumulationSteps ?? d.gradientAccumulationSteps) as number;
    const completions = pd * gas;
    if (!(pd >= 1) || completions % G !== 0)
      throw new RangeError(
        `--per-device-train-batch-size: expected a positive multiple of num-generations / gradient-accumulation-steps (${G} completions per prompt, ${gas} accumulation steps) but received ${pd}`,
      );
    if (r.batchSize !== undefined && r.batchSize !== completions / G)
      throw new RangeError(`--per-device-train-batch-size ${pd} means --batch-size ${completions / G} (prompts per step) but --batch-size ${r.batchSize} was also given`);
    r.batchSize = completions / G;
    delete r.perDeviceTrainBatchSize;
  }
  if (r.resumeFromCheckpoint !== undefined) r.resume = true;
  return r;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const args = [...argv];
  let command: Command | undefined;
  if (args[0] === '--version' || args[0] === '-V' || args[0] === '-v') return { command: 'version', options: {}, positionals: [] };
  if (args.length && !args[0].startsWith('-')) {
    const c = args.shift()!;
    if (c === 'help') {
      const what = args[0];
      if (what && !(COMMANDS as readonly string[]).includes(what)) throw unknownCommand(what);
      return { command: 'help', helpFor: what as Command | undefined, options: {}, positionals: [] };
    }
    if (!(COMMANDS as readonly string[]).includes(c)) throw unknownCommand(c);
    command = c as Command;
  }
  if (!command) {
    if (!args.length || args.includes('--help') || args.includes('-h')) return { command: 'help', options: {}, positionals: [] };
    throw new RangeError(`expected a command first (${COMMANDS.join(', ')}) but received '${args[0]}' (grpo --help)`);
  }
  if (args.includes('--help') || args.includes('-h')) return { command: 'help', helpFor: command, options: {}, positionals: [] };
  const flags: Options = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) {
      if (command === 'report') {
        positionals.push(a);
        continue;
      }
      throw new RangeError(`unexpected argument '${a}' (flags look like --name value)`);
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let spec = lookup(name);
    let negated = false;
    if (!spec && name.startsWith('no-')) {
      spec = optionSpec(name.slice(3));
      negated = !!spec && spec.type === 'boolean';
      if (!negated) spec = undefined;
    }
    if (!spec) throw unknownFlag(name);
    const next = args[i + 1];
    if (spec.type === 'boolean') {
      if (negated) flags[spec.name] = false;
      else if (value !== undefined) flags[spec.name] = coerce(spec, value, 'flag');
      else if (next !== undefined && /^(true|false)$/i.test(next)) flags[spec.name] = coerce(spec, args[++i], 'flag');
      else flags[spec.name] = true;
      continue;
    }
    if (spec.name === 'resumeFromCheckpoint' && value === undefined && (next === undefined || next.startsWith('--') || /^(true|false)$/i.test(next))) {
      // TRL: a bare --resume_from_checkpoint (or True) resumes the latest checkpoint of the output dir
      const on = next === undefined || next.startsWith('--') ? true : args[++i].toLowerCase() === 'true';
      flags.resume = on;
      continue;
    }
    if (value === undefined) {
      if (next === undefined || next.startsWith('--')) throw new RangeError(`option --${name} needs a value`);
      value = args[++i];
      if (isList(spec)) {
        // space-separated lists (argparse nargs='+'): every following argument up to the next flag
        const values = [value];
        while (i + 1 < args.length && !args[i + 1].startsWith('--')) values.push(args[++i]);
        flags[spec.name] = values.flatMap((v) => coerce(spec!, v, 'flag') as unknown[]);
        continue;
      }
    }
    flags[spec.name] = coerce(spec, value, 'flag');
  }
  const fromFile = typeof flags.config === 'string' ? readConfigFile(flags.config) : {};
  return { command, options: convertTrlOptions({ ...fromFile, ...flags }), positionals };
}

function unknownCommand(c: string): RangeError {
  const s = didYouMean(c, COMMANDS);
  return new RangeError(`unknown command '${c}'${s ? ` (did you mean '${s}'?)` : ''}: expected one of ${COMMANDS.join(', ')} (grpo --help)`);
}
