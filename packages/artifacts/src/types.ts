/**
 * Public types of the artifact store. Every arrow in the DRO pipeline is one of these artifacts:
 * an immutable, content-addressed file (Parquet table, safetensors tensors, or JSON) plus a manifest
 * that says who made it from what.
 */

/** How an artifact's bytes are encoded on disk. */
export type ArtifactFormat = 'parquet' | 'safetensors' | 'json';

/**
 * A reference to a stored artifact. This is what crosses stage boundaries (and Temporal activity
 * boundaries): small, serialisable, never the data itself.
 */
export interface ArtifactRef {
  /** sha256 of the artifact's bytes, lowercase hex (64 chars). */
  digest: string;
  format: ArtifactFormat;
  /** Name of the declared schema the artifact was validated against (e.g. "rendered-inputs/v1"). */
  schema: string;
}

/** Who produced an artifact, from what. Stored beside the bytes; not part of the digest. */
export interface Manifest {
  digest: string;
  format: ArtifactFormat;
  schema: string;
  /**
   * Producing stage, or "user" / "cli" for imported files. `plugin` is set by the engine when the stage is
   * a stage plugin (the module named in the experiment config and its identity: package@version or the
   * sha256 of its files), so an artifact says which code made it even though the plugin keeps the name.
   */
  producer: { stage: string; version: string; plugin?: { module: string; identity: string } };
  params: unknown;
  /** Input artifact digests by input name. */
  inputs: Record<string, string>;
  /** Digest of the model file the stage ran (null for cpu stages). */
  modelDigest: string | null;
  code: { gitSha: string | null; dirty: boolean };
  /** tfjs backend the producing stage used, if any ("wasm", "cpu", "tensorflow", "tensorflow-gpu"). */
  backend: string | null;
  createdAt: string;
  /** Row count for tables, tensor count for safetensors, null for JSON. */
  rows: number | null;
  bytes: number;
  /**
   * What the producing stage measured about its result, for people and tools reading the manifest (e.g.
   * dro-train's training objective). Informational: not part of the digest or the cache key.
   */
  summary?: Record<string, unknown>;
}

/** What a producer supplies when writing; the store fills digest, format, schema, bytes, rows, createdAt, code. */
export type ManifestInput = Pick<Manifest, 'producer' | 'params' | 'inputs'> &
  Partial<Pick<Manifest, 'modelDigest' | 'backend' | 'summary'>>;

/**
 * Element types of the safetensors format. F16/BF16 are held as raw 16-bit patterns (Uint16Array) and
 * F8 types as raw bytes, since JS has no such arrays; `toFloat32` in safetensors.ts decodes them.
 */
export type TensorDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E5M2' | 'F8_E4M3'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** A tensor as plain data (row-major), the currency of safetensors IO. */
export interface TensorData {
  dtype: TensorDType;
  shape: number[];
  data:
    | Float64Array | Float32Array | Uint16Array | Uint8Array
    | BigInt64Array | Int32Array | Int16Array | Int8Array
    | BigUint64Array | Uint32Array;
}

/**
 * The store every stage writes through. Implementations: the local filesystem store (store.ts; a shared
 * mount works across machines) and the S3-compatible store (s3-store.ts) for machines that share no
 * filesystem. `openStore` (open-store.ts) picks one from `--store` / `$DRO_STORE` / a config's `store`.
 *
 * Tables are apache-arrow `Table`s, typed loosely here so this file has no runtime import.
 */
export interface ArtifactStore {
  /** Root directory of a local store, or the `s3://bucket/prefix` URI of an S3 store. */
  readonly root: string;
  /** Validate `table` against the declared schema `schema`, write it as zstd Parquet, return its ref. */
  putTable(schema: string, table: import('apache-arrow').Table, manifest: ManifestInput): Promise<ArtifactRef>;
  getTable(ref: ArtifactRef, opts?: { verify?: boolean }): Promise<import('apache-arrow').Table>;
  /** Write named tensors as safetensors (with optional string metadata in the header). */
  putTensors(
    schema: string,
    tensors: Record<string, TensorData>,
    manifest: ManifestInput,
    metadata?: Record<string, string>,
  ): Promise<ArtifactRef>;
  getTensors(ref: ArtifactRef, opts?: { verify?: boolean }): Promise<Record<string, TensorData>>;
  /** getTensors plus the safetensors header's string metadata. */
  getTensorsWithMetadata(
    ref: ArtifactRef,
    opts?: { verify?: boolean },
  ): Promise<{ tensors: Record<string, TensorData>; metadata: Record<string, string> }>;
  /** Open a stored safetensors artifact lazily (header now, one tensor at a time), for large files. */
  openTensors(ref: ArtifactRef, opts?: { verify?: boolean }): Promise<import('./safetensors.ts').SafetensorsFile>;
  putJson(schema: string, value: unknown, manifest: ManifestInput): Promise<ArtifactRef>;
  getJson<T = unknown>(ref: ArtifactRef, opts?: { verify?: boolean }): Promise<T>;
  manifest(digest: string): Promise<Manifest>;
  has(digest: string): Promise<boolean>;
  /** Recompute the artifact's sha256; throws DigestMismatchError naming the digest and file. */
  verify(digest: string): Promise<void>;
  /**
   * Absolute path of the artifact's bytes in a local store (read-only; for tools such as pyarrow). A store
   * without local files (S3) throws, saying to use `localCopy`, which downloads and verifies a copy.
   */
  pathOf(ref: ArtifactRef): string;
  /**
   * Keep a file derived from artifact `digest` on this machine (e.g. a report's HTML page; beside a local
   * store under reports/, in the local cache of an S3 store) holding exactly `bytes`, and return its
   * path; an existing file is reused only if its content matches.
   */
  materialize(kind: 'reports', digest: string, bytes: Uint8Array | string): Promise<string>;
}

/**
 * A whole DRO store as the engines and the CLI use it: artifacts plus the record index (pipeline cache
 * index, run index) and maintenance. Both LocalArtifactStore and S3ArtifactStore are one.
 */
export interface IndexedArtifactStore extends ArtifactStore {
  /** Small mutable named records (cache index, run index) kept beside the artifacts. */
  readonly records: import('./records.ts').RecordStore;
  /**
   * Check that the root is a DRO store, creating a new one (with its marker) if it is missing or empty;
   * refuses anything else (NotAStoreError). Every write does this first; call it to fail early.
   */
  ensureWritable(): Promise<void>;
  putBytes(format: ArtifactFormat, schema: string, bytes: Uint8Array, input: ManifestInput, rows: number | null): Promise<ArtifactRef>;
  getBytes(ref: ArtifactRef | string, options?: { verify?: boolean }): Promise<Uint8Array>;
  /** A verified file holding the artifact's bytes on this machine: the object itself in a local store, a cached download from S3. */
  localCopy(ref: ArtifactRef | string): Promise<string>;
  /** Digests of every committed artifact (bytes + manifest present). */
  list(): Promise<string[]>;
  /** Delete what no pinned record references; `dryRun` reports without deleting. */
  gc(options?: import('./gc.ts').GcOptions): Promise<import('./gc.ts').GcReport>;
  /** Re-hash every object and check every manifest and record. */
  verifyAll(options?: import('./verify.ts').VerifyOptions): Promise<import('./verify.ts').VerifyReport>;
}
