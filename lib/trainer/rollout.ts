/**
 * Rollouts: tokenise prompts, sample completions through the policy's generate (KV cache and
 * the package's `sample` op), cut at stop strings, decode.
 */
import type { GenerateOptions, Generation, PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import type { Example } from '../tasks/types';
import type { ExampleMedia } from '../media/types';

export interface SamplingOptions {
  /** τ. Default 1. 0 = greedy. */
  temperature?: number;
  /** 0 = off. */
  topK?: number;
  /** 1 = off. */
  topP?: number;
  /** 0 = off. */
  minP?: number;
  /** Maximum completion length in tokens. */
  maxCompletionLength: number;
  /** Extra strings that end a completion (the tokenizer's EOS always does). */
  stop?: string[];
  /** Philox row id of the first sequence (default 0): a data-parallel rank samples its share of
   *  the global batch with the row ids that share has in it, so its tokens are those of one rank. */
  rowOffset?: number;
}

export interface Rollout {
  /** Prompt ids per sequence (BOS + prompt). */
  promptIds: Int32Array[];
  /** Completion ids per sequence (EOS included when emitted). */
  tokens: Int32Array[];
  /** ℓ_old per completion token: log softmax(z/τ)[token] from the sampler. */
  logprobs: Float32Array[];
  /** Hit maxCompletionLength without EOS or a stop string. */
  truncated: boolean[];
  /** Decoded completion text (special ids dropped). */
  texts: string[];
  /** Per sequence: the policy version (optimiser updates) whose weights sampled it; set by engines. */
  policyVersion?: number[];
  /** Per sequence: its prompt's media (multimodal prompts; absent when no prompt has any). */
  media?: (ExampleMedia | undefined)[];
}

export function encodePrompt(tok: Tokenizer, prompt: string): number[] {
  return tok.encodePrompt ? tok.encodePrompt(prompt) : [tok.bosId, ...tok.encode(prompt)];
}

/** A prompt as rollout takes it: text, or an example whose chat turns (if any) a chat tokenizer renders. */
export type PromptInput = string | Pick<Example, 'prompt' | 'messages' | 'media'>;

/** The media of a prompt input (undefined for text). */
export const promptMedia = (p: PromptInput): ExampleMedia | undefined => (typeof p === 'string' ? undefined : p.media);

/**
 * Prompt ids of an example: its chat turns through `tok.encodeMessages` when both exist (so a
 * chat template sees the real system/user turns), otherwise its flattened prompt text.
 */
export function encodeExamplePrompt(tok: Tokenizer, e: PromptInput): number[] {
  if (typeof e === 'string') return encodePrompt(tok, e);
  return e.messages && tok.encodeMessages ? tok.encodeMessages(e.messages) : encodePrompt(tok, e.prompt);
}

/**
 * Checks that every prompt leaves room for a completion of `maxCompletionLength` tokens in the
 * model's context; the error names the example (file and line for a dataset), the prompt's
 * length and the context.
 */
export function checkPromptLengths(
  examples: readonly Example[], tok: Tokenizer, maxSeqLen: number, maxCompletionLength: number, where: string,
  /** SFT: also the reference solution (+ EOS) must fit after the prompt. */
  withSolution = false,
): void {
  const room = maxSeqLen - maxCompletionLength;
  const bad: string[] = [];
  let count = 0;
  for (const e of examples) {
    const n = encodeExamplePrompt(tok, e).length;
    const sol = withSolution ? tok.encode(e.solution ?? e.answer).length + 1 : 0;
    if (n <= room && n + sol <= maxSeqLen) continue;
    count++;
    if (bad.length < 5)
      bad.push(
        `${e.source ? `${e.source.file} line ${e.source.line}` : `example ${e.id}`}: prompt is ${n} tokens (BOS included)` +
          (n <= room ? `, + solution and EOS ${sol} tokens > maxSeqLen ${maxSeqLen}` : ''),
      );
  }
  if (count)
    throw new RangeError(
      `${where}: ${count} prompt${count === 1 ? '' : 's'} too long for the model's context: maxSeqLen ${maxSeqLen} − maxCompletionLength ${maxCompletionLength} leaves ${room} tokens for a prompt; ` +
        bad.join('; ') + (count > bad.length ? `; ... and ${count - bad.length} more` : '') +
        ` (raise --max-seq-len, lower --max-completion-length, or shorten the prompts)`,
    );
}

/** Index of the first token after which the decoded text contains a stop string, or -1. */
export function stopCut(tok: Tokenizer, ids: Int32Array, stop: string[]): number {
  const full = tok.decode(ids);
  if (!stop.some((s) => full.includes(s))) return -1;
  for (let t = 1; t <= ids.length; t++) {
    const text = tok.decode(ids.subarray(0, t));
    if (stop.some((s) => text.includes(s))) return t;
  }
  return -1;
}

/**
 * Samples `repeat` completions for each prompt (sequence i·repeat + j is sample j of prompt i).
 * Sequence s uses Philox row id s, so the tokens do not depend on how the call is batched.
 */
export async function rollout(
  model: PolicyModel,
  tok: Tokenizer,
  prompts: PromptInput[],
  repeat: number,
  o: SamplingOptions & { seed: number; maxBatch?: number },
): Promise<Rollout> {
  return rolloutWith((p, g) => model.generate(p, g), model.maxSeqLen, tok, prompts, repeat, o);
}

/** What rolloutWith samples through: a model's generate, or an engine that spreads the rows over workers. */
export type GenerateFn = (prompts: number[][], opts: GenerateOptions) => Promise<Generation>;

/**
 * rollout() over any generate function with the policy's semantics (row ids decide the random
 * stream): tokenising, stop strings and decoding stay here, so every engine cuts and decodes
 * exactly as the in-process path does.
 */
export async function rolloutWith(
  generate: GenerateFn,
  maxSeqLen: number,
  tok: Tokenizer,
  prompts: PromptInput[],
  repeat: number,
  o: SamplingOptions & { seed: number; maxBatch?: number },
): Promise<Rollout> {
  const promptIds: Int32Array[] = [];
  const media = prompts.some((p) => promptMedia(p) !== undefined) ? prompts.flatMap((p) => new Array(repeat).fill(promptMedia(p))) : undefined;
  for (const p of prompts) {
    const ids = encodeExamplePrompt(tok, p);
    if (ids.length + o.maxCompletionLength > maxSeqLen)
      throw new RangeError(`prompt '${(typeof p === 'string' ? p : p.prompt).slice(0, 40)}' is ${ids.length} tokens: with maxCompletionLength ${o.maxCompletionLength} it exceeds the model's maxSeqLen ${maxSeqLen}`);
    for (let j = 0; j < repeat; j++) promptIds.push(Int32Array.from(ids));
  }
  const S = promptIds.length;
  const out: Rollout = { promptIds, tokens: [], logprobs: [], truncated: [], texts: [] };
  if (media) out.media = media;
  const maxBatch = o.maxBatch ?? 1024;
  for (let s0 = 0; s0 < S; s0 += maxBatch) {
    const n = Math.min(maxBatch, S - s0);
    const rowIds = Array.from({ length: n }, (_, i) => (o.rowOffset ?? 0) + s0 + i);
    const gen = await generate(
      promptIds.slice(s0, s0 + n).map((a) => Array.from(a)),
      {
        maxNewTokens: o.maxCompletionLength,
        temperature: o.temperature ?? 1,
        topK: o.topK ?? 0,
        topP: o.topP ?? 1,
        minP: o.minP ?? 0,
        seed: o.seed,
        rowIds,
        stopTokenIds: tok.stopTokenIds ? [...tok.stopTokenIds] : [tok.eosId],
        ...(media ? { media: media.slice(s0, s0 + n) } : {}),
      },
    );
    for (let i = 0; i < n; i++) {
      let ids = gen.tokens[i];
      let lp = gen.logprobs[i];
      let truncated = gen.truncated[i];
      if (o.stop && o.stop.length) {
        const cut = stopCut(tok, ids, o.stop);
        if (cut >= 0) {
          ids = ids.slice(0, cut);
          lp = lp.slice(0, cut);
          truncated = false;
        }
      }
      out.tokens.push(ids);
      out.logprobs.push(lp);
      out.truncated.push(truncated);
      out.texts.push(tok.decode(ids));
    }
  }
  return out;
}
