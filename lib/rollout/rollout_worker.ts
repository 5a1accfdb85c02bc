/**
 * A local rollout worker process (lib/rollout/workers.ts): rebuilds the policy from its spec,
 * loads the weight snapshots it is sent, and runs the model's generate on the rows it is given.
 * Messages are handled one at a time in arrival order, so a weight update sent after a generate
 * request never changes the weights under it.
 */
import type { PolicyModel } from '../models/policy';
import { Transformer } from '../models/transformer';
import { HfCausalLM } from '../models/hf/model';
import type { ModelSpec } from './workers';

let model: PolicyModel | null = null;
let layout: { name: string; shape: number[] }[] = [];
let version = -1;
let queue: Promise<void> = Promise.resolve();

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
      return { ...g, version };
    }
    case 'hang':  // tests: a worker that stops answering
      return new Promise(() => {});
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
