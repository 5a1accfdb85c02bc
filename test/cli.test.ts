// CLI: flags, the JSON config file, --help covering every option, bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs, didYouMean } from '../lib/cli/args';
import { editDistance } from '../lib/validate';
import { usage } from '../lib/cli/main';
import { OPTIONS, helpText, validateOptions, defaultOptions, flagName, optionSpec } from '../lib/trainer/config';
import { ProgressBar, formatDuration } from '../lib/cli/progress';

test('flags: kebab and camel case, =value, booleans, --no-, lists', () => {
  const a = parseArgs(['train', '--max-steps', '5', '--learningRate=0.01', '--dynamic-sampling', '--no-progress', '--rewards', 'accuracy,cosine', '--reward-weights', '1,0.5', '--ops=+,-,*']);
  assert.is(a.command, 'train');
  assert.equal(a.options, { maxSteps: 5, learningRate: 0.01, dynamicSampling: true, progress: false, rewards: ['accuracy', 'cosine'], rewardWeights: [1, 0.5], ops: ['+', '-', '*'] });
  assert.is(parseArgs([]).command, 'help');
  assert.is(parseArgs(['eval', '--help']).command, 'help');
  assert.is(parseArgs(['eval', '--help']).helpFor, 'eval');
});

test('bad flags name the problem', () => {
  assert.throws(() => parseArgs(['fly']), /unknown command 'fly'/);
  assert.throws(() => parseArgs(['train', '--max-stepz', '3']), /unknown option --max-stepz \(did you mean --max-steps\?\)/);
  assert.throws(() => parseArgs(['train', '--max-steps', 'x']), /maxSteps: expected an integer/);
  assert.throws(() => parseArgs(['train', '--max-steps']), /needs a value/);
  assert.throws(() => parseArgs(['train', '--loss-type', 'mean']), /lossType: expected one of grpo, bnpo, dapo, dr_grpo, seq_sum/);
  assert.throws(() => parseArgs(['train', 'stray']), /unexpected argument 'stray'/);
});

test('--config JSON: validated, flags override it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-cli-'));
  const f = path.join(dir, 'c.json');
  fs.writeFileSync(f, JSON.stringify({ maxSteps: 7, beta: 0.04, lossType: 'grpo' }));
  const a = parseArgs(['train', '--config', f, '--max-steps', '9']);
  assert.is(a.options.maxSteps, 9);
  assert.is(a.options.beta, 0.04);
  assert.is(a.options.lossType, 'grpo');
  fs.writeFileSync(f, JSON.stringify({ maxStep: 7 }));
  assert.throws(() => parseArgs(['train', '--config', f]), /unknown option 'maxStep' \(did you mean 'maxSteps'\?\)/);
  fs.writeFileSync(f, '{oops');
  assert.throws(() => parseArgs(['train', '--config', f]), /--config/);
  assert.throws(() => validateOptions({ beta: 'lots' }), /beta: expected a number/);
});

test('per-command help: grpo <command> --help and grpo help <command> list the options that apply', () => {
  assert.equal(parseArgs(['train', '--max-steps', '3', '--help']), { command: 'help', helpFor: 'train', options: {}, positionals: [] });
  assert.equal(parseArgs(['help', 'sft']), { command: 'help', helpFor: 'sft', options: {}, positionals: [] });
  assert.equal(parseArgs(['--help']), { command: 'help', options: {}, positionals: [] });
  const train = usage('train'), sft = usage('sft'), ev = usage('eval'), rep = usage('report');
  assert.ok(train.startsWith('Usage: grpo train'));
  for (const f of ['--num-generations', '--beta', '--reward-weights', '--learning-rate', '--max-completion-length']) assert.ok(train.includes(f + ' '), `train help has ${f}`);
  assert.not.ok(train.includes('--sft-steps'));
  assert.ok(sft.includes('--sft-steps ') && sft.includes('--d-model ') && !sft.includes('--num-generations'));
  assert.ok(ev.includes('--eval-k ') && ev.includes('--checkpoint ') && !ev.includes('--num-generations') && !ev.includes('--learning-rate'));
  assert.ok(rep.includes('grpo report DIR') && !rep.includes('--seed'));
  const all = usage();
  for (const c of ['sft', 'train', 'eval', 'demo', 'report']) assert.ok(all.includes(`  ${c} `), c);
  assert.ok(all.includes('--version'));
  assert.is(parseArgs(['--version']).command, 'version');
});

