/**
 * A store is recognised by its marker: new stores get one, gc and writers refuse a directory that is
 * not a DRO store (a real git repository's .git here), and a store from before markers is reported as
 * such until `verifyAll({ adopt: true })` marks it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore, NotAStoreError, STORE_FORMAT, STORE_FORMAT_VERSION, STORE_MARKER, defineJsonSchema, type ManifestInput } from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('marker');
afterAll(temp.cleanup);

defineJsonSchema<{ n: number }>({ name: 'test-n/v1', validate: (v) => (typeof (v as { n?: unknown })?.n === 'number' ? [] : ['n: expected a number']) });
const made: ManifestInput = { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} };

/** Every file under `dir` with its size and mtime: equal snapshots mean nothing was written or deleted. */
function snapshot(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => `${path.relative(dir, file)} ${statSync(file).size} ${statSync(file).mtimeMs}`)
    .sort();
}

/** A real git repository with a commit, so .git/objects holds loose objects in two-hex-digit shards. */
function gitRepository(): string {
  const repo = path.join(temp.dir, `repo-${Math.random().toString(16).slice(2)}`);
  mkdirSync(repo);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, stdio: 'pipe' });
  git('init', '-q');
  for (let i = 0; i < 5; i++) writeFileSync(path.join(repo, `file-${i}.txt`), `content ${i}\n`);
  git('add', '.');
  git('commit', '-qm', 'first');
  return repo;
}

describe('store marker', () => {
  it('a new store (missing or empty directory) gets a marker naming the format and version on its first write', async () => {
    for (const root of [path.join(temp.dir, 'new', 'nested'), path.join(temp.dir, 'empty')]) {
      if (root.endsWith('empty')) {
        mkdirSync(root);
        writeFileSync(path.join(root, '.tmp-1-0123456789ab-dro-store.json'), 'partial'); // another writer's temp: still empty
      }
      const stores = Array.from({ length: 4 }, () => new LocalArtifactStore({ root }));
      await Promise.all(stores.map((store, n) => store.putJson('test-n/v1', { n }, made)));
      const marker = JSON.parse(readFileSync(path.join(root, STORE_MARKER), 'utf8')) as Record<string, unknown>;
      expect(marker).toMatchObject({ format: STORE_FORMAT, version: STORE_FORMAT_VERSION });
      expect((await stores[0]!.list()).length).toBe(4);
    }
  });

  it('a git repository (and its .git) is refused by writers and gc with a clear error, and nothing is written or deleted', async () => {
    const repo = gitRepository();
    const dotGit = path.join(repo, '.git');
    expect(readdirSync(path.join(dotGit, 'objects')).some((name) => /^[0-9a-f]{2}$/.test(name))).toBe(true);
    for (const root of [dotGit, repo]) {
      const before = snapshot(repo);
      const store = new LocalArtifactStore({ root });
      const write = await store.putJson('test-n/v1', { n: 1 }, made).catch((e: unknown) => e);
      expect(write).toBeInstanceOf(NotAStoreError);
      expect((write as Error).message).toContain(`${root} is not a DRO store`);
      await expect(store.records.put('runs', 'x', {})).rejects.toThrow(NotAStoreError);
      await expect(store.gc({ graceMs: 0 })).rejects.toThrow(/is not a DRO store .* will not garbage-collect it/);
      await expect(store.verifyAll({ remove: true })).rejects.toThrow(NotAStoreError);
      expect(snapshot(repo)).toEqual(before);
    }
    const aFile = new LocalArtifactStore({ root: path.join(repo, 'file-0.txt') });
    await expect(aFile.putJson('test-n/v1', { n: 1 }, made)).rejects.toThrow(/file-0\.txt is not a directory, so it is not a DRO store/);
    await expect(aFile.gc()).rejects.toThrow(NotAStoreError);
    expect(readFileSync(path.join(repo, 'file-0.txt'), 'utf8')).toBe('content 0\n');
    execFileSync('git', ['fsck', '--strict'], { cwd: repo, stdio: 'pipe' });
  });

  it('a store from before markers is readable, refused by writers and gc with what to do, and adopted by verifyAll', async () => {
    const root = path.join(temp.dir, 'legacy');
    const old = new LocalArtifactStore({ root });
    const kept = await old.putJson('test-n/v1', { n: 1 }, made);
    const unpinned = await old.putJson('test-n/v1', { n: 2 }, made);
    await old.records.put('runs', 'r', {}, { refs: [kept.digest], pin: true });
    unlinkSync(path.join(root, STORE_MARKER)); // exactly what today's code leaves on disk
    const before = snapshot(root);

    const store = new LocalArtifactStore({ root });
    expect(await store.getJson(kept)).toEqual({ n: 1 });
    const refused = await store.gc({ graceMs: 0 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NotAStoreError);
    expect((refused as Error).message).toMatch(/from before store markers .* `dro verify --store .* --adopt`/);
    await expect(store.putJson('test-n/v1', { n: 3 }, made)).rejects.toThrow(/from before store markers/);
    await expect(store.verifyAll({ remove: true })).rejects.toThrow(/add --adopt/);
    const checked = await store.verifyAll();
    expect(checked).toMatchObject({ layout: 'legacy', adopted: false, objects: 2, badObjects: [] });
    expect(snapshot(root)).toEqual(before);

    expect(await store.verifyAll({ adopt: true })).toMatchObject({ layout: 'legacy', adopted: true });
    const marked = new LocalArtifactStore({ root });
    expect((await marked.gc({ graceMs: 0 })).deleted).toEqual([unpinned.digest]);
    await marked.putJson('test-n/v1', { n: 3 }, made);
  });
});
