/**
 * Small mutable named records beside the immutable artifacts: the pipeline's cache index (cache key →
 * output refs) and run index (run id → run-record artifact). Each is one JSON file written atomically,
 * so a reader sees the old or the new record, never a torn one.
 *
 * A record lists the artifact digests it refers to. `pin: true` records are gc roots (recorded runs);
 * unpinned ones (cache entries) keep nothing alive and are dropped by gc when their artifacts go.
 *
 * A record file can still be damaged from outside (a copy cut short, an editor, a failing disk). Reading
 * one then throws CorruptRecordError naming the file — a BadInputError, so never retried — and `scan`
 * returns it as a bad entry, so listings report it by path and carry on.
 */
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import path from 'node:path';
import { CorruptRecordError, InvalidNameError } from './errors.ts';
import { isTempName } from './atomic-fs.ts';
import { describeFsError } from './fs-errors.ts';
import type { StoreFiles } from './store-files.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export interface StoredRecord<T = unknown> {
  value: T;
  /** Artifact digests this record refers to. */
  refs: string[];
  /** Pinned records are gc roots. */
  pin: boolean;
  updatedAt: string;
}

/** One entry of `scan`: a readable record, or the path of one that is not and why. */
export type ScannedRecord<T = unknown> =
  | { key: string; file: string; mtimeMs: number; record: StoredRecord<T> }
  | { key: string; file: string; mtimeMs: number; error: CorruptRecordError };

/**
 * The record index as engines and tools use it; RecordIndex (files under records/) and S3RecordIndex
 * (objects under records/ in the bucket, s3-records.ts) implement it with the same names and guarantees:
 * each record is one object written whole, so a reader sees the old or the new record, never a torn one,
 * and two writers of one key both leave a complete record (the last one wins).
 */
export interface RecordStore {
  /** Where the records live (a directory, or an s3:// URI), for messages. */
  readonly dir: string;
  put<T>(namespace: string, key: string, value: T, options?: { refs?: string[]; pin?: boolean }): Promise<void>;
  /** The last word on a run when `put` failed; see RecordIndex.overwriteInPlace. False when the record does not exist. */
  overwriteInPlace<T>(namespace: string, key: string, value: T, options?: { refs?: string[]; pin?: boolean }): Promise<boolean>;
  getRecord<T>(namespace: string, key: string): Promise<StoredRecord<T> | null>;
  get<T>(namespace: string, key: string): Promise<T | null>;
  scan<T>(namespace: string): Promise<ScannedRecord<T>[]>;
  list(namespace: string): Promise<string[]>;
  namespaces(): Promise<string[]>;
  delete(namespace: string, key: string): Promise<void>;
}

/** Reject names that could leave the records directory ("..", "a/b", absolute paths, empty). */
export function assertSafeName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidNameError(`${what} ${JSON.stringify(name)} must be 1-200 of [A-Za-z0-9._-], not starting with "." or "-"`);
  }
}

/** A record's file content (one JSON line). */
export function recordText<T>(value: T, options: { refs?: string[]; pin?: boolean } = {}): string {
  const record: StoredRecord<T> = { value, refs: options.refs ?? [], pin: options.pin ?? false, updatedAt: new Date().toISOString() };
  return `${JSON.stringify(record)}\n`;
}

/** Whether `name` is the file name of a record (`<key>.json` with a valid key); the key, or null. */
export function recordKeyOf(name: string): string | null {
  if (!name.endsWith('.json') || isTempName(name)) return null;
  const key = name.slice(0, -'.json'.length);
  return NAME.test(key) ? key : null;
}

/** Whether `name` is the name of a record file (`<key>.json`). */
export function isRecordFileName(name: string): boolean {
  return name.endsWith('.json') && NAME.test(name.slice(0, -'.json'.length));
}

/** Whether `name` is a valid record namespace or key. */
export function isRecordName(name: string): boolean {
  return NAME.test(name);
}

export function parseRecord<T>(bytes: Uint8Array, file: string): StoredRecord<T> {
  let record: StoredRecord<T>;
  try {
    record = JSON.parse(Buffer.from(bytes).toString('utf8')) as StoredRecord<T>;
  } catch (error) {
    throw new CorruptRecordError(file, (error as Error).message);
  }
  if (typeof record !== 'object' || record === null || !Array.isArray(record.refs) || !('value' in record)) {
    throw new CorruptRecordError(file, 'expected { value, refs, pin, updatedAt }');
  }
  if (!record.refs.every((ref) => typeof ref === 'string' && /^[0-9a-f]{64}$/.test(ref))) {
    throw new CorruptRecordError(file, 'refs: expected sha256 digests');
  }
  return record;
}

