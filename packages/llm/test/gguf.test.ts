/**
 * GGUF reader and dequantization against the Python `gguf` package and transformers' GGUF loader
 * (goldens written by tools/reference/golden_gguf.py), on the real SmolLM2 file and on synthetic blocks.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromGguf } from '../src/config.ts';
import { requireSmolLm2Gguf } from '../src/weights/assets.ts';
import { dequantize, GgmlType, halfToFloat } from '../src/weights/dequant.ts';
import { fileDigest, sidecarPathOf } from '../src/weights/digest.ts';
import { GgufFile, GgufValueType, shortestFloat32 } from '../src/weights/gguf.ts';
import { writeGguf, type GgufTypedValue } from '../src/weights/gguf-writer.ts';
import { unpermuteRotaryRows } from '../src/weights/gguf-weights.ts';
import { loadWeights } from '../src/weights/load.ts';

interface RowSummary { length: number; prefix: number[]; sum: number; sumSquares: number }
const golden = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'golden', 'gguf.json'), 'utf8')) as {
  realBlocks: { name: string; type: string; dims: number[]; rows: Record<string, RowSummary> }[];
  hfLayout: { name: string; shape: number[]; rows: Record<string, RowSummary> }[];
  synthetic: { type: string; numElements: number; bytes: string; expected: number[] }[];
};

/** Our row must equal the reference bit for bit on the stored prefix, and agree on the full-row sums. */
function expectRowMatches(row: Float32Array, expected: RowSummary, label: string): void {
  expect(row.length, label).toBe(expected.length);
  const prefix = Array.from(row.subarray(0, expected.prefix.length));
  expect(prefix, label).toEqual(expected.prefix.map((v) => Math.fround(v)));
  let sum = 0;
  let sumSquares = 0;
  for (const v of row) {
    sum += v;
    sumSquares += v * v;
  }
  // Float64 accumulations of identical float32 values differ only by summation order.
  expect(Math.abs(sum - expected.sum), label).toBeLessThan(1e-9 * Math.max(1, expected.sumSquares));
  expect(sumSquares / expected.sumSquares, label).toBeCloseTo(1, 12);
}

