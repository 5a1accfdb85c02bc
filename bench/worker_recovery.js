// Local rollout workers' recovery from a killed worker (lib/rollout/workers.ts): on the demo's
// configuration (B = 32 prompts × G = 8 = 256 rows, ≤ 8 tokens) with 2 workers, per round:
//   healthy   a generate call with both workers sound;
//   killed    a call during which worker 1 is SIGKILLed with its share outstanding (stopped
//             first, so the kill always lands mid-request): its share is retried on worker 0;
//   after     the call right after it, while the replacement is (normally) still starting: the
//             live worker takes both shares (generate waits only when no worker is live);
//   ready     kill -> worker 1's replacement ready (started at the kill, in the background, with
//             the current weights: fork, load the addon, build the model, load the weights);
//             WorkerEngine.ready() resolves then.
// Every call's tokens are checked against the in-process engine's. Runs the compiled package
// (dist/, `npm run build:ts` first) so the workers start as they do for users (no tsx).
//   node bench/worker_recovery.js [--rounds 7]
const { performance } = require('perf_hooks');
const { execSync } = require('child_process');
const os = require('os');
const { createTransformer, CharTokenizer } = require('../dist/models');
const { arithmeticTask } = require('../dist/tasks');
const { WorkerEngine } = require('../dist/rollout/workers');
const { InProcessEngine } = require('../dist/rollout/engine');

const args = process.argv.slice(2);
const ROUNDS = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 7;
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const key = (r) => r.tokens.map((t) => t.join(',')).join('|');

async function main() {
  const load0 = os.loadavg()[0];
  const tok = new CharTokenizer();
  const task = arithmeticTask({ seed: 1, digits: 2, ops: ['+'], trainSize: 200, testSize: 10 });
  const model = createTransformer({ vocabSize: tok.vocabSize, dModel: 64, nLayers: 2, nHeads: 4, dFF: 256, maxSeqLen: 32, seed: 42 });
  const prompts = task.train.slice(0, 32);
  const o = { maxCompletionLength: 8, temperature: 1, seed: 5 };
  const ref = key(await new InProcessEngine(model, tok).generate(prompts, 8, o));
  const eng = await WorkerEngine.create(model, tok, { workers: 2, threadsPerWorker: 1, timeout: 60 });
  const t = { healthy: [], killed: [], after: [], ready: [] };
  try {
    await eng.generate(prompts, 8, o); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      if (key(await eng.generate(prompts, 8, o)) !== ref) throw new Error('healthy: tokens differ');
      t.healthy.push(performance.now() - t0);
      const victim = eng.pids[1];
      const sent = eng.stats.requests;
      process.kill(victim, 'SIGSTOP');
      t0 = performance.now();
      const call = eng.generate(prompts, 8, o);
      while (eng.stats.requests < sent + 2) await sleep(1);
      process.kill(victim, 'SIGKILL');
      const tk = performance.now();
      if (key(await call) !== ref) throw new Error('killed: tokens differ');
      t.killed.push(performance.now() - t0);
      // at once: the replacement is (normally) still starting, so worker 0 takes both shares
      const t1 = performance.now();
      if (key(await eng.generate(prompts, 8, o)) !== ref) throw new Error('after: tokens differ');
      t.after.push(performance.now() - t1);
      await eng.ready();
      t.ready.push(performance.now() - tk);
    }
  } finally {
    await eng.close();
    model.dispose();
  }
  const out = {
    rounds: ROUNDS, retries: eng.stats.retries, respawns: eng.stats.respawns,
    ms: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { median: Math.round(median(v)), all: v.map(Math.round) }])),
    load: [load0, os.loadavg()[0]].map((x) => x.toFixed(1)),
    node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length,
    git: execSync('git rev-parse --short HEAD').toString().trim(),
  };
  console.log(JSON.stringify(out, null, 1));
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
