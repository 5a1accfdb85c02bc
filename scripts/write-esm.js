'use strict';
// dist/ is CommonJS (tsc); this writes dist/index.mjs so `import { x } from 'grpo-kernels'`
// gets real named exports, listed from the CommonJS module itself so the two never drift.
const fs = require('fs');
const path = require('path');
const dist = path.resolve(__dirname, '..', 'dist');
const names = Object.keys(require(path.join(dist, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = [
  "import cjs from './index.js';",
  ...names.map((n) => `export const ${n} = cjs.${n};`),
  'export default cjs;',
  '',
].join('\n');
fs.writeFileSync(path.join(dist, 'index.mjs'), body);