test('did-you-mean: close typos get a suggestion, unrelated names none', () => {
  assert.is(editDistance('kitten', 'sitting'), 3);
  assert.is(editDistance('ab', 'ba'), 1);
  assert.is(didYouMean('learning-rte', ['learning-rate', 'seed']), 'learning-rate');
  assert.is(didYouMean('zzz', ['learning-rate', 'seed']), undefined);
  assert.throws(() => parseArgs(['train', '--num-generation', '4']), /did you mean --num-generations\?/);
  assert.throws(() => parseArgs(['train', '--lossType', 'dapo', '--epsilonhi', '0.3']), /did you mean --epsilon-high\?/);
  assert.throws(() => parseArgs(['train', '--reward-func', 'format']), /did you mean --reward-funcs\?/);
  assert.throws(() => parseArgs(['train', '--no-progres']), /did you mean --no-progress\?/);
  assert.throws(() => parseArgs(['train', '--qwertyuiop', '1']), (e: Error) => /unknown option --qwertyuiop/.test(e.message) && !/did you mean/.test(e.message));
  assert.throws(() => parseArgs(['trian']), /unknown command 'trian' \(did you mean 'train'\?\)/);
});

test('list options take space-separated values (argparse nargs=+), comma-separated too', () => {
  const a = parseArgs(['train', '--reward-funcs', 'accuracy', 'format', '--max-steps', '3', '--reward-weights', '1', '0.5', '--ops', '+', '-', '--stop', 'x,y', 'z']);
  assert.equal(a.options, { rewards: ['accuracy', 'format'], maxSteps: 3, rewardWeights: [1, 0.5], ops: ['+', '-'], stop: ['x', 'y', 'z'] });
  assert.equal(parseArgs(['train', '--rewards', 'accuracy']).options, { rewards: ['accuracy'] });
  assert.equal(parseArgs(['train', '--reward-weights', '-1', '2']).options, { rewardWeights: [-1, 2] }, 'a negative number is a value, not a flag');
  assert.throws(() => parseArgs(['train', '--reward-weights', '1', 'x']), /rewardWeights: expected a number/);
});

test("TRL's names: snake_case flags, --reward-funcs, --resume-from-checkpoint, --per-device-train-batch-size, True/False", () => {
  const a = parseArgs([
    'train', '--num_generations', '4', '--max_completion_length', '6', '--learning_rate', '0.01', '--per_device_train_batch_size', '16',
    '--beta', '0.04', '--epsilon', '0.2', '--epsilon_high', '0.28', '--loss_type', 'grpo', '--scale_rewards', 'False', '--num_iterations', '2',
    '--temperature', '0.9', '--top_p', '0.95', '--top_k', '20', '--min_p', '0.05', '--max_steps', '10', '--save_steps', '5', '--seed', '3',
    '--output_dir', 'out', '--mask_truncated_completions', 'True', '--reward_funcs', 'accuracy', 'format', '--reward_weights', '1.0', '0.2',
  ]);
  assert.equal(a.options, {
    numGenerations: 4, maxCompletionLength: 6, learningRate: 0.01, batchSize: 4, beta: 0.04, epsilon: 0.2, epsilonHigh: 0.28, lossType: 'grpo',
    scaleRewards: 'none', numIterations: 2, temperature: 0.9, topP: 0.95, topK: 20, minP: 0.05, maxSteps: 10, saveSteps: 5, seed: 3,
    outputDir: 'out', maskTruncatedCompletions: true, rewards: ['accuracy', 'format'], rewardWeights: [1, 0.2],
  });
  // TRL: per_device_train_batch_size × gradient_accumulation_steps completions = batchSize prompts × numGenerations
  assert.is(parseArgs(['train', '--per-device-train-batch-size', '8', '--gradient-accumulation-steps', '4']).options.batchSize, 4);
  assert.throws(() => parseArgs(['train', '--per-device-train-batch-size', '6']), /per-device-train-batch-size: expected a positive multiple of num-generations/);
  assert.throws(() => parseArgs(['train', '--per-device-train-batch-size', '16', '--batch-size', '3']), /means --batch-size 2/);
  assert.is(parseArgs(['train', '--scale-rewards', 'True']).options.scaleRewards, 'group');
  assert.equal(parseArgs(['train', '--resume-from-checkpoint', 'runs/x/checkpoints/step-4']).options, { resumeFromCheckpoint: 'runs/x/checkpoints/step-4', resume: true });
  assert.equal(parseArgs(['train', '--resume_from_checkpoint']).options, { resume: true });
  assert.equal(parseArgs(['train', '--resume_from_checkpoint', 'True', '--seed', '1']).options, { resume: true, seed: 1 });
  assert.equal(parseArgs(['train', '--resume', 'False']).options, { resume: false });
});

