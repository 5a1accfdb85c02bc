/**
 * The OpenAI-compatible `/v1/completions` subset `grpo serve` speaks, as vLLM answers it:
 * request parsing and validation (every error names its field), and the answer's shape.
 *
 * Seeds (the contract RemoteEngine relies on): choice c of a request (c = p·n + j for sample j of
 * prompt p, the order OpenAI and vLLM list choices in) is drawn with the package's sample op under
 * Philox key `seed` and row id `row_offset + c` (row_offset: an extension field, default 0). So
 * the choices of {prompt: [P_0 … P_{m-1}], n: G, seed: s, row_offset: r} are exactly sequences
 * r … r + m·G − 1 of an in-process rollout(…, repeat G, seed s) whose prompts put P_p at prompt
 * index r/G + p: a trainer may split one rollout into requests of any size and get the same tokens.
 * Without `seed` the server draws one at random (vLLM's behaviour: not reproducible).
 */

/** An error a client caused: HTTP 400 with an OpenAI-style body naming the field. */
export class ApiError extends Error {
  constructor(readonly param: string | null, message: string, readonly status = 400, readonly type = 'invalid_request_error') {
    super(message);
    this.name = 'ApiError';
  }
  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.status } };
  }
}

export interface CompletionRequest {
  /** Token ids per prompt (text prompts are encoded by the server's tokenizer). */
  prompts: number[][];
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  seed: number | null;
  rowOffset: number;
  stop: string[];
  stopTokenIds: number[];
  logprobs: boolean;
  returnTokenIds: boolean;
  model: string | undefined;
}

const KNOWN = new Set([
  'prompt', 'n', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'row_offset', 'stop', 'stop_token_ids',
  'logprobs', 'return_token_ids', 'model',
  // accepted only at their no-op values (clients such as the openai SDK send them)
  'stream', 'echo', 'user', 'suffix', 'best_of', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'logit_bias',
]);

/** At most this many sequences (prompts × n) in one request. */
export const MAX_SEQUENCES = 4096;

const describe = (x: unknown) => (x === undefined ? 'nothing' : JSON.stringify(x)?.slice(0, 80) ?? String(x));
const bad = (param: string, expected: string, got: unknown) => new ApiError(param, `${param}: expected ${expected} but received ${describe(got)}`);

function int(body: Record<string, unknown>, k: string, lo: number, hi: number, dflt: number): number {
  const x = body[k];
  if (x === undefined || x === null) return dflt;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > hi) throw bad(k, `an integer in [${lo}, ${hi}]`, x);
  return x;
}

function num(body: Record<string, unknown>, k: string, ok: (x: number) => boolean, expected: string, dflt: number): number {
  const x = body[k];
  if (x === undefined || x === null) return dflt;
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) throw bad(k, expected, x);
  return x;
}

// float32 must represent the value as the sample op takes it (as lib/ops/sample.ts checks)
const F32_MIN = 1.1754943508222875e-38, F32_MAX = 3.4028234663852886e38;

/**
 * Parses a /v1/completions body for a model of vocabulary V and context T; `encode` turns a text
 * prompt into ids (BOS + text, as the trainer's rollout encodes a string prompt).
 */
