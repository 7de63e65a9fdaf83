/**
 * The S3-compatible artifact store, for workers that share no filesystem (`DRO_STORE=s3://bucket/prefix`).
 * Same layout under the prefix as a directory store under its root, so a store can be copied either way
 * with any S3 tool (reports/ and temp files aside):
 *
 *   objects/<d[0:2]>/<d>          the artifact's bytes, named by their sha256 d
 *   manifests/<d[0:2]>/<d>.json   its manifest; written after the bytes: the commit point
 *   records/<namespace>/<key>.json cache index and run index, one object per record (s3-records.ts)
 *   dro-store.json                the store marker (s3-marker.ts)
 *
 * The same guarantees, by S3's own means:
 * - Never a partial object: an S3 PUT is atomic (readers see the old object or the whole new one), so there
 *   are no temp files; every object PUT carries the bytes' sha256, which the server checks, so a corrupted
 *   upload is refused rather than stored. An artifact exists (has()) only once its manifest is there.
 * - Verified on read: every read re-hashes the bytes; a mismatch is DigestMismatchError naming the URI.
 * - Repair by rewriting: putBytes always uploads the bytes (a changed or corrupt object is replaced; an S3
 *   server cannot tell us the bytes are right without reading them back, which costs the same as the
 *   upload), then creates the manifest only if absent (If-None-Match: *) — the first manifest wins, even
 *   between two writers racing — and replaces one that does not parse or names another artifact.
 *
 * What differs from a directory store, because nothing here is a local file:
 * - pathOf throws (there is no path); localCopy(ref) downloads a verified copy into the local cache
 *   (`$DRO_CACHE/s3/objects/…`, content-addressed and re-checked on every use) for tools such as pyarrow,
 *   and openTensors reads from that copy.
 * - materialize (report pages) writes into the local cache (`$DRO_CACHE/s3/reports/<digest>.html`), not into
 *   the bucket: a page is derived from a verified artifact, any machine can make it again, and serving it
 *   needs only read access to the bucket. The cache may be deleted at any time.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ArtifactFormat, ArtifactRef, IndexedArtifactStore, Manifest, ManifestInput } from './types.ts';
import { BadInputError, DigestMismatchError, NotFoundError } from './errors.ts';
import { sha256Hex } from './canonical-json.ts';
import { writeFileAtomic } from './atomic-fs.ts';
import { droCacheDir } from './paths.ts';
import { SafetensorsFile } from './safetensors.ts';
import { DERIVED_KINDS, type DerivedKind } from './store.ts';
import { TypedArtifactStore, assertDigest, assertManifestInputs, buildManifest, parseManifest, type ReadOptions } from './typed-store.ts';
import { parseS3Uri } from './s3-location.ts';
import { S3Objects, type S3Settings } from './s3-objects.ts';
import { S3RecordIndex } from './s3-records.ts';
import { prepareS3StoreForWriting } from './s3-marker.ts';
import { collectS3Garbage, listS3Committed, verifyS3Store } from './s3-maintenance.ts';
import type { GcOptions, GcReport } from './gc.ts';
import type { VerifyOptions, VerifyReport } from './verify.ts';

export interface S3StoreOptions {
  /** `s3://bucket[/prefix]`. */
  uri: string;
  /** Endpoint and region; default: from the AWS environment variables (s3-objects.ts). */
  settings?: S3Settings;
  /** Local cache for downloaded copies and report pages; default `$DRO_CACHE/s3`. */
  cacheDir?: string;
}

export class S3ArtifactStore extends TypedArtifactStore implements IndexedArtifactStore {
  readonly root: string;
  /** Every request to the bucket (settings, honest errors). */
  readonly objects: S3Objects;
  readonly records: S3RecordIndex;
  readonly cacheDir: string;
  private writableMemo: Promise<void> | null = null;

  constructor(options: S3StoreOptions) {
    super();
    const location = parseS3Uri(options.uri);
    this.root = location.uri;
    this.objects = new S3Objects(location, options.settings);
    this.records = new S3RecordIndex(this.objects, () => this.ensureWritable());
    this.cacheDir = options.cacheDir ?? path.join(droCacheDir(), 's3');
  }

  /** Key of the artifact's bytes, relative to the prefix. */
  objectRel(digest: string): string {
    assertDigest(digest);
    return `objects/${digest.slice(0, 2)}/${digest}`;
  }

  manifestRel(digest: string): string {
    assertDigest(digest);
    return `manifests/${digest.slice(0, 2)}/${digest}.json`;
  }

  protected objectLabel(digest: string): string {
    return this.objects.uri(this.objectRel(digest));
  }

  /** Check (once per process) that the prefix is a DRO store, marking an empty one; see s3-marker.ts. */
  ensureWritable(): Promise<void> {
    this.writableMemo ??= prepareS3StoreForWriting(this.objects).catch((error: unknown) => {
      this.writableMemo = null;
      throw error;
    });
    return this.writableMemo;
  }

