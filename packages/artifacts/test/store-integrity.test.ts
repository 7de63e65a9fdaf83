/**
 * Store integrity and confinement on a real store on disk: corrupted objects are repaired by rewriting,
 * nothing is followed out of the root through symlinks (reads, writes, gc), torn records are reported
 * by path, and verifyAll re-hashes everything.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CorruptRecordError,
  DigestMismatchError,
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

const flipByte = (file: string, at = 3) => {
  const bytes = readFileSync(file);
  bytes[at] ^= 0x20;
  writeFileSync(file, bytes);
};

describe('corrupt objects are repaired by rewriting', () => {
  it('re-writing an artifact replaces a same-size bit-flipped object and a torn manifest', async () => {
    const store = freshStore();
    const ref = await store.putJson('test-n/v1', { n: 12345 }, made);
    const file = store.pathOf(ref);
    flipByte(file);
    await expect(store.verify(ref.digest)).rejects.toThrow(DigestMismatchError);
    writeFileSync(store.manifestPath(ref.digest), '{"digest": "'); // torn

    expect(await store.putJson('test-n/v1', { n: 12345 }, made)).toEqual(ref);
    await store.verify(ref.digest);
    expect(sha256Hex(readFileSync(file))).toBe(ref.digest);
    expect((await store.manifest(ref.digest)).digest).toBe(ref.digest);
  });

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

describe('torn records', () => {
  it('are reported by path (CorruptRecordError), listed as bad by scan, and stop gc from deleting artifacts', async () => {
    const store = freshStore();
    const pinned = await store.putJson('test-n/v1', { n: 1 }, made);
    const unreferenced = await store.putJson('test-n/v1', { n: 2 }, made);
    await store.records.put('runs', 'good', { ok: true }, { refs: [pinned.digest], pin: true });
    await store.records.put('runs', 'torn', { ok: true }, { refs: [unreferenced.digest], pin: true });
    const tornFile = path.join(store.records.dir, 'runs', 'torn.json');
    writeFileSync(tornFile, readFileSync(tornFile, 'utf8').slice(0, 20));

    const error = await store.records.get('runs', 'torn').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptRecordError);
    expect((error as Error).message).toContain(tornFile);
    const scanned = await store.records.scan('runs');
    expect(scanned.map((e) => [e.key, 'error' in e])).toEqual([
      ['good', false],
      ['torn', true],
    ]);

    // The torn run record might pin `unreferenced`: gc reports it and deletes no artifact.
    const report = await store.gc({ graceMs: 0 });
    expect(report.badRecords).toEqual([tornFile]);
    expect(report.deleted).toEqual([]);
    expect(await store.has(unreferenced.digest)).toBe(true);
  });
});

describe('verifyAll', () => {
  it('re-hashes every object, finds corrupt objects, torn manifests and records, and removes them on request', async () => {
    const store = freshStore();
    const good = await store.putJson('test-n/v1', { n: 1 }, made);
    const bad = await store.putJson('test-n/v1', { n: 2 }, made);
    const tornManifest = await store.putJson('test-n/v1', { n: 3 }, made);
    await store.records.put('cache', 'k', {}, { refs: [good.digest] });
    flipByte(store.pathOf(bad));
    writeFileSync(store.manifestPath(tornManifest.digest), '{');
    const tornRecord = path.join(store.records.dir, 'cache', 'k.json');
    writeFileSync(tornRecord, '{"value":');

    const report = await store.verifyAll();
    expect(report.objects).toBe(3);
    expect(report.bytes).toBe(readdirSync(path.join(store.root, 'objects'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).reduce((s, e) => s + readFileSync(path.join(e.parentPath, e.name)).length, 0));
    expect(report.badObjects.map((b) => b.digest)).toEqual([bad.digest]);
    expect(report.badManifests).toEqual([store.manifestPath(tornManifest.digest)]);
    expect(report.badRecords).toEqual([tornRecord]);
    expect(report.removed).toEqual([]);
    expect(existsSync(store.pathOf(bad))).toBe(true); // read-only without `remove`

    const removed = await store.verifyAll({ remove: true });
    expect(removed.removed).toEqual([store.manifestPath(bad.digest), store.pathOf(bad), store.manifestPath(tornManifest.digest), tornRecord]);
    expect(await store.has(bad.digest)).toBe(false);
    const clean = await store.verifyAll();
    expect([clean.badObjects, clean.badManifests, clean.badRecords]).toEqual([[], [], []]);
    await store.verify(good.digest);
    rmSync(store.root, { recursive: true });
  });
});
