/**
 * Model digests: sha256 of the model file(s), lowercase hex. Hashing 100 MB on every load is wasteful, so
 * each file's hash is cached in a sidecar under $DRO_CACHE/digests keyed by its absolute path, and reused
 * only while the file's size and mtime are unchanged.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { droCacheDir } from '@dro/artifacts';

const HASH_CHUNK_BYTES = 4 << 20;
/** Smaller files are hashed every time (milliseconds), so temp test models leave no sidecars behind. */
const SIDECAR_MIN_BYTES = 16 << 20;

interface DigestSidecar {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

function sidecarPath(absolutePath: string): string {
  const key = crypto.createHash('sha256').update(absolutePath).digest('hex');
  return path.join(droCacheDir(), 'digests', `${key}.json`);
}

/** sha256 (hex) of a file's bytes, streamed in bounded chunks. */
export function hashFile(file: string): string {
  const hash = crypto.createHash('sha256');
  const buffer = Buffer.alloc(HASH_CHUNK_BYTES);
  const fd = fs.openSync(file, 'r');
  try {
    let position = 0;
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, position);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      position += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** sha256 of one file, from the sidecar cache when the file's size and mtime still match. */
export function sidecarPathOf(file: string): string {
  return sidecarPath(path.resolve(file));
}

export function fileDigest(file: string): string {
  const absolute = path.resolve(file);
  const stat = fs.statSync(absolute);
  if (stat.size < SIDECAR_MIN_BYTES) return hashFile(absolute);
  const sidecar = sidecarPath(absolute);
  try {
    const cached = JSON.parse(fs.readFileSync(sidecar, 'utf8')) as DigestSidecar;
    if (cached.path === absolute && cached.size === stat.size && cached.mtimeMs === stat.mtimeMs && /^[0-9a-f]{64}$/.test(cached.sha256)) {
      return cached.sha256;
    }
  } catch {
    // No usable sidecar: hash below.
  }
  const sha256 = hashFile(absolute);
  const entry: DigestSidecar = { path: absolute, size: stat.size, mtimeMs: stat.mtimeMs, sha256 };
  try {
    fs.mkdirSync(path.dirname(sidecar), { recursive: true });
    const tmp = `${sidecar}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(entry));
    fs.renameSync(tmp, sidecar);
  } catch {
    // A read-only cache only costs a re-hash next time.
  }
  return sha256;
}

/**
 * Digest of a model made of several files (an HF directory): sha256 over "relative-name sha256\n" lines in
 * name order, so renaming, adding or changing any file changes it. A single-file model's digest is the
 * file's own sha256.
 */
export function modelDigest(files: string[], root: string): string {
  if (files.length === 1 && path.resolve(files[0]) === path.resolve(root)) return fileDigest(files[0]);
  const lines = files
    .map((f) => `${path.relative(root, f)} ${fileDigest(f)}\n`)
    .sort();
  return crypto.createHash('sha256').update(lines.join('')).digest('hex');
}
