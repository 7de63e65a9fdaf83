/**
 * The record index of an S3 store: one object per record at records/<namespace>/<key>.json, the same
 * names and JSON as the filesystem store (records.ts). An S3 PUT replaces an object whole, so a reader
 * sees the old or the new record, never a torn one, and two writers of one key (two workers finishing
 * the same node; equal cache entries) both succeed and leave a complete record — the last one wins, as a
 * rename does on a filesystem. No record is ever read-modified-written, so no update can be lost: the
 * cache index and the run index are one object per cache key and per run id, not a shared file.
 *
 * A record damaged from outside (an object overwritten by hand, a tool that wrote half a file) is
 * reported and skipped exactly as on disk: CorruptRecordError naming its s3:// URI.
 */
import { CorruptRecordError } from './errors.ts';
import { assertSafeName, isRecordName, parseRecord, recordKeyOf, recordText, type RecordStore, type ScannedRecord, type StoredRecord } from './records.ts';
import type { S3Objects } from './s3-objects.ts';

export class S3RecordIndex implements RecordStore {
  readonly dir: string;

  constructor(
    private readonly objects: S3Objects,
    /** Runs before every write: the store must be a marked DRO store (or a new one). */
    private readonly ensureWritable: () => Promise<void>,
  ) {
    this.dir = objects.uri('records');
  }

  private relOf(namespace: string, key: string): string {
    assertSafeName(namespace, 'record namespace');
    assertSafeName(key, 'record key');
    return `records/${namespace}/${key}.json`;
  }

  async put<T>(namespace: string, key: string, value: T, options: { refs?: string[]; pin?: boolean } = {}): Promise<void> {
    const rel = this.relOf(namespace, key);
    await this.ensureWritable();
    await this.objects.put(rel, recordText(value, options), { contentType: 'application/json' });
  }

  /** On S3 a PUT is already a whole-object replacement; this is put, for an existing record only. */
  async overwriteInPlace<T>(namespace: string, key: string, value: T, options: { refs?: string[]; pin?: boolean } = {}): Promise<boolean> {
    if (!(await this.objects.head(this.relOf(namespace, key)))) return false;
    await this.put(namespace, key, value, options);
    return true;
  }

  async getRecord<T>(namespace: string, key: string): Promise<StoredRecord<T> | null> {
    const rel = this.relOf(namespace, key);
    const bytes = await this.objects.get(rel);
    return bytes === null ? null : parseRecord<T>(bytes, this.objects.uri(rel));
  }

  async get<T>(namespace: string, key: string): Promise<T | null> {
    return (await this.getRecord<T>(namespace, key))?.value ?? null;
  }

  /** Every record in `namespace`, oldest first by last write, each read or reported as bad (by URI). */
  async scan<T>(namespace: string): Promise<ScannedRecord<T>[]> {
    assertSafeName(namespace, 'record namespace');
    const out: ScannedRecord<T>[] = [];
    for await (const entry of this.objects.list(`records/${namespace}/`)) {
      const name = entry.rel.slice(`records/${namespace}/`.length);
      const key = name.includes('/') ? null : recordKeyOf(name);
      if (key === null) continue;
      const file = this.objects.uri(entry.rel);
      const bytes = await this.objects.get(entry.rel);
      if (bytes === null) continue; // deleted since listed
      try {
        out.push({ key, file, mtimeMs: entry.mtimeMs, record: parseRecord<T>(bytes, file) });
      } catch (error) {
        if (!(error instanceof CorruptRecordError)) throw error;
        out.push({ key, file, mtimeMs: entry.mtimeMs, error });
      }
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.key < b.key ? -1 : 1));
  }

  async list(namespace: string): Promise<string[]> {
    return (await this.scan(namespace)).map((entry) => entry.key);
  }

  /** Namespaces that hold at least one object, with valid names. */
  async namespaces(): Promise<string[]> {
    const found = new Set<string>();
    for await (const entry of this.objects.list('records/')) {
      const parts = entry.rel.split('/');
      if (parts.length === 3 && isRecordName(parts[1]!)) found.add(parts[1]!);
    }
    return [...found].sort();
  }

  async delete(namespace: string, key: string): Promise<void> {
    await this.objects.delete(this.relOf(namespace, key));
  }
}
