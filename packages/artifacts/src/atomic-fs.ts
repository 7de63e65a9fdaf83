/**
 * Crash-safe file writes. A reader (or a process that restarts after SIGKILL) sees either the old state
 * or the complete new file, never a prefix: bytes go to a temp file in the target's own directory (so
 * rename stays on one filesystem and is atomic), are fsynced, renamed into place, and the directory is
 * fsynced so the rename itself survives a power cut.
 *
 * Every failure is reported as a StoreIOError naming the path and the real cause (fs-errors.ts): Node's
 * own messages drop the path on write ("ENOSPC: no space left on device, write") and its recursive mkdir
 * reports a read-only filesystem as ENOENT.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { describeFsError } from './fs-errors.ts';

/** Prefix of in-flight temp files. Never a valid artifact/record name, so listings and gc can tell them apart. */
export const TEMP_PREFIX = '.tmp-';

/** Exactly the names writeFileAtomic gives its temp files: `.tmp-<pid>-<12 hex>-<target name>`. */
const TEMP_NAME = /^\.tmp-\d+-[0-9a-f]{12}-./;

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** Whether `name` is a temp file this module wrote (gc deletes only names it made). */
export function isOwnTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** fsync a directory so a rename into it is durable; some platforms refuse to open directories, which is fine. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw describeFsError(error, 'sync directory', dir);
  } finally {
    await handle?.close();
  }
}

/**
 * mkdir -p with honest errors. Node's recursive mkdir answers ENOENT when a parent cannot be created on a
 * read-only filesystem (or without permission); on failure this retries the first missing component on
 * its own, which reports the real errno (EROFS, EACCES, ENOSPC, ENOTDIR).
 */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw describeFsError(error, 'create directory', dir);
  }
  let missing = dir;
  while (path.dirname(missing) !== missing) {
    const parent = path.dirname(missing);
    const parentExists = await stat(parent).then(
      () => true,
      () => false,
    );
    if (parentExists) break;
    missing = parent;
  }
  try {
    await mkdir(missing);
  } catch (error) {
    throw describeFsError(error, 'create directory', missing);
  }
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw describeFsError(error, 'create directory', dir);
  }
}

/**
 * Atomically put `bytes` at `target` (replacing any existing file, or a symbolic link at that name: rename
 * replaces the link itself, never what it points to). The temp name carries the pid so a stale temp left by
 * a killed process can be told apart from one still being written.
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array | string): Promise<void> {
  const dir = path.dirname(target);
  await makeDirectory(dir);
  const temp = path.join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}-${path.basename(target)}`);
  let handle;
  try {
    handle = await open(temp, 'wx');
  } catch (error) {
    throw describeFsError(error, 'write', target);
  }
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw describeFsError(error, 'write', target);
  }
  await handle.close();
  try {
    await rename(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw describeFsError(error, 'write', target);
  }
  await fsyncDir(dir);
}
