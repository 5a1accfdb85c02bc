// Built-in tasks (seeded generation, disjoint splits, checkers) and user JSONL datasets
// (ms-swift layout, malformed lines reported with their line number).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { arithmeticTask, countdownTask, evalExpression, parseJsonlDataset, loadJsonlDataset, DatasetError, datasetTask, extractAnswer, answersMatch, parseNumber, makeTask } from '../lib/tasks';

test('arithmetic: same seed same problems, different seed different order; splits disjoint', () => {
  const a = arithmeticTask({ seed: 1, trainSize: 500, testSize: 50 });
  const b = arithmeticTask({ seed: 1, trainSize: 500, testSize: 50 });
  const c = arithmeticTask({ seed: 2, trainSize: 500, testSize: 50 });
  assert.equal(a.train.map((e) => e.prompt), b.train.map((e) => e.prompt));
  assert.not.equal(a.train.map((e) => e.prompt), c.train.map((e) => e.prompt));
  assert.is(a.train.length, 500);
  assert.is(a.test.length, 50);
  const tr = new Set(a.train.map((e) => e.prompt));
  for (const e of a.test) assert.not.ok(tr.has(e.prompt), `held-out ${e.prompt} is in train`);
});

test('arithmetic: answers are right, non-negative by default, difficulty by digits', () => {
  const t = arithmeticTask({ seed: 3, digits: 3, ops: ['+', '-', '*'], trainSize: 300, testSize: 30 });
  for (const e of [...t.train, ...t.test]) {
    const m = /^(\d+)([+\-*])(\d+)=$/.exec(e.prompt)!;
    assert.ok(m, e.prompt);
    const [a, op, b] = [+m[1], m[2], +m[3]];
    assert.ok(a >= 100 && a <= 999 && b >= 100 && b <= 999);
    assert.is(e.answer, String(op === '+' ? a + b : op === '-' ? a - b : a * b));
    assert.ok(+e.answer >= 0);
  }
  const neg = arithmeticTask({ seed: 3, digits: 1, ops: ['-'], allowNegative: true, trainSize: 80, testSize: 20 });
  assert.ok([...neg.train, ...neg.test].some((e) => +e.answer < 0));
  assert.throws(() => arithmeticTask({ digits: 0 }), /digits/);
});

test('arithmetic checker: exact integer only; format pattern', () => {
  const t = arithmeticTask({ seed: 0, trainSize: 10, testSize: 10 });
  const ex = { id: 'x', prompt: '47+38=', answer: '85' };
  assert.ok(t.isCorrect('85', ex));
  assert.not.ok(t.isCorrect('850', ex));
  assert.not.ok(t.isCorrect('85 85', ex));
  assert.not.ok(t.isCorrect('', ex));
  assert.ok(t.formatPattern.test('85'));
  assert.not.ok(t.formatPattern.test('8a5'));
  assert.is(t.extractAnswer('x 12 y 85'), '85');
});

test('countdown: every generated solution reaches its target with the given numbers', () => {
  const t = countdownTask({ seed: 5, trainSize: 200, testSize: 20 });
  assert.ok(t.train.length >= 150);
  for (const e of [...t.train, ...t.test]) {
    assert.ok(t.isCorrect(e.solution!, e), `${e.prompt} ${e.solution}`);
    assert.ok(t.formatPattern.test(e.solution!));
  }
  const ex = { id: 'c', prompt: '3 5 7:22=', answer: '22', meta: { numbers: [3, 5, 7], target: 22 } };
  assert.ok(t.isCorrect('3*5+7', ex));
  assert.ok(t.isCorrect('7+5*3', ex));
  assert.not.ok(t.isCorrect('3*5+7+0', ex), 'a number not given');
  assert.not.ok(t.isCorrect('5*5-3', ex), 'a number used twice');
  assert.not.ok(t.isCorrect('3*(5+7', ex), 'malformed');
  assert.not.ok(t.isCorrect('3*5', ex), 'not every number used');
});

test('evalExpression: precedence, parentheses, division by zero', () => {
  assert.is(evalExpression('2+3*4')!.value, 14);
  assert.is(evalExpression('(2+3)*4')!.value, 20);
  assert.is(evalExpression('8/4/2')!.value, 1);
  assert.is(evalExpression('1/0'), null);
  assert.is(evalExpression('2+'), null);
  assert.is(evalExpression('alert(1)'), null);
});

