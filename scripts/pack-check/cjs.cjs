'use strict';
// CommonJS consumer: require() the installed package, every kernel's Sync form against the reference.
const api = require('grpo-kernels');
const b = api.backend();
console.log(`ok require('grpo-kernels'): backend cpuIsa=${b.cpuIsa}, CUDA compiled=${b.cuda.compiled} (${b.cuda.archList || 'none'})`);
require('./kernels.cjs').run(api, 'sync').then((failed) => process.exit(failed ? 1 : 0));
