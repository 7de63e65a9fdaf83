/**
 * The typed half every artifact store shares: schema validation and encoding of tables (zstd Parquet),
 * tensors (safetensors) and JSON into bytes and back, and the manifest a write records. A store supplies
 * only the byte layer — putBytes (content-addressed, manifest last), getBytes (verified), and a label for
 * an artifact's location in error messages — so the filesystem store (store.ts) and the S3 store
 * (s3-store.ts) encode and validate identically and produce byte-identical artifacts.
 */
import type * as arrow from 'apache-arrow';
import type { ArtifactFormat, ArtifactRef, Manifest, ManifestInput, TensorData } from './types.ts';
import { CorruptRecordError, InvalidNameError } from './errors.ts';
import { canonicalJson } from './canonical-json.ts';
import { codeVersion } from './code-version.ts';
import { getSchema, validateJson, validateTable, validateTensors } from './schemas.ts';
import { parquetToTable, tableToParquet } from './parquet.ts';
import { readSafetensors, writeSafetensors } from './safetensors.ts';

const DIGEST = /^[0-9a-f]{64}$/;

export function assertDigest(digest: unknown, what = 'digest'): asserts digest is string {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) {
    throw new InvalidNameError(`${what} ${JSON.stringify(digest)} is not a lowercase sha256 hex string (64 chars)`);
  }
}

export interface ReadOptions {
  /** Recompute the sha256 of the bytes and fail on mismatch (default true: hashing is cheap next to IO). */
  verify?: boolean;
}

/** Reject manifest inputs that are not digests before anything is written (they become gc edges). */
export function assertManifestInputs(input: ManifestInput): void {
  for (const [name, inputDigest] of Object.entries(input.inputs ?? {})) assertDigest(inputDigest, `manifest input "${name}"`);
}

/** The manifest a store writes beside `bytes` (the store fills what the producer does not know). */
export function buildManifest(digest: string, format: ArtifactFormat, schema: string, bytes: Uint8Array, input: ManifestInput, rows: number | null): Manifest {
  return {
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

export abstract class TypedArtifactStore {
  /**
   * Store `bytes` (already encoded in `format`) with a manifest; idempotent. Most callers want putTable /
   * putTensors / putJson, which validate against the schema first.
   */
  abstract putBytes(format: ArtifactFormat, schema: string, bytes: Uint8Array, input: ManifestInput, rows: number | null): Promise<ArtifactRef>;
  /** The artifact's bytes, verified against its digest unless `verify: false`. */
  abstract getBytes(ref: ArtifactRef | string, options?: ReadOptions): Promise<Uint8Array>;
  /** Where the artifact's bytes live (a path or a URI), for error messages. */
  protected abstract objectLabel(digest: string): string;

  async putTable(schemaName: string, table: arrow.Table, input: ManifestInput): Promise<ArtifactRef> {
    const schema = getSchema(schemaName, 'table');
    const ordered = validateTable(schema, table, `writing ${schemaName} from ${input.producer.stage}`);
    return this.putBytes('parquet', schemaName, tableToParquet(ordered), input, ordered.numRows);
  }

  async getTable(ref: ArtifactRef, options: ReadOptions = {}): Promise<arrow.Table> {
    this.checkRef(ref, 'parquet');
    const schema = getSchema(ref.schema, 'table');
    const table = parquetToTable(await this.getBytes(ref, options), this.objectLabel(ref.digest));
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

  protected checkRef(ref: ArtifactRef, format: ArtifactFormat): void {
    assertDigest(ref?.digest, 'artifact ref digest');
    if (ref.format !== format) {
      throw new InvalidNameError(`artifact ${ref.digest} is ${ref.format}, but was read as ${format}`);
    }
  }
}
