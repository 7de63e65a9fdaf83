/**
 * Opening model files safely. A model path (or a file inside an HF directory) can name a FIFO, socket or
 * device: a plain open() of a FIFO blocks until a writer appears — forever — and reading a device can
 * stream without end. Every model file is therefore opened with O_NONBLOCK (which does nothing for a
 * regular file's reads) and checked with fstat on the opened descriptor before any read, so a file swapped
 * after a stat cannot slip through.
 */
import fs from 'node:fs';
import { ModelFormatError } from './errors.ts';

/** JSON / template side files larger than this are refused (Qwen2.5's tokenizer.json, the largest we know, is 7 MB). */
export const MAX_SIDE_FILE_BYTES = 256 << 20;

function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** Open `file` read-only; throws ModelFormatError unless it is a regular file (symlinks to one are fine). */
export function openRegularFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new ModelFormatError(file, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw new ModelFormatError(file, `is ${kindOf(stat)}; model files must be regular files`);
  }
  return { fd, size: stat.size };
}

/** Throws ModelFormatError unless `file` (after symlinks) is a regular file; for paths checked before use. */
export function requireRegularFile(file: string): void {
  fs.closeSync(openRegularFile(file).fd);
}

/** The whole text of a small side file (config.json, tokenizer files, chat template), size-checked. */
export function readSideFile(file: string): string {
  const { fd, size } = openRegularFile(file);
  try {
    if (size > MAX_SIDE_FILE_BYTES) {
      throw new ModelFormatError(file, `is ${size} bytes; side files (JSON, templates) over ${MAX_SIDE_FILE_BYTES} bytes are refused`);
    }
    return fs.readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof ModelFormatError) throw err;
    throw new ModelFormatError(file, `cannot read: ${(err as Error).message}`, { cause: err });
  } finally {
    fs.closeSync(fd);
  }
}
