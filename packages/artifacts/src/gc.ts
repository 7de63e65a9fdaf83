/**
 * Garbage collection: keep every artifact a pinned record (a recorded run) refers to, plus everything
 * those artifacts were made from (manifest inputs, transitively); delete the rest, along with orphan
 * bytes from interrupted writes, stale temp files, and unpinned records (cache entries) left dangling.
 *
 * A grace period protects files written in the last `graceMs`: a run in flight has written outputs its
 * run record does not pin yet.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { isTempName } from './atomic-fs.ts';
import type { LocalArtifactStore } from './store.ts';

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
  /** Orphan objects/manifests (one half of an interrupted write) and stale temp files removed. */
  strayFilesDeleted: number;
}

const DIGEST_FILE = /^[0-9a-f]{64}(\.json)?$/;

async function listFiles(dir: string): Promise<{ file: string; name: string }[]> {
  const out: { file: string; name: string }[] = [];
  for (const shard of await readdir(dir).catch(() => [] as string[])) {
    const shardDir = path.join(dir, shard);
    for (const name of await readdir(shardDir).catch(() => [] as string[])) out.push({ file: path.join(shardDir, name), name });
  }
  return out;
}

function digestOf(name: string): string {
  return name.endsWith('.json') ? name.slice(0, -5) : name;
}

export async function listCommitted(store: LocalArtifactStore): Promise<string[]> {
  const objects = new Set((await listFiles(path.join(store.root, 'objects'))).map((f) => f.name).filter((n) => DIGEST_FILE.test(n)));
  const manifests = (await listFiles(path.join(store.root, 'manifests'))).map((f) => f.name).filter((n) => DIGEST_FILE.test(n));
  return manifests.map(digestOf).filter((digest) => objects.has(digest)).sort();
}

export async function collectGarbage(store: LocalArtifactStore, options: GcOptions = {}): Promise<GcReport> {
  const dryRun = options.dryRun ?? false;
  const cutoff = Date.now() - (options.graceMs ?? 15 * 60_000);
  const report: GcReport = { dryRun, kept: 0, deleted: [], bytesFreed: 0, recordsDeleted: [], strayFilesDeleted: 0 };
  const remove = async (file: string) => {
    if (!dryRun) await unlink(file).catch(() => undefined);
  };
  const isYoung = async (file: string) => ((await stat(file).catch(() => null))?.mtimeMs ?? 0) > cutoff;

  // Roots: refs of pinned records; then the inputs their manifests name, transitively.
  const live = new Set<string>();
  const pending: string[] = [];
  const recordRefs: { id: string; namespace: string; key: string; refs: string[] }[] = [];
  for (const namespace of await store.records.namespaces()) {
    for (const key of await store.records.list(namespace)) {
      const record = await store.records.getRecord(namespace, key);
      if (!record) continue;
      if (record.pin) pending.push(...record.refs);
      else recordRefs.push({ id: `${namespace}/${key}`, namespace, key, refs: record.refs });
    }
  }
  while (pending.length > 0) {
    const digest = pending.pop()!;
    if (live.has(digest)) continue;
    live.add(digest);
    const manifest = await store.manifest(digest).catch(() => null);
    if (manifest) pending.push(...Object.values(manifest.inputs));
  }

  const objects = await listFiles(path.join(store.root, 'objects'));
  const manifests = await listFiles(path.join(store.root, 'manifests'));
  const committed = new Set(await listCommitted(store));
  const gone = new Set<string>();
  for (const digest of committed) {
    if (live.has(digest) || (await isYoung(store.objectPath(digest)))) {
      report.kept++;
      continue;
    }
    const { size } = await stat(store.objectPath(digest));
    // Manifest first: it is the commit point, so a crash mid-gc leaves an orphan, never a manifest without bytes.
    await remove(store.manifestPath(digest));
    await remove(store.objectPath(digest));
    report.deleted.push(digest);
    report.bytesFreed += size;
    gone.add(digest);
  }
  for (const { file, name } of [...objects, ...manifests]) {
    const isStray = isTempName(name) || !DIGEST_FILE.test(name) || !committed.has(digestOf(name));
    if (isStray && !(await isYoung(file))) {
      await remove(file);
      report.strayFilesDeleted++;
    }
  }
  for (const namespace of await store.records.namespaces()) {
    for (const name of await readdir(path.join(store.records.dir, namespace)).catch(() => [] as string[])) {
      const file = path.join(store.records.dir, namespace, name);
      if (isTempName(name) && !(await isYoung(file))) {
        await remove(file);
        report.strayFilesDeleted++;
      }
    }
  }
  for (const { id, namespace, key, refs } of recordRefs) {
    const dangling = refs.some((digest) => gone.has(digest) || !committed.has(digest));
    if (dangling) {
      if (!dryRun) await store.records.delete(namespace, key);
      report.recordsDeleted.push(id);
    }
  }
  report.deleted.sort();
  return report;
}
