/**
 * A minimal GGUF v3 writer: metadata with explicit value types and pre-encoded tensor data. Used to build
 * tiny fixture files (and deliberately broken ones) for tests; the real reader parses what it writes.
 */
import { GgufValueType } from './gguf.ts';

export type GgufTypedValue =
  | { type: Exclude<(typeof GgufValueType)[keyof typeof GgufValueType], 9>; value: number | bigint | boolean | string }
  | { type: 9; elementType: number; value: (number | bigint | boolean | string)[] };

export interface GgufTensorToWrite {
  name: string;
  /** ggml order (dims[0] = row length). */
  dims: number[];
  /** ggml type id. */
  type: number;
  /** Encoded tensor bytes (e.g. float32 little-endian for F32). */
  data: Uint8Array;
}

export interface GgufWriteOptions {
  metadata: Record<string, GgufTypedValue>;
  tensors: GgufTensorToWrite[];
  alignment?: number;
  version?: number;
}

export const gguf = {
  u32: (value: number): GgufTypedValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufTypedValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufTypedValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufTypedValue => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufTypedValue => ({ type: GgufValueType.STRING, value }),
  strings: (value: string[]): GgufTypedValue => ({ type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value }),
  i32s: (value: number[]): GgufTypedValue => ({ type: GgufValueType.ARRAY, elementType: GgufValueType.INT32, value }),
};

class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  scalar(type: number, value: number | bigint | boolean | string): void {
    const b = Buffer.alloc(8);
    switch (type) {
      case GgufValueType.UINT8: b.writeUInt8(Number(value)); return this.push(b.subarray(0, 1));
      case GgufValueType.INT8: b.writeInt8(Number(value)); return this.push(b.subarray(0, 1));
      case GgufValueType.UINT16: b.writeUInt16LE(Number(value)); return this.push(b.subarray(0, 2));
      case GgufValueType.INT16: b.writeInt16LE(Number(value)); return this.push(b.subarray(0, 2));
      case GgufValueType.UINT32: b.writeUInt32LE(Number(value)); return this.push(b.subarray(0, 4));
      case GgufValueType.INT32: b.writeInt32LE(Number(value)); return this.push(b.subarray(0, 4));
      case GgufValueType.FLOAT32: b.writeFloatLE(Number(value)); return this.push(b.subarray(0, 4));
      case GgufValueType.BOOL: b.writeUInt8(value ? 1 : 0); return this.push(b.subarray(0, 1));
      case GgufValueType.STRING: return this.string(String(value));
      case GgufValueType.UINT64: b.writeBigUInt64LE(BigInt(value as number)); return this.push(b);
      case GgufValueType.INT64: b.writeBigInt64LE(BigInt(value as number)); return this.push(b);
      case GgufValueType.FLOAT64: b.writeDoubleLE(Number(value)); return this.push(b);
      default: throw new Error(`cannot write GGUF value type ${type}`);
    }
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export function writeGguf(options: GgufWriteOptions): Uint8Array {
  const alignment = options.alignment ?? 32;
  const sink = new ByteSink();
  sink.push(Buffer.from('GGUF', 'ascii'));
  sink.u32(options.version ?? 3);
  sink.u64(options.tensors.length);
  const metadata = { ...options.metadata };
  if (options.alignment !== undefined) metadata['general.alignment'] = gguf.u32(alignment);
  sink.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    sink.string(key);
    sink.u32(v.type);
    if (v.type === GgufValueType.ARRAY) {
      sink.u32(v.elementType);
      sink.u64(v.value.length);
      for (const item of v.value) sink.scalar(v.elementType, item);
    } else {
      sink.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of options.tensors) {
    sink.string(t.name);
    sink.u32(t.dims.length);
    for (const d of t.dims) sink.u64(d);
    sink.u32(t.type);
    sink.u64(offset);
    offsets.push(offset);
    offset = Math.ceil((offset + t.data.length) / alignment) * alignment;
  }
  const header = sink.concat();
  const dataStart = Math.ceil(header.length / alignment) * alignment;
  const out = new Uint8Array(dataStart + offset);
  out.set(header, 0);
  options.tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}
