// One rank of test/dist_train.test.ts: GRPO steps of the tiny trainer setup, data parallel when
// WORLD_SIZE > 1. argv: lossType (or a JSON object of config overrides), steps, output file (rank 0
// writes the final flat weights). Prints "RESULT {...}": per-step metrics, the weights hash.
import * as fs from 'fs';
import { GrpoTrainer } from '../lib/trainer/grpo';
import { DataParallel, hashFloats } from '../lib/parallel/data_parallel';
import { ProcessGroup } from '../lib/parallel/process_group';
import { distEnv } from '../lib/parallel/env';
import { rewards, task, tinyConfig, tinyModel, tok } from './trainer_setup';

async function main() {
  const [arg, steps, outFile] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
  const over = arg.startsWith('{') ? JSON.parse(arg) : { lossType: arg };
  const e = distEnv();
  const dist = e.worldSize > 1 ? new DataParallel(await ProcessGroup.init({ ...e, timeoutMs: 60000 })) : undefined;
  const model = tinyModel(7, 16);
  const trainer = new GrpoTrainer({
    model, tokenizer: tok, task, rewardFunctions: rewards(),
    // stop strings make completion lengths differ, so dapo (per token) and grpo (per sequence) differ
    config: tinyConfig({ maxSteps: steps, batchSize: 4, numGenerations: 4, beta: 0.04, maxGradNorm: 0, stop: ['1', '5', '='], ...over }),
    dist, distCheckWeights: true,
  });
  if (dist) await dist.broadcastParameters(model);
  const metrics = [];
  const local: number[] = [];
  for (let s = 0; s < steps; s++) {
    metrics.push(await trainer.step());
    local.push(trainer.lastStepSequences);
  }
  const p = (model as unknown as { flatParameters(): Float32Array }).flatParameters();
  if (e.rank === 0) fs.writeFileSync(outFile, Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  if (dist) {
    await dist.pg.barrier();
    await dist.pg.close();
  }
  process.stdout.write('RESULT ' + JSON.stringify({
    rank: e.rank, hash: Array.from(hashFloats(p)), state: trainer.state,
    loss: metrics.map((m) => m.loss), reward: metrics.map((m) => m.reward), numTokens: metrics.map((m) => m.num_tokens), metrics, local,
  }) + '\n');
  model.dispose();
  trainer.refModel?.dispose();
}
main().catch((err) => {
  fs.writeSync(2, `rank ${distEnv().rank}: ${err?.stack ?? err}\n`);
  process.exit(1);
});
