/**
 * The local content-addressed artifact store. Layout under the root:
 *
 *   objects/<d[0:2]>/<d>          the artifact's bytes, named by their sha256 d (immutable)
 *   manifests/<d[0:2]>/<d>.json   its manifest; written after the bytes, so it is the commit point:
 *                                 an artifact "exists" (has()) only once both are there
 *   records/<namespace>/<key>.json small mutable pointers (pipeline cache index, run index), see records.ts
 *   reports/<digest>.html         files derived from an artifact for tools to open (materialize)
 *   dro-store.json                the marker that makes the directory a DRO store (store-marker.ts)
 *
 * Every file is written atomically (atomic-fs.ts), so a process killed at any moment leaves only complete
 * files plus temp files that gc removes. Two processes writing the same artifact write identical bytes
 * and both succeed; the first manifest to land is kept. Every access below the root goes through
 * StoreFiles (store-files.ts): no link is followed out of the root, errors name the path and the real
 * cause, and only a directory marked as a DRO store (or a new one) is written to.
 */
import path from 'node:path';
import type { ArtifactFormat, ArtifactRef, IndexedArtifactStore, Manifest, ManifestInput } from './types.ts';
import { DigestMismatchError, NotFoundError } from './errors.ts';
import { StoreFiles } from './store-files.ts';
import { sha256Hex } from './canonical-json.ts';
import { SafetensorsFile } from './safetensors.ts';
import { RecordIndex } from './records.ts';
import { localStoreRoot } from './paths.ts';
import { collectGarbage, listCommitted, type GcOptions, type GcReport } from './gc.ts';
import { verifyStore, type VerifyOptions, type VerifyReport } from './verify.ts';
import { TypedArtifactStore, assertDigest, assertManifestInputs, buildManifest, parseManifest, type ReadOptions } from './typed-store.ts';

/** Kinds of files derived from artifacts and kept beside the store, by directory: name suffix. */
export const DERIVED_KINDS = { reports: '.html' } as const;
export type DerivedKind = keyof typeof DERIVED_KINDS;

export class LocalArtifactStore extends TypedArtifactStore implements IndexedArtifactStore {
  readonly root: string;
  /** Every file access below the root (confined, honest errors, writes only to a marked store). */
  readonly files: StoreFiles;
  /** Small mutable named records (cache index, run index) kept beside the artifacts. */
  readonly records: RecordIndex;

  constructor(options: { root?: string } = {}) {
    super();
    this.root = localStoreRoot(options.root);
    this.files = new StoreFiles(this.root);
    this.records = new RecordIndex(path.join(this.root, 'records'), this.files);
  }

  objectPath(digest: string): string {
    assertDigest(digest);
    return path.join(this.root, 'objects', digest.slice(0, 2), digest);
  }

  manifestPath(digest: string): string {
    assertDigest(digest);
    return path.join(this.root, 'manifests', digest.slice(0, 2), `${digest}.json`);
  }

  pathOf(ref: ArtifactRef): string {
    return this.objectPath(ref.digest);
  }

  protected objectLabel(digest: string): string {
    return this.objectPath(digest);
  }

  /** The artifact's file in the store, once verified (a local store needs no copy). */
  async localCopy(ref: ArtifactRef | string): Promise<string> {
    const digest = typeof ref === 'string' ? ref : ref.digest;
    await this.verify(digest);
    return this.objectPath(digest);
  }

  /**
   * Check that the root is a DRO store, creating a new one (with its marker) if it is missing or empty;
   * refuses anything else (NotAStoreError). Every write does this first; call it to fail early.
   */
  ensureWritable(): Promise<void> {
    return this.files.ensureWritable();
  }

  /** Whether the artifact is committed: manifest and bytes both present as regular files (not checked for content). */
  async has(digest: string): Promise<boolean> {
    return (await this.files.isRegularFile(this.manifestPath(digest))) && (await this.files.isRegularFile(this.objectPath(digest)));
  }

  async manifest(digest: string): Promise<Manifest> {
    const file = this.manifestPath(digest);
    const bytes = await this.files.read(file);
    if (!bytes) throw new NotFoundError(`artifact ${digest} has no manifest in store ${this.root}`);
    return parseManifest(bytes, file, digest);
  }

