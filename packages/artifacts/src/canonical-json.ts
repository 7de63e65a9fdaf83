/**
 * Canonical JSON: object keys sorted, no whitespace, so equal values always give equal bytes (and equal
 * sha256). Used for JSON artifacts and for cache keys. Rejects what JSON cannot represent faithfully
 * instead of silently dropping it (undefined members, NaN, functions, BigInt).
 */
import { createHash } from 'node:crypto';

export function canonicalJson(value: unknown, where = '$'): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${where} is ${value}, which JSON cannot represent`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item, i) => canonicalJson(item, `${where}[${i}]`)).join(',')}]`;
  if (typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const members = Object.keys(record)
      .filter((key) => record[key] !== undefined) // like JSON.stringify: absent and undefined mean the same
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key], `${where}.${key}`)}`);
    return `{${members.join(',')}}`;
  }
  throw new TypeError(`canonicalJson: ${where} is a ${typeof value}, which JSON cannot represent`);
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}
