// Encoder cost inside a GRPO step: the same packed batch (16 prompts × 8 completions, the demo's
// shape) through the built-in model with its media spliced (encoders run) and with media:
// undefined (placeholders read as ordinary tokens: the decoder's work is identical, no encoder).
// The difference is the encoders' time, measured in the two places a GRPO step runs them:
//   - the train forward + backward (the loss pass), and
//   - the rollout (generate: the KV-cache prefill runs the encoders once, then
//     `--new-tokens` decode steps, as in the demo's --max-completion-length 3).
// Both wall time and this process's CPU time (user + system; steadier on a loaded box) are
// reported, medians of `reps` alternating pairs. Feature caches (patches, log-mel) are warmed
// first: they are computed once per row, not per step.
// One compute thread, as in the demo runs (--threads 1).
// Usage: node --import tsx bench/multimodal_encoder.ts [reps] [--new-tokens 3]
import { createTransformer, mediaModelConfig, mediaTokenizer } from '../lib/models';
import { makeTask } from '../lib/tasks';
import { setNumThreads } from '../lib/index';

const reps = Number(process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 7);
const nt = process.argv.indexOf('--new-tokens');
const newTokens = nt >= 0 ? Number(process.argv[nt + 1]) : 3;
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
async function measure(fn: () => Promise<unknown>): Promise<[wall: number, cpu: number]> {
  const c = cpuMs();
  const t = performance.now();
  await fn();
  return [performance.now() - t, cpuMs() - c];
}

async function main() {
  setNumThreads(1); // as the demo runs (--threads 1): CPU time is then the work itself
  console.log(`reps ${reps}, rollout of ${newTokens} new tokens; times in ms, wall / cpu (medians)`);
  console.log('| task | media tokens/row | train fwd+bwd with / without | encoders in train | rollout with / without | encoders in rollout |');
  console.log('|---|---:|---:|---:|---:|---:|');
  // video_direction twice: patch 4 (the earlier runs' size) and patch 8 (the demo's); both with the
  // default two frames per video token
  const runs: [string, number, number][] = [['clevr_count', 4, 32], ['video_direction', 4, 64], ['video_direction', 8, 32], ['beep_count', 4, 32]];
  for (const [name, patchSize, L] of runs) {
    const task = makeTask({ task: name, seed: 1, trainSize: 16, testSize: 1 });
    const mc = mediaModelConfig(task.media!, { patchSize, encoderHidden: 32 });
    const tok = mediaTokenizer(mc);
    const m = createTransformer({ vocabSize: tok.vocabSize, dModel: 64, nLayers: 2, nHeads: 4, dFF: 256, maxSeqLen: L, seed: 1, media: mc });
    const rows = task.train.flatMap((e) => new Array(8).fill(e));
    const B = rows.length;
    const tokens = new Int32Array(B * L);
    rows.forEach((e, b) => tokens.set([tok.bosId, ...tok.encode(e.prompt), 5, tok.eosId], b * L));
    const media = rows.map((e) => e.media);
    const prompts = rows.map((e) => [tok.bosId, ...tok.encode(e.prompt)]);
    const grad = new Float32Array(B * L * m.vocabSize).fill(1e-4);
    const train = (withMedia: boolean) =>
      measure(async () => {
        m.zeroGrad();
        await m.forward(tokens, B, L, withMedia ? { train: true, media } : { train: true });
        await m.backward(grad);
      });
    // eos is never a stop here, so every row decodes exactly newTokens tokens in both arms
    const rollout = (withMedia: boolean) =>
      measure(() => m.generate(prompts, { maxNewTokens: newTokens, temperature: 1, seed: 7, stopTokenIds: [], ...(withMedia ? { media } : {}) }));
    await train(true); // warm the feature caches (decoding / patchify / log-mel happen once per row)
    await rollout(true);
    const tw: number[][] = [[], [], [], []], tc: number[][] = [[], [], [], []];
    for (let i = 0; i < reps; i++) {
      const r = [await train(true), await train(false), await rollout(true), await rollout(false)];
      r.forEach(([w, c], k) => { tw[k].push(w); tc[k].push(c); });
    }
    const [w, c] = [tw.map(median), tc.map(median)];
    const tokensPerRow = tok.encode(task.train[0].prompt).filter((x) => x >= tok.imageTokenId).length;
    const f = (x: number) => x.toFixed(1);
    console.log(`| ${name} (patch ${patchSize}, L ${L}) | ${tokensPerRow} | ${f(w[0])} / ${f(w[1])} wall, ${f(c[0])} / ${f(c[1])} cpu | ${f(w[0] - w[1])} wall, ${f(c[0] - c[1])} cpu | ${f(w[2])} / ${f(w[3])} wall, ${f(c[2])} / ${f(c[3])} cpu | ${f(w[2] - w[3])} wall, ${f(c[2] - c[3])} cpu |`);
    m.dispose();
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
