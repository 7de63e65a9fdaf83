/**
 * Model digests: sha256 of the model file(s), lowercase hex. Hashing 100 MB on every load is wasteful, so
 * each file's hash is cached in a sidecar under $DRO_CACHE/digests keyed by its absolute path, and reused
 * only while the file is provably the same: same device, inode, size, mtime and ctime.
 *
 * Why ctime and the inode: size + mtime alone let a file modified in place keep its old digest (and every
 * cache key built on it) when the writer restores the mtime (`touch -d`, `cp -p`, rsync -t). ctime cannot
 * be set from user space — every write, chmod, rename into place or link-count change sets it to now — and
 * replacing the file by a rename gives a new inode. The cost: metadata-only changes (chmod, touch, a hard
 * link added) also trigger a re-hash: 0.1–0.2 s for the 98 MB SmolLM2 GGUF, 0.35 s for the 491 MB
 * Qwen2.5-0.5B GGUF from the page cache on the 2-core reference machine (a cold disk adds its read time). Nanosecond stat fields are compared (bigint),
 * so two writes within one millisecond cannot look alike.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openRegularFile } from './regular-file.ts';
import { droCacheDir } from '@dro/artifacts';

const HASH_CHUNK_BYTES = 4 << 20;
/** Smaller files are hashed every time (milliseconds), so temp test models leave no sidecars behind. */
const SIDECAR_MIN_BYTES = 16 << 20;

interface DigestSidecar {
  path: string;
  /** The file's identity when it was hashed: "dev:ino:size:mtimeNs:ctimeNs" (see the header). */
  identity: string;
  sha256: string;
}

/** What must not change for a cached hash to stay valid. */
function identityOf(stat: fs.BigIntStats): string {
  return [stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs].join(':');
}

function sidecarPath(absolutePath: string): string {
  const key = crypto.createHash('sha256').update(absolutePath).digest('hex');
  return path.join(droCacheDir(), 'digests', `${key}.json`);
}

/** sha256 (hex) of a file's bytes, streamed in bounded chunks. */
export function hashFile(file: string): string {
  const hash = crypto.createHash('sha256');
  const buffer = Buffer.alloc(HASH_CHUNK_BYTES);
  const { fd } = openRegularFile(file);
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

/** The sidecar that caches `file`'s hash. */
export function sidecarPathOf(file: string): string {
  return sidecarPath(path.resolve(file));
}

/** sha256 of one file, from the sidecar cache while the file's identity (see the header) is unchanged. */
export function fileDigest(file: string): string {
  const absolute = path.resolve(file);
  const stat = fs.statSync(absolute, { bigint: true });
  if (stat.size < BigInt(SIDECAR_MIN_BYTES)) return hashFile(absolute);
  const sidecar = sidecarPath(absolute);
  const identity = identityOf(stat);
  try {
    const cached = JSON.parse(fs.readFileSync(sidecar, 'utf8')) as DigestSidecar;
    if (cached.path === absolute && cached.identity === identity && /^[0-9a-f]{64}$/.test(cached.sha256)) {
      return cached.sha256;
    }
  } catch {
    // No usable sidecar: hash below.
  }
  const sha256 = hashFile(absolute);
  // A file changed while it was hashed gets no sidecar (its identity moved under us).
  if (identityOf(fs.statSync(absolute, { bigint: true })) !== identity) return sha256;
  const entry: DigestSidecar = { path: absolute, identity, sha256 };
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
