import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { CharTokenizer, DEFAULT_ALPHABET } from '../lib';

test('CharTokenizer: specials, round trip of the default alphabet, unknowns', () => {
  const t = new CharTokenizer();
  assert.equal([t.padId, t.bosId, t.eosId, t.unkId], [0, 1, 2, 3]);
  assert.is(t.vocabSize, Array.from(DEFAULT_ALPHABET).length + 4);
  for (const c of '0123456789+-*/=() abcxyzABCXYZ.,:;?!<>\'"\n') assert.ok(t.encode(c)[0] >= 4, JSON.stringify(c));
  const s = 'What is 12*(3+4)? Answer: 84.\n';
  assert.equal(t.decode(t.encode(s)), s);
  assert.equal(t.encode(''), []);
  assert.equal(t.encode('a€b'), [t.encode('a')[0], t.unkId, t.encode('b')[0]]);
  assert.is(t.decode(t.encode('a€b')), 'a\uFFFDb');
  assert.is(t.decode([t.bosId, ...t.encode('hi'), t.eosId, t.padId, t.padId]), 'hi');
  assert.ok(t.encode(s).every((id) => id >= 0 && id < t.vocabSize));
});

test('CharTokenizer: custom alphabet, surrogate pairs are one character', () => {
  const t = new CharTokenizer('ab😀');
  assert.is(t.vocabSize, 7);
  assert.equal(t.encode('a😀b'), [4, 6, 5]);
  assert.is(t.decode([4, 6, 5]), 'a😀b');
  assert.throws(() => new CharTokenizer('aa'), /distinct/);
  assert.throws(() => new CharTokenizer(''), /alphabet/);
});

test.run();
