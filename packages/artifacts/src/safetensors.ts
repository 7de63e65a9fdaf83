/**
 * safetensors read/write (https://github.com/huggingface/safetensors format):
 *
 *   [u64 little-endian N][N bytes of JSON header, space-padded][data bytes]
 *
 * The header maps tensor name → { dtype, shape, data_offsets: [begin, end] } (offsets relative to the
 * data start) plus an optional "__metadata__": { string: string }. We pad the header so the data starts
 * on an 8-byte boundary and lay tensors out widest dtype first, so every tensor is naturally aligned and
 * can be viewed in place without copying.
 *
 * `SafetensorsFile` reads the header once and then one tensor at a time by file offset, so a loader can
 * walk a multi-hundred-MB checkpoint without holding it all in memory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { TensorData, TensorDType } from './types.ts';
import { ArtifactFormatError } from './errors.ts';
import { f16BitsToNumber } from './float-bits.ts';

type TypedArrayCtor = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): TensorData['data'];
  new (length: number): TensorData['data'];
  readonly BYTES_PER_ELEMENT: number;
};

/** dtype → the typed array that holds its elements (raw bits for 16/8-bit floats). */
const ARRAY_OF_DTYPE: Record<TensorDType, TypedArrayCtor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F8_E5M2: Uint8Array,
  F8_E4M3: Uint8Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/** The safetensors reference implementation refuses headers over 100 MB; so do we (guards a bad length). */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export function isTensorDType(value: unknown): value is TensorDType {
  return typeof value === 'string' && Object.hasOwn(ARRAY_OF_DTYPE, value);
}

export function bytesPerElement(dtype: TensorDType): number {
  return ARRAY_OF_DTYPE[dtype].BYTES_PER_ELEMENT;
}

/** Where one tensor lives in a safetensors file. `begin`/`end` are absolute file offsets. */
export interface TensorInfo {
  name: string;
  dtype: TensorDType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data section (8 + header length). */
  dataStart: number;
}

function assertLittleEndianHost(): void {
  // safetensors is little-endian on disk and we view bytes in place; a big-endian host would need swaps.
  if (endianness() !== 'LE') throw new Error('safetensors IO needs a little-endian host');
}

function elementCount(shape: number[]): number {
  return shape.reduce((count, dim) => count * dim, 1);
}

/**
 * Parse and validate the header. `fileBytes` is the total size of the file (or buffer) for range checks;
 * `label` names the file in every error.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileBytes: number, label: string): SafetensorsHeader {
  const fail = (what: string): never => {
    throw new ArtifactFormatError(`safetensors ${label}: ${what}`);
  };
  if (fileBytes < 8 || prefix.byteLength < 8) fail(`file is ${fileBytes} bytes, shorter than the 8-byte header length`);
  const headerLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`);
  const dataStart = 8 + Number(headerLength);
  if (dataStart > fileBytes) fail(`header length ${headerLength} runs past the end of the ${fileBytes}-byte file`);
  if (prefix.byteLength < dataStart) fail(`only ${prefix.byteLength} header bytes available, need ${dataStart}`);

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, dataStart)));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');

  const dataLength = fileBytes - dataStart;
  const tensors: TensorInfo[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`${METADATA_KEY} is not an object`);
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(`${METADATA_KEY}.${key} is ${typeof value}, expected a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const info = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) fail(`tensor "${name}": entry is not an object`);
    if (!isTensorDType(info.dtype)) fail(`tensor "${name}": unknown dtype ${JSON.stringify(info.dtype)}`);
    const dtype = info.dtype as TensorDType;
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) fail(`tensor "${name}": data_offsets [${begin}, ${end}] out of range (data section is ${dataLength} bytes)`);
    const expectedBytes = elementCount(shape as number[]) * bytesPerElement(dtype);
    if (end - begin !== expectedBytes) {
      fail(`tensor "${name}": ${end - begin} data bytes but ${dtype}${JSON.stringify(shape)} needs ${expectedBytes}`);
    }
    tensors.push({ name, dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end });
  }
  const byOffset = [...tensors].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byOffset.length; i++) {
    if (byOffset[i].begin < byOffset[i - 1].end) fail(`tensors "${byOffset[i - 1].name}" and "${byOffset[i].name}" overlap`);
  }
  return { tensors, metadata, dataStart };
}

/** View (when aligned) or copy `bytes` as the dtype's typed array. */
function typedArrayOf(dtype: TensorDType, bytes: Uint8Array): TensorData['data'] {
  const Ctor = ARRAY_OF_DTYPE[dtype];
  const length = bytes.byteLength / Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, length);
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  return new Ctor(aligned.buffer, 0, length);
}

/**
 * A safetensors file (on disk or in memory) read lazily: the header up front, each tensor on demand.
 * From a path, each tensor is one positioned read into its own buffer; from bytes, tensors are views.
 */
