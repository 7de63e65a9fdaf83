/**
 * Small mutable named records beside the immutable artifacts: the pipeline's cache index (cache key →
 * output refs) and run index (run id → run-record artifact). Each is one JSON file written atomically,
 * so a reader sees the old or the new record, never a torn one.
 *
 * A record lists the artifact digests it refers to. `pin: true` records are gc roots (recorded runs);
 * unpinned ones (cache entries) keep nothing alive and are dropped by gc when their artifacts go.
 */
import { readFile, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidNameError } from './errors.ts';
import { isTempName, writeFileAtomic } from './atomic-fs.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export interface StoredRecord<T = unknown> {
  value: T;
  /** Artifact digests this record refers to. */
  refs: string[];
  /** Pinned records are gc roots. */
  pin: boolean;
  updatedAt: string;
}

/** Reject names that could leave the records directory ("..", "a/b", absolute paths, empty). */
export function assertSafeName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidNameError(`${what} ${JSON.stringify(name)} must be 1-200 of [A-Za-z0-9._-], not starting with "." or "-"`);
  }
}

export class RecordIndex {
  constructor(readonly dir: string) {}

  private fileOf(namespace: string, key: string): string {
    assertSafeName(namespace, 'record namespace');
    assertSafeName(key, 'record key');
    const file = path.join(this.dir, namespace, `${key}.json`);
    // Belt and braces: the name check already forbids separators, but never touch a path outside dir.
    if (!file.startsWith(this.dir + path.sep)) throw new InvalidNameError(`record ${namespace}/${key} escapes ${this.dir}`);
    return file;
  }

  async put<T>(namespace: string, key: string, value: T, options: { refs?: string[]; pin?: boolean } = {}): Promise<void> {
    const record: StoredRecord<T> = { value, refs: options.refs ?? [], pin: options.pin ?? false, updatedAt: new Date().toISOString() };
    await writeFileAtomic(this.fileOf(namespace, key), `${JSON.stringify(record)}\n`);
  }

  async getRecord<T>(namespace: string, key: string): Promise<StoredRecord<T> | null> {
    let text: string;
    try {
      text = await readFile(this.fileOf(namespace, key), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    return JSON.parse(text) as StoredRecord<T>;
  }

  async get<T>(namespace: string, key: string): Promise<T | null> {
    return (await this.getRecord<T>(namespace, key))?.value ?? null;
  }

  /** Keys in `namespace`, oldest first by last update (so the last one is the most recent). */
  async list(namespace: string): Promise<string[]> {
    assertSafeName(namespace, 'record namespace');
    const dir = path.join(this.dir, namespace);
    const names = await readdir(dir).catch(() => [] as string[]);
    const entries = await Promise.all(
      names
        .filter((name) => name.endsWith('.json') && !isTempName(name))
        .map(async (name) => ({ key: name.slice(0, -'.json'.length), mtime: (await stat(path.join(dir, name))).mtimeMs })),
    );
    return entries.sort((a, b) => a.mtime - b.mtime || (a.key < b.key ? -1 : 1)).map((e) => e.key);
  }

  async namespaces(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((name) => NAME.test(name)).sort();
  }

  async delete(namespace: string, key: string): Promise<void> {
    await unlink(this.fileOf(namespace, key)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}
