/**
 * Every file access of the store below its root goes through here, so three rules hold everywhere:
 *
 * - Confinement: nothing inside the store is followed out of the root. A directory on the way to a file
 *   must be a real directory (its realpath is where it should be), and files are opened with O_NOFOLLOW
 *   and must be regular files — a symlinked shard, record namespace or report, or a FIFO planted where an
 *   object belongs, is refused (UnsafeStoreEntryError), never read, written through or deleted through.
 *   (The root itself may be a link, e.g. DRO_STORE on a mount: that is the user's choice.)
 * - Honest errors: failures name the path and the real errno cause (fs-errors.ts).
 * - Writes only to a DRO store: the first write checks the root's marker (store-marker.ts) and creates it
 *   for a new store; a directory that is not a DRO store is refused before anything is written.
 */
import { createHash } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { lstat, open, readdir, realpath, unlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidNameError, UnsafeStoreEntryError } from './errors.ts';
import { describeFsError, fsErrorCode } from './fs-errors.ts';
import { writeFileAtomic } from './atomic-fs.ts';
import { prepareStoreForWriting } from './store-marker.ts';

/** O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export type EntryType = 'file' | 'dir' | 'link' | 'other';

export interface StoreEntry {
  name: string;
  file: string;
  type: EntryType;
}

function entryType(dirent: Dirent): EntryType {
  if (dirent.isSymbolicLink()) return 'link';
  if (dirent.isFile()) return 'file';
  if (dirent.isDirectory()) return 'dir';
  return 'other';
}

export class StoreFiles {
  private realRootMemo: Promise<string> | null = null;
  private writableMemo: Promise<void> | null = null;

  constructor(readonly root: string) {}

  /** The root with links resolved; not memoised while the root does not exist yet. */
  private realRoot(): Promise<string> {
    if (!this.realRootMemo) {
      this.realRootMemo = realpath(this.root).catch((error: unknown) => {
        this.realRootMemo = null;
        throw describeFsError(error, 'resolve store root', this.root);
      });
    }
    return this.realRootMemo;
  }

  /**
   * Refuse `dir` unless it is the root or lies under it through real directories only. A missing
   * directory passes (there is nothing to follow; the caller's open or mkdir reports it).
   */
  async assertConfined(dir: string): Promise<void> {
    const rel = path.relative(this.root, dir);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new InvalidNameError(`${dir} is outside the store ${this.root}`);
    let real: string;
    try {
      real = await realpath(dir);
    } catch (error) {
      if (fsErrorCode(error) === 'ENOENT') return;
      throw describeFsError(error, 'resolve', dir);
    }
    if (real !== path.join(await this.realRoot(), rel)) {
      throw new UnsafeStoreEntryError(dir, `leads outside the store (it resolves to ${real} through a symbolic link)`);
    }
  }

  /** Open a regular file inside the store for reading, or null when it does not exist. */
  private async openRegular(file: string) {
    await this.assertConfined(path.dirname(file));
    let handle;
    try {
      handle = await open(file, READ_FLAGS);
    } catch (error) {
      const code = fsErrorCode(error);
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP') throw new UnsafeStoreEntryError(file, 'is a symbolic link');
      throw describeFsError(error, 'read', file);
    }
    const info = await handle.stat();
    if (!info.isFile()) {
      await handle.close();
      throw new UnsafeStoreEntryError(file, 'is not a regular file');
    }
    return handle;
  }

  /** The bytes of a regular file inside the store, or null when it does not exist. */
  async read(file: string): Promise<Buffer | null> {
    const handle = await this.openRegular(file);
    if (!handle) return null;
    try {
      return await handle.readFile();
    } catch (error) {
      throw describeFsError(error, 'read', file);
    } finally {
      await handle.close();
    }
  }

  /** sha256 (hex) of a regular file inside the store, streamed; null when it does not exist. */
  async sha256(file: string): Promise<string | null> {
    const handle = await this.openRegular(file);
    if (!handle) return null;
    const hash = createHash('sha256');
    try {
      for await (const chunk of handle.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
    } catch (error) {
      throw describeFsError(error, 'read', file);
    } finally {
      await handle.close();
    }
    return hash.digest('hex');
  }

  /** Whether `file` is a regular file (a link or anything else does not count; other errors are reported). */
  async isRegularFile(file: string): Promise<boolean> {
    try {
      return (await lstat(file)).isFile();
    } catch (error) {
      const code = fsErrorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw describeFsError(error, 'look up', file);
    }
  }

  /** Check (once per process) that the root is a DRO store, creating a new one; see store-marker.ts. */
  ensureWritable(): Promise<void> {
    if (!this.writableMemo) {
      this.writableMemo = prepareStoreForWriting(this.root).catch((error: unknown) => {
        this.writableMemo = null;
        throw error;
      });
    }
    return this.writableMemo;
  }

  /** Atomically write a file inside the store (replacing a link at that name, never writing through one). */
  async write(file: string, bytes: Uint8Array | string): Promise<void> {
    await this.ensureWritable();
    await this.assertConfined(path.dirname(file));
    await writeFileAtomic(file, bytes);
  }

  /** Unlink a file inside the store (a link is removed itself, never its target); false if it was gone. */
  async remove(file: string): Promise<boolean> {
    await this.assertConfined(path.dirname(file));
    try {
      await unlink(file);
      return true;
    } catch (error) {
      if (fsErrorCode(error) === 'ENOENT') return false;
      throw describeFsError(error, 'delete', file);
    }
  }

  /** Entries of a directory inside the store, typed without following links; [] when it does not exist. */
  async list(dir: string): Promise<StoreEntry[]> {
    await this.assertConfined(dir);
    let dirents: Dirent[];
    try {
      dirents = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      const code = fsErrorCode(error);
      if (code === 'ENOENT') return [];
      if (code === 'ENOTDIR') throw new UnsafeStoreEntryError(dir, 'is not a directory');
      throw describeFsError(error, 'list', dir);
    }
    return dirents.map((d) => ({ name: d.name, file: path.join(dir, d.name), type: entryType(d) })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Like list, but a directory that is itself a link (or not a directory) yields [] instead of an error. */
  async listIfDirectory(dir: string): Promise<StoreEntry[]> {
    const info = await lstat(dir).catch(() => null);
    if (!info?.isDirectory()) return [];
    return this.list(dir);
  }
}
