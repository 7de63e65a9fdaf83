/**
 * The local content-addressed artifact store. Layout under the root:
 *
 *   objects/<d[0:2]>/<d>          the artifact's bytes, named by their sha256 d (immutable)
 *   manifests/<d[0:2]>/<d>.json   its manifest; written after the bytes, so it is the commit point:
 *                                 an artifact "exists" (has()) only once both are there
 *   records/<namespace>/<key>.json small mutable pointers (pipeline cache index, run index), see records.ts
 *
 * Every file is written atomically (atomic-fs.ts), so a process killed at any moment leaves only complete
 * files plus temp files that gc removes. Two processes writing the same artifact write identical bytes
 * and both succeed; the first manifest to land is kept.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type * as arrow from 'apache-arrow';
import type { ArtifactFormat, ArtifactRef, ArtifactStore, Manifest, ManifestInput, TensorData } from './types.ts';
import { DigestMismatchError, InvalidNameError, NotFoundError } from './errors.ts';
import { writeFileAtomic } from './atomic-fs.ts';
import { canonicalJson, sha256Hex } from './canonical-json.ts';
import { codeVersion } from './code-version.ts';
import { getSchema, validateJson, validateTable, validateTensors } from './schemas.ts';
import { parquetToTable, tableToParquet } from './parquet.ts';
import { SafetensorsFile, readSafetensors, writeSafetensors } from './safetensors.ts';
import { RecordIndex } from './records.ts';
import { defaultStoreRoot, resolveUserPath } from './paths.ts';
import { collectGarbage, listCommitted, type GcOptions, type GcReport } from './gc.ts';

const DIGEST = /^[0-9a-f]{64}$/;

export function assertDigest(digest: unknown, what = 'digest'): asserts digest is string {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) {
    throw new InvalidNameError(`${what} ${JSON.stringify(digest)} is not a lowercase sha256 hex string (64 chars)`);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

export interface ReadOptions {
  /** Recompute the sha256 of the bytes and fail on mismatch (default true: hashing is cheap next to IO). */
  verify?: boolean;
}

export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;
  /** Small mutable named records (cache index, run index) kept beside the artifacts. */
  readonly records: RecordIndex;

  constructor(options: { root?: string } = {}) {
    this.root = options.root === undefined ? defaultStoreRoot() : resolveUserPath(options.root);
    this.records = new RecordIndex(path.join(this.root, 'records'));
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

  async has(digest: string): Promise<boolean> {
    return (await exists(this.manifestPath(digest))) && (await exists(this.objectPath(digest)));
  }

  async manifest(digest: string): Promise<Manifest> {
    const file = this.manifestPath(digest);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new NotFoundError(`artifact ${digest} has no manifest in store ${this.root}`);
    }
    return JSON.parse(text) as Manifest;
  }

  /**
   * Store `bytes` (already encoded in `format`) with a manifest; idempotent. Most callers want putTable /
   * putTensors / putJson, which validate against the schema first.
   */
  async putBytes(
    format: ArtifactFormat,
    schema: string,
    bytes: Uint8Array,
    input: ManifestInput,
    rows: number | null,
  ): Promise<ArtifactRef> {
    const digest = sha256Hex(bytes);
    const objectFile = this.objectPath(digest);
    // An object of the right size is the same object (its name is its hash); anything else is rewritten.
    const present = await stat(objectFile).catch(() => null);
    if (!present || present.size !== bytes.byteLength) await writeFileAtomic(objectFile, bytes);
    const manifestFile = this.manifestPath(digest);
    if (!(await exists(manifestFile))) {
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
      };
      for (const [name, inputDigest] of Object.entries(manifest.inputs)) assertDigest(inputDigest, `manifest input "${name}"`);
      await writeFileAtomic(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    }
    return { digest, format, schema };
  }

  /** The artifact's bytes, verified against its digest unless `verify: false`. */
  async getBytes(ref: ArtifactRef | string, options: ReadOptions = {}): Promise<Uint8Array> {
    const digest = typeof ref === 'string' ? ref : ref.digest;
    const file = this.objectPath(digest);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch {
      throw new NotFoundError(`artifact ${digest} is not in store ${this.root} (no file ${file})`);
    }
    if (options.verify !== false) {
      const actual = sha256Hex(bytes);
      if (actual !== digest) throw new DigestMismatchError(digest, actual, file);
    }
    return bytes;
  }

  /** Recompute the digest of a stored artifact by streaming it; throws DigestMismatchError naming the file. */
  async verify(digest: string): Promise<void> {
    const file = this.objectPath(digest);
    if (!(await exists(file))) throw new NotFoundError(`artifact ${digest} is not in store ${this.root} (no file ${file})`);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    const actual = hash.digest('hex');
    if (actual !== digest) throw new DigestMismatchError(digest, actual, file);
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
    if (options.verify !== false) await this.verify(ref.digest);
    return SafetensorsFile.open(this.pathOf(ref));
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

  private checkRef(ref: ArtifactRef, format: ArtifactFormat): void {
    assertDigest(ref?.digest, 'artifact ref digest');
    if (ref.format !== format) {
      throw new InvalidNameError(`artifact ${ref.digest} is ${ref.format}, but was read as ${format}`);
    }
  }
}