export class RecordIndex implements RecordStore {
  constructor(
    readonly dir: string,
    private readonly files: StoreFiles,
  ) {}

  private fileOf(namespace: string, key: string): string {
    assertSafeName(namespace, 'record namespace');
    assertSafeName(key, 'record key');
    const file = path.join(this.dir, namespace, `${key}.json`);
    // Belt and braces: the name check already forbids separators, but never touch a path outside dir.
    if (!file.startsWith(this.dir + path.sep)) throw new InvalidNameError(`record ${namespace}/${key} escapes ${this.dir}`);
    return file;
  }

  async put<T>(namespace: string, key: string, value: T, options: { refs?: string[]; pin?: boolean } = {}): Promise<void> {
    await this.files.write(this.fileOf(namespace, key), recordText(value, options));
  }

  /**
   * Rewrite an existing record in place instead of through a temp file. Only for the last word on a run
   * when the atomic write failed (a full disk has no room for a temp file, but the record's own block is
   * already allocated): not atomic, so a crash mid-write can tear it — which readers report and skip.
   * Returns false when the record does not exist.
   */
  async overwriteInPlace<T>(namespace: string, key: string, value: T, options: { refs?: string[]; pin?: boolean } = {}): Promise<boolean> {
    const file = this.fileOf(namespace, key);
    await this.files.ensureWritable();
    await this.files.assertConfined(path.dirname(file));
    const text = Buffer.from(recordText(value, options));
    let handle;
    try {
      handle = await open(file, constants.O_WRONLY | constants.O_NOFOLLOW);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw describeFsError(error, 'rewrite', file);
    }
    try {
      await handle.write(text, 0, text.length, 0);
      await handle.truncate(text.length);
      await handle.sync();
    } catch (error) {
      throw describeFsError(error, 'rewrite', file);
    } finally {
      await handle.close();
    }
    return true;
  }

  /** The record, or null if there is none; CorruptRecordError (naming the file) if it cannot be parsed. */
  async getRecord<T>(namespace: string, key: string): Promise<StoredRecord<T> | null> {
    const file = this.fileOf(namespace, key);
    const bytes = await this.files.read(file);
    return bytes === null ? null : parseRecord<T>(bytes, file);
  }

  async get<T>(namespace: string, key: string): Promise<T | null> {
    return (await this.getRecord<T>(namespace, key))?.value ?? null;
  }

  /**
   * Every record file in `namespace`, oldest first by last update, each read or reported as bad. Entries
   * that are not regular record files (links, temp files, other names) are not records and are left out.
   */
  async scan<T>(namespace: string): Promise<ScannedRecord<T>[]> {
    assertSafeName(namespace, 'record namespace');
    const entries = await this.files.listIfDirectory(path.join(this.dir, namespace));
    const out: ScannedRecord<T>[] = [];
    for (const entry of entries) {
      const key = entry.type === 'file' ? recordKeyOf(entry.name) : null;
      if (key === null) continue;
      const mtimeMs = (await lstat(entry.file).catch(() => null))?.mtimeMs;
      if (mtimeMs === undefined) continue; // deleted since listed
      try {
        const bytes = await this.files.read(entry.file);
        if (bytes === null) continue;
        out.push({ key, file: entry.file, mtimeMs, record: parseRecord<T>(bytes, entry.file) });
      } catch (error) {
        if (!(error instanceof CorruptRecordError)) throw error;
        out.push({ key, file: entry.file, mtimeMs, error });
      }
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.key < b.key ? -1 : 1));
  }

  /** Keys in `namespace`, oldest first by last update (so the last one is the most recent). */
  async list(namespace: string): Promise<string[]> {
    return (await this.scan(namespace)).map((entry) => entry.key);
  }

  /** Namespaces: real directories with valid names (a link in records/ is not one). */
  async namespaces(): Promise<string[]> {
    const entries = await this.files.listIfDirectory(this.dir);
    return entries.filter((entry) => entry.type === 'dir' && NAME.test(entry.name)).map((entry) => entry.name);
  }

  async delete(namespace: string, key: string): Promise<void> {
    await this.files.remove(this.fileOf(namespace, key));
  }
}
