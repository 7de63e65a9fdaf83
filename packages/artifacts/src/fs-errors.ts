/**
 * File-system errors in words a user can act on: the path they gave and the real cause, never an internal
 * temp file's name or a bare errno code.
 */
import path from 'node:path';

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
