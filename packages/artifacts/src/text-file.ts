/**
 * Reading user text files (query files, safety prompts, configs, responses) as strict UTF-8. Node's
 * `readFileSync(file, 'utf8')` replaces every invalid byte with U+FFFD without a word, so a Latin-1 file
 * or a corrupted byte would silently change the text a run trains and evaluates on. Here an invalid byte
 * is a BadInputError naming the file, the line and the byte. A UTF-8 byte-order mark is dropped.
 */
import { readFileSync, statSync } from 'node:fs';
import { BadInputError } from './errors.ts';

const strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Where the first invalid UTF-8 sequence is: 1-based line and byte column. The newline byte (0x0a) never
 * occurs inside a multi-byte UTF-8 sequence, so every line can be checked on its own.
 */
function firstInvalidByte(bytes: Uint8Array): { line: number; column: number; byte: number } {
  let lineStart = 0;
  for (let line = 1; lineStart <= bytes.length; line++) {
    let end = bytes.indexOf(0x0a, lineStart);
    if (end < 0) end = bytes.length;
    const lineBytes = bytes.subarray(lineStart, end);
    try {
      strict.decode(lineBytes);
    } catch {
      // Narrow down to the first byte whose prefix stops decoding: a prefix that ends inside a valid
      // multi-byte character also fails, so look for the shortest failing prefix that cannot be completed.
      for (let i = 0; i < lineBytes.length; i++) {
        const valid = [1, 2, 3, 4].some((n) => {
          if (i + n > lineBytes.length) return false;
          try {
            strict.decode(lineBytes.subarray(i, i + n));
            return true;
          } catch {
            return false;
          }
        });
        if (!valid) return { line, column: i + 1, byte: lineBytes[i]! };
        // Skip the rest of this (valid) character.
        const lead = lineBytes[i]!;
        i += lead < 0x80 ? 0 : lead < 0xe0 ? 1 : lead < 0xf0 ? 2 : 3;
      }
      return { line, column: lineBytes.length, byte: lineBytes[lineBytes.length - 1] ?? 0 };
    }
    lineStart = end + 1;
  }
  return { line: 1, column: 1, byte: bytes[0] ?? 0 };
}

/** Decode bytes of `file` as strict UTF-8 (BOM dropped); an invalid sequence is a BadInputError with its line. */
export function decodeUtf8(bytes: Uint8Array, file: string, what = 'file'): string {
  try {
    return strict.decode(bytes);
  } catch {
    const at = firstInvalidByte(bytes);
    throw new BadInputError(
      `${file}:${at.line}: not valid UTF-8 (byte 0x${at.byte.toString(16).padStart(2, '0')} at byte ${at.column} of line ${at.line}); ` +
        `save the ${what} as UTF-8`,
    );
  }
}

/**
 * The bytes of a user's file. Only regular files are read: a FIFO or a device would block or never end.
 * Errors are BadInputErrors naming the file and the cause.
 */
export function readUserFile(file: string, what = 'file'): Buffer {
  try {
    const stat = statSync(file);
    if (stat.isDirectory()) throw new BadInputError(`cannot read ${what} ${file}: it is a directory`);
    if (!stat.isFile()) throw new BadInputError(`cannot read ${what} ${file}: not a regular file (a FIFO, socket or device)`);
    return readFileSync(file);
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    const e = err as NodeJS.ErrnoException;
    const cause = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new BadInputError(`cannot read ${what} ${file}: ${cause}`);
  }
}

/** Read a user text file as strict UTF-8; unreadable files and invalid bytes are BadInputErrors naming the file. */
export function readUtf8File(file: string, what = 'file'): string {
  return decodeUtf8(readUserFile(file, what), file, what);
}
