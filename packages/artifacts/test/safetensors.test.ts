import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ArtifactFormatError,
  SafetensorsFile,
  f16BitsToNumber,
  float32ToBf16Bits,
  float32ToF16Bits,
  readSafetensors,
  toFloat32,
  writeSafetensors,
  type TensorData,
} from '../src/index.ts';
import { makeTempDir, runPython, seededRandom } from './helpers.ts';

const temp = makeTempDir('safetensors');
afterAll(temp.cleanup);

function randomFloats(count: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length: count }, () => (next() - 0.5) * 200);
}

/** Python side: load with safetensors.numpy and print every tensor as JSON (int64 as strings: > 2^53). */
const DUMP_WITH_PYTHON = `
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
tensors = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="numpy") as f:
    metadata = f.metadata()
out = {}
for name, arr in tensors.items():
    values = [str(v) for v in arr.reshape(-1).tolist()] if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 else arr.reshape(-1).astype(float).tolist() if arr.dtype.kind == "f" else arr.reshape(-1).astype(int).tolist()
    out[name] = {"dtype": str(arr.dtype), "shape": list(arr.shape), "values": values}
print(json.dumps({"tensors": out, "metadata": metadata}))
`;

describe('safetensors written here load in Python', () => {
  it('keeps dtype, shape and every value for F32, F16, F64, I64, I32, I16, I8, U8, BOOL', () => {
    const f32 = randomFloats(3 * 5, 1);
    const f16Source = randomFloats(7, 2);
    const tensors: Record<string, TensorData> = {
      'model.embed.weight': { dtype: 'F32', shape: [3, 5], data: f32 },
      half: { dtype: 'F16', shape: [7], data: float32ToF16Bits(f16Source) },
      double: { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
      ids: { dtype: 'I64', shape: [3], data: BigInt64Array.from([0n, -5n, 2n ** 62n + 1n]) },
      counts: { dtype: 'I32', shape: [2, 2], data: Int32Array.from([1, -2, 2 ** 31 - 1, -(2 ** 31)]) },
      shorts: { dtype: 'I16', shape: [2], data: Int16Array.from([-32768, 32767]) },
      bytes: { dtype: 'I8', shape: [3], data: Int8Array.from([-128, 0, 127]) },
      pixels: { dtype: 'U8', shape: [1, 3], data: Uint8Array.from([0, 128, 255]) },
      mask: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
      scalar: { dtype: 'F32', shape: [], data: Float32Array.from([42.5]) },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    };
    const file = path.join(temp.dir, 'written-here.safetensors');
    writeFileSync(file, writeSafetensors(tensors, { format: 'pt', producer: 'dro' }));
    const dumped = JSON.parse(runPython(DUMP_WITH_PYTHON, [file])) as {
      tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>;
      metadata: Record<string, string>;
    };

    expect(dumped.metadata).toEqual({ format: 'pt', producer: 'dro' });
    expect(Object.keys(dumped.tensors).sort()).toEqual(Object.keys(tensors).sort());
    expect(dumped.tensors['model.embed.weight']).toEqual({ dtype: 'float32', shape: [3, 5], values: Array.from(f32) });
    const halfValues = Array.from(tensors.half.data as Uint16Array, f16BitsToNumber);
    expect(dumped.tensors.half).toEqual({ dtype: 'float16', shape: [7], values: halfValues });
    expect(dumped.tensors.double.values).toEqual([Math.PI, -1e300]);
    expect(dumped.tensors.ids).toEqual({ dtype: 'int64', shape: [3], values: ['0', '-5', String(2n ** 62n + 1n)] });
    expect(dumped.tensors.counts).toEqual({ dtype: 'int32', shape: [2, 2], values: [1, -2, 2 ** 31 - 1, -(2 ** 31)] });
    expect(dumped.tensors.shorts.values).toEqual([-32768, 32767]);
    expect(dumped.tensors.bytes).toEqual({ dtype: 'int8', shape: [3], values: [-128, 0, 127] });
    expect(dumped.tensors.pixels).toEqual({ dtype: 'uint8', shape: [1, 3], values: [0, 128, 255] });
    expect(dumped.tensors.mask).toEqual({ dtype: 'bool', shape: [2], values: [1, 0] });
    expect(dumped.tensors.scalar).toEqual({ dtype: 'float32', shape: [], values: [42.5] });
    expect(dumped.tensors.empty).toEqual({ dtype: 'float32', shape: [0, 4], values: [] });
  });

  it('is deterministic and aligns every tensor to its element size', () => {
    const tensors: Record<string, TensorData> = {
      b: { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
      a: { dtype: 'F64', shape: [1], data: Float64Array.from([1]) },
      c: { dtype: 'F16', shape: [1], data: Uint16Array.from([0x3c00]) },
    };
    const first = writeSafetensors(tensors, { z: '1', a: '2' });
    const reordered = writeSafetensors({ c: tensors.c, a: tensors.a, b: tensors.b }, { a: '2', z: '1' });
    expect(Buffer.from(first).equals(Buffer.from(reordered))).toBe(true);
    const file = SafetensorsFile.fromBytes(first);
    expect(file.header.dataStart % 8).toBe(0);
    for (const info of file.tensors) {
      const width = info.dtype === 'F64' ? 8 : info.dtype === 'F16' ? 2 : 1;
      expect(info.begin % width).toBe(0);
    }
  });
});

describe('safetensors written by Python load here', () => {
  const file = path.join(temp.dir, 'written-by-python.safetensors');
  const expectedFile = path.join(temp.dir, 'expected.json');
  runPython(
    `
import json, sys
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(7)
tensors = {
  "layers.0.attn.q_proj.weight": rng.standard_normal((4, 6)).astype(np.float32),
  "layers.0.norm.weight": rng.standard_normal(5).astype(np.float16),
  "position_ids": np.arange(-3, 4, dtype=np.int64).reshape(1, 7),
  "token_counts": rng.integers(-1000, 1000, size=(3,), dtype=np.int32),
  "flags": np.array([True, False, True]),
  "raw": np.array([0, 17, 255], dtype=np.uint8),
}
save_file(tensors, sys.argv[1], metadata={"source": "python"})
json.dump({k: {"shape": list(v.shape), "values": v.reshape(-1).astype(float).tolist()} for k, v in tensors.items()}, open(sys.argv[2], "w"))
`,
    [file, expectedFile],
  );
  const expected = JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, { shape: number[]; values: number[] }>;

  it('readSafetensors returns the same shapes and values', () => {
    const { tensors, metadata } = readSafetensors(file);
    expect(metadata).toEqual({ source: 'python' });
    expect(tensors['layers.0.attn.q_proj.weight'].dtype).toBe('F32');
    expect(tensors['layers.0.norm.weight'].dtype).toBe('F16');
    expect(tensors.position_ids.dtype).toBe('I64');
    expect(tensors.flags.dtype).toBe('BOOL');
    for (const [name, { shape, values }] of Object.entries(expected)) {
      expect(tensors[name].shape, name).toEqual(shape);
      expect(Array.from(toFloat32(tensors[name])), name).toEqual(values);
    }
  });

  it('SafetensorsFile reads one tensor at a time by offset', async () => {
    const lazy = await SafetensorsFile.open(file);
    try {
      expect(lazy.tensors.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort());
      const q = await lazy.readTensor('layers.0.attn.q_proj.weight');
      expect(q.shape).toEqual([4, 6]);
      expect(Array.from(q.data as Float32Array)).toEqual(expected['layers.0.attn.q_proj.weight'].values);
      const ids = await lazy.readTensor('position_ids');
      expect(Array.from(ids.data as BigInt64Array)).toEqual([-3n, -2n, -1n, 0n, 1n, 2n, 3n]);
      await expect(lazy.readTensor('missing')).rejects.toThrow(/no tensor named "missing"/);
    } finally {
      await lazy.close();
    }
  });
});

describe('float conversions', () => {
  it('bf16 and f16 round to nearest and decode back', () => {
    const values = Float32Array.from([0, -0, 1, -2.5, 1 / 3, 65504, 1e-7, 70000, Infinity, 3.0e-5]);
    const bf16 = toFloat32({ dtype: 'BF16', shape: [values.length], data: float32ToBf16Bits(values) });
    for (let i = 0; i < values.length; i++) {
      if (Number.isFinite(values[i]) && values[i] !== 0) expect(Math.abs(bf16[i] - values[i]) / Math.abs(values[i])).toBeLessThan(2 ** -8);
    }
    const f16 = toFloat32({ dtype: 'F16', shape: [values.length], data: float32ToF16Bits(values) });
    expect(Array.from(f16.subarray(0, 6))).toEqual([0, -0, 1, -2.5, 0.333251953125, 65504]);
    expect(f16[6]).toBeCloseTo(1.1920928955078125e-7, 12); // subnormal half
    expect(f16[7]).toBe(Infinity); // overflow
    expect(f16[8]).toBe(Infinity);
  });
});

describe('bad safetensors input gives an error naming the file', () => {
  const good = writeSafetensors({ w: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) } });

  function withHeader(header: unknown, dataBytes = 8): Uint8Array {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  }

  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', good.subarray(0, 5), /shorter than the 8-byte header length/],
    ['header length past the end', (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 1000n, true); return b; })(), /runs past the end/],
    ['absurd header length', (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 2n ** 60n, true); return b; })(), /exceeds/],
    ['offsets out of range', withHeader({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }), /out of range/],
    ['unknown dtype', withHeader({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 8] } }), /unknown dtype "F128"/],
    ['size mismatch', withHeader({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), /needs 12/],
    ['overlap', withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), /overlap/],
    ['not JSON', (() => { const b = good.slice(); b[8] = 0x5b; b[9] = 0x7b; return b; })(), /not valid UTF-8 JSON/],
    ['bad metadata', withHeader({ __metadata__: { n: 1 } }, 0), /__metadata__\.n is number/],
  ];

  it.each(cases)('%s', async (_label, bytes, pattern) => {
    const file = path.join(temp.dir, `bad-${_label.replace(/\W+/g, '-')}.safetensors`);
    writeFileSync(file, bytes);
    expect(() => readSafetensors(file)).toThrow(ArtifactFormatError);
    expect(() => readSafetensors(file)).toThrow(pattern);
    expect(() => readSafetensors(file)).toThrow(file);
    await expect(SafetensorsFile.open(file)).rejects.toThrow(pattern);
  });

  it('rejects a tensor whose data does not match dtype or shape on write', () => {
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [3], data: Float32Array.from([1, 2]) } })).toThrow(/needs 3 elements/);
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [1], data: Int32Array.from([1]) } })).toThrow(/needs a Float32Array/);
  });
});
