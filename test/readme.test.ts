// README.md runs as written: every ```ts block is type-checked with tsc --strict against the
// package's own types (path mapping 'grpo-kernels' -> lib/) and executed with tsx; ```js blocks
// run with node (a reward module is also loaded and scored); ```sh blocks run with bash; ```yaml
// blocks are loaded as `--config` files. A block that cannot run as a test says so in its info
// string (```sh norun) and is listed in NORUN below with the reason. Links: in-page anchors
// must name a heading, relative links must name a file that ships in the npm package, and
// "§N" references are links into the Math section.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { readConfigFile } from '../lib/cli/args';
import { loadRewardModule, scoreRewards } from '../lib/rewards';
import { arithmeticTask } from '../lib/tasks';

const ROOT = path.resolve(__dirname, '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** Blocks that are not run, by their first line, with why (keep this tiny). */
const NORUN: Record<string, string> = {
  'npm install && npm start': 'builds the addon (~3 min) and trains for minutes; `npm start` is measured in bench/results/demo.md',
  'npx grpo sft   --output-dir runs/sft --ops + --sft-stop-accuracy 0.2': 'trains for minutes; run and measured in bench/results/readme_trainer.md',
  'npm install grpo-kernels': "a consumer's install from the registry; scripts/check-pack.js installs the packed tarball the same way in CI",
  'npm install --save-dev cmake-js node-addon-api': "a consumer's source-build setup (network, minutes of compiling); the source build is what npm install runs in this repository",
  'npx grpo train --nproc-per-node 2 --output-dir runs/dp': 'needs Gloo (libgloo-dev) and starts several processes; test/dist_train.test.ts runs --nproc-per-node 2 and the torchrun environment (skipped with the reason without Gloo)',
  'GRPO_CUDA=0 npm rebuild grpo-kernels': "rebuilds in a consumer project (minutes); bench/install.js measures GRPO_CUDA=0 from the tarball",
  'npx grpo serve --checkpoint runs/sft --port 8001 &': 'needs the runs/sft checkpoint and keeps servers running; test/rollout_remote.test.ts runs grpo serve processes, samples and trains through them (runTrain with --rollout-engine remote); rollout_remote_eval.test.ts runs grpo eval --endpoint',
  'npx grpo sft   --task clevr_count --train-size 2000 --output-dir runs/clevr-sft --sft-stop-accuracy 0.3 --max-completion-length 3': 'trains for minutes; run and measured in bench/results/multimodal.md',
  'npx grpo data export --task beep_count --out data/beeps --train-size 2000 --test-size 200': 'writes 2200 WAV files and trains for minutes; test/multimodal_files.test.ts runs the same commands (runData, runTrain --task FILE.jsonl) on a small export',
  'npx grpo train --model ./Qwen2.5-0.5B-Instruct --task arithmetic --output-dir runs/qwen --beta 0.04': 'needs a downloaded Hugging Face checkpoint (no model hub here); test/hf_train.test.ts runs the same command path on a tiny checkpoint it writes',
};

interface Block {
  line: number;
  lang: string;
  flags: string[];
  code: string;
}

function blocks(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    while (++i < lines.length && !/^```\s*$/.test(lines[i])) body.push(lines[i]);
    out.push({ line: start + 1, lang: open[1], flags: open[2].split(/\s+/).filter(Boolean), code: body.join('\n') + '\n' });
  }
  return out;
}

const all = blocks(README);
const norun = (b: Block) => b.flags.includes('norun');
const runnable = all.filter((b) => !norun(b));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-readme-'));
const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');

test('every block is in a language the test runs, or marked norun with a reason listed here', () => {
  assert.ok(all.length >= 10, `found ${all.length} blocks`);
  for (const b of all) {
    if (norun(b)) {
      const first = b.code.split('\n')[0].replace(/\s+#.*$/, '').trimEnd();
      assert.ok(NORUN[first], `README.md:${b.line}: block marked norun but not listed in NORUN of test/readme.test.ts (first line: ${first})`);
    } else assert.ok(['ts', 'js', 'sh', 'yaml'].includes(b.lang), `README.md:${b.line}: a \`\`\`${b.lang} block: make it ts/js/sh/yaml, or mark it norun and list it in NORUN`);
  }
  assert.is(all.filter(norun).length, Object.keys(NORUN).length, 'every NORUN entry is still in the README');
});