describe('GGUF reader on SmolLM2-135M-Instruct.Q4_1', () => {
  const file = requireSmolLm2Gguf();
  const gguf = GgufFile.open(file);

  it('reads header, metadata of every kind and tensor infos', () => {
    expect(gguf.version).toBe(3);
    expect(gguf.tensors).toHaveLength(272);
    expect(gguf.alignment).toBe(32);
    expect(gguf.dataOffset % 32).toBe(0);
    expect(gguf.get('general.architecture')).toBe('llama');
    expect(gguf.get('llama.block_count')).toBe(30);
    expect(gguf.get('llama.attention.layer_norm_rms_epsilon')).toBe(1e-5); // float32, read back as its shortest decimal
    expect(gguf.get('tokenizer.ggml.add_bos_token')).toBe(false);
    expect(gguf.get('general.languages')).toEqual(['en']);
    const tokens = gguf.get('tokenizer.ggml.tokens') as string[];
    expect(tokens).toHaveLength(49152);
    expect(tokens.slice(0, 3)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
    expect((gguf.get('tokenizer.ggml.merges') as string[])[0]).toBe('Ġ t');
    const types = new Map<string, number>();
    for (const t of gguf.tensors) types.set(t.typeName, (types.get(t.typeName) ?? 0) + 1);
    expect(Object.fromEntries(types)).toEqual({ Q8_0: 1, F32: 61, Q4_1: 210 });
    const embedding = gguf.tensor('token_embd.weight')!;
    expect(embedding.dims).toEqual([576, 49152]);
    expect(embedding.byteSize).toBe((576 * 49152 / 32) * 34);
  });

  it('dequantizes real F32, Q4_1 and Q8_0 rows exactly like gguf-py', () => {
    expect(new Set(golden.realBlocks.map((b) => b.type))).toEqual(new Set(['F32', 'Q4_1', 'Q8_0']));
    for (const block of golden.realBlocks) {
      const info = gguf.tensor(block.name)!;
      expect(info.typeName).toBe(block.type);
      expect(info.dims).toEqual(block.dims);
      const values = gguf.readTensorFloat32(block.name);
      const rowLength = info.dims[0];
      for (const [row, expected] of Object.entries(block.rows)) {
        const start = Number(row) * rowLength;
        expectRowMatches(values.subarray(start, start + rowLength), expected, `${block.name} row ${row}`);
      }
    }
  });

  it('config from GGUF metadata', () => {
    expect(configFromGguf(gguf)).toEqual({
      architecture: 'llama',
      vocabSize: 49152,
      hiddenSize: 576,
      intermediateSize: 1536,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 100000,
      ropeScaling: null,
      maxPositionEmbeddings: 8192,
      tieWordEmbeddings: true,
      attentionBias: false,
      attentionOutputBias: false,
      slidingWindow: null,
      bosTokenId: 1,
      eosTokenId: 2,
      eosTokenIds: [2],
      padTokenId: 2,
    });
  });

  it('loadWeights yields HF names, HF shapes and un-permuted q/k rows equal to transformers', () => {
    const loaded = loadWeights(file);
    expect(loaded.format).toBe('gguf');
    expect(loaded.digest).toMatch(/^[0-9a-f]{64}$/);
    const names = loaded.tensors.names();
    expect(names).toHaveLength(1 + 1 + 30 * 9); // embed, final norm, 9 per layer; lm_head tied
    expect(names).not.toContain('lm_head.weight');
    expect(loaded.tensors.info('model.layers.0.self_attn.k_proj.weight')).toEqual({ shape: [192, 576], storedAs: 'Q4_1' });
    expect(loaded.tensors.info('model.embed_tokens.weight')).toEqual({ shape: [49152, 576], storedAs: 'Q8_0' });
    for (const entry of golden.hfLayout) {
      expect(loaded.tensors.info(entry.name).shape, entry.name).toEqual(entry.shape);
      const values = loaded.tensors.read(entry.name);
      const rowLength = entry.shape.length === 2 ? entry.shape[1] : values.length;
      for (const [row, expected] of Object.entries(entry.rows)) {
        const start = row === 'all' ? 0 : Number(row) * rowLength;
        expectRowMatches(values.subarray(start, start + rowLength), expected, `${entry.name} row ${row}`);
      }
    }
  });

  it('digest is stable across loads', () => {
    expect(loadWeights(file).digest).toBe(loadWeights(file).digest);
  });
});

describe('dequantization of every supported type vs gguf-py (synthetic blocks)', () => {
  it.each(golden.synthetic.map((s) => [s.type, s] as const))('%s', (typeName, sample) => {
    const type = GgmlType[typeName as keyof typeof GgmlType];
    const bytes = new Uint8Array(Buffer.from(sample.bytes, 'base64'));
    const values = dequantize(type, bytes, sample.numElements);
    expect(Array.from(values)).toEqual(sample.expected.map((v) => Math.fround(v)));
  });

  it('covers F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K', () => {
    expect(golden.synthetic.map((s) => s.type).sort()).toEqual(
      ['BF16', 'F16', 'Q4_0', 'Q4_1', 'Q4_K', 'Q5_0', 'Q5_1', 'Q5_K', 'Q6_K', 'Q8_0'],
    );
  });

  it('rejects a byte length that does not match the element count', () => {
    expect(() => dequantize(GgmlType.Q4_0, new Uint8Array(17), 32)).toThrow(/expected 18 bytes/);
    expect(() => dequantize(GgmlType.Q4_0, new Uint8Array(18), 31)).toThrow(/multiple of the Q4_0 block size/);
  });
});

describe('every metadata value type, cross-checked with the Python gguf reader', () => {
  it('writes a GGUF with all value types and nested arrays; ours and gguf-py read the same values', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-gguf-types-'));
    try {
      const file = path.join(dir, 'types.gguf');
      const metadata: Record<string, GgufTypedValue> = {
        u8: { type: GgufValueType.UINT8, value: 200 },
        i8: { type: GgufValueType.INT8, value: -100 },
        u16: { type: GgufValueType.UINT16, value: 60000 },
        i16: { type: GgufValueType.INT16, value: -30000 },
        u32: { type: GgufValueType.UINT32, value: 4000000000 },
        i32: { type: GgufValueType.INT32, value: -2000000000 },
        f32: { type: GgufValueType.FLOAT32, value: 0.1 },
        f64: { type: GgufValueType.FLOAT64, value: 0.1 },
        bool: { type: GgufValueType.BOOL, value: true },
        str: { type: GgufValueType.STRING, value: 'héllo 😀' },
        u64: { type: GgufValueType.UINT64, value: 2n ** 60n },
        i64: { type: GgufValueType.INT64, value: -12345678901234 },
        strs: { type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value: ['a', '', 'ccc'] },
        f32s: { type: GgufValueType.ARRAY, elementType: GgufValueType.FLOAT32, value: [1.5, -2.25] },
      };
      const tensor = Float32Array.from([1, 2, 3, 4, 5, 6]);
      fs.writeFileSync(
        file,
        writeGguf({ metadata, tensors: [{ name: 't', dims: [3, 2], type: GgmlType.F32, data: new Uint8Array(tensor.buffer) }], alignment: 64 }),
      );
      const ours = GgufFile.open(file);
      expect(ours.alignment).toBe(64);
      expect(Object.fromEntries([...ours.metadata].filter(([k]) => k !== 'general.alignment'))).toEqual({
        u8: 200, i8: -100, u16: 60000, i16: -30000, u32: 4000000000, i32: -2000000000, f32: 0.1, f64: 0.1, bool: true,
        str: 'héllo 😀', u64: 2n ** 60n, i64: -12345678901234, strs: ['a', '', 'ccc'], f32s: [1.5, -2.25],
      });
      expect(Array.from(ours.readTensorFloat32('t'))).toEqual(Array.from(tensor));
      const script = `
import json, sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
out = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
out["u64"] = str(out["u64"])
t = r.tensors[0]
out["tensor"] = {"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in t.shape], "data": [float(v) for v in t.data.ravel()]}
print(json.dumps(out))
`;
      const python = JSON.parse(execFileSync('python3', ['-c', script, file], { encoding: 'utf8' }));
      for (const [key, value] of ours.metadata) {
        if (key === 'f32' || key === 'u64') continue;
        expect(python[key], key).toEqual(value);
      }
      expect(Math.fround(python.f32)).toBe(Math.fround(0.1));
      expect(python.u64).toBe(String(2n ** 60n));
      expect(python.tensor).toEqual({ name: 't', type: 'F32', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('digest sidecar cache', () => {
  it('hashes once, serves the sidecar while the file identity matches, re-hashes when the file changes', () => {
    const savedCache = process.env.DRO_CACHE;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-digest-'));
    process.env.DRO_CACHE = path.join(dir, 'cache');
    try {
      const model = path.join(dir, 'big.bin');
      fs.writeFileSync(model, crypto.randomBytes(17 << 20));
      const real = crypto.createHash('sha256').update(fs.readFileSync(model)).digest('hex');
      expect(fileDigest(model)).toBe(real);
      const sidecar = sidecarPathOf(model);
      expect(JSON.parse(fs.readFileSync(sidecar, 'utf8')).sha256).toBe(real);
      // Prove the second call reads the sidecar: plant a different hash and see it come back.
      const planted = 'f'.repeat(64);
      fs.writeFileSync(sidecar, JSON.stringify({ ...JSON.parse(fs.readFileSync(sidecar, 'utf8')), sha256: planted }));
      expect(fileDigest(model)).toBe(planted);
      // A new mtime invalidates it.
      fs.utimesSync(model, new Date(), new Date(Date.now() + 5000));
      expect(fileDigest(model)).toBe(real);
    } finally {
      if (savedCache === undefined) delete process.env.DRO_CACHE;
      else process.env.DRO_CACHE = savedCache;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file modified in place with its size and mtime restored gets its new digest (ctime / inode are part of the key)', () => {
    const savedCache = process.env.DRO_CACHE;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-digest-'));
    process.env.DRO_CACHE = path.join(dir, 'cache');
    const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    try {
      const model = path.join(dir, 'big.bin');
      fs.writeFileSync(model, crypto.randomBytes(17 << 20));
      const stamp = 1_700_000_000; // whole seconds, so restoring it is exact
      fs.utimesSync(model, stamp, stamp);
      const before = fs.statSync(model);
      expect(fileDigest(model)).toBe(sha(model));
      expect(fs.existsSync(sidecarPathOf(model))).toBe(true);
      // Flip one byte in place, then put the old mtime back (what `touch -d` / `cp -p` / rsync -t leave).
      const fd = fs.openSync(model, 'r+');
      fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 1234);
      fs.closeSync(fd);
      fs.utimesSync(model, stamp, stamp);
      expect(fs.statSync(model).mtimeMs).toBe(before.mtimeMs);
      expect(fileDigest(model)).toBe(sha(model));
      // Replaced by another file of the same size renamed into place, mtime copied: a new inode.
      const other = path.join(dir, 'other.bin');
      fs.writeFileSync(other, crypto.randomBytes(17 << 20));
      fs.utimesSync(other, stamp, stamp);
      fs.renameSync(other, model);
      expect(fileDigest(model)).toBe(sha(model));
    } finally {
      if (savedCache === undefined) delete process.env.DRO_CACHE;
      else process.env.DRO_CACHE = savedCache;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('helpers', () => {
  it('halfToFloat covers normals, subnormals and specials', () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });

  it('shortestFloat32 recovers the decimal a float32 was written from', () => {
    expect(shortestFloat32(Math.fround(1e-5))).toBe(1e-5);
    expect(shortestFloat32(Math.fround(0.1))).toBe(0.1);
    expect(shortestFloat32(100000)).toBe(100000);
  });

  it('unpermuteRotaryRows inverts the convert_hf_to_gguf permutation', () => {
    // 2 heads × head_dim 4, 1 column: HF rows [h0: a0 a1 b0 b1 | h1: ...] are stored as [a0 b0 a1 b1 | ...].
    const stored = Float32Array.from([10, 20, 11, 21, 30, 40, 31, 41]);
    expect(Array.from(unpermuteRotaryRows(stored, 8, 1, 2))).toEqual([10, 11, 20, 21, 30, 31, 40, 41]);
  });
});
