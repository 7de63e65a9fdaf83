/**
 * Writing a file the user named (`dro report --out`, `dro judge --output`). Like the store's writes it is
 * atomic — a temp file in the same directory, fsynced, renamed into place — so a failure leaves the old
 * file or none, never a prefix. Renaming over a name replaces whatever is there, so the name is looked at
 * first:
 *
 * - a device, FIFO, socket or directory is refused (a BadInputError naming it): renaming over
 *   `--out /dev/null` would replace the device node itself with a regular file (as root, for the whole
 *   machine), and over a FIFO would leave its reader waiting;
 * - a symbolic link is written through: its target is replaced (atomically, in the target's directory),
 *   the link stays, as editors and npm's write-file-atomic do — not the link swapped for a file.
 *
 * A failure names the user's path and the cause (a missing directory, permissions, a full disk), never
 * the temp file. Missing directories are not created: a mistyped directory is an error, not a new tree.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, openSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BadInputError } from './errors.ts';
import { writeFailureCause } from './fs-errors.ts';

function kindOf(info: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * Where writing `file` should land: `file` itself, or the regular file a symbolic link at `file` points
 * to. Throws BadInputError when something other than a regular file is there.
 */
function destinationOf(file: string, what: string): string {
  let info;
  try {
    info = lstatSync(file);
  } catch {
    return file; // nothing there (or not reachable: the write reports why)
  }
  if (info.isFile()) return file;
  if (info.isSymbolicLink()) {
    let target;
    try {
      target = statSync(file);
    } catch {
      return file; // a dangling link: replaced by the file, as there is nothing to write through to
    }
    if (target.isFile()) return realpathSync(file);
    throw new BadInputError(`cannot write ${what} ${file}: it is a link to ${kindOf(target)}, not a regular file; name a file`);
  }
  throw new BadInputError(`cannot write ${what} ${file}: it is ${kindOf(info)}, not a regular file; name a file`);
}

/** Atomically write `data` to the user's `file` (see the header); returns the path written. */
export function writeUserFile(file: string, data: string | Uint8Array, what = 'output file'): string {
  const target = destinationOf(file, what);
  const temp = path.join(path.dirname(target), `.tmp-${process.pid}-${randomBytes(6).toString('hex')}-${path.basename(target)}`);
  let fd: number | null = null;
  try {
    fd = openSync(temp, 'wx');
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let offset = 0; offset < bytes.byteLength; ) offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(temp, target);
  } catch (err) {
    if (fd !== null) closeSync(fd);
    rmSync(temp, { force: true });
    throw new Error(`cannot write ${file}: ${writeFailureCause(err, target)}`, { cause: err });
  }
  return target;
}
