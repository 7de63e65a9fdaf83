/**
 * ggml tensor types and their dequantization to float32.
 *
 * Block layouts follow ggml's `block_*` structs (little-endian, no padding). Every formula here computes in
 * float64 and rounds once when stored into the Float32Array; for these formats the float64 intermediate
 * products are exact, so the result equals ggml's / gguf-py's float32 dequantization bit for bit.
 */

/** ggml_type ids as stored in GGUF tensor infos. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
} as const;

export type GgmlTypeName = keyof typeof GgmlType;

/** Elements per block and bytes per block, for every type whose byte size we know (to bound offsets). */
const BLOCK_LAYOUT: Record<number, { blockSize: number; typeSize: number }> = {
  [GgmlType.F32]: { blockSize: 1, typeSize: 4 },
  [GgmlType.F16]: { blockSize: 1, typeSize: 2 },
  [GgmlType.BF16]: { blockSize: 1, typeSize: 2 },
  [GgmlType.F64]: { blockSize: 1, typeSize: 8 },
  [GgmlType.I8]: { blockSize: 1, typeSize: 1 },
  [GgmlType.I16]: { blockSize: 1, typeSize: 2 },
  [GgmlType.I32]: { blockSize: 1, typeSize: 4 },
  [GgmlType.I64]: { blockSize: 1, typeSize: 8 },
  [GgmlType.Q4_0]: { blockSize: 32, typeSize: 18 },
  [GgmlType.Q4_1]: { blockSize: 32, typeSize: 20 },
  [GgmlType.Q5_0]: { blockSize: 32, typeSize: 22 },
  [GgmlType.Q5_1]: { blockSize: 32, typeSize: 24 },
  [GgmlType.Q8_0]: { blockSize: 32, typeSize: 34 },
  [GgmlType.Q8_1]: { blockSize: 32, typeSize: 36 },
  [GgmlType.Q2_K]: { blockSize: 256, typeSize: 84 },
  [GgmlType.Q3_K]: { blockSize: 256, typeSize: 110 },
  [GgmlType.Q4_K]: { blockSize: 256, typeSize: 144 },
  [GgmlType.Q5_K]: { blockSize: 256, typeSize: 176 },
  [GgmlType.Q6_K]: { blockSize: 256, typeSize: 210 },
  [GgmlType.Q8_K]: { blockSize: 256, typeSize: 292 },
  [GgmlType.IQ4_NL]: { blockSize: 32, typeSize: 18 },
  [GgmlType.IQ4_XS]: { blockSize: 256, typeSize: 136 },
};

const NAME_BY_ID = new Map<number, GgmlTypeName>(
  Object.entries(GgmlType).map(([name, id]) => [id, name as GgmlTypeName]),
);

export function ggmlTypeName(type: number): string {
  return NAME_BY_ID.get(type) ?? `unknown(${type})`;
}

/** Block layout of a type, or undefined when the type id is unknown to this reader. */
export function blockLayout(type: number): { blockSize: number; typeSize: number } | undefined {
  return BLOCK_LAYOUT[type];
}

/** Types `dequantize` can decode. */
export const DEQUANTIZABLE_TYPES: ReadonlySet<number> = new Set([
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q4_0,
  GgmlType.Q4_1,
  GgmlType.Q5_0,
  GgmlType.Q5_1,
  GgmlType.Q8_0,
  GgmlType.Q4_K,
  GgmlType.Q5_K,
  GgmlType.Q6_K,
]);

/** Bytes occupied by `numElements` of `type`; throws if not a whole number of blocks. */
export function tensorByteSize(type: number, numElements: number): number {
  const layout = BLOCK_LAYOUT[type];
  if (layout === undefined) throw new Error(`unknown ggml type ${type}`);
  if (numElements % layout.blockSize !== 0) {
    throw new Error(
      `${numElements} elements is not a multiple of the ${ggmlTypeName(type)} block size ${layout.blockSize}`,
    );
  }
  return (numElements / layout.blockSize) * layout.typeSize;
}

/** IEEE half → number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** All 65536 half values, so the hot loops do a table lookup instead of arithmetic. */
const HALF_TABLE = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = halfToFloat(h);
  return table;
})();

/**
 * Decode `numElements` values of ggml `type` from `bytes` (exactly tensorByteSize(type, numElements) long)
 * into a new Float32Array. Throws for types it cannot decode.
 */
