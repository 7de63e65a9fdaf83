/**
 * GGUF v2/v3 reader: header, metadata key/values (all value types, arrays included), tensor infos,
 * alignment, and bounded reads of one tensor at a time.
 *
 * Layout (little-endian): magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv_count × KV |
 * tensor_count × tensor info | padding to general.alignment | tensor data. Tensor offsets are relative to
 * the start of the data section. The file is read through a file descriptor in bounded chunks, never
 * whole, and every count/length from the header is checked against the bytes left before allocating.
 */
import fs from 'node:fs';
import { blockLayout, dequantize, DEQUANTIZABLE_TYPES, ggmlTypeName } from './dequant.ts';
import { ModelFormatError } from './errors.ts';
import { openRegularFile } from './regular-file.ts';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** GGUF metadata value type ids. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Smallest encoded size of one value of each type (strings: the u64 length alone). */
const MIN_VALUE_BYTES: Record<number, number> = {
  0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8,
};

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGML_MAX_DIMS = 4;
const DEFAULT_ALIGNMENT = 32;
const MAX_ARRAY_NESTING = 8;
const CHUNK_BYTES = 1 << 20;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (row length). The row-major (HF) shape is dims reversed. */
  dims: number[];
  type: number;
  typeName: string;
  /** Absolute byte offset of the tensor data in the file. */
  fileOffset: number;
  numElements: number;
  byteSize: number;
}

/** A sequential reader over a file descriptor that keeps one chunk in memory. */
class ChunkedReader {
  private chunk = Buffer.alloc(0);
  private chunkStart = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    readonly fileSize: number,
    private readonly path: string,
  ) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Returns a view of the next n bytes (valid until the next call) and advances. */
  take(n: number, what: string): Buffer {
    if (n > this.remaining) {
      throw new ModelFormatError(
        this.path,
        `${what} at byte ${this.pos} needs ${n} bytes but the file ends at byte ${this.fileSize} (truncated?)`,
      );
    }
    const chunkEnd = this.chunkStart + this.chunk.length;
    if (this.pos < this.chunkStart || this.pos + n > chunkEnd) {
      const size = Math.min(Math.max(n, CHUNK_BYTES), this.remaining);
      this.chunk = Buffer.alloc(size);
      readFully(this.fd, this.chunk, this.pos);
      this.chunkStart = this.pos;
    }
    const start = this.pos - this.chunkStart;
    this.pos += n;
    return this.chunk.subarray(start, start + n);
  }

  u32(what: string): number {
    return this.take(4, what).readUInt32LE(0);
  }

  /** A u64 that must fit a JS number (counts, lengths, offsets); larger values are corrupt here anyway. */
  u64(what: string): number {
    const v = this.take(8, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ModelFormatError(this.path, `${what} at byte ${this.pos - 8} is ${v}, larger than any valid value`);
    }
    return Number(v);
  }

  string(what: string): string {
    const length = this.u64(`${what} length`);
    return this.take(length, what).toString('utf8');
  }
}

