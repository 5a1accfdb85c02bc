// Encoder cost inside a GRPO training forward + backward: the same packed batch (16 prompts × 8
// completions, the demo's shape) through the built-in model with its media spliced (encoders run)
// and with media: undefined (placeholders read as ordinary tokens: the decoder's work is
// identical, no encoder). The difference is the encoders' forward + backward time.
// Usage: node --import tsx bench/multimodal_encoder.ts [reps]
import { createTransformer, mediaModelConfig, mediaTokenizer } from '../lib/models';
import { makeTask } from '../lib/tasks';

const reps = Number(process.argv[2] ?? 7);
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
async function main() {
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
  const grad = new Float32Array(B * L * m.vocabSize).fill(1e-4);
  const time = async (withMedia: boolean) => {
    const t = performance.now();
    m.zeroGrad();
    await m.forward(tokens, B, L, withMedia ? { train: true, media } : { train: true });
    await m.backward(grad);
    return performance.now() - t;
  };
  await time(true); // warm the feature caches (decoding / patchify / log-mel happen once per row)
  const a: number[] = [], b: number[] = [];
  for (let i = 0; i < reps; i++) { a.push(await time(true)); b.push(await time(false)); }
  const tokensPerRow = tok.encode(task.train[0].prompt).filter((x) => x >= tok.imageTokenId).length;
  console.log(`${name} (patch ${patchSize}): ${B} sequences × L ${L}, ${tokensPerRow} media tokens/row; forward+backward median ${median(a).toFixed(1)} ms with encoders, ${median(b).toFixed(1)} ms without → encoders ${(median(a) - median(b)).toFixed(1)} ms (${(100 * (median(a) - median(b)) / median(a)).toFixed(1)}% of the train forward+backward)`);
  m.dispose();
}
}
main().catch((e) => { console.error(e); process.exit(1); });
