/**
 * RemoteEngine: rollouts from OpenAI-compatible completion servers (`grpo serve`, vLLM, SGLang,
 * llama.cpp's server) over HTTP. A step's prompts are split into one contiguous chunk per server
 * and sent as token-id prompts with `n` = repeat (or, with fewer prompts than servers, its
 * sequences with n = 1), `seed` and `row_offset` (the chunk's first sequence index:
 * lib/serve/protocol.ts), so `grpo serve` gives exactly the in-process engine's tokens whatever
 * the number of servers. A request that fails (connection refused or reset, HTTP error,
 * timeout, an answer that does not validate) is retried on the next server; after `retries`
 * retries the step fails with an error naming the engine, the URLs tried and the request.
 *
 * Answers are validated before the trainer sees them: as many choices as asked, token ids
 * integers in [0, V), one log-prob per token, finite and ≤ 0, at most max_tokens tokens,
 * finish_reason 'stop' or 'length'. Errors name the field (`choices[3].logprobs.token_logprobs[2]`).
 *
 * syncWeights writes the policy atomically under `weightsDir` (lib/serve/weights.ts) and asks
 * every server to load it (POST /update_weights_from_disk {model_path, weight_version}); a server
 * that refuses fails the update with its URL and answer.
 */
import * as path from 'path';
import type { PolicyModel } from '../models/policy';
import type { Tokenizer } from '../models/tokenizer';
import type { ExampleMedia } from '../media/types';
import { encodeExamplePrompt, promptMedia, stopCut, type PromptInput, type Rollout, type SamplingOptions } from '../trainer/rollout';
import { pruneRolloutWeights, writeRolloutWeights } from '../serve/weights';
import type { RolloutEngine } from './engine';

export interface RemoteEngineOptions {
  /** Base URLs (http://host:port, without /v1). */
  urls: string[];
  /** The trainer's tokenizer: prompts are sent as its ids, completions decoded with it. */
  tokenizer: Tokenizer;
  /** Vocabulary size the answers' token ids must fall in (the policy's). */
  vocabSize: number;
  /** Seconds one HTTP request may take before it is abandoned and retried elsewhere. Default 600. */
  timeout?: number;
  /** Retries of a failed request (each on the next server). Default 2. */
  retries?: number;
  /** Where syncWeights writes weights (the run directory's rollout-weights/). Without it syncWeights only records the version. */
  weightsDir?: string;
  /** `model` sent with each request (vLLM/SGLang serve one model and accept it omitted). */
  model?: string;
  /** HF models: tokenizer files copied next to the weights written for the servers. */
  sourceDir?: string;
}

/** A request to one server failed; `field` names what was wrong in the answer when that was it. */
export class RemoteRequestError extends Error {
  constructor(message: string, readonly field?: string) {
    super(message);
    this.name = 'RemoteRequestError';
  }
}

interface Chunk {
  /** First sequence of the chunk (its row offset). */
  first: number;
  /** The prompts sent: each `n` times (n = repeat), or one per sequence (n = 1). */
  ids: number[][];
  n: number;
}

const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);

/** A value for an error message: numbers as JavaScript prints them (NaN, Infinity), the rest as JSON (its first 80 characters). */
export const shown = (x: unknown) => (typeof x === 'number' ? String(x) : JSON.stringify(x)?.slice(0, 80));

/**
 * Checks one sampled sequence, shared by the remote answers and the local workers' (lib/rollout/
 * workers.ts): at most `maxTokens` token ids, each an integer in [0, V), and exactly one log-prob
 * per id, finite and <= 0. Throws `fail(field, what)` for the first problem; `at` names the fields.
 */
export function validateSequence(ids: ArrayLike<unknown>, lps: ArrayLike<unknown>, maxTokens: number, V: number, at: { ids: string; logprobs: string }, fail: (field: string, what: string) => Error): void {
  if (ids.length > maxTokens) throw fail(at.ids, `expected at most max_tokens ${maxTokens} ids but received ${ids.length}`);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= V) throw fail(`${at.ids}[${t}]`, `expected a token id in [0, ${V}) but received ${shown(id)}`);
  }
  if (lps.length !== ids.length) throw fail(at.logprobs, `expected ${ids.length} log-probs (one per token id) but received ${lps.length}`);
  for (let t = 0; t < lps.length; t++) {
    const x = lps[t];
    if (typeof x !== 'number' || !Number.isFinite(x) || x > 0) throw fail(`${at.logprobs}[${t}]`, `expected a finite log-prob <= 0 but received ${shown(x)}`);
  }
}

