/**
 * Turning an errno-bearing error from node:fs into one a user can act on: what was being done, to which
 * path, and the real cause. Node's messages sometimes drop the path ("ENOSPC: no space left on device,
 * write"), and callers that caught every error as "not found" hid EACCES and EROFS; this is the one
 * place that says what each code means.
 */
import path from 'node:path';
import { StoreIOError } from './errors.ts';

const CAUSES: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for this filesystem or the process file-size limit',
  ENOTDIR: 'a path component is not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'is a symbolic link (or a loop of them)',
  EEXIST: 'already exists',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error (failing disk or network mount)',
  ENAMETOOLONG: 'name too long',
  EXDEV: 'crosses filesystems',
  EBUSY: 'resource busy',
  ESTALE: 'stale network file handle',
};

export function fsErrorCode(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : null;
}

/**
 * A StoreIOError for `action` on `file` when `error` carries an errno code; other errors (already
 * described, or not from the filesystem) are returned unchanged.
 */
export function describeFsError(error: unknown, action: string, file: string): Error {
  if (error instanceof StoreIOError) return error;
  const code = fsErrorCode(error);
  if (!code) return error instanceof Error ? error : new Error(String(error));
  // Unknown codes keep Node's own description ("EXYZ: some text, syscall 'path'" → "some text").
  const cause = CAUSES[code] ?? /^[A-Z0-9]+: ([^,]+)/.exec((error as Error).message)?.[1] ?? 'system error';
  return new StoreIOError(action, file, code, cause, { cause: error });
}

/** Why writing `file` failed: "directory /x does not exist", "permission denied in /x", …. */
export function writeFailureCause(err: unknown, file: string): string {
  const e = err as NodeJS.ErrnoException;
  const dir = path.dirname(file);
  switch (e.code) {
    case 'ENOENT':
      return `directory ${dir} does not exist`;
    case 'ENOTDIR':
      return `${dir} is not a directory`;
    case 'EISDIR':
      return `${file} is a directory`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied in ${dir}`;
    case 'EROFS':
      return `${dir} is on a read-only file system`;
    case 'ENOSPC':
      return `no space left on the device holding ${dir}`;
    case 'EDQUOT':
      return `disk quota exceeded on the device holding ${dir}`;
    default:
      return e.code ? `${e.code} (${e.message})` : String(e?.message ?? err);
  }
}