test('answer extraction and matching', () => {
  assert.is(extractAnswer('<think>x</think><answer> 42 </answer>'), '42');
  assert.is(extractAnswer('so \\boxed{\\frac{1}{2}} done'), '\\frac{1}{2}');
  assert.is(extractAnswer('steps #### 17'), '17');
  assert.is(extractAnswer('a 3 then 4.5'), '4.5');
  assert.is(extractAnswer('nothing'), 'nothing');
  assert.is(extractAnswer('  '), null);
  assert.ok(answersMatch('1,000', '1000'));
  assert.ok(answersMatch('0.5', '1/2'));
  assert.ok(answersMatch(' Paris. ', 'paris'));
  assert.not.ok(answersMatch('3', '4'));
  assert.not.ok(answersMatch(null, '4'));
});

test('text answers: extracted as the whole text, matched normalised by default, exactly when configured', () => {
  assert.is(extractAnswer('cba'), 'cba');
  assert.is(extractAnswer(' yes\n'), 'yes');
  assert.ok(answersMatch(extractAnswer('yes'), 'yes'));
  assert.ok(answersMatch(extractAnswer('cba'), 'cba'));
  assert.not.ok(answersMatch(extractAnswer('abc'), 'cba'));
  assert.ok(answersMatch('New   York', 'new york'));
  assert.not.ok(answersMatch('New York', 'new york', { ignoreCase: false }));
  assert.ok(answersMatch('New  York ', 'New York', { ignoreCase: false }));
  assert.not.ok(answersMatch('New  York', 'New York', { normalizeWhitespace: false }));
  assert.not.ok(answersMatch('Paris ', 'Paris', { exact: true }));
  assert.ok(answersMatch('Paris', 'Paris', { exact: true }));
  assert.not.ok(answersMatch('0.5', '1/2', { exact: true }));
  assert.not.ok(answersMatch('0.5', '1/2', { numeric: false }));
});

test('numbers: extraction of 1,000 / .5 / -3 / 1/2 / \\frac / 1e3; matching by exact rational value', () => {
  assert.is(extractAnswer('total 1,000 apples'), '1,000');
  assert.is(extractAnswer('it is .50'), '.50');
  assert.is(extractAnswer('x = -3'), '-3');
  assert.is(extractAnswer('5-3'), '3', 'a binary minus is not a sign');
  assert.is(extractAnswer('half: 1/2'), '1/2');
  assert.is(extractAnswer('half: \\frac{1}{2}'), '\\frac{1}{2}');
  assert.is(extractAnswer('1e3 ms'), '1e3');
  assert.is(extractAnswer('1,0000'), '0000', 'not a thousands separator');
  const same: [string, string][] = [
    ['0.5', '1/2'], ['.50', '1/2'], ['\\frac{1}{2}', '0.5'], ['\\dfrac{2}{4}', '.5'], ['1,000', '1000'],
    ['-0', '0'], ['+3', '3'], ['3.0', '3'], ['1e3', '1000'], ['2.5e-1', '1/4'], ['$42$', '42'], ['-\\frac{3}{6}', '-0.5'],
    ['1,234,567.50', '1234567.5'], ['10/4', '2.5'], ['\u22122', '-2'],
  ];
  for (const [a, b] of same) {
    assert.ok(answersMatch(a, b), `${a} = ${b}`);
    assert.ok(answersMatch(b, a), `${b} = ${a}`);
  }
  const different: [string, string][] = [['0.333', '1/3'], ['0.0000001', '0.0000009'], ['0.5', '-0.5'], ['1/0', '0'], ['1000', '100'], ['12', '1,2'], ['3', '4']];
  for (const [a, b] of different) assert.not.ok(answersMatch(a, b), `${a} != ${b}`);
  // math_verify's float_rounding = 6: equal after rounding to 6 decimals (exactly, on rationals)
  assert.ok(answersMatch('0.333333', '1/3'));
  assert.ok(answersMatch('0.6666667', '2/3'));
  assert.ok(answersMatch('-0.6666667', '-2/3'));
  assert.ok(answersMatch('1.0000001', '1'));
  assert.not.ok(answersMatch('1.000001', '1'));
  assert.not.ok(answersMatch('0.66666', '2/3'));
  assert.not.ok(answersMatch('0.333333', '1/3', { decimals: Infinity }), 'exact on request');
  assert.ok(answersMatch('0.33', '1/3', { decimals: 2 }));
  const r = parseNumber('-1,000.50')!;
  assert.is(r.num, -2001n);
  assert.is(r.den, 2n);
  assert.is(parseNumber('abc'), null);
  assert.is(parseNumber('1/0'), null);
});

