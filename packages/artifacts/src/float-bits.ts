/**
 * Half-precision bit patterns (IEEE f16 and bfloat16) ↔ float32. JS has no 16-bit float arrays, so
 * safetensors F16/BF16 tensors are held as Uint16Array bit patterns and converted here.
 */

export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Round a float32 array to bf16 bit patterns (round to nearest even, NaN kept NaN). */
export function float32ToBf16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Round a float32 array to IEEE half bit patterns (round to nearest even; overflow → ±Inf). */
export function float32ToF16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000;
    const exponent = (b >>> 23) & 0xff;
    let mantissa = b & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    let e = exponent - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // Subnormal half (or zero): shift the implicit bit in and round.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mantissa |= 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      let rounded = mantissa >> shift;
      const rest = mantissa & ((1 << shift) - 1);
      if (rest > half || (rest === half && rounded & 1)) rounded++;
      out[i] = sign | rounded;
      continue;
    }
    let rounded = mantissa >> 13;
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && rounded & 1)) rounded++;
    if (rounded === 0x400) {
      rounded = 0;
      e++;
      if (e >= 0x1f) {
        out[i] = sign | 0x7c00;
        continue;
      }
    }
    out[i] = sign | (e << 10) | rounded;
  }
  return out;
}
