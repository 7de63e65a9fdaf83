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