test('dataset task: text answers score; answerMatch exact / case_sensitive', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-answers-'));
  const file = path.join(dir, 'd.jsonl');
  fs.writeFileSync(file, [
    JSON.stringify({ prompt: 'reverse abc', solution: 'cba' }),
    JSON.stringify({ prompt: 'is 2 even?', solution: 'Yes' }),
    JSON.stringify({ prompt: 'half', solution: '0.5' }),
  ].join('\n'));
  const t = makeTask({ task: file, testFile: file });
  const [rev, even, half] = t.test;
  assert.ok(t.isCorrect('cba', rev));
  assert.not.ok(t.isCorrect('abc', rev));
  assert.ok(t.isCorrect('yes', even));
  assert.ok(t.isCorrect('<answer>1/2</answer>', half));
  assert.ok(t.isCorrect('.5', half));
  const cs = makeTask({ task: file, testFile: file, answerMatch: 'case_sensitive' });
  assert.not.ok(cs.isCorrect('yes', cs.test[1]));
  assert.ok(cs.isCorrect('Yes', cs.test[1]));
  const ex = makeTask({ task: file, testFile: file, answerMatch: 'exact' });
  assert.not.ok(ex.isCorrect('.5', ex.test[2]));
  assert.ok(ex.isCorrect('0.5', ex.test[2]));
  fs.rmSync(dir, { recursive: true });
});

test('JSONL dataset: messages, prompt, query layouts; solution/answer/response columns; extra fields kept', () => {
  const text = [
    JSON.stringify({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: '2+2?' }], solution: '4' }),
    JSON.stringify({ prompt: 'capital of France?', answer: 'Paris', level: 3 }),
    '',
    JSON.stringify({ query: '3*3', response: 'It is <answer>9</answer>' }),
    JSON.stringify({ messages: [{ role: 'user', content: '1+1' }, { role: 'assistant', content: '2' }] }),
  ].join('\n');
  const { examples, errors } = parseJsonlDataset(text);
  assert.equal(errors, []);
  assert.is(examples.length, 4);
  assert.is(examples[0].prompt, 'Be brief.\n2+2?');
  assert.is(examples[0].answer, '4');
  assert.is(examples[1].meta!.level, 3);
  assert.is(examples[2].answer, '9');
  assert.is(examples[2].id, 'line-4');
  assert.is(examples[3].answer, '2');
  assert.is(examples[3].prompt, '1+1');
  // the chat turns are kept for chat templates; the trailing assistant turn (the reference) is not among them
  assert.equal(examples[0].messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: '2+2?' }]);
  assert.equal(examples[3].messages, [{ role: 'user', content: '1+1' }]);
  assert.is(examples[1].messages, undefined);
});

test('JSONL dataset: every malformed line is reported with its line number', () => {
  const text = [
    '{"prompt": "ok", "solution": "1"}',
    '{not json',
    '[1, 2]',
    '{"prompt": "no solution"}',
    '{"solution": "no prompt"}',
    '{"messages": [{"role": "user"}], "solution": "1"}',
    '{"prompt": "x", "solution": {"a": 1}}',
    '{"messages": [{"role": "assistant", "content": "only"}]}',
  ].join('\n');
  const { examples, errors } = parseJsonlDataset(text);
  assert.is(examples.length, 1);
  assert.equal(errors.map((e) => e.line), [2, 3, 4, 5, 6, 7, 8]);
  assert.match(errors[0].message, /invalid JSON/);
  assert.match(errors[2].message, /reference solution/);
  assert.match(errors[3].message, /prompt/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-ds-'));
  const f = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(f, text);
  try {
    loadJsonlDataset(f);
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, DatasetError);
    assert.match((e as Error).message, /line 2: invalid JSON/);
    assert.match((e as Error).message, /line 8:/);
  }
  const seen: number[] = [];
  assert.is(loadJsonlDataset(f, { skipMalformed: true, onError: (e) => seen.push(e.line) }).length, 1);
  assert.equal(seen, [2, 3, 4, 5, 6, 7, 8]);
  assert.throws(() => loadJsonlDataset(path.join(dir, 'missing.jsonl')), /cannot read/);
});

test('datasetTask: held-out split from the training file, accuracy via extracted answers; makeTask picks by name', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-ds-'));
  const f = path.join(dir, 'train.jsonl');
  fs.writeFileSync(f, Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `${i}+1=`, solution: String(i + 1) })).join('\n'));
  const t = datasetTask({ train: f, seed: 1 });
  assert.is(t.train.length + t.test.length, 20);
  assert.is(t.test.length, 2);
  const ex = t.train[0];
  assert.ok(t.isCorrect(`<think>hmm</think><answer>${ex.answer}</answer>`, ex));
  assert.ok(t.formatPattern.test('<think>a</think> <answer>1</answer>'));
  assert.is(makeTask({ task: f }).train.length, 18);
  assert.is(makeTask({ task: 'countdown', trainSize: 20, testSize: 5 }).name, 'countdown');
  assert.throws(() => makeTask({ task: 'nope' }), /unknown task/);
});

test.run();
