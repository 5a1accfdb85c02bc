import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../lib';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-st-'));

test('write then read round-trips tensors and metadata', () => {
  const dir = tmp();
  const f = path.join(dir, 'x.safetensors');
  const a = Float32Array.from([1, -2.5, 3e-8, Infinity, -0, 7]);
  const b = new Float32Array(0);
  const c = Float32Array.from({ length: 24 }, (_, i) => i / 7);
  writeSafetensors(f, new Map([['a', { shape: [2, 3], data: a }], ['empty', { shape: [0, 4], data: b }], ['c.d', { shape: [2, 3, 4], data: c.subarray(0) }]]), { format: 'pt', note: 'hi' });
  const r = readSafetensors(f);
  assert.equal([...r.tensors.keys()].sort(), ['a', 'c.d', 'empty']);
  assert.equal(r.tensors.get('a')!.shape, [2, 3]);
  assert.equal(Array.from(r.tensors.get('a')!.data), Array.from(a));
  assert.is(Object.is(r.tensors.get('a')!.data[4], -0), true);
  assert.equal(r.tensors.get('empty')!.shape, [0, 4]);
  assert.equal(Array.from(r.tensors.get('c.d')!.data), Array.from(c));
  assert.equal(r.metadata, { format: 'pt', note: 'hi' });
  // no temp files left behind
  assert.equal(fs.readdirSync(dir), ['x.safetensors']);
  fs.rmSync(dir, { recursive: true });
});

test('the bytes are the safetensors format (parsed by hand)', () => {
  const x = Float32Array.from([1.5, -2]);
  const y = Float32Array.from([3, 4, 5]);
  const buf = encodeSafetensors(new Map([['x', { shape: [2], data: x }], ['y', { shape: [3, 1], data: y }]]), { k: 'v' });
  const n = Number(buf.readBigUInt64LE(0));
  assert.is((8 + n) % 8, 0, 'data section 8-byte aligned');
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  assert.equal(header.__metadata__, { k: 'v' });
  assert.equal(header.x, { dtype: 'F32', shape: [2], data_offsets: [0, 8] });
  assert.equal(header.y, { dtype: 'F32', shape: [3, 1], data_offsets: [8, 20] });
  assert.is(buf.length, 8 + n + 20);
  assert.is(buf.readFloatLE(8 + n), 1.5);
  assert.is(buf.readFloatLE(8 + n + 4), -2);
  assert.is(buf.readFloatLE(8 + n + 16), 5);
});

test('malformed files and bad tensors are rejected with clear errors', () => {
  const good = encodeSafetensors({ x: { shape: [2], data: Float32Array.from([1, 2]) } });
  assert.throws(() => decodeSafetensors(good.subarray(0, 4)), /too short/);
  const big = Buffer.from(good);
  big.writeBigUInt64LE(1000n, 0);
  assert.throws(() => decodeSafetensors(big), /header/);
  const n = Number(good.readBigUInt64LE(0));
  const mk = (h: object, data = 8) => {
    let j = JSON.stringify(h);
    const hb = Buffer.from(j);
    const b = Buffer.alloc(8 + hb.length + data);
    b.writeBigUInt64LE(BigInt(hb.length), 0);
    hb.copy(b, 8);
    return b;
  };
  assert.throws(() => decodeSafetensors(mk({ x: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } })), /F16/);
  assert.throws(() => decodeSafetensors(mk({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } })), /data_offsets/);
  assert.throws(() => decodeSafetensors(mk({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } })), /bytes for shape/);
  assert.throws(() => decodeSafetensors(mk({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } })), /overlap/);
  assert.ok(n > 0);
  assert.throws(() => encodeSafetensors({ x: { shape: [3], data: new Float32Array(2) } }), /3 elements for x/);
  assert.throws(() => encodeSafetensors({ x: { shape: [2], data: [1, 2] as unknown as Float32Array } }), /Float32Array/);
  assert.throws(() => encodeSafetensors({ x: { shape: [1], data: new Float32Array(1) } }, { a: 1 as unknown as string }), /metadata/);
});

test('a failed write leaves the previous file intact', () => {
  const dir = tmp();
  const f = path.join(dir, 'x.safetensors');
  writeSafetensors(f, { x: { shape: [1], data: Float32Array.of(1) } });
  assert.throws(() => writeSafetensors(f, { x: { shape: [2], data: Float32Array.of(1) } }));
  assert.equal(Array.from(readSafetensors(f).tensors.get('x')!.data), [1]);
  assert.equal(fs.readdirSync(dir), ['x.safetensors']);
  fs.rmSync(dir, { recursive: true });
});

test.run();
