/**
 * Tokenizers for the built-in model. CharTokenizer maps each character of a fixed alphabet to
 * one id, after four special ids: <pad> 0, <bos> 1, <eos> 2, <unk> 3. No downloaded vocabulary.
 */

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** Ids of the text's characters; no BOS/EOS added. */
  encode(text: string): number[];
  /** Text of the ids; special ids (pad, bos, eos) are dropped, <unk> decodes as U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /** Prompt ids for generation (e.g. through a chat template); default: [bosId, ...encode(prompt)]. */
  encodePrompt?(prompt: string): number[];
  /**
   * Prompt ids for chat turns (through a chat template, with the generation prompt). When present,
   * examples that keep their dataset `messages` are encoded with it instead of their flattened text.
   */
  encodeMessages?(messages: { role: string; content: string }[]): number[];
  /** Ids that end a completion; default: [eosId]. */
  readonly stopTokenIds?: readonly number[];
}

/**
 * The default alphabet: digits, + - * / = ( ) space, a-z, A-Z, the punctuation . , : ; ? ! < > ' "
 * and newline, then a few more symbols (% # _ [ ] { } & | ^ $ @ ~ ` \ tab) so common text needs
 * no <unk>.
 */
export const DEFAULT_ALPHABET =
  '0123456789+-*/=() abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;?!<>\'"\n%#_[]{}&|^$@~`\\\t';

export class CharTokenizer implements Tokenizer {
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly unkId = 3;
  readonly vocabSize: number;
  /** The alphabet, one character per id after the specials. */
  readonly alphabet: string;
  private readonly toId = new Map<string, number>();
  private readonly chars: string[];

  /** @param alphabet distinct characters (code points); default {@link DEFAULT_ALPHABET}. */
  constructor(alphabet: string = DEFAULT_ALPHABET) {
    if (typeof alphabet !== 'string' || alphabet.length === 0)
      throw new TypeError(`CharTokenizer: expected a non-empty string for alphabet but received ${String(alphabet)}`);
    this.chars = Array.from(alphabet);
    this.chars.forEach((c, i) => {
      if (this.toId.has(c)) throw new RangeError(`CharTokenizer: expected distinct characters for alphabet but received '${c}' twice`);
      this.toId.set(c, i + 4);
    });
    this.alphabet = alphabet;
    this.vocabSize = this.chars.length + 4;
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`CharTokenizer.encode: expected a string for text but received ${typeof text}`);
    const out: number[] = [];
    for (const c of text) out.push(this.toId.get(c) ?? this.unkId);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === this.unkId) s += '\uFFFD';
      else if (id >= 4 && id < this.vocabSize) s += this.chars[id - 4];
      // pad / bos / eos (and anything out of range) are dropped
    }
    return s;
  }
}