function readFully(fd: number, target: Buffer, position: number): void {
  let done = 0;
  while (done < target.length) {
    const n = fs.readSync(fd, target, done, target.length - done, position + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Shortest decimal that rounds to the same float32, so 1e-5 stored as float32 reads back as 1e-5. */
export function shortestFloat32(x: number): number {
  if (!Number.isFinite(x)) return x;
  const target = Math.fround(x);
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(target.toPrecision(digits));
    if (Math.fround(candidate) === target) return candidate;
  }
  return target;
}

export class GgufFile {
  private readonly tensorByName: Map<string, GgufTensorInfo>;

  private constructor(
    readonly path: string,
    readonly version: number,
    readonly metadata: Map<string, GgufValue>,
    readonly tensors: GgufTensorInfo[],
    readonly alignment: number,
    /** Absolute offset of the tensor data section. */
    readonly dataOffset: number,
    readonly fileSize: number,
  ) {
    this.tensorByName = new Map(tensors.map((t) => [t.name, t]));
  }

  /** Parse the header, metadata and tensor infos of a GGUF file; throws ModelFormatError on bad input. */
  static open(path: string): GgufFile {
    const { fd, size } = openRegularFile(path);
    try {
      return GgufFile.parse(fd, size, path);
    } finally {
      fs.closeSync(fd);
    }
  }

  private static parse(fd: number, fileSize: number, path: string): GgufFile {
    const r = new ChunkedReader(fd, fileSize, path);
    if (fileSize < 4 || r.u32('magic') !== GGUF_MAGIC) {
      throw new ModelFormatError(path, 'not a GGUF file: the first 4 bytes are not "GGUF"');
    }
    const version = r.u32('version');
    if (version !== 2 && version !== 3) {
      throw new ModelFormatError(path, `GGUF version ${version} is not supported (expected 2 or 3)`);
    }
    const tensorCount = r.u64('tensor_count');
    const kvCount = r.u64('kv_count');
    // Each KV needs at least a key length, a value type and a 1-byte value; each tensor info ≥ 28 bytes.
    if (kvCount * 13 > r.remaining) {
      throw new ModelFormatError(path, `kv_count ${kvCount} cannot fit in the ${fileSize}-byte file`);
    }
    if (tensorCount * 28 > r.remaining) {
      throw new ModelFormatError(path, `tensor_count ${tensorCount} cannot fit in the ${fileSize}-byte file`);
    }

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = r.string(`metadata key #${i}`);
      const type = r.u32(`type of metadata "${key}"`);
      metadata.set(key, readValue(r, type, key, path, 0));
    }

    const alignment = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
    if (typeof alignment !== 'number' || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      throw new ModelFormatError(path, `general.alignment must be a power of two, got ${String(alignment)}`);
    }

    const infos: Omit<GgufTensorInfo, 'fileOffset'>[] = [];
    const relativeOffsets: number[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = r.string(`tensor #${i} name`);
      const nDims = r.u32(`tensor "${name}" n_dims`);
      if (nDims === 0 || nDims > GGML_MAX_DIMS) {
        throw new ModelFormatError(path, `tensor "${name}" has ${nDims} dimensions (expected 1..${GGML_MAX_DIMS})`);
      }
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(r.u64(`tensor "${name}" dim ${d}`));
      const type = r.u32(`tensor "${name}" type`);
      const offset = r.u64(`tensor "${name}" offset`);
      const layout = blockLayout(type);
      if (layout === undefined) {
        throw new ModelFormatError(path, `tensor "${name}" has unknown ggml type id ${type}`);
      }
      // Whether the data fits the file is checked below (and reported as truncation); here only that the
      // size is a number at all.
      const numElements = dims.reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(numElements)) {
        throw new ModelFormatError(path, `tensor "${name}" shape [${dims.join(', ')}] has more elements than any file can hold`);
      }
      if (dims[0] % layout.blockSize !== 0) {
        throw new ModelFormatError(
          path,
          `tensor "${name}" row length ${dims[0]} is not a multiple of the ${ggmlTypeName(type)} block size ${layout.blockSize}`,
        );
      }
      const byteSize = (numElements / layout.blockSize) * layout.typeSize;
      infos.push({ name, dims, type, typeName: ggmlTypeName(type), numElements, byteSize });
      relativeOffsets.push(offset);
    }

    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    const tensors: GgufTensorInfo[] = [];
    const seen = new Set<string>();
    infos.forEach((info, i) => {
      const rel = relativeOffsets[i];
      if (seen.has(info.name)) throw new ModelFormatError(path, `tensor "${info.name}" appears twice`);
      seen.add(info.name);
      if (rel % alignment !== 0) {
        throw new ModelFormatError(path, `tensor "${info.name}" offset ${rel} is not aligned to ${alignment}`);
      }
      tensors.push({ ...info, fileOffset: dataOffset + rel });
    });
    checkDataRegions(tensors, fileSize, path);
    return new GgufFile(path, version, metadata, tensors, alignment, dataOffset, fileSize);
  }

  tensor(name: string): GgufTensorInfo | undefined {
    return this.tensorByName.get(name);
  }

  /** A metadata value, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key);
  }

  /** The raw bytes of one tensor, read with one bounded pread. */
  readTensorBytes(name: string): Uint8Array {
    const info = this.requireTensor(name);
    const bytes = Buffer.alloc(info.byteSize);
    const { fd } = openRegularFile(this.path);
    try {
      readFully(fd, bytes, info.fileOffset);
    } catch (err) {
      throw new ModelFormatError(this.path, `cannot read tensor "${name}": ${(err as Error).message}`, { cause: err });
    } finally {
      fs.closeSync(fd);
    }
    return bytes;
  }

  /** One tensor dequantized to float32, in ggml element order (= row-major over the reversed dims). */
  readTensorFloat32(name: string): Float32Array {
    const info = this.requireTensor(name);
    if (!DEQUANTIZABLE_TYPES.has(info.type)) {
      throw new ModelFormatError(this.path, `tensor "${name}" has type ${info.typeName}, which this reader cannot dequantize`);
    }
    return dequantize(info.type, this.readTensorBytes(name), info.numElements);
  }

  private requireTensor(name: string): GgufTensorInfo {
    const info = this.tensorByName.get(name);
    if (info === undefined) throw new ModelFormatError(this.path, `no tensor named "${name}"`);
    return info;
  }
}