test('--config YAML: snake_case TRL keys, lists, flags override; errors name the file, the line and the key', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-yaml-'));
  const f = path.join(dir, 'grpo.yaml');
  fs.writeFileSync(f, [
    '# a TRL-style config',
    'num_generations: 4',
    'learning_rate: 5.0e-3',
    'reward_funcs:',
    '  - accuracy',
    '  - format',
    'reward_weights: [1.0, 0.5]',
    'scale_rewards: false',
    'mask_truncated_completions: true',
    'output_dir: runs/yaml',
    'max_steps: 7',
    '',
  ].join('\n'));
  const a = parseArgs(['train', '--config', f, '--max-steps', '9']);
  assert.equal(a.options, {
    config: f, numGenerations: 4, learningRate: 5e-3, rewards: ['accuracy', 'format'], rewardWeights: [1, 0.5], scaleRewards: 'none',
    maskTruncatedCompletions: true, outputDir: 'runs/yaml', maxSteps: 9,
  });
  const yml = path.join(dir, 'c.yml');
  fs.writeFileSync(yml, 'beta: 0.04\nlossType: dr_grpo\n');
  assert.equal(parseArgs(['train', '--config', yml]).options, { config: yml, beta: 0.04, lossType: 'dr_grpo' });
  fs.writeFileSync(yml, 'beta: 0.04\nnum_generatons: 4\n');
  assert.throws(() => parseArgs(['train', '--config', yml]), /c\.yml: unknown option 'num_generatons' \(did you mean 'numGenerations'\?\)/);
  fs.writeFileSync(yml, 'beta: 0.04\nseed: "unterminated\n');
  assert.throws(() => parseArgs(['train', '--config', yml]), /c\.yml: invalid YAML: Missing closing "quote at line 3/);
  fs.writeFileSync(yml, 'beta: 0.04\nbeta: 0.05\n');
  assert.throws(() => parseArgs(['train', '--config', yml]), /invalid YAML: .*[Uu]nique/);
  fs.writeFileSync(yml, '- 1\n- 2\n');
  assert.throws(() => parseArgs(['train', '--config', yml]), /expected a YAML mapping/);
  fs.writeFileSync(yml, 'beta: lots\n');
  assert.throws(() => parseArgs(['train', '--config', yml]), /beta: expected a number but received "lots"/);
  assert.throws(() => parseArgs(['train', '--config', path.join(dir, 'none.yaml')]), /none\.yaml: cannot read/);
  fs.rmSync(dir, { recursive: true });
});

test('--help explains every option, with its default', () => {
  const h = helpText();
  for (const o of OPTIONS) {
    const flag = '--' + flagName(o.name);
    assert.ok(h.includes(flag + ' '), flag);
    assert.is(optionSpec(flagName(o.name)), o, `${flag} parses back`);
    assert.ok(o.help.length > 5, `${o.name} has help`);
  }
  assert.ok(h.includes('(default 42)'));
  assert.is(flagName('dFF'), 'd-ff');
  assert.is(flagName('maxSeqLen'), 'max-seq-len');
  assert.is(optionSpec('max_completion_length')!.name, 'maxCompletionLength');
  // TRL's names are all there
  for (const n of ['numGenerations', 'beta', 'epsilon', 'epsilonHigh', 'delta', 'lossType', 'scaleRewards', 'importanceSamplingLevel', 'numIterations', 'temperature', 'topK', 'topP', 'minP', 'maxCompletionLength', 'maskTruncatedCompletions', 'topEntropyQuantile', 'rewardWeights', 'gradientAccumulationSteps', 'learningRate', 'maxGradNorm', 'seed', 'dynamicSampling'])
    assert.ok(OPTIONS.some((o) => o.name === n), n);
  assert.is(defaultOptions().seed, 42);
});

test('progress bar: step, fields, ETA', () => {
  const chunks: string[] = [];
  const stream = { isTTY: false, write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream;
  const bar = new ProgressBar('grpo', 10, 0, true, 5, stream);
  bar.update(4, { reward: 0.5 });
  assert.is(chunks.length, 0, 'not a terminal: a line every 5 steps');
  bar.update(5, { reward: 0.5, kl: 0.001 });
  assert.match(chunks[0], /grpo  5\/10 .* reward 0\.500  kl 1\.0e-3  ETA/);
  assert.is(formatDuration(125), '2m05s');
  assert.is(formatDuration(NaN), '?');
});

test.run();
