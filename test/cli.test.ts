// CLI: flags, the JSON config file, --help covering every option, bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from '../lib/cli/args';
import { OPTIONS, helpText, validateOptions, defaultOptions, flagName, optionSpec } from '../lib/trainer/config';
import { ProgressBar, formatDuration } from '../lib/cli/progress';

test('flags: kebab and camel case, =value, booleans, --no-, lists', () => {
  const a = parseArgs(['train', '--max-steps', '5', '--learningRate=0.01', '--dynamic-sampling', '--no-progress', '--rewards', 'accuracy,cosine', '--reward-weights', '1,0.5', '--ops=+,-,*']);
  assert.is(a.command, 'train');
  assert.equal(a.options, { maxSteps: 5, learningRate: 0.01, dynamicSampling: true, progress: false, rewards: ['accuracy', 'cosine'], rewardWeights: [1, 0.5], ops: ['+', '-', '*'] });
  assert.is(parseArgs([]).command, 'help');
  assert.is(parseArgs(['eval', '--help']).command, 'help');
});

test('bad flags name the problem', () => {
  assert.throws(() => parseArgs(['fly']), /unknown command 'fly'/);
  assert.throws(() => parseArgs(['train', '--max-stepz', '3']), /unknown option --max-stepz/);
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
  assert.throws(() => parseArgs(['train', '--config', f]), /unknown option 'maxStep'/);
  fs.writeFileSync(f, '{oops');
  assert.throws(() => parseArgs(['train', '--config', f]), /--config/);
  assert.throws(() => validateOptions({ beta: 'lots' }), /beta: expected a number/);
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