/**
 * Checks a /v1/completions answer for `prompts` × `n` choices of at most `maxTokens` tokens in a
 * vocabulary of V; returns per choice (in index order) ids, log-probs and whether it hit the length.
 */
export function validateCompletionAnswer(body: unknown, prompts: number, n: number, maxTokens: number, V: number): { ids: Int32Array; logprobs: Float32Array; truncated: boolean; version?: number }[] {
  const fail = (field: string, what: string) => new RemoteRequestError(`${field}: ${what}`, field);
  if (!isObj(body)) throw fail('body', `expected a JSON object but received ${JSON.stringify(body)?.slice(0, 80)}`);
  const choices = body.choices;
  if (!Array.isArray(choices)) throw fail('choices', `expected an array but received ${JSON.stringify(choices)?.slice(0, 80)}`);
  const want = prompts * n;
  if (choices.length !== want) throw fail('choices', `expected ${want} choices (${prompts} prompts × n ${n}) but received ${choices.length}`);
  const out: ({ ids: Int32Array; logprobs: Float32Array; truncated: boolean } | undefined)[] = new Array(want);
  choices.forEach((c, i) => {
    const at = `choices[${i}]`;
    if (!isObj(c)) throw fail(at, 'expected an object');
    const index = c.index === undefined ? i : c.index;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= want) throw fail(`${at}.index`, `expected an integer in [0, ${want}) but received ${JSON.stringify(c.index)}`);
    if (out[index]) throw fail(`${at}.index`, `index ${index} appears twice`);
    const ids = c.token_ids;
    if (!Array.isArray(ids)) throw fail(`${at}.token_ids`, `expected an array of token ids (the server must honour return_token_ids) but received ${JSON.stringify(ids)?.slice(0, 80)}`);
    const lp = isObj(c.logprobs) ? c.logprobs.token_logprobs : undefined;
    if (!Array.isArray(lp)) throw fail(`${at}.logprobs.token_logprobs`, `expected an array of log-probs but received ${JSON.stringify(lp)?.slice(0, 80)}`);
    validateSequence(ids, lp, maxTokens, V, { ids: `${at}.token_ids`, logprobs: `${at}.logprobs.token_logprobs` }, fail);
    const fr = c.finish_reason;
    if (fr !== 'stop' && fr !== 'length') throw fail(`${at}.finish_reason`, `expected 'stop' or 'length' but received ${JSON.stringify(fr)}`);
    out[index] = { ids: Int32Array.from(ids as number[]), logprobs: Float32Array.from(lp as number[]), truncated: fr === 'length' };
  });
  const version = typeof body.weight_version === 'number' ? body.weight_version : undefined;
  return out.map((o) => ({ ...o!, version }));
}

/** Whether a prompt's media holds any image, audio clip or video. */
export function hasMedia(m: ExampleMedia | undefined): boolean {
  return !!m && ((m.images?.length ?? 0) + (m.audios?.length ?? 0) + (m.videos?.length ?? 0)) > 0;
}

/** "1 image, 2 audios" for an error message. */
export function mediaKinds(m: ExampleMedia | undefined): string {
  const n = (k: string, x?: unknown[]) => (x?.length ? [`${x.length} ${k}${x.length > 1 ? 's' : ''}`] : []);
  return [...n('image', m?.images), ...n('audio', m?.audios), ...n('video', m?.videos)].join(', ');
}

export class RemoteEngine implements RolloutEngine {
  readonly name: string;
  readonly urls: string[];
  private readonly tok: Tokenizer;
  private readonly V: number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly o: RemoteEngineOptions;
  private version = 0;
  private closed = false;
  private controllers = new Set<AbortController>();
  /** Requests sent and retried (for metrics and tests). */
  readonly stats = { requests: 0, retries: 0, failures: [] as string[] };