export function dequantize(type: number, bytes: Uint8Array, numElements: number): Float32Array {
  const expected = tensorByteSize(type, numElements);
  if (bytes.byteLength !== expected) {
    throw new Error(`${ggmlTypeName(type)}: expected ${expected} bytes for ${numElements} elements, got ${bytes.byteLength}`);
  }
  const out = new Float32Array(numElements);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < numElements; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case GgmlType.F16:
      for (let i = 0; i < numElements; i++) out[i] = HALF_TABLE[view.getUint16(i * 2, true)];
      break;
    case GgmlType.BF16:
      // bfloat16 is the upper half of a float32.
      for (let i = 0; i < numElements; i++) out[i] = bf16ToFloat(view.getUint16(i * 2, true));
      break;
    case GgmlType.Q8_0:
      dequantQ8_0(bytes, view, out);
      break;
    case GgmlType.Q4_0:
    case GgmlType.Q4_1:
      dequantQ4(bytes, view, out, type === GgmlType.Q4_1);
      break;
    case GgmlType.Q5_0:
    case GgmlType.Q5_1:
      dequantQ5(bytes, view, out, type === GgmlType.Q5_1);
      break;
    case GgmlType.Q4_K:
      dequantQ4K(bytes, view, out);
      break;
    case GgmlType.Q5_K:
      dequantQ5K(bytes, view, out);
      break;
    case GgmlType.Q6_K:
      dequantQ6K(bytes, view, out);
      break;
    default:
      throw new Error(`dequantization of ggml type ${ggmlTypeName(type)} is not supported`);
  }
  return out;
}

const BF16_SCRATCH = new DataView(new ArrayBuffer(4));
function bf16ToFloat(bits: number): number {
  BF16_SCRATCH.setUint32(0, bits << 16, false);
  return BF16_SCRATCH.getFloat32(0, false);
}

// block_q8_0 { half d; int8 qs[32]; }  →  x = d * q
function dequantQ8_0(bytes: Uint8Array, view: DataView, out: Float32Array): void {
  const numBlocks = out.length / 32;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * 34;
    const d = HALF_TABLE[view.getUint16(base, true)];
    for (let j = 0; j < 32; j++) out[b * 32 + j] = d * view.getInt8(base + 2 + j);
  }
}

// block_q4_0 { half d; uint8 qs[16]; }          →  x = d * (nibble - 8)
// block_q4_1 { half d; half m; uint8 qs[16]; }  →  x = d * nibble + m
// Low nibbles are elements 0..15, high nibbles elements 16..31.
function dequantQ4(bytes: Uint8Array, view: DataView, out: Float32Array, hasMin: boolean): void {
  const blockBytes = hasMin ? 20 : 18;
  const numBlocks = out.length / 32;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * blockBytes;
    const d = HALF_TABLE[view.getUint16(base, true)];
    const m = hasMin ? HALF_TABLE[view.getUint16(base + 2, true)] : 0;
    const qs = base + (hasMin ? 4 : 2);
    const o = b * 32;
    for (let j = 0; j < 16; j++) {
      const q = bytes[qs + j];
      if (hasMin) {
        out[o + j] = d * (q & 0x0f) + m;
        out[o + j + 16] = d * (q >> 4) + m;
      } else {
        out[o + j] = d * ((q & 0x0f) - 8);
        out[o + j + 16] = d * ((q >> 4) - 8);
      }
    }
  }
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }          →  x = d * (q5 - 16)
// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16]; }  →  x = d * q5 + m
// Bit j of qh is the fifth bit of element j (0..31).
function dequantQ5(bytes: Uint8Array, view: DataView, out: Float32Array, hasMin: boolean): void {
  const blockBytes = hasMin ? 24 : 22;
  const numBlocks = out.length / 32;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * blockBytes;
    const d = HALF_TABLE[view.getUint16(base, true)];
    const m = hasMin ? HALF_TABLE[view.getUint16(base + 2, true)] : 0;
    const qhOffset = base + (hasMin ? 4 : 2);
    const qh = view.getUint32(qhOffset, true);
    const qs = qhOffset + 4;
    const o = b * 32;
    for (let j = 0; j < 16; j++) {
      const q = bytes[qs + j];
      const low = (q & 0x0f) | (((qh >>> j) & 1) << 4);
      const high = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      if (hasMin) {
        out[o + j] = d * low + m;
        out[o + j + 16] = d * high + m;
      } else {
        out[o + j] = d * (low - 16);
        out[o + j + 16] = d * (high - 16);
      }
    }
  }
}