export function parseCompletionRequest(raw: unknown, V: number, T: number, encode: (text: string) => number[]): CompletionRequest {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ApiError(null, `expected a JSON object as the request body but received ${describe(raw)}`);
  const body = raw as Record<string, unknown>;
  for (const k of Object.keys(body)) if (!KNOWN.has(k)) throw new ApiError(k, `${k}: unknown field (this server takes ${[...KNOWN].join(', ')})`);
  const noop = (k: string, ok: (x: unknown) => boolean, expected: string) => {
    if (body[k] !== undefined && body[k] !== null && !ok(body[k])) throw bad(k, `${expected} (this server supports nothing else)`, body[k]);
  };
  noop('stream', (x) => x === false, 'false');
  noop('echo', (x) => x === false, 'false');
  noop('user', (x) => typeof x === 'string', 'a string');
  noop('suffix', () => false, 'null');
  noop('presence_penalty', (x) => x === 0, '0');
  noop('frequency_penalty', (x) => x === 0, '0');
  noop('repetition_penalty', (x) => x === 1, '1');
  noop('logit_bias', (x) => !!x && typeof x === 'object' && Object.keys(x as object).length === 0, '{}');
  if (body.model !== undefined && body.model !== null && typeof body.model !== 'string') throw bad('model', 'a string', body.model);

  // prompt: a string, a list of strings, a list of ids, or a list of id lists
  const p = body.prompt;
  if (p === undefined || p === null) throw new ApiError('prompt', 'prompt: required (a string, a list of strings, a list of token ids, or a list of token-id lists)');
  let list: unknown[];
  if (typeof p === 'string') list = [p];
  else if (Array.isArray(p) && p.length > 0 && typeof p[0] === 'number') list = [p];
  else if (Array.isArray(p)) list = p;
  else throw bad('prompt', 'a string, a list of strings, a list of token ids, or a list of token-id lists', p);
  if (list.length === 0) throw bad('prompt', 'at least one prompt', p);
  const prompts = list.map((x, i) => {
    const where = typeof p === 'string' || (Array.isArray(p) && typeof p[0] === 'number') ? 'prompt' : `prompt[${i}]`;
    if (typeof x === 'string') {
      const ids = encode(x);
      if (ids.length === 0) throw bad(where, 'a non-empty prompt', x);
      return ids;
    }
    if (!Array.isArray(x) || x.length === 0) throw bad(where, 'a string or a non-empty list of token ids', x);
    x.forEach((id, t) => {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= V) throw bad(`${where}[${t}]`, `a token id in [0, ${V})`, id);
    });
    return x as number[];
  });

  const n = int(body, 'n', 1, MAX_SEQUENCES, 1);
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== n) throw bad('best_of', `n (${n}) or null`, body.best_of);
  if (prompts.length * n > MAX_SEQUENCES) throw bad('n', `prompts × n <= ${MAX_SEQUENCES}`, `${prompts.length} prompts × ${n}`);
  const maxTokens = int(body, 'max_tokens', 0, T, 16);
  prompts.forEach((q, i) => {
    if (q.length + maxTokens > T)
      throw new ApiError('max_tokens', `max_tokens: prompt ${i} has ${q.length} tokens; with max_tokens ${maxTokens} that is more than the model's context of ${T} tokens`);
  });
  const temperature = num(body, 'temperature', (x) => x === 0 || (x >= F32_MIN && x <= F32_MAX), 'a number >= 0 (0 = greedy)', 1);
  const topP = num(body, 'top_p', (x) => x >= F32_MIN && x <= 1, 'a number in (0, 1]', 1);
  // vLLM: -1 (or 0) = off
  const topK = int(body, 'top_k', -1, 0x7fffffff, 0);
  const minP = num(body, 'min_p', (x) => x === 0 || (x >= F32_MIN && x <= 1), 'a number in [0, 1]', 0);
  const seed = body.seed === undefined || body.seed === null ? null : int(body, 'seed', 0, Number.MAX_SAFE_INTEGER, 0);
  const rowOffset = int(body, 'row_offset', 0, 0xffffffff, 0);
  if (rowOffset + prompts.length * n - 1 > 0xffffffff) throw bad('row_offset', `row_offset + prompts × n <= 2^32`, rowOffset);
  let stop: string[] = [];
  const s = body.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    s.forEach((x, i) => {
      if (typeof x !== 'string' || x === '') throw bad(`stop[${i}]`, 'a non-empty string', x);
    });
    stop = s as string[];
  } else if (s !== undefined && s !== null) throw bad('stop', 'a string or a list of strings', s);
  if (stop.some((x) => x === '')) throw bad('stop', 'non-empty strings', s);
  let stopTokenIds: number[] = [];
  const st = body.stop_token_ids;
  if (Array.isArray(st)) {
    st.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= V) throw bad(`stop_token_ids[${i}]`, `a token id in [0, ${V})`, x);
    });
    stopTokenIds = st as number[];
  } else if (st !== undefined && st !== null) throw bad('stop_token_ids', 'a list of token ids', st);
  // the sampled token's log-prob only: top alternatives would need the whole distribution per step
  const lp = body.logprobs;
  if (lp !== undefined && lp !== null && lp !== 0 && lp !== false && lp !== true)
    throw bad('logprobs', "0 (the sampled token's log-prob) or null; this server does not return top alternatives", lp);
  const logprobs = lp === 0 || lp === true;
  const rt = body.return_token_ids;
  if (rt !== undefined && rt !== null && typeof rt !== 'boolean') throw bad('return_token_ids', 'true or false', rt);
  return {
    prompts, n, maxTokens, temperature, topP, topK: topK < 0 ? 0 : topK, minP, seed, rowOffset, stop, stopTokenIds,
    logprobs, returnTokenIds: rt === true, model: (body.model ?? undefined) as string | undefined,
  };
}

/** One choice as vLLM writes it (`token_ids` with return_token_ids, `logprobs` with logprobs). */
export interface CompletionChoice {
  index: number;
  text: string;
  logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: null; text_offset: number[] } | null;
  finish_reason: 'stop' | 'length';
  stop_reason: string | number | null;
  token_ids?: number[];
  prompt_token_ids?: number[];
}
