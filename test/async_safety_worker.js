'use strict';
// Worker of the teardown scenario (test/async_safety_child.ts `workers`): loads the addon, starts
// one async op of every kind and restarts each as it settles, so that whenever the main thread
// calls worker.terminate() some are queued, some running and some settling.
const { parentPort, workerData } = require('worker_threads');
const addon = require(workerData.addonPath);
const { cases } = require('./async_safety_ops.js');

const list = cases(addon, 0.05);
let seed = workerData.seed * 1000;
function fire(c) {
  const m = c.model && c.model();
  const args = c.make(seed++);
  if (c.prepare) c.prepare(m, args);
  c.call(args, true, m).then(
    () => fire(c),
    () => fire(c),
  );
}
for (const c of list) fire(c);
parentPort.postMessage('started');