export class SafetensorsFile {
  private constructor(
    readonly label: string,
    readonly header: SafetensorsHeader,
    private readonly handle: FileHandle | null,
    private readonly bytes: Uint8Array | null,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    assertLittleEndianHost();
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const lengthBytes = await readExactly(handle, 0, Math.min(8, size));
      let prefix = lengthBytes;
      if (size >= 8) {
        const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
        if (headerLength <= BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
          prefix = await readExactly(handle, 0, 8 + Number(headerLength));
        }
      }
      return new SafetensorsFile(path, parseSafetensorsHeader(prefix, size, path), handle, null);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  static fromBytes(bytes: Uint8Array, label = '<bytes>'): SafetensorsFile {
    assertLittleEndianHost();
    return new SafetensorsFile(label, parseSafetensorsHeader(bytes, bytes.byteLength, label), null, bytes);
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  info(name: string): TensorInfo {
    const found = this.header.tensors.find((t) => t.name === name);
    if (!found) throw new ArtifactFormatError(`safetensors ${this.label}: no tensor named "${name}"`);
    return found;
  }

  /** The tensor's raw little-endian bytes. */
  async readBytes(name: string): Promise<Uint8Array> {
    const { begin, end } = this.info(name);
    if (this.bytes) return this.bytes.subarray(begin, end);
    if (!this.handle) throw new Error(`safetensors ${this.label}: file is closed`);
    return readExactly(this.handle, begin, end - begin);
  }

  async readTensor(name: string): Promise<TensorData> {
    const { dtype, shape } = this.info(name);
    return { dtype, shape: [...shape], data: typedArrayOf(dtype, await this.readBytes(name)) };
  }

  async readAll(): Promise<Record<string, TensorData>> {
    const out: Record<string, TensorData> = {};
    for (const { name } of this.header.tensors) out[name] = await this.readTensor(name);
    return out;
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }
}

/** Read `length` bytes at `position` into a fresh (hence 8-byte aligned) buffer; short files are an error. */
async function readExactly(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    // One read() is capped near 2 GiB; loop for large tensors and for short reads.
    const chunk = Math.min(length - filled, 1 << 30);
    const { bytesRead } = await handle.read(out, filled, chunk, position + filled);
    if (bytesRead === 0) throw new ArtifactFormatError(`unexpected end of file at offset ${position + filled}`);
    filled += bytesRead;
  }
  return out;
}

/** Read every tensor and the metadata of a safetensors file (path) or buffer, in one go. */
export function readSafetensors(source: Uint8Array | string): {
  tensors: Record<string, TensorData>;
  metadata: Record<string, string>;
} {
  assertLittleEndianHost();
  const bytes = typeof source === 'string' ? readFileSync(source) : source;
  const label = typeof source === 'string' ? source : '<bytes>';
  const header = parseSafetensorsHeader(bytes, bytes.byteLength, label);
  const tensors: Record<string, TensorData> = {};
  for (const t of header.tensors) {
    tensors[t.name] = { dtype: t.dtype, shape: [...t.shape], data: typedArrayOf(t.dtype, bytes.subarray(t.begin, t.end)) };
  }
  return { tensors, metadata: header.metadata };
}

function checkTensor(name: string, tensor: TensorData): void {
  const fail = (what: string): never => {
    throw new ArtifactFormatError(`safetensors write: tensor "${name}": ${what}`);
  };
  if (name === '' || name === METADATA_KEY) fail('invalid tensor name');
  if (!isTensorDType(tensor.dtype)) fail(`unknown dtype ${JSON.stringify(tensor.dtype)}`);
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`bad shape ${JSON.stringify(tensor.shape)}`);
  const Ctor = ARRAY_OF_DTYPE[tensor.dtype];
  if (!(tensor.data instanceof (Ctor as unknown as typeof Uint8Array))) {
    fail(`dtype ${tensor.dtype} needs a ${Ctor.name}, got ${tensor.data.constructor.name}`);
  }
  const count = elementCount(tensor.shape);
  if (tensor.data.length !== count) fail(`shape ${JSON.stringify(tensor.shape)} needs ${count} elements, data has ${tensor.data.length}`);
}

/**
 * Serialise tensors (+ optional string metadata) to safetensors bytes. Deterministic: the same input
 * always gives the same bytes, which matters because the store addresses artifacts by their sha256.
 */
export function writeSafetensors(tensors: Record<string, TensorData>, metadata?: Record<string, string>): Uint8Array {
  assertLittleEndianHost();
  for (const [name, tensor] of Object.entries(tensors)) checkTensor(name, tensor);
  // Widest elements first, then by name: each tensor's offset is a multiple of its element size.
  const names = Object.keys(tensors).sort((a, b) => {
    const width = bytesPerElement(tensors[b].dtype) - bytesPerElement(tensors[a].dtype);
    return width !== 0 ? width : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const sorted: Record<string, string> = {};
    for (const key of Object.keys(metadata).sort()) {
      if (typeof metadata[key] !== 'string') throw new ArtifactFormatError(`safetensors write: metadata "${key}" is not a string`);
      sorted[key] = metadata[key];
    }
    header[METADATA_KEY] = sorted;
  }
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors[name];
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const paddedLength = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + paddedLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(paddedLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + paddedLength); // spaces: still valid JSON whitespace
  let cursor = 8 + paddedLength;
  for (const name of names) {
    const { data } = tensors[name];
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), cursor);
    cursor += data.byteLength;
  }
  return out;
}

/** Decode any numeric tensor to float32 (F16/BF16 from their bit patterns; 64-bit ints via Number). */
export function toFloat32(tensor: TensorData): Float32Array {
  const { dtype, data } = tensor;
  if (dtype === 'F32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'BF16') {
    // bf16 is the top half of an f32: shift into place and reinterpret.
    const bits = new Uint32Array(out.buffer);
    const src = data as Uint16Array;
    for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  } else if (dtype === 'F16') {
    const src = data as Uint16Array;
    for (let i = 0; i < src.length; i++) out[i] = f16BitsToNumber(src[i]);
  } else if (dtype === 'F8_E5M2' || dtype === 'F8_E4M3') {
    throw new ArtifactFormatError(`toFloat32: ${dtype} decoding is not supported`);
  } else {
    for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  }
  return out;
}
