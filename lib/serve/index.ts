/**
 * `grpo serve [--checkpoint DIR | --model DIR] --port N [--host H]`: serves a built-in checkpoint,
 * a Hugging Face folder (with a checkpoint's weights when both are given), or a fresh built-in
 * transformer (from the model options and --seed) over HTTP; see server.ts for the endpoints.
 */
import { setNumThreads } from '../index';
import { CharTokenizer, createTransformer } from '../models';
import type { Options } from '../trainer/config';
import { modelConfig, resolvePaths, withDefaults } from '../trainer/run';
import { startServer, type RunningServer } from './server';
import { loadServedModel, servedMedia } from './weights';

export { startServer, complete, type RunningServer } from './server';
export { parseCompletionRequest, ApiError } from './protocol';
export { writeRolloutWeights, loadServedModel, reloadWeights, type ServedModel } from './weights';

/** Loads the model and starts the server; resolves once it listens (the caller closes it). */
export async function startServe(opts: Options, log: (m: string) => void = (m) => process.stderr.write(m + '\n')): Promise<RunningServer> {
  const o = resolvePaths(withDefaults(opts));
  if ((o.threads as number) > 0) setNumThreads(o.threads as number);
  const served = await loadServedModel({
    checkpoint: o.checkpoint as string | undefined,
    model: o.model as string | undefined,
    fresh: () => createTransformer(modelConfig(o, new CharTokenizer())),
  });
  const port = o.port as number;
  const host = o.host as string;
  let s: RunningServer;
  try {
    s = await startServer(served, host, port, { name: o.servedModelName as string, log });
  } catch (e) {
    served.model.dispose();
    throw new Error(`grpo serve: cannot listen on ${host}:${port} (${(e as Error).message})`);
  }
  if (servedMedia(served.model))
    log('grpo serve: a multimodal model: this server serves text prompts only (the completions API carries no images, audio or video; prompts with media placeholders are refused)');
  return s;
}

/** The CLI command: serves until SIGINT / SIGTERM, then closes cleanly. */
export async function runServe(opts: Options): Promise<void> {
  const s = await startServe(opts);
  const m = s.served();
  // stdout carries exactly this line (scripts and tests read the URL from it)
  process.stdout.write(`grpo serve: listening on ${s.url}\n`);
  process.stderr.write(
    `grpo serve: ${m.kind === 'hf' ? 'Hugging Face model' : 'built-in transformer'} from ${m.source}, ${m.model.numParameters} parameters, context ${m.model.maxSeqLen}, weight version ${m.version}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      s.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
