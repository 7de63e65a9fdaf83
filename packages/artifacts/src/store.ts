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
import type * as arrow from 'apache-arrow';
import type { ArtifactFormat, ArtifactRef, ArtifactStore, Manifest, ManifestInput, TensorData } from './types.ts';
import { CorruptRecordError, DigestMismatchError, InvalidNameError, NotFoundError } from './errors.ts';
import { StoreFiles } from './store-files.ts';
import { canonicalJson, sha256Hex } from './canonical-json.ts';
import { codeVersion } from './code-version.ts';
import { getSchema, validateJson, validateTable, validateTensors } from './schemas.ts';
import { parquetToTable, tableToParquet } from './parquet.ts';
import { SafetensorsFile, readSafetensors, writeSafetensors } from './safetensors.ts';
import { RecordIndex } from './records.ts';
import { defaultStoreRoot, resolveUserPath } from './paths.ts';
import { collectGarbage, listCommitted, type GcOptions, type GcReport } from './gc.ts';
import { verifyStore, type VerifyOptions, type VerifyReport } from './verify.ts';

const DIGEST = /^[0-9a-f]{64}$/;

export function assertDigest(digest: unknown, what = 'digest'): asserts digest is string {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) {
    throw new InvalidNameError(`${what} ${JSON.stringify(digest)} is not a lowercase sha256 hex string (64 chars)`);
  }
}

/** Kinds of files derived from artifacts and kept beside the store, by directory: name suffix. */
const DERIVED_KINDS = { reports: '.html' } as const;
export type DerivedKind = keyof typeof DERIVED_KINDS;

export interface ReadOptions {
  /** Recompute the sha256 of the bytes and fail on mismatch (default true: hashing is cheap next to IO). */
  verify?: boolean;
}

export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;
  /** Every file access below the root (confined, honest errors, writes only to a marked store). */
  readonly files: StoreFiles;
  /** Small mutable named records (cache index, run index) kept beside the artifacts. */
  readonly records: RecordIndex;

  constructor(options: { root?: string } = {}) {
    this.root = options.root === undefined ? defaultStoreRoot() : resolveUserPath(options.root);
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
    for (const [name, inputDigest] of Object.entries(input.inputs ?? {})) assertDigest(inputDigest, `manifest input "${name}"`);
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
      const manifest: Manifest = {
        digest,
        format,
        schema,
        producer: input.producer,
        params: input.params ?? null,
        inputs: input.inputs ?? {},
        modelDigest: input.modelDigest ?? null,
        code: codeVersion(),
        backend: input.backend ?? null,
        createdAt: new Date().toISOString(),
        rows,
        bytes: bytes.byteLength,
        ...(input.summary ? { summary: input.summary } : {}),
      };
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

  async putTable(schemaName: string, table: arrow.Table, input: ManifestInput): Promise<ArtifactRef> {
    const schema = getSchema(schemaName, 'table');
    const ordered = validateTable(schema, table, `writing ${schemaName} from ${input.producer.stage}`);
    return this.putBytes('parquet', schemaName, tableToParquet(ordered), input, ordered.numRows);
  }

  async getTable(ref: ArtifactRef, options: ReadOptions = {}): Promise<arrow.Table> {
    this.checkRef(ref, 'parquet');
    const schema = getSchema(ref.schema, 'table');
    const table = parquetToTable(await this.getBytes(ref, options), this.pathOf(ref));
    return validateTable(schema, table, `artifact ${ref.digest}`);
  }

  async putTensors(
    schemaName: string,
    tensors: Record<string, TensorData>,
    input: ManifestInput,
    metadata: Record<string, string> = {},
  ): Promise<ArtifactRef> {
    validateTensors(getSchema(schemaName, 'tensors'), tensors, metadata, `writing ${schemaName} from ${input.producer.stage}`);
    return this.putBytes('safetensors', schemaName, writeSafetensors(tensors, metadata), input, Object.keys(tensors).length);
  }

  async getTensors(ref: ArtifactRef, options: ReadOptions = {}): Promise<Record<string, TensorData>> {
    return (await this.getTensorsWithMetadata(ref, options)).tensors;
  }

  async getTensorsWithMetadata(
    ref: ArtifactRef,
    options: ReadOptions = {},
  ): Promise<{ tensors: Record<string, TensorData>; metadata: Record<string, string> }> {
    this.checkRef(ref, 'safetensors');
    const schema = getSchema(ref.schema, 'tensors');
    const result = readSafetensors(await this.getBytes(ref, options));
    validateTensors(schema, result.tensors, result.metadata, `artifact ${ref.digest}`);
    return result;
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

  async putJson(schemaName: string, value: unknown, input: ManifestInput): Promise<ArtifactRef> {
    validateJson(getSchema(schemaName, 'json'), value, `writing ${schemaName} from ${input.producer.stage}`);
    return this.putBytes('json', schemaName, new TextEncoder().encode(canonicalJson(value)), input, null);
  }

  async getJson<T = unknown>(ref: ArtifactRef, options: ReadOptions = {}): Promise<T> {
    this.checkRef(ref, 'json');
    const schema = getSchema(ref.schema, 'json');
    const value: unknown = JSON.parse(new TextDecoder().decode(await this.getBytes(ref, options)));
    validateJson(schema, value, `artifact ${ref.digest}`);
    return value as T;
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

  private checkRef(ref: ArtifactRef, format: ArtifactFormat): void {
    assertDigest(ref?.digest, 'artifact ref digest');
    if (ref.format !== format) {
      throw new InvalidNameError(`artifact ${ref.digest} is ${ref.format}, but was read as ${format}`);
    }
  }
}

/** A manifest read from `file`: JSON whose digest is the one it is stored under, or CorruptRecordError. */
export function parseManifest(bytes: Uint8Array, file: string, digest: string): Manifest {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as Manifest;
  } catch (error) {
    throw new CorruptRecordError(file, (error as Error).message);
  }
  if (typeof manifest !== 'object' || manifest === null || manifest.digest !== digest) {
    throw new CorruptRecordError(file, `expected the manifest of artifact ${digest}`);
  }
  return manifest;
}