/**
 * Every tensor's data must lie inside the file and no two may share bytes (a crafted file could alias one
 * weight onto another; the safetensors reader refuses overlaps too). A file whose tensor data runs past
 * its end is reported as truncated, with the size the tensor list needs.
 */
function checkDataRegions(tensors: readonly GgufTensorInfo[], fileSize: number, path: string): void {
  const byOffset = [...tensors].sort((a, b) => a.fileOffset - b.fileOffset || a.byteSize - b.byteSize);
  const needed = byOffset.reduce((end, t) => Math.max(end, t.fileOffset + t.byteSize), 0);
  for (const t of byOffset) {
    const end = t.fileOffset + t.byteSize;
    if (end > fileSize) {
      throw new ModelFormatError(
        path,
        `tensor "${t.name}" data [${t.fileOffset}, ${end}) lies past the end of the file (${fileSize} bytes): ` +
          `the file is truncated (its tensor list needs ${needed} bytes, ${needed - fileSize} more)`,
      );
    }
  }
  let previous: GgufTensorInfo | null = null;
  for (const t of byOffset) {
    if (t.byteSize === 0) continue;
    if (previous !== null && t.fileOffset < previous.fileOffset + previous.byteSize) {
      throw new ModelFormatError(
        path,
        `tensors "${previous.name}" [${previous.fileOffset}, ${previous.fileOffset + previous.byteSize}) and ` +
          `"${t.name}" [${t.fileOffset}, ${t.fileOffset + t.byteSize}) overlap`,
      );
    }
    previous = t;
  }
}

function readValue(r: ChunkedReader, type: number, key: string, path: string, depth: number): GgufValue {
  const what = `metadata "${key}"`;
  switch (type) {
    case GgufValueType.UINT8: return r.take(1, what).readUInt8(0);
    case GgufValueType.INT8: return r.take(1, what).readInt8(0);
    case GgufValueType.UINT16: return r.take(2, what).readUInt16LE(0);
    case GgufValueType.INT16: return r.take(2, what).readInt16LE(0);
    case GgufValueType.UINT32: return r.take(4, what).readUInt32LE(0);
    case GgufValueType.INT32: return r.take(4, what).readInt32LE(0);
    case GgufValueType.FLOAT32: return shortestFloat32(r.take(4, what).readFloatLE(0));
    case GgufValueType.FLOAT64: return r.take(8, what).readDoubleLE(0);
    case GgufValueType.BOOL: return r.take(1, what).readUInt8(0) !== 0;
    case GgufValueType.STRING: return r.string(what);
    case GgufValueType.UINT64: return safeNumber(r.take(8, what).readBigUInt64LE(0));
    case GgufValueType.INT64: return safeNumber(r.take(8, what).readBigInt64LE(0));
    case GgufValueType.ARRAY: {
      if (depth >= MAX_ARRAY_NESTING) throw new ModelFormatError(path, `${what}: arrays nested too deeply`);
      const elementType = r.u32(`${what} array element type`);
      const count = r.u64(`${what} array length`);
      const minBytes = MIN_VALUE_BYTES[elementType];
      if (minBytes === undefined) {
        throw new ModelFormatError(path, `${what}: unknown array element type ${elementType}`);
      }
      if (count * minBytes > r.remaining) {
        throw new ModelFormatError(
          path,
          `${what}: array of ${count} elements cannot fit in the ${r.remaining} bytes left in the file (truncated?)`,
        );
      }
      const values: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) values[i] = readValue(r, elementType, key, path, depth + 1);
      return values;
    }
    default:
      throw new ModelFormatError(path, `${what} has unknown value type ${type}`);
  }
}

function safeNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
