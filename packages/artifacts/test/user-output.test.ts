/**
 * Files the user names for output (`dro report --out`, `dro judge --output`) on a real filesystem: an
 * atomic rename must never replace a device, FIFO or directory, nor a symbolic link instead of its target.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BadInputError, writeUserFile } from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('user-output');
afterAll(temp.cleanup);
const isRoot = process.getuid?.() === 0;

describe('writeUserFile', () => {
  it('refuses a FIFO, a character device, a directory or a link to one, leaving it as it was', () => {
    const dir = path.join(temp.dir, 'special');
    mkdirSync(dir);
    const fifo = path.join(dir, 'fifo.jsonl');
    execFileSync('mkfifo', [fifo]);
    const sub = path.join(dir, 'sub.html');
    mkdirSync(sub);
    const linkToFifo = path.join(dir, 'link.jsonl');
    symlinkSync(fifo, linkToFifo);
    const targets: [string, RegExp, () => boolean][] = [
      [fifo, /is a FIFO/, () => lstatSync(fifo).isFIFO()],
      [sub, /is a directory/, () => lstatSync(sub).isDirectory()],
      [linkToFifo, /is a link to a FIFO/, () => lstatSync(linkToFifo).isSymbolicLink()],
    ];
    if (isRoot) {
      // What `--out /dev/null` is, without touching the real one: a null device node of our own.
      const device = path.join(dir, 'null');
      execFileSync('mknod', [device, 'c', '1', '3']);
      targets.push([device, /is a character device/, () => lstatSync(device).isCharacterDevice()]);
    }
    for (const [file, message, unchanged] of targets) {
      let error: unknown = null;
      try {
        writeUserFile(file, 'report');
      } catch (e) {
        error = e;
      }
      expect(error, file).toBeInstanceOf(BadInputError);
      expect((error as Error).message).toContain(file);
      expect((error as Error).message).toMatch(message);
      expect(unchanged(), file).toBe(true);
    }
    expect(readdirSync(dir).filter((name) => name.startsWith('.tmp-'))).toEqual([]);
  });

  it('writes through a link to a regular file (the link stays) and replaces a regular file', () => {
    const dir = path.join(temp.dir, 'files');
    mkdirSync(dir);
    const target = path.join(dir, 'real.html');
    writeFileSync(target, 'old');
    const link = path.join(dir, 'out.html');
    symlinkSync(target, link);
    expect(writeUserFile(link, 'new')).toBe(target);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('new');
    writeUserFile(target, 'newer');
    expect(readFileSync(link, 'utf8')).toBe('newer');
  });

  it('names the user path and the cause when the directory is missing, never the temp file', () => {
    const file = path.join(temp.dir, 'no-such-dir', 'out.html');
    expect(() => writeUserFile(file, 'x')).toThrow(`cannot write ${file}: directory ${path.dirname(file)} does not exist`);
  });
});
