/**
 * Garbage collection: keep every artifact a pinned record (a recorded run) refers to, plus everything
 * those artifacts were made from (manifest inputs, transitively); delete the rest, along with orphan
 * bytes from interrupted writes, stale temp files, report pages of deleted reports, and unpinned records
 * (cache entries) left dangling.
 *
 * gc deletes only what the store itself made, in a directory marked as a DRO store (store-marker.ts):
 * - a directory without the marker (a mistyped --store, a git repository, a store from before markers)
 *   is refused with NotAStoreError before anything is read for deletion;
 * - only regular files with the names the store gives are candidates: `<digest>` in the shard of its
 *   first two hex digits, `<digest>.json`, `.tmp-<pid>-<hex>-…` temp files, `reports/<digest>.html`;
 *   an artifact is deleted only when its manifest parses and names it. Everything else — links (never
 *   followed: a linked shard or namespace is not descended into), foreign names, unreadable manifests —
 *   is left alone and listed in `skipped`;
 * - while any record cannot be read — one that does not parse, or a records directory, namespace or
 *   record name that is a link or not the file type the store makes (gc follows none of them) — no
 *   artifact is deleted: the unreadable record might be the run that pins them (it is listed in
 *   `badRecords`; delete or repair it, `dro verify --remove` clears a torn one);
 * - one half of an artifact (object or manifest) is removed as a stray only when the other half is truly
 *   absent, not when it sits behind a link or a non-directory gc refuses to read: a linked `objects/` or
 *   `manifests/` (or shard) hides the other half, it does not prove it missing.
 *
 * A grace period protects files written in the last `graceMs`: a run in flight has written outputs its
 * run record does not pin yet.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { isOwnTempName } from './atomic-fs.ts';
import { isRecordFileName } from './records.ts';
import { assertMarkedStore } from './store-marker.ts';
import type { StoreEntry } from './store-files.ts';
import type { LocalArtifactStore } from './store.ts';
import type { IndexedArtifactStore } from './types.ts';

export interface GcOptions {
  /** Report what would be deleted without deleting (default false). */
  dryRun?: boolean;
  /** Leave files younger than this alone (default 15 minutes). */
  graceMs?: number;
}

export interface GcReport {
  dryRun: boolean;
  /** Committed artifacts kept (reachable from pinned records, or within the grace period). */
  kept: number;
  /** Digests of committed artifacts deleted. */
  deleted: string[];
  bytesFreed: number;
  /** "namespace/key" of unpinned records dropped because an artifact they refer to is gone. */
  recordsDeleted: string[];
  /** Orphan objects/manifests (one half of an interrupted write), stale temp files and orphan report pages removed. */
  strayFilesDeleted: number;
  /** Paths gc did not create and left alone: links, other file types, foreign names, unreadable manifests. */
  skipped: string[];
  /** Record entries that cannot be read (torn, or a link / non-regular file where records live); while there are any, no artifact is deleted. */
  badRecords: string[];
}

const DIGEST = /^[0-9a-f]{64}$/;
const SHARD = /^[0-9a-f]{2}$/;
/** Report pages, and the temp names the report writer used before it wrote through the store. */
const REPORT_FILE = /^([0-9a-f]{64})\.html(\.\d+\.tmp)?$/;

/**
 * Whether `file` (below `root`) is provably not there: some directory on the way, or the file itself, does
 * not exist. A link or a non-directory on the way, or anything at the name, means it may be there.
 */
async function isTrulyAbsent(root: string, file: string): Promise<boolean> {
  const parts = path.relative(root, file).split(path.sep);
  for (let i = 1; i <= parts.length; i++) {
    let info;
    try {
      info = await lstat(path.join(root, ...parts.slice(0, i)));
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT';
    }
    if (i === parts.length || !info.isDirectory()) return false;
  }
  return false;
}

export interface ShardFile {
  file: string;
  digest: string | null;
  temp: boolean;
}

/** The digest-named and temp files of objects/ or manifests/; every other entry goes to `skipped`. */
export async function listShardFiles(store: LocalArtifactStore, top: 'objects' | 'manifests', skipped: string[]): Promise<ShardFile[]> {
  const dir = path.join(store.root, top);
  const info = await lstat(dir).catch(() => null);
  if (!info) return [];
  if (!info.isDirectory()) {
    skipped.push(dir);
    return [];
  }
  const suffix = top === 'manifests' ? '.json' : '';
  const out: ShardFile[] = [];
  for (const shard of await store.files.list(dir)) {
    if (shard.type !== 'dir' || !SHARD.test(shard.name)) {
      skipped.push(shard.file);
      continue;
    }
    for (const entry of await store.files.list(shard.file)) {
      const base = entry.name.endsWith(suffix) ? entry.name.slice(0, entry.name.length - suffix.length) : '';
      if (entry.type === 'file' && isOwnTempName(entry.name)) out.push({ file: entry.file, digest: null, temp: true });
      else if (entry.type === 'file' && DIGEST.test(base) && base.startsWith(shard.name)) out.push({ file: entry.file, digest: base, temp: false });
      else skipped.push(entry.file);
    }
  }
  return out;
}