  constructor(o: RemoteEngineOptions) {
    const op = 'RemoteEngine';
    if (!o || !Array.isArray(o.urls) || o.urls.length === 0) throw new TypeError(`${op}: expected urls to be a non-empty array of base URLs but received ${JSON.stringify(o?.urls)}`);
    this.urls = o.urls.map((u, i) => {
      let p: URL;
      try {
        p = new URL(u);
      } catch {
        throw new RangeError(`${op}: urls[${i}]: expected an http(s) URL but received ${JSON.stringify(u)}`);
      }
      if (p.protocol !== 'http:' && p.protocol !== 'https:') throw new RangeError(`${op}: urls[${i}]: expected an http(s) URL but received ${JSON.stringify(u)}`);
      // the base: "http://h:p", "http://h:p/" and "http://h:p/v1" all mean the server
      return u.replace(/\/+$/, '').replace(/\/v1$/, '');
    });
    if (!o.tokenizer) throw new TypeError(`${op}: expected a tokenizer`);
    if (!Number.isInteger(o.vocabSize) || o.vocabSize < 1) throw new RangeError(`${op}: expected vocabSize to be a positive integer but received ${o.vocabSize}`);
    const timeout = o.timeout ?? 600;
    if (!(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout))) throw new RangeError(`${op}: expected timeout to be a number of seconds > 0 but received ${timeout}`);
    const retries = o.retries ?? 2;
    if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`${op}: expected retries to be an integer >= 0 but received ${retries}`);
    this.o = o;
    this.tok = o.tokenizer;
    this.V = o.vocabSize;
    this.timeoutMs = timeout * 1000;
    this.retries = retries;
    this.name = `remote:${this.urls.join(',')}`;
  }

  /** One HTTP request with the engine's timeout; the answer's JSON, or a RemoteRequestError. */
  private async post(url: string, route: string, body: unknown): Promise<unknown> {
    if (this.closed) throw new Error(`${this.name}: closed`);
    const ac = new AbortController();
    this.controllers.add(ac);
    const timer = setTimeout(() => ac.abort(new RemoteRequestError(`no answer within ${this.timeoutMs / 1000} s (timeout)`)), this.timeoutMs);
    try {
      let res: Response;
      let text: string;
      try {
        res = await fetch(url + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal });
        text = await res.text();
      } catch (e) {
        if (ac.signal.aborted && ac.signal.reason instanceof RemoteRequestError) throw ac.signal.reason;
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new RemoteRequestError(`connection failed (${cause?.code ?? cause?.message ?? (e as Error).message})`);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new RemoteRequestError(`body: HTTP ${res.status}, not JSON: ${JSON.stringify(text.slice(0, 120))}`, 'body');
      }
      if (!res.ok) {
        const err = isObj(json) && isObj(json.error) ? json.error : null;
        throw new RemoteRequestError(`HTTP ${res.status}${err ? `: ${String(err.message)}` : `: ${text.slice(0, 200)}`}`, err && typeof err.param === 'string' ? err.param : undefined);
      }
      return json;
    } finally {
      clearTimeout(timer);
      this.controllers.delete(ac);
    }
  }

  async generate(prompts: PromptInput[], repeat: number, o: SamplingOptions & { seed: number }): Promise<Rollout> {
    if (this.closed) throw new Error(`${this.name}: generate after close`);
    if (!Number.isInteger(repeat) || repeat < 1) throw new RangeError(`${this.name}: expected repeat to be an integer >= 1 but received ${repeat}`);
    // the completions API takes token-id prompts only: a prompt's images / audio / video would be
    // dropped, leaving bare placeholder tokens, so such a prompt is refused rather than sampled blind
    const withMedia = prompts.findIndex((p) => hasMedia(promptMedia(p)));
    if (withMedia >= 0)
      throw new RangeError(`${this.name}: prompts[${withMedia}]: expected a text prompt but received one with media (${mediaKinds(promptMedia(prompts[withMedia]))}); the completions API carries token ids only, so multimodal prompts need the in-process or workers engine`);
    const ids = prompts.map((p) => encodeExamplePrompt(this.tok, p));
    // one contiguous chunk per server; row offsets keep the tokens independent of the split. With
    // at least as many prompts as servers a chunk is whole prompts with n = repeat (a server can
    // share the prompt's prefix); with fewer, the sequences are split, each sent as a prompt with n = 1.
    const K = Math.min(this.urls.length, ids.length * repeat);
    const byPrompt = ids.length >= K;
    const units = byPrompt ? ids.length : ids.length * repeat;
    const chunks: Chunk[] = [];
    for (let k = 0, u0 = 0; k < K; k++) {
      const size = Math.floor(units / K) + (k < units % K ? 1 : 0);
      if (byPrompt) chunks.push({ first: u0 * repeat, ids: ids.slice(u0, u0 + size), n: repeat });
      else chunks.push({ first: u0, ids: Array.from({ length: size }, (_, i) => ids[Math.floor((u0 + i) / repeat)]), n: 1 });
      u0 += size;
    }
    const results = await Promise.all(chunks.map((c, k) => this.runChunk(c, k, o)));
    const out: Rollout = { promptIds: [], tokens: [], logprobs: [], truncated: [], texts: [], policyVersion: [] };
    chunks.forEach((c, k) => {
      const r = results[k];
      c.ids.forEach((p, i) => {
        for (let j = 0; j < c.n; j++) {
          const ch = r[i * c.n + j];
          let tokens = ch.ids, lp = ch.logprobs, truncated = ch.truncated;
          // the in-process cut, also for servers that cut stop strings differently (vLLM drops the stop text)
          if (o.stop && o.stop.length) {
            const cut = stopCut(this.tok, tokens, o.stop);
            if (cut >= 0) {
              tokens = tokens.slice(0, cut);
              lp = lp.slice(0, cut);
              truncated = false;
            }
          }
          out.promptIds.push(Int32Array.from(p));
          out.tokens.push(tokens);
          out.logprobs.push(lp);
          out.truncated.push(truncated);
          out.texts.push(this.tok.decode(tokens));
          out.policyVersion!.push(ch.version ?? this.version);
        }
      });
    });
    return out;
  }

  /** A chunk on server k, then on the next ones until it succeeds or the retries are spent. */
  private async runChunk(c: Chunk, k: number, o: SamplingOptions & { seed: number }) {
    const body: Record<string, unknown> = {
      prompt: c.ids, n: c.n, max_tokens: o.maxCompletionLength,
      temperature: o.temperature ?? 1, top_p: o.topP ?? 1, top_k: o.topK ?? 0, min_p: o.minP ?? 0,
      seed: o.seed, row_offset: c.first, logprobs: 0, return_token_ids: true,
    };
    if (o.stop && o.stop.length) body.stop = o.stop;
    if (this.o.model) body.model = this.o.model;
    const what = c.n > 1
      ? `request for prompts ${c.first / c.n}..${c.first / c.n + c.ids.length - 1} × n ${c.n} (seed ${o.seed}, row_offset ${c.first})`
      : `request for sequences ${c.first}..${c.first + c.ids.length - 1} (seed ${o.seed}, row_offset ${c.first})`;
    const tried: string[] = [];
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      const url = this.urls[(k + attempt) % this.urls.length];
      this.stats.requests++;
      if (attempt > 0) this.stats.retries++;
      try {
        const json = await this.post(url, '/v1/completions', body);
        return validateCompletionAnswer(json, c.ids.length, c.n, o.maxCompletionLength, this.V);
      } catch (e) {
        if (this.closed) throw new Error(`${this.name}: closed during a ${what}`);
        const msg = `${url}: ${(e as Error).message}`;
        tried.push(msg);
        this.stats.failures.push(msg);
      }
    }
    throw new Error(`rollout engine ${this.name}: ${what} failed after ${this.retries + 1} attempt${this.retries ? 's' : ''}: ${tried.join('; ')}`);
  }

  async syncWeights(model: PolicyModel, version: number): Promise<void> {
    this.version = version;
    if (!this.o.weightsDir) return;
    const dir = writeRolloutWeights(this.o.weightsDir, model, version, { sourceDir: this.o.sourceDir });
    const failed: string[] = [];
    await Promise.all(
      this.urls.map(async (url) => {
        try {
          const r = await this.post(url, '/update_weights_from_disk', { model_path: path.resolve(dir), weight_version: version });
          if (isObj(r) && r.success === false) throw new RemoteRequestError(`refused: ${String(r.message)}`);
        } catch (e) {
          failed.push(`${url}: ${(e as Error).message}`);
        }
      }),
    );
    if (failed.length)
      throw new Error(`rollout engine ${this.name}: weight update to version ${version} (${dir}) failed on ${failed.length} of ${this.urls.length} servers: ${failed.join('; ')}`);
    // every server has moved to this version: older directories are no longer read
    pruneRolloutWeights(this.o.weightsDir, version);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const ac of this.controllers) ac.abort(new RemoteRequestError('engine closed'));
    this.controllers.clear();
  }
}