  /**
   * Store `bytes` (already encoded in `format`) with a manifest; idempotent. Most callers want putTable /
   * putTensors / putJson, which validate against the schema first.
   *
   * An existing object is kept only if its bytes are exactly these (compared, not just sized): a corrupt
   * or tampered object, or a link planted under the digest's name, is replaced, so recomputing an artifact
   * repairs the store. The comparison reads the old file once, which costs less than the fsync of a rewrite.
   */
  async putBytes(
    format: ArtifactFormat,
    schema: string,
    bytes: Uint8Array,
    input: ManifestInput,
    rows: number | null,
  ): Promise<ArtifactRef> {
    const digest = sha256Hex(bytes);
    assertManifestInputs(input);
    const objectFile = this.objectPath(digest);
    await this.files.ensureWritable();
    const present = await this.files.read(objectFile).catch(() => null);
    if (!present || !Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(present)) await this.files.write(objectFile, bytes);
    const manifestFile = this.manifestPath(digest);
    const existing = await this.files.read(manifestFile).catch(() => null);
    let keep = false;
    try {
      keep = existing !== null && parseManifest(existing, manifestFile, digest).digest === digest;
    } catch {
      keep = false; // torn or foreign manifest: rewritten below
    }
    if (!keep) {
      const manifest: Manifest = buildManifest(digest, format, schema, bytes, input, rows);
      await this.files.write(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    }
    return { digest, format, schema };
  }

  /** The artifact's bytes, verified against its digest unless `verify: false`. */
  async getBytes(ref: ArtifactRef | string, options: ReadOptions = {}): Promise<Uint8Array> {
    const digest = typeof ref === 'string' ? ref : ref.digest;
    const file = this.objectPath(digest);
    const bytes = await this.files.read(file);
    if (!bytes) throw new NotFoundError(`artifact ${digest} is not in store ${this.root} (no file ${file})`);
    if (options.verify !== false) {
      const actual = sha256Hex(bytes);
      if (actual !== digest) throw new DigestMismatchError(digest, actual, file);
    }
    return bytes;
  }

  /**
   * Recompute the digest of a stored artifact by streaming it; throws DigestMismatchError naming the file
   * (NotFoundError when missing, UnsafeStoreEntryError for a link or non-regular file).
   */
  async verify(digest: string): Promise<void> {
    const file = this.objectPath(digest);
    const actual = await this.files.sha256(file);
    if (actual === null) throw new NotFoundError(`artifact ${digest} is not in store ${this.root} (no file ${file})`);
    if (actual !== digest) throw new DigestMismatchError(digest, actual, file);
  }

  /**
   * A file derived from artifact `digest` (e.g. reports/<digest>.html for a report's page), holding exactly
   * `bytes`; returns its path. An existing file is served only if its content matches (a stale, tampered or
   * linked one is rewritten), and a matching one needs no write, so this works on a read-only store once
   * the file exists.
   */
  async materialize(kind: DerivedKind, digest: string, bytes: Uint8Array | string): Promise<string> {
    assertDigest(digest);
    const file = path.join(this.root, kind, `${digest}${DERIVED_KINDS[kind]}`);
    const wanted = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const present = await this.files.read(file).catch(() => null);
    if (!present?.equals(wanted)) await this.files.write(file, wanted);
    return file;
  }

  /**
   * Open a stored safetensors artifact lazily (one tensor at a time), for checkpoints too big to read
   * whole. Verifies by streaming first unless `verify: false`.
   */
  async openTensors(ref: ArtifactRef, options: ReadOptions = {}): Promise<SafetensorsFile> {
    this.checkRef(ref, 'safetensors');
    const file = this.pathOf(ref);
    if (options.verify !== false) await this.verify(ref.digest);
    else {
      // Unverified, but still never through a link: the same checks a verified read makes, without the read.
      await this.files.assertConfined(path.dirname(file));
      if (!(await this.files.isRegularFile(file))) throw new NotFoundError(`artifact ${ref.digest} is not in store ${this.root} (no regular file ${file})`);
    }
    return SafetensorsFile.open(file);
  }

  /** Digests of every committed artifact (bytes + manifest present). */
  async list(): Promise<string[]> {
    return listCommitted(this);
  }

  /** Delete what no pinned record references (see gc.ts). `dryRun` reports without deleting. */
  async gc(options: GcOptions = {}): Promise<GcReport> {
    return collectGarbage(this, options);
  }

  /** Re-hash every object and check every manifest and record (see verify.ts). */
  async verifyAll(options: VerifyOptions = {}): Promise<VerifyReport> {
    return verifyStore(this, options);
  }
}