/** Digests whose object and manifest are both present as regular files with store names. */
export async function listCommitted(store: LocalArtifactStore): Promise<string[]> {
  const ignored: string[] = [];
  const objects = new Set((await listShardFiles(store, 'objects', ignored)).map((f) => f.digest).filter((d) => d !== null));
  const manifests = (await listShardFiles(store, 'manifests', ignored)).map((f) => f.digest).filter((d) => d !== null);
  return manifests.filter((digest) => objects.has(digest)).sort();
}

/** An unpinned record (a cache entry) and the artifacts it refers to. */
export interface UnpinnedRecord {
  id: string;
  namespace: string;
  key: string;
  refs: string[];
}

/** What the records keep alive: pinned refs and, transitively, the inputs their manifests name. */
export interface LiveSet {
  live: Set<string>;
  /** Unpinned records, dropped by gc when an artifact they refer to is gone. */
  unpinned: UnpinnedRecord[];
  /** Records that cannot be parsed (by path or URI); while there are any, gc deletes no artifact. */
  badRecords: string[];
}

/** The mark phase of gc, the same for every store: scan every record, follow pinned refs through manifests. */
export async function markLive(store: Pick<IndexedArtifactStore, 'records' | 'manifest'>): Promise<LiveSet> {
  const live = new Set<string>();
  const pending: string[] = [];
  const unpinned: UnpinnedRecord[] = [];
  const badRecords: string[] = [];
  for (const namespace of await store.records.namespaces()) {
    for (const scanned of await store.records.scan(namespace)) {
      if ('error' in scanned) badRecords.push(scanned.file);
      else if (scanned.record.pin) pending.push(...scanned.record.refs);
      else unpinned.push({ id: `${namespace}/${scanned.key}`, namespace, key: scanned.key, refs: scanned.record.refs });
    }
  }
  while (pending.length > 0) {
    const digest = pending.pop()!;
    if (live.has(digest)) continue;
    live.add(digest);
    const manifest = await store.manifest(digest).catch(() => null);
    if (manifest) pending.push(...Object.values(manifest.inputs));
  }
  return { live, unpinned, badRecords };
}

/**
 * The sweep's last step, the same for every store: drop each unpinned record (a cache entry) that names an
 * artifact `isMissing` says is gone, then sort the report. While any record is unreadable nothing is
 * dropped (gc cannot tell what that record pins).
 */
export async function sweepDanglingRecords(
  store: Pick<IndexedArtifactStore, 'records'>,
  unpinned: readonly UnpinnedRecord[],
  isMissing: (digest: string) => boolean | Promise<boolean>,
  report: GcReport,
): Promise<GcReport> {
  for (const { id, namespace, key, refs } of unpinned) {
    let dangling = false;
    for (const digest of refs) if (!dangling && (await isMissing(digest))) dangling = true;
    if (dangling && report.badRecords.length === 0) {
      if (!report.dryRun) await store.records.delete(namespace, key);
      report.recordsDeleted.push(id);
    }
  }
  report.deleted.sort();
  report.skipped.sort();
  return report;
}

export function emptyGcReport(dryRun: boolean): GcReport {
  return { dryRun, kept: 0, deleted: [], bytesFreed: 0, recordsDeleted: [], strayFilesDeleted: 0, skipped: [], badRecords: [] };
}

