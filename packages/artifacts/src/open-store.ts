/**
 * The one place a store is chosen from what the user wrote (`--store`, `$DRO_STORE`, a config's `store`):
 * an `s3://bucket/prefix` URI opens the S3 store (endpoint and credentials from the AWS environment), a
 * directory the filesystem store. Engines, the CLI and Temporal workers all open stores through here, so
 * every machine of a cluster reads the same location the same way.
 */
import type { IndexedArtifactStore } from './types.ts';
import { defaultStoreLocation, resolveStoreLocation } from './paths.ts';
import { isS3Uri } from './s3-location.ts';
import { LocalArtifactStore } from './store.ts';
import { S3ArtifactStore } from './s3-store.ts';

/** The store at `location` (default: $DRO_STORE, else .dro/store); a relative directory resolves against the working directory. */
export function openStore(location?: string): IndexedArtifactStore {
  const resolved = location === undefined ? defaultStoreLocation() : resolveStoreLocation(location);
  return isS3Uri(resolved) ? new S3ArtifactStore({ uri: resolved }) : new LocalArtifactStore({ root: resolved });
}
