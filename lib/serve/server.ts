/**
 * `grpo serve`: this package's own HTTP server for its models (node:http, no framework), speaking
 * the OpenAI-compatible completions subset vLLM, SGLang and llama.cpp's server speak, so that the
 * trainer's remote rollout engine (lib/rollout/remote.ts) runs against a real server process.
 *
 *   GET  /health                    200 {"status":"ok","weight_version":N}
 *   GET  /v1/models                 the served model (id, max_model_len)
 *   POST /v1/completions            see lib/serve/protocol.ts (fields, seeds)
 *   POST /update_weights_from_disk  {"model_path": DIR[, "weight_version": N]}: SGLang's endpoint
 *                                   name; loads DIR, validates it, then swaps it in between requests
 *
 * Requests run one at a time (a queue): a weight update never lands in the middle of a
 * generation, and every answer says which weights made it (`weight_version`).
 */
import * as http from 'http';
import { randomInt } from 'crypto';
import { encodePrompt, stopCut } from '../trainer/rollout';
import { ApiError, CompletionChoice, CompletionRequest, parseCompletionRequest } from './protocol';
import { mediaPlaceholders, reloadWeights, type ServedModel } from './weights';

/** Largest request body accepted (token-id prompts of a large batch fit easily). */
const MAX_BODY = 32 * 1024 * 1024;

export interface ServerOptions {
  /** The name /v1/models lists and `model` may give (default 'grpo'). */
  name?: string;
  /** Called with a line per event (start, reload); default silent. */
  log?: (msg: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  /** The served model now (it changes on a weight update). */
  served(): ServedModel;
  /** Stops listening, waits for the request in progress, disposes the model. Idempotent. */
  close(): Promise<void>;
}

/** Generates a parsed request with the served model: the trainer's rollout, row ids offset. */
export async function complete(s: ServedModel, req: CompletionRequest): Promise<{ choices: CompletionChoice[]; completionTokens: number }> {
  const { model, tokenizer: tok } = s;
  const seqs: number[][] = [];
  for (const p of req.prompts) for (let j = 0; j < req.n; j++) seqs.push(p);
  const seed = req.seed ?? randomInt(0, 2 ** 48);
  const stopIds = new Set<number>(tok.stopTokenIds ? [...tok.stopTokenIds] : [tok.eosId]);
  for (const id of req.stopTokenIds) stopIds.add(id);
  const choices: CompletionChoice[] = [];
  let completionTokens = 0;
  const maxBatch = 1024;
  for (let s0 = 0; s0 < seqs.length; s0 += maxBatch) {
    const n = Math.min(maxBatch, seqs.length - s0);
    const gen = await model.generate(seqs.slice(s0, s0 + n), {
      maxNewTokens: req.maxTokens, temperature: req.temperature, topK: req.topK, topP: req.topP, minP: req.minP,
      seed, rowIds: Array.from({ length: n }, (_, i) => req.rowOffset + s0 + i), stopTokenIds: [...stopIds],
    });
    for (let i = 0; i < n; i++) {
      let ids = gen.tokens[i];
      let lp = gen.logprobs[i];
      let truncated = gen.truncated[i];
      let stopReason: string | number | null = null;
      if (req.stop.length) {
        const cut = stopCut(tok, ids, req.stop);
        if (cut >= 0) {
          ids = ids.slice(0, cut);
          lp = lp.slice(0, cut);
          truncated = false;
          const text = tok.decode(ids);
          stopReason = req.stop.find((x) => text.includes(x)) ?? null;
        }
      }
      if (stopReason === null && !truncated && ids.length && stopIds.has(ids[ids.length - 1]) && req.stopTokenIds.includes(ids[ids.length - 1]))
        stopReason = ids[ids.length - 1];
      const c = s0 + i;
      completionTokens += ids.length;
      const text = tok.decode(ids);
      const choice: CompletionChoice = { index: c, text, logprobs: null, finish_reason: truncated ? 'length' : 'stop', stop_reason: stopReason };
      if (req.logprobs) {
        const tokens = Array.from(ids, (id) => tok.decode([id]));
        const offsets: number[] = [];
        let at = 0;
        for (const t of tokens) {
          offsets.push(at);
          at += t.length;
        }
        // float32 values as JSON numbers: parsing them back gives the same float32 bits
        choice.logprobs = { tokens, token_logprobs: Array.from(lp), top_logprobs: null, text_offset: offsets };
      }
      if (req.returnTokenIds) {
        choice.token_ids = Array.from(ids);
        choice.prompt_token_ids = seqs[c];
      }
      choices.push(choice);
    }
  }
  return { choices, completionTokens };
}

/**
 * A multimodal built-in model is served for text prompts only: the completions API carries token
 * ids and no images, audio or video, so a prompt holding a media placeholder id (or a `<image>`
 * tag, which the tokenizer expands into them) would be sampled from bare placeholders. 400.
 */
function refuseMediaPrompts(s: ServedModel, prompts: number[][]) {
  const ph = mediaPlaceholders(s.model);
  if (!ph.size) return;
  prompts.forEach((q, i) => {
    const at = q.findIndex((id) => ph.has(id));
    if (at >= 0)
      throw new ApiError('prompt', `prompt[${i}]: token ${at} is the ${ph.get(q[at])} placeholder id ${q[at]}; this server serves text prompts only (the completions API carries no media)`);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ApiError(null, `request body larger than ${MAX_BODY} bytes`, 413));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text.trim()) return reject(new ApiError(null, 'expected a JSON body but the request has none'));
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError(null, `the body is not valid JSON (${(e as Error).message})`));
      }
    });
    req.on('error', reject);
  });
}