export async function collectGarbage(store: LocalArtifactStore, options: GcOptions = {}): Promise<GcReport> {
  await assertMarkedStore(store.root, 'garbage-collect');
  const dryRun = options.dryRun ?? false;
  const cutoff = Date.now() - (options.graceMs ?? 15 * 60_000);
  const report = emptyGcReport(dryRun);
  const remove = async (file: string) => {
    if (!dryRun) await store.files.remove(file);
  };
  const isYoung = async (file: string) => ((await lstat(file).catch(() => null))?.mtimeMs ?? 0) > cutoff;

  // Roots: refs of pinned records; then the inputs their manifests name, transitively.
  const { live, unpinned: recordRefs, badRecords } = await markLive(store);
  report.badRecords.push(...badRecords);
  const recordTemps: StoreEntry[] = [];
  const reportsInfo = await lstat(path.join(store.root, 'reports')).catch(() => null);
  if (reportsInfo && !reportsInfo.isDirectory()) report.skipped.push(path.join(store.root, 'reports'));
  // Records are the roots: an entry where records live that gc cannot read (it follows no link) may hold
  // pinning records, so it counts as an unreadable record, like a torn one.
  const recordsInfo = await lstat(store.records.dir).catch(() => null);
  if (recordsInfo && !recordsInfo.isDirectory()) {
    report.badRecords.push(store.records.dir);
    report.skipped.push(store.records.dir);
  }
  for (const entry of await store.files.listIfDirectory(store.records.dir)) {
    if (entry.type === 'link') report.badRecords.push(entry.file);
    if (entry.type !== 'dir') report.skipped.push(entry.file);
  }
  for (const namespace of await store.records.namespaces()) {
    for (const entry of await store.files.list(path.join(store.records.dir, namespace))) {
      if (entry.type === 'file' && isOwnTempName(entry.name)) recordTemps.push(entry);
      else if (entry.type !== 'file' || !entry.name.endsWith('.json')) report.skipped.push(entry.file);
      if (entry.type !== 'file' && isRecordFileName(entry.name)) report.badRecords.push(entry.file);
    }
  }

  const objects = await listShardFiles(store, 'objects', report.skipped);
  const manifests = await listShardFiles(store, 'manifests', report.skipped);
  const objectDigests = new Set(objects.map((f) => f.digest).filter((d) => d !== null));
  const committed = new Set(manifests.map((f) => f.digest).filter((d): d is string => d !== null && objectDigests.has(d)));
  const gone = new Set<string>();
  for (const digest of [...committed].sort()) {
    if (live.has(digest) || report.badRecords.length > 0 || (await isYoung(store.objectPath(digest)))) {
      report.kept++;
      continue;
    }
    // Only what the store made: a manifest that does not parse or names another artifact is not ours to judge.
    if (!(await store.manifest(digest).catch(() => null))) {
      report.skipped.push(store.manifestPath(digest));
      report.kept++;
      continue;
    }
    const size = (await lstat(store.objectPath(digest)).catch(() => null))?.size ?? 0;
    // Manifest first: it is the commit point, so a crash mid-gc leaves an orphan, never a manifest without bytes.
    await remove(store.manifestPath(digest));
    await remove(store.objectPath(digest));
    report.deleted.push(digest);
    report.bytesFreed += size;
    gone.add(digest);
  }
  // One half of an artifact whose other half gc cannot see (behind a link, a non-directory) is not a stray.
  const otherHalfAbsent = (digest: string, top: 'objects' | 'manifests') =>
    isTrulyAbsent(store.root, top === 'objects' ? store.manifestPath(digest) : store.objectPath(digest));
  for (const { file, digest, temp } of [...objects, ...manifests]) {
    const top = file.startsWith(path.join(store.root, 'objects') + path.sep) ? 'objects' : 'manifests';
    const isStray = temp || (digest !== null && !committed.has(digest) && (await otherHalfAbsent(digest, top)));
    if (isStray && !(await isYoung(file))) {
      await remove(file);
      report.strayFilesDeleted++;
    }
  }
  for (const { file } of recordTemps) {
    if (!(await isYoung(file))) {
      await remove(file);
      report.strayFilesDeleted++;
    }
  }
  // Report pages are derived from report artifacts: one whose artifact is gone (or a leftover temp) goes too.
  for (const entry of await store.files.listIfDirectory(path.join(store.root, 'reports'))) {
    const match = REPORT_FILE.exec(entry.name);
    const orphan = entry.type === 'file' && ((match && (match[2] !== undefined || gone.has(match[1]!) || !committed.has(match[1]!))) || isOwnTempName(entry.name));
    if (orphan && !(await isYoung(entry.file))) {
      await remove(entry.file);
      report.strayFilesDeleted++;
    } else if (!orphan && !(entry.type === 'file' && match)) {
      report.skipped.push(entry.file);
    }
  }
  // A cache entry dangles when an artifact it names is gone — not when gc merely cannot see it.
  const isMissing = async (digest: string) =>
    gone.has(digest) || (!committed.has(digest) && ((await isTrulyAbsent(store.root, store.objectPath(digest))) || (await isTrulyAbsent(store.root, store.manifestPath(digest)))));
  return sweepDanglingRecords(store, recordRefs, isMissing, report);
}