test('```ts blocks: tsc --strict against lib/ (as the package types), then run with tsx', () => {
  const ts = runnable.filter((b) => b.lang === 'ts');
  assert.ok(ts.length >= 7, `${ts.length} ts blocks`);
  for (const b of ts) fs.writeFileSync(path.join(tmp, `block-${b.line}.mts`), b.code);
  fs.writeFileSync(path.join(tmp, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true,
      types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      paths: { 'grpo-kernels': [path.join(ROOT, 'lib', 'index.ts')] },
    },
    include: ['*.mts'],
  }));
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(tmp, 'tsconfig.json')], { encoding: 'utf8' });
  const errors = (tsc.stdout + tsc.stderr).replace(/\S*block-(\d+)\.mts\((\d+),(\d+)\)/g, (_, l, r, c) => `README.md:${+l + +r}:${c}`);
  assert.is(tsc.status, 0, `tsc --strict:\n${errors}`);
  // Run against the package's real ESM entry (dist/index.mjs, what `import ... from 'grpo-kernels'`
  // loads): tsx's ESM view of the CommonJS lib/ sources misses names re-exported through nested
  // `export *`. dist/ is rebuilt first when a lib/ file is newer than it.
  const entry = path.join(ROOT, 'dist', 'index.mjs');
  const newest = (d: string): number => Math.max(0, ...fs.readdirSync(d, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(d, e.name)) : fs.statSync(path.join(d, e.name)).mtimeMs)));
  if (!fs.existsSync(entry) || fs.statSync(entry).mtimeMs < newest(path.join(ROOT, 'lib'))) {
    const b = spawnSync('npm', ['run', 'build:ts'], { cwd: ROOT, encoding: 'utf8' });
    assert.is(b.status, 0, `npm run build:ts:\n${b.stdout}${b.stderr}`);
  }
  fs.writeFileSync(path.join(tmp, 'tsconfig.run.json'), JSON.stringify({ compilerOptions: { paths: { 'grpo-kernels': [entry] } } }));
  for (const b of ts) {
    const r = spawnSync(tsx, ['--tsconfig', path.join(tmp, 'tsconfig.run.json'), path.join(tmp, `block-${b.line}.mts`)], { cwd: tmp, encoding: 'utf8', env: { ...process.env, GRPO_NUM_THREADS: '2' } });
    assert.is(r.status, 0, `README.md:${b.line} exited ${r.status}:\n${r.stderr}`);
    assert.ok(r.stdout.length > 0, `README.md:${b.line} prints what it computed`);
    assert.not.ok(/NaN/.test(r.stdout) && !b.code.includes('NaN'), `README.md:${b.line} printed NaN:\n${r.stdout}`);
  }
});

test('```js blocks run with node; a reward module among them loads and scores', async () => {
  const js = runnable.filter((b) => b.lang === 'js');
  for (const b of js) {
    const f = path.join(tmp, `block-${b.line}.cjs`);
    fs.writeFileSync(f, b.code);
    const r = spawnSync(process.execPath, [f], { cwd: tmp, encoding: 'utf8' });
    assert.is(r.status, 0, `README.md:${b.line}:\n${r.stderr}`);
    if (!b.code.includes('--reward-module')) continue;
    const fns = loadRewardModule(f);
    assert.equal(fns.map((x) => x.name), ['short', 'even']);
    const task = arithmeticTask({ seed: 0, trainSize: 4, testSize: 4 });
    const ex = task.train[0];
    const completions = ['12', '123456', '7'];
    const { rewards, failures } = await scoreRewards(fns, {
      completions, prompts: completions.map(() => ex.prompt), examples: completions.map(() => ex),
      completionLengths: completions.map((c) => c.length), truncated: [false, false, false], task, maxCompletionLength: 8,
    });
    assert.equal(failures, []);
    assert.equal([...rewards], [1, 1, 0, 1, 1, 0]);
  }
});

