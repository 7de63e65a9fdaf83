/**
 * The store marker on S3: the same `dro-store.json` (format + version) as a directory store
 * (store-marker.ts), at the top of the prefix. Writers and gc require it, so a mistyped `s3://` location
 * (another team's prefix, a bucket's top level full of other data) is refused before anything is written
 * or deleted:
 *
 *   empty        nothing under the prefix       writers create the marker (If-None-Match: *, so two
 *                                               writers starting a new store race safely)
 *   store        marker of this format/version  read, written, collected
 *   foreign      objects but no marker          refused by writers, gc and verify
 *   unsupported  marker unreadable, of another  refused by writers and gc
 *                format or a newer version
 *
 * There is no "legacy" kind: S3 stores were created with markers from the start. A bucket that does not
 * exist is a StoreAccessError (s3-objects.ts), not an empty store: dro never creates buckets.
 */
import { NotAStoreError } from './errors.ts';
import { STORE_MARKER, notAStoreError, parseStoreMarker, storeMarkerText, type StoreKind } from './store-marker.ts';
import type { S3Objects } from './s3-objects.ts';

/** What the prefix is (see the table above). Reads only. */
export async function inspectS3Store(objects: S3Objects): Promise<StoreKind> {
  const marker = await objects.get(STORE_MARKER);
  if (marker !== null) return parseStoreMarker(marker.toString('utf8'), objects.uri(STORE_MARKER));
  const present = await objects.first('', 3);
  if (present.length === 0) return { kind: 'empty' };
  // Another writer created the store between our two requests: read its marker.
  if (present.some((entry) => entry.rel === STORE_MARKER)) {
    const written = await objects.get(STORE_MARKER);
    if (written !== null) return parseStoreMarker(written.toString('utf8'), objects.uri(STORE_MARKER));
  }
  return { kind: 'foreign', examples: present.map((entry) => objects.uri(entry.rel)) };
}

/** The error for a prefix that may not be written or collected, saying what it is and what to do. */
export function s3NotAStoreError(uri: string, found: StoreKind, action: string): NotAStoreError {
  switch (found.kind) {
    case 'empty':
    case 'missing':
      return new NotAStoreError(uri, found.kind, `${uri} holds nothing, so there is no DRO store to ${action}`);
    case 'foreign':
      return new NotAStoreError(
        uri,
        'foreign',
        `${uri} is not a DRO store (no ${STORE_MARKER}; it holds ${found.examples.join(', ')}), so dro will not ${action} it. ` +
          'Check --store / DRO_STORE; a new store needs an empty prefix.',
      );
    default:
      return notAStoreError(uri, found, action);
  }
}

/** Before the first write: accept a marked store, mark an empty prefix, refuse everything else. */
export async function prepareS3StoreForWriting(objects: S3Objects): Promise<void> {
  const found = await inspectS3Store(objects);
  if (found.kind === 'store') return;
  if (found.kind === 'empty') {
    // Only create: a writer that loses the race reads the winner's marker (which must then be valid).
    if ((await objects.put(STORE_MARKER, storeMarkerText(), { ifAbsent: true, contentType: 'application/json' })) === 'written') return;
    const again = await inspectS3Store(objects);
    if (again.kind === 'store') return;
    throw s3NotAStoreError(objects.location.uri, again, 'write to');
  }
  throw s3NotAStoreError(objects.location.uri, found, 'write to');
}

/** For gc and verify: only a marked store of this version. */
export async function assertMarkedS3Store(objects: S3Objects, action: string): Promise<void> {
  const found = await inspectS3Store(objects);
  if (found.kind !== 'store') throw s3NotAStoreError(objects.location.uri, found, action);
}
