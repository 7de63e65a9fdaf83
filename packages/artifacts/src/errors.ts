/**
 * Errors of the artifact layer. BadInputError lives here (not in @dro/pipeline, which re-exports it)
 * because the store and the file readers raise it too and pipeline depends on artifacts, not the reverse.
 */

/**
 * An error caused by the input (bad file, bad field, bad params). Engines never retry it and surface the
 * message unchanged. Every other error is treated as transient and retried with backoff.
 */
export class BadInputError extends Error {
  override name = 'BadInputError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A file that is not valid in its declared format (truncated safetensors header, bad offsets, ...). */
export class ArtifactFormatError extends BadInputError {
  override name = 'ArtifactFormatError';
}

/** Bytes on disk whose sha256 differs from the digest they are stored under. Retrying cannot fix it. */
export class DigestMismatchError extends BadInputError {
  override name = 'DigestMismatchError';
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly file: string,
  ) {
    super(`digest mismatch for artifact ${expected}: file ${file} hashes to ${actual} (corrupt or tampered)`);
  }
}

/** A table or JSON value that does not match its declared schema. */
export class SchemaError extends BadInputError {
  override name = 'SchemaError';
}

/** A user-supplied name or digest that is malformed or would escape the store root. */
export class InvalidNameError extends BadInputError {
  override name = 'InvalidNameError';
}

/** An artifact or run that is not in the store. */
export class NotFoundError extends BadInputError {
  override name = 'NotFoundError';
}

/**
 * A filesystem call on the store failed. The message names the action, the path and the real cause (the
 * errno code with its plain meaning), so "read-only file system" is never reported as "not found".
 * Not a BadInputError: a full disk may be freed and a retry can succeed.
 */
export class StoreIOError extends Error {
  override name = 'StoreIOError';
  constructor(
    readonly action: string,
    readonly path: string,
    readonly code: string,
    cause: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot ${action} ${path}: ${cause} (${code})`, options);
  }
}

/**
 * An entry inside the store that the store never creates — a symbolic link, a FIFO, a device — found
 * where an object, manifest, record or report should be. The store never follows or reads it.
 */
export class UnsafeStoreEntryError extends BadInputError {
  override name = 'UnsafeStoreEntryError';
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(`${path} ${what}; the store never follows links or reads non-regular files (remove it, then rerun)`);
  }
}

/** A record or manifest (JSON under records/ or manifests/) that cannot be parsed: torn, truncated or edited. */
export class CorruptRecordError extends BadInputError {
  override name = 'CorruptRecordError';
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path} is not a valid record (${reason}); it is ignored — delete it or run \`dro verify --remove\``);
  }
}

/** A directory that is not a DRO store (or one this version must not write), refused before anything is written. */
export class NotAStoreError extends BadInputError {
  override name = 'NotAStoreError';
  constructor(
    readonly root: string,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A store that cannot be used as configured: an S3 bucket that does not exist, credentials that are
 * missing or refused, an endpoint that is not a URL. Retrying cannot fix it, so engines do not retry.
 */
export class StoreAccessError extends BadInputError {
  override name = 'StoreAccessError';
}
