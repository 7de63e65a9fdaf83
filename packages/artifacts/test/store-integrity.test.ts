/**
 * Confinement on a real store on disk: nothing is followed out of the root through symlinks (reads,
 * writes, gc). Repair by rewriting, torn records and verifyAll are in store-conformance.test.ts, which
 * runs them on the directory store and on the S3 store.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
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
  it('gc deletes nothing a record it cannot read may pin, nor half of an artifact whose other half it cannot see', async () => {
    // Each case hides part of a store from gc behind an entry it does not follow or read. Before, gc took
    // the hidden run record for "no record" (and the hidden half for "missing") and deleted every artifact.
    const hideBehindLink = (entry: string) => {
      const moved = path.join(temp.dir, `moved-${count++}`);
      renameSync(entry, moved);
      symlinkSync(moved, entry);
    };
    const runRecord = (store: LocalArtifactStore) => path.join(store.records.dir, 'runs', 'r1.json');
    const cases: [string, boolean, (store: LocalArtifactStore, pinned: string) => void][] = [
      ['records/ is a link', true, (store) => hideBehindLink(store.records.dir)],
      ['records/ is a regular file', true, (store) => {
        rmSync(store.records.dir, { recursive: true });
        writeFileSync(store.records.dir, 'not a directory');
      }],
      ['a record namespace is a link', true, (store) => hideBehindLink(path.join(store.records.dir, 'runs'))],
      ['a run record is a link', true, (store) => hideBehindLink(runRecord(store))],
      ['a run record is a FIFO', true, (store) => {
        unlinkSync(runRecord(store));
        execFileSync('mkfifo', [runRecord(store)]);
      }],
      ['a run record is a directory', true, (store) => {
        unlinkSync(runRecord(store));
        mkdirSync(runRecord(store));
      }],
      ['objects/ is a link', false, (store) => hideBehindLink(path.join(store.root, 'objects'))],
      ['manifests/ is a link', false, (store) => hideBehindLink(path.join(store.root, 'manifests'))],
      ['an object shard is a regular file', false, (store, pinned) => {
        const shard = path.dirname(store.objectPath(pinned));
        rmSync(shard, { recursive: true });
        writeFileSync(shard, 'not a directory');
      }],
    ];
    for (const [name, hidesRecords, hide] of cases) {
      const store = freshStore();
      const pinned = await store.putJson('test-n/v1', { n: 1 }, made);
      const cached = await store.putJson('test-n/v1', { n: 2 }, made);
      await store.records.put('runs', 'r1', {}, { refs: [pinned.digest], pin: true });
      await store.records.put('cache', 'k1', {}, { refs: [cached.digest] });
      hide(store, pinned.digest);
      const halves = [store.manifestPath(pinned.digest), store.objectPath(pinned.digest)];
      const before = halves.map((file) => existsSync(file));

      const report = await store.gc({ graceMs: 0 });
      // The pinned artifact keeps both halves (where they are) and nothing is taken for a stray.
      expect([halves.map((file) => existsSync(file)), report.strayFilesDeleted], name).toEqual([before, 0]);
      // A record gc cannot read might pin anything: no artifact and no cache entry goes.
      if (hidesRecords) {
        expect([report.deleted, report.recordsDeleted, await store.has(cached.digest)], name).toEqual([[], [], true]);
        expect(report.badRecords.length, name).toBeGreaterThan(0);
      }
    }
  });
});
