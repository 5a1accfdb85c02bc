/**
 * Hugging Face tokenizers: tokenizer.json + tokenizer_config.json through @huggingface/tokenizers
 * (pure JS), the chat template through @huggingface/jinja, eos ids from generation_config.json
 * (an id or a list). Implements the package's Tokenizer, so the trainer uses it like the
 * built-in CharTokenizer; prompts go through the chat template when the folder has one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer as HfTok } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer';

import { ChatMessage, renderMessages } from '../../tasks/dataset';

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RangeError(`${file}: cannot read JSON (${(e as Error).message})`);
  }
}

function tokenText(t: unknown): string | null {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string') return (t as { content: string }).content;
  return null;
}

/** Highest id of the vocabulary and the added tokens, plus one. */
function vocabSizeOf(tokenizerJson: Record<string, unknown>): number {
  let maxId = -1;
  const model = tokenizerJson.model as { vocab?: Record<string, number> | [string, number][] } | undefined;
  if (model?.vocab && !Array.isArray(model.vocab)) for (const id of Object.values(model.vocab)) maxId = Math.max(maxId, id);
  else if (Array.isArray(model?.vocab)) maxId = model!.vocab.length - 1;
  for (const t of (tokenizerJson.added_tokens ?? []) as { id: number }[]) maxId = Math.max(maxId, t.id);
  return maxId + 1;
}

/** A file's identity for the tokenizer cache: a rewritten file (other size or mtime) is read again. */
function fileKey(file: string): string {
  const st = fs.statSync(file);
  return `${path.resolve(file)}:${st.size}:${st.mtimeMs}`;
}

