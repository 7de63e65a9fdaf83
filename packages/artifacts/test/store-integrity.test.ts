/**
 * Confinement on a real store on disk: nothing is followed out of the root through symlinks (reads,
 * writes, gc). Repair by rewriting, torn records and verifyAll are in store-conformance.test.ts, which
 * runs them on the directory store and on the S3 store.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LocalArtifactStore,
  UnsafeStoreEntryError,
  defineJsonSchema,
  sha256Hex,
  type ManifestInput,
} from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('integrity');
afterAll(temp.cleanup);

defineJsonSchema<{ n: number }>({ name: 'test-n/v1', validate: (v) => (typeof (v as { n?: unknown })?.n === 'number' ? [] : ['n: expected a number']) });
const made: ManifestInput = { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} };

let count = 0;
const freshStore = () => new LocalArtifactStore({ root: path.join(temp.dir, `store-${count++}`) });

/** A directory outside every store with files a confused gc or reader would destroy or leak. */
function outsideDir(): { dir: string; files: string[] } {
  const dir = path.join(temp.dir, `outside-${count++}`);
  mkdirSync(dir);
  const files = ['precious.txt', 'a'.repeat(64), `${'b'.repeat(64)}.json`, '.tmp-1-000000000000-x'].map((name) => path.join(dir, name));
  for (const file of files) writeFileSync(file, `do not touch ${path.basename(file)}`);
  return { dir, files };
}

describe('links planted in the store', () => {
  it('a symlink planted under an object name is replaced by the real bytes; its target is untouched', async () => {
    const store = freshStore();
    const outside = outsideDir();
    const bytes = new TextEncoder().encode('{"n":7}');
    const digest = sha256Hex(bytes);
    await store.ensureWritable();
    mkdirSync(path.dirname(store.objectPath(digest)), { recursive: true });
    symlinkSync(outside.files[0]!, store.objectPath(digest));
    await store.putBytes('json', 'test-n/v1', bytes, made, null);
    expect(lstatSync(store.objectPath(digest)).isFile()).toBe(true);
    await store.verify(digest);
    expect(readFileSync(outside.files[0]!, 'utf8')).toBe('do not touch precious.txt');
  });
});

describe('nothing is followed out of the root', () => {
  it('reads refuse a linked object, a linked shard and a FIFO (without hanging), naming the path', async () => {
    const store = freshStore();
    const ref = await store.putJson('test-n/v1', { n: 1 }, made);
    const outside = outsideDir();
    const file = store.pathOf(ref);
    // A link to a file outside: never read (a hit on it is not a hit, a read is an error, not a leak).
    unlinkSync(file);
    symlinkSync(outside.files[0]!, file);
    expect(await store.has(ref.digest)).toBe(false);
    await expect(store.getJson(ref)).rejects.toThrow(UnsafeStoreEntryError);
    await expect(store.getJson(ref)).rejects.toThrow(file);
    await expect(store.verify(ref.digest)).rejects.toThrow(UnsafeStoreEntryError);

    // A FIFO where the object belongs: refused at once (opening it plainly would block forever).
    unlinkSync(file);
    execFileSync('mkfifo', [file]);
    await expect(store.getJson(ref)).rejects.toThrow(/is not a regular file/);
    await expect(store.verify(ref.digest)).rejects.toThrow(/is not a regular file/);
    unlinkSync(file);

    // A shard directory that is a link to a directory outside holding a same-named copy of the object.
    const shard = path.dirname(file);
    const moved = path.join(outside.dir, 'shard');
    renameSync(shard, moved);
    writeFileSync(path.join(moved, ref.digest), '{"n":1}');
    symlinkSync(moved, shard);
    await expect(store.getJson(ref)).rejects.toThrow(/leads outside the store/);
    await expect(store.putJson('test-n/v1', { n: 1 }, made)).rejects.toThrow(/leads outside the store/);
  });

  it('gc never follows a linked shard, namespace, reports directory or file out of the root', async () => {
    const store = freshStore();
    const kept = await store.putJson('test-n/v1', { n: 1 }, made);
    await store.records.put('runs', 'r1', {}, { refs: [kept.digest], pin: true });
    const outside = outsideDir();
    const links = [
      path.join(store.root, 'objects', 'cd'),
      path.join(store.root, 'manifests', 'cd'),
      path.join(store.records.dir, 'evil'),
      path.join(store.root, 'reports'),
      path.join(store.root, 'objects', kept.digest.slice(0, 2), 'e'.repeat(64)),
    ];
    for (const link of links) {
      mkdirSync(path.dirname(link), { recursive: true });
      symlinkSync(link.endsWith('e'.repeat(64)) ? outside.files[0]! : outside.dir, link);
    }

    const report = await store.gc({ graceMs: 0 });
    for (const file of outside.files) expect(readFileSync(file, 'utf8'), file).toBe(`do not touch ${path.basename(file)}`);
    expect(report.skipped).toEqual(expect.arrayContaining(links));
    expect(await store.list()).toEqual([kept.digest]);
    await store.verify(kept.digest);
    // The store's own layout is still intact and a second gc agrees.
    expect((await store.gc({ graceMs: 0 })).deleted).toEqual([]);
  });
});
