/**
 * gc and verify on an S3 store, with the policy of the directory store (gc.ts, verify.ts):
 *
 * - Only a marked store is collected or verified (s3-marker.ts); only keys with the names the store gives
 *   are candidates — everything else under the prefix is listed in `skipped` and left alone.
 * - gc keeps what pinned records reach (markLive, shared with gc.ts), everything written within the grace
 *   period (by the object's Last-Modified: putBytes re-uploads the bytes, so an artifact being written now
 *   is young), and — while any record cannot be parsed — every artifact. It deletes the manifest before
 *   the bytes (the manifest is the commit point), then orphan halves of interrupted writes and unpinned
 *   records left dangling. There are no temp files on S3 to clear: a PUT is atomic.
 * - verify re-hashes every object (streamed), parses every manifest and record, and with `remove` deletes
 *   the bad ones so the next run recomputes them.
 *
 * Cost: one listing of the prefix (1,000 keys per request) plus, for verify, one read of every object.
 */
import { CorruptRecordError } from './errors.ts';
import { isRecordName, recordKeyOf } from './records.ts';
import { STORE_MARKER } from './store-marker.ts';
import { emptyGcReport, markLive, sweepDanglingRecords, type GcOptions, type GcReport } from './gc.ts';
import type { VerifyOptions, VerifyReport } from './verify.ts';
import type { S3Entry } from './s3-objects.ts';
import { assertMarkedS3Store } from './s3-marker.ts';
import type { S3ArtifactStore } from './s3-store.ts';
import { parseManifest } from './typed-store.ts';

const OBJECT = /^objects\/([0-9a-f]{2})\/([0-9a-f]{64})$/;
const MANIFEST = /^manifests\/([0-9a-f]{2})\/([0-9a-f]{64})\.json$/;

interface Listing {
  objects: Map<string, S3Entry>;
  manifests: Map<string, S3Entry>;
  /** URIs of keys the store did not make. */
  skipped: string[];
}

/** One pass over the prefix, sorting keys into objects, manifests, records and everything else. */
async function listStore(store: S3ArtifactStore): Promise<Listing> {
  const listing: Listing = { objects: new Map(), manifests: new Map(), skipped: [] };
  for await (const entry of store.objects.list('')) {
    const object = OBJECT.exec(entry.rel);
    const manifest = MANIFEST.exec(entry.rel);
    const parts = entry.rel.split('/');
    if (object && object[2]!.startsWith(object[1]!)) listing.objects.set(object[2]!, entry);
    else if (manifest && manifest[2]!.startsWith(manifest[1]!)) listing.manifests.set(manifest[2]!, entry);
    else if (entry.rel === STORE_MARKER) continue;
    else if (parts.length === 3 && parts[0] === 'records' && isRecordName(parts[1]!) && recordKeyOf(parts[2]!) !== null) continue;
    else listing.skipped.push(store.objects.uri(entry.rel));
  }
  return listing;
}

/** Digests whose object and manifest are both present. */
export async function listS3Committed(store: S3ArtifactStore): Promise<string[]> {
  const { objects, manifests } = await listStore(store);
  return [...manifests.keys()].filter((digest) => objects.has(digest)).sort();
}

export async function collectS3Garbage(store: S3ArtifactStore, options: GcOptions = {}): Promise<GcReport> {
  await assertMarkedS3Store(store.objects, 'garbage-collect');
  const dryRun = options.dryRun ?? false;
  const cutoff = Date.now() - (options.graceMs ?? 15 * 60_000);
  const report = emptyGcReport(dryRun);
  const remove = async (rel: string) => {
    if (!dryRun) await store.objects.delete(rel);
  };

  const { live, unpinned, badRecords } = await markLive(store);
  report.badRecords.push(...badRecords);
  const { objects, manifests, skipped } = await listStore(store);
  report.skipped.push(...skipped);
  const committed = new Set([...manifests.keys()].filter((digest) => objects.has(digest)));
  const gone = new Set<string>();
  for (const digest of [...committed].sort()) {
    const object = objects.get(digest)!;
    if (live.has(digest) || report.badRecords.length > 0 || object.mtimeMs > cutoff) {
      report.kept++;
      continue;
    }
    // Only what the store made: a manifest that does not parse or names another artifact is not ours to judge.
    if (!(await store.manifest(digest).catch(() => null))) {
      report.skipped.push(store.objects.uri(store.manifestRel(digest)));
      report.kept++;
      continue;
    }
    await remove(store.manifestRel(digest));
    await remove(store.objectRel(digest));
    report.deleted.push(digest);
    report.bytesFreed += object.size;
    gone.add(digest);
  }
  // Halves of interrupted writes: bytes whose manifest never landed (or a manifest whose bytes are gone).
  for (const [digest, entry] of [...objects, ...manifests]) {
    if (!committed.has(digest) && entry.mtimeMs <= cutoff) {
      await remove(entry.rel);
      report.strayFilesDeleted++;
    }
  }
  return sweepDanglingRecords(store, unpinned, (digest) => gone.has(digest) || !committed.has(digest), report);
}

export async function verifyS3Store(store: S3ArtifactStore, options: VerifyOptions = {}): Promise<VerifyReport> {
  await assertMarkedS3Store(store.objects, 'verify');
  const report: VerifyReport = { root: store.root, layout: 'store', adopted: false, objects: 0, bytes: 0, badObjects: [], badManifests: [], badRecords: [], removed: [], skipped: [] };
  const { objects, manifests, skipped } = await listStore(store);
  report.skipped.push(...skipped);
  for (const [digest, entry] of objects) {
    const file = store.objects.uri(entry.rel);
    report.objects++;
    // A request that fails (network, permissions) propagates: only bytes that were read and differ are bad.
    const found = await store.objects.sha256(entry.rel);
    if (found === null) continue; // deleted while we looked
    report.bytes += found.size;
    if (found.sha256 !== digest) report.badObjects.push({ digest, file, problem: `hashes to ${found.sha256}` });
  }
  for (const [digest, entry] of manifests) {
    const file = store.objects.uri(entry.rel);
    const bytes = await store.objects.get(entry.rel);
    try {
      if (bytes) parseManifest(bytes, file, digest);
    } catch (error) {
      if (!(error instanceof CorruptRecordError)) throw error;
      report.badManifests.push(file);
    }
  }
  for (const namespace of await store.records.namespaces()) {
    for (const scanned of await store.records.scan(namespace)) if ('error' in scanned) report.badRecords.push(scanned.file);
  }
  if (options.remove) {
    const prefix = `${store.root}/`;
    const relOf = (uri: string) => uri.slice(prefix.length);
    for (const bad of report.badObjects) {
      for (const rel of [store.manifestRel(bad.digest), store.objectRel(bad.digest)]) if (await store.objects.delete(rel)) report.removed.push(store.objects.uri(rel));
    }
    for (const uri of [...report.badManifests, ...report.badRecords]) {
      if (!report.removed.includes(uri) && (await store.objects.delete(relOf(uri)))) report.removed.push(uri);
    }
  }
  report.skipped.sort();
  return report;
}