/** The 6-bit scale and min of sub-block j (0..7) packed in the 12 `scales` bytes of Q4_K / Q5_K. */
function scaleMinK4(bytes: Uint8Array, scales: number, j: number): [number, number] {
  if (j < 4) return [bytes[scales + j] & 63, bytes[scales + j + 4] & 63];
  const scale = (bytes[scales + j + 4] & 0x0f) | ((bytes[scales + j - 4] >> 6) << 4);
  const min = (bytes[scales + j + 4] >> 4) | ((bytes[scales + j] >> 6) << 4);
  return [scale, min];
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }  (256 elements, 8 sub-blocks of 32)
// x = d * scale_s * nibble - dmin * min_s; each 32 bytes of qs hold two sub-blocks (low, then high nibbles).
function dequantQ4K(bytes: Uint8Array, view: DataView, out: Float32Array): void {
  const numBlocks = out.length / 256;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * 144;
    const d = HALF_TABLE[view.getUint16(base, true)];
    const dmin = HALF_TABLE[view.getUint16(base + 2, true)];
    const scales = base + 4;
    let qs = base + 16;
    let o = b * 256;
    for (let sub = 0; sub < 8; sub += 2) {
      const [sc1, m1] = scaleMinK4(bytes, scales, sub);
      const [sc2, m2] = scaleMinK4(bytes, scales, sub + 1);
      const d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
      for (let l = 0; l < 32; l++) out[o + l] = d1 * (bytes[qs + l] & 0x0f) - min1;
      for (let l = 0; l < 32; l++) out[o + 32 + l] = d2 * (bytes[qs + l] >> 4) - min2;
      qs += 32;
      o += 64;
    }
  }
}

// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
// As Q4_K with a fifth bit per element from qh: sub-block pair p uses bits 2p (low) and 2p+1 (high).
function dequantQ5K(bytes: Uint8Array, view: DataView, out: Float32Array): void {
  const numBlocks = out.length / 256;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * 176;
    const d = HALF_TABLE[view.getUint16(base, true)];
    const dmin = HALF_TABLE[view.getUint16(base + 2, true)];
    const scales = base + 4;
    const qh = base + 16;
    let qs = base + 48;
    let o = b * 256;
    let lowBit = 1;
    let highBit = 2;
    for (let sub = 0; sub < 8; sub += 2) {
      const [sc1, m1] = scaleMinK4(bytes, scales, sub);
      const [sc2, m2] = scaleMinK4(bytes, scales, sub + 1);
      const d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
      for (let l = 0; l < 32; l++) {
        out[o + l] = d1 * ((bytes[qs + l] & 0x0f) + (bytes[qh + l] & lowBit ? 16 : 0)) - min1;
      }
      for (let l = 0; l < 32; l++) {
        out[o + 32 + l] = d2 * ((bytes[qs + l] >> 4) + (bytes[qh + l] & highBit ? 16 : 0)) - min2;
      }
      qs += 32;
      o += 64;
      lowBit <<= 2;
      highBit <<= 2;
    }
  }
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }  (16 sub-blocks of 16)
// q6 = low 4 bits from ql | 2 high bits from qh, minus 32; x = d * scale_s * q6.
function dequantQ6K(bytes: Uint8Array, view: DataView, out: Float32Array): void {
  const numBlocks = out.length / 256;
  for (let b = 0; b < numBlocks; b++) {
    const base = b * 210;
    const d = HALF_TABLE[view.getUint16(base + 208, true)];
    for (let half = 0; half < 2; half++) {
      const ql = base + half * 64;
      const qh = base + 128 + half * 32;
      const sc = base + 192 + half * 8;
      const o = b * 256 + half * 128;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = bytes[qh + l];
        const q1 = ((bytes[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[o + l] = d * view.getInt8(sc + is) * q1;
        out[o + l + 32] = d * view.getInt8(sc + is + 2) * q2;
        out[o + l + 64] = d * view.getInt8(sc + is + 4) * q3;
        out[o + l + 96] = d * view.getInt8(sc + is + 6) * q4;
      }
    }
  }
}
