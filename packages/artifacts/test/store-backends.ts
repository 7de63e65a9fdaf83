/**
 * The two real stores the conformance tests run against, behind one harness: a directory store on disk
 * and an S3 store on a real SeaweedFS server (started once per test file). Both keep the same layout
 * (objects/, manifests/, records/, dro-store.json), so `raw` reads and damages a store by its layout paths —
 * through the filesystem, or through the S3 API — without going through the store under test.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalArtifactStore, S3ArtifactStore, S3Objects, parseS3Uri, type IndexedArtifactStore } from '../src/index.ts';
import { startSeaweedFs, type SeaweedFsHandle } from '../src/testing/index.ts';
import { makeTempDir } from './helpers.ts';

export interface RawAccess {
  read(rel: string): Promise<Buffer | null>;
  write(rel: string, bytes: Uint8Array | string): Promise<void>;
  remove(rel: string): Promise<void>;
  /** Layout paths of every object/file under `relPrefix` (e.g. "objects/"), sorted. */
  list(relPrefix: string): Promise<string[]>;
  /** How the store names `rel` in messages (a path, or an s3:// URI). */
  where(rel: string): string;
}

export interface StoreBackend {
  kind: 'local' | 's3';
  /** Start what the backend needs (SeaweedFS for S3); call in beforeAll. */
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A new store at a fresh, empty location. */
  fresh(): IndexedArtifactStore;
  /** A store at `name` under this backend's scratch space (for tests that prepare the location first). */
  at(name: string): IndexedArtifactStore;
  raw(store: IndexedArtifactStore): RawAccess;
  /** Leftovers of an interrupted write that only a filesystem has (temp files); false where writes are atomic (S3). */
  plantTempFile(store: IndexedArtifactStore, relDir: string): boolean;
}

export const SCRATCH_BUCKET = 'dro-test';

export function localBackend(): StoreBackend {
  const temp = makeTempDir('store-backend');
  let count = 0;
  return {
    kind: 'local',
    async setup() {},
    async teardown() {
      temp.cleanup();
    },
    fresh() {
      return new LocalArtifactStore({ root: path.join(temp.dir, `store-${count++}`) });
    },
    at(name) {
      return new LocalArtifactStore({ root: path.join(temp.dir, name) });
    },
    raw(store) {
      const file = (rel: string) => path.join(store.root, rel);
      return {
        read: async (rel) => {
          try {
            return readFileSync(file(rel));
          } catch {
            return null;
          }
        },
        write: async (rel, bytes) => {
          mkdirSync(path.dirname(file(rel)), { recursive: true });
          writeFileSync(file(rel), bytes);
        },
        remove: async (rel) => rmSync(file(rel), { force: true }),
        list: async (relPrefix) => {
          const dir = file(relPrefix);
          let entries;
          try {
            entries = readdirSync(dir, { recursive: true, withFileTypes: true });
          } catch {
            return [];
          }
          return entries.filter((e) => e.isFile()).map((e) => path.relative(store.root, path.join(e.parentPath, e.name))).sort();
        },
        where: file,
      };
    },
    plantTempFile(store, relDir) {
      mkdirSync(path.join(store.root, relDir), { recursive: true });
      writeFileSync(path.join(store.root, relDir, '.tmp-999-deadbeefcafe-x'), 'partial');
      return true;
    },
  };
}

export function s3Backend(): StoreBackend & { server(): SeaweedFsHandle } {
  const cache = makeTempDir('s3-cache');
  let server: SeaweedFsHandle | null = null;
  let count = 0;
  const running = () => {
    if (!server) throw new Error('s3Backend: setup() has not run');
    return server;
  };
  const open = (prefix: string) => new S3ArtifactStore({ uri: `s3://${SCRATCH_BUCKET}/${prefix}`, settings: running().settings, cacheDir: cache.dir });
  return {
    kind: 's3',
    server: running,
    async setup() {
      server = await startSeaweedFs();
      await server.createBucket(SCRATCH_BUCKET);
    },
    async teardown() {
      await server?.stop();
      cache.cleanup();
    },
    fresh() {
      return open(`store-${count++}`);
    },
    at(name) {
      return open(name);
    },
    raw(store) {
      const objects = new S3Objects(parseS3Uri(store.root), running().settings);
      return {
        read: (rel) => objects.get(rel),
        write: async (rel, bytes) => {
          await objects.put(rel, bytes);
        },
        remove: async (rel) => {
          await objects.delete(rel);
        },
        list: async (relPrefix) => {
          const out: string[] = [];
          for await (const entry of objects.list(relPrefix)) out.push(entry.rel);
          return out.sort();
        },
        where: (rel) => objects.uri(rel),
      };
    },
    plantTempFile() {
      return false;
    },
  };
}