test('```sh blocks run with bash (npx grpo = this package\'s bin)', () => {
  const sh = runnable.filter((b) => b.lang === 'sh');
  assert.ok(sh.length >= 1);
  // `npx grpo` in this repository runs the package's own bin; the shim runs the same bin from
  // source (npx itself spends a minute asking the registry on a loaded box)
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'npx'), `#!/bin/sh\nif [ "$1" = grpo ]; then shift; exec "${tsx}" "${path.join(ROOT, 'lib', 'cli', 'main.ts')}" "$@"; fi\necho "readme test: only npx grpo is available" >&2; exit 127\n`, { mode: 0o755 });
  for (const b of sh) {
    const r = spawnSync('bash', ['-e', '-c', b.code], { cwd: tmp, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.is(r.status, 0, `README.md:${b.line}:\n${r.stderr}`);
    assert.ok(r.stdout.trim().length > 0, `README.md:${b.line} printed nothing`);
  }
});

test('```yaml blocks are valid --config files', () => {
  const yaml = runnable.filter((b) => b.lang === 'yaml');
  for (const b of yaml) {
    const f = path.join(tmp, `block-${b.line}.yaml`);
    fs.writeFileSync(f, b.code);
    const o = readConfigFile(f);
    assert.ok(Object.keys(o).length > 3, `README.md:${b.line}`);
  }
});

/** GitHub's heading anchors (github-slugger): lower case, punctuation dropped, spaces to '-'. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

test('links: anchors name a heading; relative links name files the npm package ships; §N are links', () => {
  const prose = README.replace(/^```[\s\S]*?^```\s*$/gm, '');
  const anchors = new Set<string>();
  for (const m of prose.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    let s = slug(m[1].trim());
    for (let k = 1; anchors.has(s); k++) s = `${slug(m[1].trim())}-${k}`;
    anchors.add(s);
  }
  assert.ok(anchors.has('1-token-log-probs-and-entropy') && anchors.has('math'));
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const shipped = (p: string) => p === 'README.md' || p === 'package.json' || (pkg.files as string[]).some((f) => p === f.replace(/\/$/, '') || p.startsWith(f.endsWith('/') ? f : f + '/'));
  let links = 0;
  for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1];
    links++;
    if (/^https?:\/\//.test(target)) continue;
    if (target.startsWith('#')) {
      assert.ok(anchors.has(target.slice(1)), `link ${target}: no heading has that anchor`);
      continue;
    }
    const rel = path.posix.normalize(target.split('#')[0]);
    assert.not.ok(rel.startsWith('..'), `link ${target}: outside the package`);
    assert.ok(fs.existsSync(path.join(ROOT, rel)), `link ${target}: no such file`);
    assert.ok(shipped(rel), `link ${target}: not in package.json "files", broken for npm users`);
  }
  assert.ok(links >= 10, `${links} links`);
  assert.not.ok(/spec §/i.test(README), 'no "spec §N": the math is in the README');
  // every §N outside the Math section's own text is a link to its subsection
  const beforeMath = prose.slice(0, prose.indexOf('\n## Math'));
  for (const m of beforeMath.matchAll(/§\d+/g)) {
    const around = beforeMath.slice(Math.max(0, m.index! - 1), m.index! + m[0].length + 2);
    assert.ok(/^\[§\d+\]\(/.test(around), `"${m[0]}" at offset ${m.index} is not a link`);
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
