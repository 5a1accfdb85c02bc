/**
 * A local rollout worker process (lib/rollout/workers.ts): rebuilds the policy from its spec,
 * loads the weight snapshots it is sent, and runs the model's generate on the rows it is given.
 * Messages are handled one at a time in arrival order, so a weight update sent after a generate
 * request never changes the weights under it.
 */
import type { Generation, PolicyModel } from '../models/policy';
import { Transformer } from '../models/transformer';
import { HfCausalLM } from '../models/hf/model';
import type { ModelSpec } from './workers';

let model: PolicyModel | null = null;
let layout: { name: string; shape: number[] }[] = [];
let version = -1;
let queue: Promise<void> = Promise.resolve();

/**
 * Test-only fault switch (test/rollout_workers_garbage.test.ts), so that the engine's recovery is
 * tested against real processes misbehaving: GRPO_ROLLOUT_WORKER_FAULT=MODE[,MODE…][@INDEX][:FROM]
 * makes worker INDEX (every worker when omitted) misbehave from its FROM-th generate request on
 * (default 1): its k-th process (GRPO_ROLLOUT_WORKER_SPAWN k, 0 = the first) in the k-th MODE, so
 * each replacement shows the next fault and the one after the list is healthy. MODEs: exit (the
 * process exits), ids (a token id = the vocabulary size), nan / positive (a log-prob NaN / 0.5),
 * rows (one row too few), count (one log-prob too many), version (another weight version than the
 * one sent), error (reports an error). A hang is a SIGSTOP from the test.
 */
const fault = (() => {
  const m = /^((?:exit|ids|nan|positive|rows|count|version|error)(?:,(?:exit|ids|nan|positive|rows|count|version|error))*)(?:@(\d+))?(?::(\d+))?$/.exec(process.env.GRPO_ROLLOUT_WORKER_FAULT ?? '');
  if (!m || (m[2] !== undefined && m[2] !== process.env.GRPO_ROLLOUT_WORKER_INDEX)) return null;
  const mode = m[1].split(',')[Number(process.env.GRPO_ROLLOUT_WORKER_SPAWN ?? 0)];
  return mode ? { mode, from: m[3] === undefined ? 1 : Number(m[3]) } : null;
})();
let generated = 0;

/** What a faulty worker answers instead of `g` (or it throws, or exits). */
function misbehave(mode: string, g: Generation, vocabSize: number): unknown {
  // a row with at least one token, to corrupt
  const row = () => {
    if (!g.tokens[0].length) {
      g.tokens[0] = Int32Array.of(0);
      g.logprobs[0] = Float32Array.of(-1);
    }
  };
  switch (mode) {
    case 'exit':
      process.exit(3);
    case 'error':
      throw new Error('injected fault');
    case 'ids':
      row();
      g.tokens[0][0] = vocabSize;
      break;
    case 'nan':
      row();
      g.logprobs[0][0] = NaN;
      break;
    case 'positive':
      row();
      g.logprobs[0][0] = 0.5;
      break;
    case 'rows':
      g.tokens.pop();
      g.logprobs.pop();
      g.truncated.pop();
      break;
    case 'count':
      g.logprobs[0] = Float32Array.of(...g.logprobs[0], -1);
      break;
    case 'version':
      return { ...g, version: version + 1 };
  }
  return { ...g, version };
}

/** Loads a flat weight snapshot (the state dict's tensors in `layout` order). */
function load(flat: Float32Array, v: number) {
  if (!model) throw new Error('weights before init');
  const sd = new Map<string, { shape: number[]; data: Float32Array }>();
  let o = 0;
  for (const t of layout) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    sd.set(t.name, { shape: t.shape, data: flat.subarray(o, o + n) });
    o += n;
  }
  if (o !== flat.length) throw new Error(`weight snapshot has ${flat.length} floats, the model ${o}`);
  model.loadStateDict(sd);
  version = v;
}

async function handle(m: Record<string, any>): Promise<unknown> {
  switch (m.type) {
    case 'init': {
      const spec = m.spec as ModelSpec;
      model = spec.kind === 'transformer'
        ? new Transformer(spec.config as never)
        : new HfCausalLM(spec.config as never, { maxSeqLen: spec.maxSeqLen, lora: spec.lora ?? undefined });
      layout = m.layout;
      load(m.flat, m.version);
      return null;
    }
    case 'weights': {
      load(m.flat, m.version);
      return null;
    }
    case 'generate': {
      if (!model) throw new Error('generate before init');
      const g = await model.generate(m.prompts, m.opts);
      if (fault && ++generated >= fault.from) return misbehave(fault.mode, g, model.vocabSize);
      return { ...g, version };
    }
    default:
      throw new Error(`unknown message type ${JSON.stringify(m.type)}`);
  }
}

process.on('message', (m: Record<string, any>) => {
  queue = queue.then(async () => {
    try {
      const result = await handle(m);
      process.send!({ id: m.id, result });
    } catch (e) {
      process.send!({ id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
});
// the trainer is gone: nothing left to sample for
process.on('disconnect', () => process.exit(0));