/**
 * Serves `initial` on host:port (port 0 = any free port) until close(). The model is disposed
 * on close (and an old one after a weight update replaces it).
 */
export function startServer(initial: ServedModel, host: string, port: number, o: ServerOptions = {}): Promise<RunningServer> {
  const name = o.name ?? 'grpo';
  const log = o.log ?? (() => {});
  let cur = initial;
  let queue: Promise<unknown> = Promise.resolve();
  let nextId = 0;
  // one job at a time, in arrival order; a failed job does not stop the next
  const exclusive = <T>(job: () => Promise<T>): Promise<T> => {
    const r = queue.then(job, job);
    queue = r.catch(() => {});
    return r;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const route = (m: string) => {
      if (method !== m) throw new ApiError(null, `${url} takes ${m}, not ${method}`, 405);
    };
    if (url === '/health') {
      route('GET');
      return send(res, 200, { status: 'ok', weight_version: cur.version });
    }
    if (url === '/v1/models') {
      route('GET');
      return send(res, 200, {
        object: 'list',
        data: [{ id: name, object: 'model', created: 0, owned_by: 'grpo-kernels', root: cur.source, max_model_len: cur.model.maxSeqLen, weight_version: cur.version }],
      });
    }
    if (url === '/v1/completions') {
      route('POST');
      const body = await readBody(req);
      const answer = await exclusive(async () => {
        const s = cur;
        const r = parseCompletionRequest(body, s.model.vocabSize, s.model.maxSeqLen, (t) => encodePrompt(s.tokenizer, t));
        if (r.model !== undefined && r.model !== name) throw new ApiError('model', `model: '${r.model}' is not served here (this server serves '${name}')`, 404, 'not_found_error');
        refuseMediaPrompts(s, r.prompts);
        const { choices, completionTokens } = await complete(s, r);
        const promptTokens = r.prompts.reduce((a, p) => a + p.length * r.n, 0);
        return {
          id: `cmpl-${process.pid}-${nextId++}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: name,
          choices, usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
          weight_version: s.version,
        };
      });
      return send(res, 200, answer);
    }
    if (url === '/update_weights_from_disk') {
      route('POST');
      const body = (await readBody(req)) as Record<string, unknown>;
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(null, 'expected a JSON object {"model_path": DIR}');
      for (const k of Object.keys(body))
        if (!['model_path', 'weight_version', 'load_format'].includes(k)) throw new ApiError(k, `${k}: unknown field (this endpoint takes model_path, weight_version)`);
      const dir = body.model_path;
      if (typeof dir !== 'string' || !dir) throw new ApiError('model_path', `model_path: expected a directory path but received ${JSON.stringify(dir)}`);
      const wv = body.weight_version;
      if (wv !== undefined && wv !== null && !(typeof wv === 'number' && Number.isSafeInteger(wv) && wv >= 0))
        throw new ApiError('weight_version', `weight_version: expected an integer >= 0 but received ${JSON.stringify(wv)}`);
      const r = await exclusive(async () => {
        let next: ServedModel;
        try {
          next = await reloadWeights(cur, dir);
        } catch (e) {
          // the old weights stay: a bad directory never half-replaces them
          throw new ApiError('model_path', `model_path: ${(e as Error).message}`);
        }
        if (typeof wv === 'number') next.version = wv;
        const old = cur;
        cur = next;
        old.model.dispose();
        log(`grpo serve: weights from ${next.source} (version ${next.version})`);
        return { success: true, message: `loaded ${next.source}`, weight_version: next.version };
      });
      return send(res, 200, r);
    }
    throw new ApiError(null, `no route ${method} ${url} (this server has GET /health, GET /v1/models, POST /v1/completions, POST /update_weights_from_disk)`, 404, 'not_found_error');
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (res.headersSent) return res.destroy();
      if (e instanceof ApiError) return send(res, e.status, url(req) === '/update_weights_from_disk' ? { success: false, message: e.message, ...e.body() } : e.body());
      send(res, 500, { error: { message: `internal error: ${(e as Error)?.message ?? String(e)}`, type: 'internal_server_error', param: null, code: 500 } });
    });
  });
  const url = (req: http.IncomingMessage) => (req.url ?? '/').split('?')[0];
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address() as { port: number };
      const shown = host.includes(':') ? `[${host}]` : host;
      let closing: Promise<void> | null = null;
      resolve({
        url: `http://${shown}:${addr.port}`,
        port: addr.port,
        served: () => cur,
        close: () =>
          (closing ??= new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections?.();
          }).then(() => queue).then(() => cur.model.dispose())),
      });
    });
  });
}

export { ApiError };
