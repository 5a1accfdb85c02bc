// The addon loader (lib/native.ts): the repository's tests must run the source build (build/),
// never a prebuilt binary left in prebuilds/ by `npm pack`, and a package whose binary cannot be
// loaded must say how to build one instead of failing with node-gyp-build's bare message.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { addonInfo, loadAddon } from '../lib/native';

const root = path.resolve(__dirname, '..');

test('the tests load the source build from build/, not prebuilds/', () => {
  const info = addonInfo();
  if (process.env.GRPO_KERNELS_ADDON) {
    assert.is(info.kind, 'override');
    assert.is(info.file, path.resolve(process.env.GRPO_KERNELS_ADDON));
  } else {
    assert.is(info.kind, 'source', `loaded ${info.file}`);
    assert.is(info.file, path.join(root, 'build', 'Release', 'grpo_kernels.node'));
  }
});

test('build/ wins over prebuilds/ when both exist', () => {
  // A package root with a "prebuild" and a "source build": node-gyp-build must take build/.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-loader-'));
  try {
    const src = path.join(root, 'build', 'Release', 'grpo_kernels.node');
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'grpo-kernels' }));
    fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`), { recursive: true });
    fs.copyFileSync(src, path.join(dir, 'build', 'Release', 'grpo_kernels.node'));
    fs.writeFileSync(path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'grpo-kernels.napi.glibc.node'), 'not a binary');
    const { file, addon } = loadAddon(dir);
    assert.is(file, path.join(dir, 'build', 'Release', 'grpo_kernels.node'));
    assert.type(addon.backend, 'function');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no binary: the error names the platform and the rebuild command', () => {
  // An installed package (under node_modules/) with neither build/ nor prebuilds/.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-loader-'));
  const pkg = path.join(dir, 'node_modules', 'grpo-kernels');
  try {
    fs.mkdirSync(pkg, { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'grpo-kernels' }));
    let err: Error | null = null;
    try {
      loadAddon(pkg);
    } catch (e) {
      err = e as Error;
    }
    assert.ok(err, 'loadAddon must throw when there is no binary');
    const msg = err!.message;
    assert.match(msg, `no native addon was found for ${process.platform}-${process.arch}`);
    assert.match(msg, 'No native build was found');  // node-gyp-build's cause is kept
    assert.match(msg, 'npm rebuild grpo-kernels');
    assert.match(msg, 'npm install --save-dev cmake-js node-addon-api');
    assert.match(msg, 'GRPO_CUDA=0');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a binary the dynamic linker refuses: the error keeps its cause and the rebuild command', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-loader-'));
  const pkg = path.join(dir, 'node_modules', 'grpo-kernels');
  const tuple = `${process.platform}-${process.arch}`;
  try {
    fs.mkdirSync(path.join(pkg, 'prebuilds', tuple), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'grpo-kernels' }));
    fs.writeFileSync(path.join(pkg, 'prebuilds', tuple, 'grpo-kernels.napi.glibc.node'), 'not an ELF file');
    assert.throws(() => loadAddon(pkg), (e: Error) =>
      e.message.includes(`prebuilds/${tuple}/grpo-kernels.napi.glibc.node could not be loaded`) &&
      /invalid ELF header|file too short/.test(e.message) &&
      e.message.includes('npm rebuild grpo-kernels'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('in a clone of the repository the error points at the source build', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-loader-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'grpo-kernels' }));
    assert.throws(() => loadAddon(dir), (e: Error) => e.message.includes('npm run build:native'));
    assert.throws(() => loadAddon(dir, path.join(dir, 'missing.node')), (e: Error) =>
      e.message.includes('GRPO_KERNELS_ADDON') && e.message.includes('missing.node'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