/** fromDir's cache of constructed library tokenizers (insertion order = age). */
const BUILT = new Map<string, { tok: HfTok; vocabSize: number }>();

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  /** -1 when the tokenizer has no BOS (Qwen); encodePrompt then adds none. */
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** Every id that ends a completion: generation_config.json eos_token_id (id or list) and the tokenizer's eos. */
  readonly stopTokenIds: number[];
  readonly chatTemplate: string | null;
  /** Use the chat template for string prompts (a single user message). Default: when there is a template. */
  useChatTemplate: boolean;
  private readonly tok: HfTok;
  private readonly template: Template | null;
  private readonly addBos: boolean;
  private readonly specials: Record<string, string | null>;

  constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>, generationConfig?: Record<string, unknown> | null, where = 'tokenizer', built?: { tok: unknown; vocabSize: number }) {
    // `built`: the library tokenizer of these same files, from fromDir's cache (constructing it is
    // most of the load time of a 151k-token vocabulary, see bench/hf_tokenizer_load.ts)
    // (`tok: unknown` in the signature: the library's own .d.ts does not type-check under
    // moduleResolution nodenext, so no public declaration of this package may name its types)
    this.tok = (built?.tok as HfTok | undefined) ?? new HfTok(tokenizerJson, tokenizerConfig);
    this.vocabSize = built?.vocabSize ?? vocabSizeOf(tokenizerJson);
    const id = (t: unknown): number => {
      const s = tokenText(t);
      if (s === null) return -1;
      const ids = this.tok.encode(s, { add_special_tokens: false }).ids;
      return ids.length === 1 ? ids[0] : -1;
    };
    this.specials = { bos_token: tokenText(tokenizerConfig.bos_token), eos_token: tokenText(tokenizerConfig.eos_token), pad_token: tokenText(tokenizerConfig.pad_token) };
    this.bosId = id(tokenizerConfig.bos_token);
    const genEos = generationConfig?.eos_token_id;
    const eosList = (Array.isArray(genEos) ? genEos : genEos == null ? [] : [genEos]).filter((x): x is number => Number.isInteger(x));
    const tokEos = id(tokenizerConfig.eos_token);
    this.eosId = tokEos >= 0 ? tokEos : eosList.length ? eosList[0] : -1;
    if (this.eosId < 0) throw new RangeError(`${where}: no eos token (tokenizer_config.json eos_token or generation_config.json eos_token_id)`);
    this.stopTokenIds = [...new Set([this.eosId, ...eosList])];
    const pad = id(tokenizerConfig.pad_token);
    this.padId = pad >= 0 ? pad : this.eosId;
    this.addBos = tokenizerConfig.add_bos_token === true && this.bosId >= 0;
    const tpl = tokenizerConfig.chat_template;
    this.chatTemplate = typeof tpl === 'string' ? tpl : null;
    this.template = this.chatTemplate ? new Template(this.chatTemplate) : null;
    this.useChatTemplate = this.template !== null;
  }

  /**
   * Loads tokenizer.json, tokenizer_config.json and (if present) generation_config.json from `dir`.
   * The parsed and constructed library tokenizer is kept for the process, keyed by the files'
   * paths, sizes and modification times: a second load of the same folder (train then eval,
   * a served model's reload, the trainer and its rollout servers in one process) skips the
   * seconds that parsing tokenizer.json and building its maps take. Each call still returns its
   * own HfTokenizer (useChatTemplate is per instance); the library tokenizer is only read.
   */
  static fromDir(dir: string): HfTokenizer {
    const tj = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(tj)) throw new RangeError(`${dir}: no tokenizer.json`);
    const tc = path.join(dir, 'tokenizer_config.json');
    const gc = path.join(dir, 'generation_config.json');
    const config = fs.existsSync(tc) ? readJson(tc) : {};
    const gen = fs.existsSync(gc) ? readJson(gc) : null;
    const key = `${fileKey(tj)}|${fs.existsSync(tc) ? fileKey(tc) : '-'}`;
    let built = BUILT.get(key);
    if (!built) {
      const json = readJson(tj);
      built = { tok: new HfTok(json, config), vocabSize: vocabSizeOf(json) };
      BUILT.set(key, built);
      // a few folders at most: each entry holds a vocabulary's maps (~100 MB for 151k tokens)
      if (BUILT.size > 4) BUILT.delete(BUILT.keys().next().value!);
      return new HfTokenizer(json, config, gen, dir, built);
    }
    return new HfTokenizer({}, config, gen, dir, built);
  }

  /** Ids of the text; special-token strings in it map to their ids; no BOS/EOS added. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`HfTokenizer.encode: expected a string for text but received ${typeof text}`);
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of the ids with special tokens dropped. */
  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: true });
  }

  /** The chat template rendered for `messages` (as Python's apply_chat_template(tokenize=False)). */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean; [k: string]: unknown } = {}): string {
    if (!this.template) throw new Error('HfTokenizer.applyChatTemplate: this tokenizer has no chat_template');
    if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== 'string' || typeof m?.content !== 'string'))
      throw new TypeError('HfTokenizer.applyChatTemplate: expected an array of { role: string, content: string } for messages');
    const { addGenerationPrompt, ...extra } = opts;
    return this.template.render({ ...this.specials, ...extra, messages, add_generation_prompt: addGenerationPrompt ?? false });
  }

  /**
   * Prompt ids for generation: messages (or a string as one user message, when useChatTemplate)
   * through the chat template with add_generation_prompt; otherwise BOS (if the tokenizer adds
   * one) + the text.
   */
  encodePrompt(prompt: string | ChatMessage[]): number[] {
    if (Array.isArray(prompt)) return this.encode(this.applyChatTemplate(prompt, { addGenerationPrompt: true }));
    if (this.useChatTemplate) return this.encode(this.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true }));
    return this.addBos ? [this.bosId, ...this.encode(prompt)] : this.encode(prompt);
  }

  /** Dataset chat turns: through the chat template; without one, the flattened text as for a string prompt. */
  encodeMessages(messages: ChatMessage[]): number[] {
    return this.template ? this.encodePrompt(messages) : this.encodePrompt(renderMessages(messages));
  }
}