  /** Whether the artifact is committed: manifest and bytes both present (not checked for content). */
  async has(digest: string): Promise<boolean> {
    // The manifest is fetched rather than HEADed: a HEAD cannot tell a missing bucket from a missing key
    // (both are a bare 404), and "not in the store" would hide a mistyped bucket.
    return (await this.objects.get(this.manifestRel(digest))) !== null && (await this.objects.head(this.objectRel(digest))) !== null;
  }

  async manifest(digest: string): Promise<Manifest> {
    const rel = this.manifestRel(digest);
    const bytes = await this.objects.get(rel);
    if (!bytes) throw new NotFoundError(`artifact ${digest} has no manifest in store ${this.root}`);
    return parseManifest(bytes, this.objects.uri(rel), digest);
  }

  async putBytes(format: ArtifactFormat, schema: string, bytes: Uint8Array, input: ManifestInput, rows: number | null): Promise<ArtifactRef> {
    const digest = sha256Hex(bytes);
    assertManifestInputs(input);
    await this.ensureWritable();
    await this.objects.put(this.objectRel(digest), bytes, { sha256: digest }); // the digest is the bytes' sha256
    const rel = this.manifestRel(digest);
    const text = `${JSON.stringify(buildManifest(digest, format, schema, bytes, input, rows), null, 2)}\n`;
    if ((await this.objects.put(rel, text, { ifAbsent: true, contentType: 'application/json' })) === 'exists') {
      const existing = await this.objects.get(rel);
      let keep = false;
      try {
        keep = existing !== null && parseManifest(existing, this.objects.uri(rel), digest).digest === digest;
      } catch {
        keep = false; // torn or foreign manifest: replaced
      }
      if (!keep) await this.objects.put(rel, text, { contentType: 'application/json' });
    }
    return { digest, format, schema };
  }

  async getBytes(ref: ArtifactRef | string, options: ReadOptions = {}): Promise<Uint8Array> {
    const digest = typeof ref === 'string' ? ref : ref.digest;
    const rel = this.objectRel(digest);
    const bytes = await this.objects.get(rel);
    if (!bytes) throw new NotFoundError(`artifact ${digest} is not in store ${this.root} (no object ${this.objects.uri(rel)})`);
    if (options.verify !== false) {
      const actual = sha256Hex(bytes);
      if (actual !== digest) throw new DigestMismatchError(digest, actual, this.objects.uri(rel));
    }
    return bytes;
  }

  /** Re-hash the stored object by streaming it; DigestMismatchError / NotFoundError naming the URI. */
  async verify(digest: string): Promise<void> {
    const rel = this.objectRel(digest);
    const found = await this.objects.sha256(rel);
    if (found === null) throw new NotFoundError(`artifact ${digest} is not in store ${this.root} (no object ${this.objects.uri(rel)})`);
    if (found.sha256 !== digest) throw new DigestMismatchError(digest, found.sha256, this.objects.uri(rel));
  }

  /** There is no local path to an object in S3; see localCopy. */
  pathOf(ref: ArtifactRef): string {
    throw new BadInputError(
      `artifact ${ref.digest} is in the S3 store ${this.root}, which has no local files: use \`await store.localCopy(ref)\` for a verified local copy (${this.cacheDir})`,
    );
  }

  /**
   * A verified local file holding the artifact's bytes: `<cacheDir>/objects/<d[0:2]>/<d>`, downloaded once and
   * re-hashed on every use (a damaged copy is fetched again).
   */
  async localCopy(ref: ArtifactRef | string): Promise<string> {
    const digest = typeof ref === 'string' ? ref : ref.digest;
    const file = path.join(this.cacheDir, this.objectRel(digest));
    const cached = await readFile(file).catch(() => null);
    if (cached && sha256Hex(cached) === digest) return file;
    await writeFileAtomic(file, await this.getBytes(digest));
    return file;
  }

  /**
   * A file derived from artifact `digest` (a report's page) in the local cache, holding exactly `bytes`; an
   * existing file is reused only if its content matches. Nothing is written to the bucket.
   */
  async materialize(kind: DerivedKind, digest: string, bytes: Uint8Array | string): Promise<string> {
    assertDigest(digest);
    const file = path.join(this.cacheDir, kind, `${digest}${DERIVED_KINDS[kind]}`);
    const wanted = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const present = await readFile(file).catch(() => null);
    if (!present?.equals(wanted)) await writeFileAtomic(file, wanted);
    return file;
  }

  /** Open a stored safetensors artifact lazily from its verified local copy (verification cannot be skipped: the copy is made by hashing). */
  async openTensors(ref: ArtifactRef, _options: ReadOptions = {}): Promise<SafetensorsFile> {
    this.checkRef(ref, 'safetensors');
    return SafetensorsFile.open(await this.localCopy(ref));
  }

  async list(): Promise<string[]> {
    return listS3Committed(this);
  }

  async gc(options: GcOptions = {}): Promise<GcReport> {
    return collectS3Garbage(this, options);
  }

  async verifyAll(options: VerifyOptions = {}): Promise<VerifyReport> {
    return verifyS3Store(this, options);
  }
}
