/**
 * The one home for the paths DRO uses by default and for reading paths users write. Every path that comes
 * from a user — a config file's fields, `--store`, `--model`, `--config`, `--out`, `$DRO_STORE`,
 * `$DRO_CACHE` — goes through `resolveUserPath`, so `~` means the same thing everywhere. (A shell expands
 * `~` only at the start of an unquoted word: `--store=~/x`, `"~/x"` and JSON strings reach us literally.)
 *
 * This lives in @dro/artifacts because it is the package every other one depends on; `~` expansion and
 * $DRO_CACHE are in user-paths.mjs, which tools/setup and tools/native-tf import too. The known models'
 * paths (and the default model) live with their pins in @dro/llm's weights/known-models.mjs.
 */
import path from 'node:path';
import { InvalidNameError } from './errors.ts';
import { isS3Uri, parseS3Uri } from './s3-location.ts';
import { resolveUserPath } from './user-paths.mjs';

// Plain JavaScript (tools/setup reads them before `npm ci`); re-exported here so there is one import path.
export { droCacheDir, expandHome, resolveUserPath } from './user-paths.mjs';

/** `scheme://…`: a URI, never a directory name a user meant (a directory called "s3:" is not what anyone wants). */
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * A store location a user wrote (`--store`, `$DRO_STORE`, a config's `store`): an `s3://bucket/prefix` URI,
 * normalised, or a directory, resolved like any user path. Other URIs are refused, naming `what`.
 */
export function resolveStoreLocation(value: string, baseDir: string = process.cwd(), what = 'store location'): string {
  if (isS3Uri(value)) return parseS3Uri(value, what).uri;
  if (URI.test(value)) throw new InvalidNameError(`${what} ${JSON.stringify(value)}: only directories and s3://bucket/prefix URIs are stores`);
  return resolveUserPath(value, baseDir);
}

/**
 * Where the store lives when none is given: $DRO_STORE (a directory or an s3:// URI), else `.dro/store`
 * under the current directory (a per-checkout store, git-ignored, like .git). Point DRO_STORE at a shared
 * mount or an S3 bucket to share across machines.
 */
export function defaultStoreLocation(): string {
  const value = process.env.DRO_STORE;
  return value ? resolveStoreLocation(value, process.cwd(), '$DRO_STORE') : path.resolve('.dro', 'store');
}

/** The root of a local (directory) store: `root` resolved, else the default location, which must be a directory. */
export function localStoreRoot(root?: string): string {
  const location = root === undefined ? defaultStoreLocation() : root;
  if (URI.test(location) || isS3Uri(location)) {
    throw new InvalidNameError(`${JSON.stringify(location)} is not a directory: a LocalArtifactStore needs a directory (open an s3:// store with openStore)`);
  }
  return resolveUserPath(location);
}

/** The default store as a directory (see defaultStoreLocation); an S3 location is refused by localStoreRoot. */
export function defaultStoreRoot(): string {
  return localStoreRoot();
}

/** The repository's data/ directory: the project's query sets, safety prompts and refusal phrases. */
export function repoDataDir(): string {
  return path.resolve(import.meta.dirname, '..', '..', '..', 'data');
}
