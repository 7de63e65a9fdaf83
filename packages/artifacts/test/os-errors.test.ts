/**
 * OS errors name the path and the real cause, under real conditions: a read-only bind mount (EROFS), a
 * full tmpfs (ENOSPC) — both in a private user + mount namespace (`unshare -Urm`), so no privilege is
 * needed and nothing leaks to the host — and another user's unreadable directory (EACCES; the child runs
 * as uid 65534, since root bypasses permission bits). Skipped, saying why, where the machine cannot
 * create namespaces or switch users.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const STORE_OP = fileURLToPath(new URL('./fixtures/store-op.ts', import.meta.url));
const temp = makeTempDir('os-errors');
afterAll(temp.cleanup);

const canUnshare = spawnSync('unshare', ['-Urm', 'true']).status === 0;
const isRoot = process.getuid?.() === 0;
if (!canUnshare) console.warn('os-errors: `unshare -Urm` is not available here; EROFS/ENOSPC tests skipped');
if (!isRoot) console.warn('os-errors: not root, cannot run a child as another user; EACCES test skipped');

const nodeOp = (...args: string[]) => [process.execPath, '--import', 'tsx', STORE_OP, ...args].map((a) => `'${a}'`).join(' ');

/** Run `setup && node store-op.ts ...` in a private user + mount namespace; returns the op's one line. */
function inNamespace(setup: string, ...args: string[]): string {
  const out = spawnSync('unshare', ['-Urm', 'sh', '-c', `${setup} && exec ${nodeOp(...args)}`], { encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  return out.stdout.trim();
}

describe('OS errors name the path and the real cause', () => {
  it.skipIf(!canUnshare)('a read-only store: EROFS with the directory, not ENOENT', async () => {
    const root = path.join(temp.dir, 'ro');
    await new LocalArtifactStore({ root }).putBytes('json', 'none', new Uint8Array([1]), { producer: { stage: 's', version: '1' }, params: {}, inputs: {} }, null);
    const line = inNamespace(`mount --bind ${root} ${root} && mount -o remount,bind,ro ${root}`, 'put', root, '4');
    expect(line).toMatch(new RegExp(`^ERROR StoreIOError: cannot (create directory|write) ${root}/objects/[0-9a-f]{2}\\S*: read-only file system \\(EROFS\\)$`));
  });

  it.skipIf(!canUnshare)('a full disk: ENOSPC with the file being written', () => {
    const root = path.join(temp.dir, 'full');
    mkdirSync(root);
    const line = inNamespace(`mount -t tmpfs -o size=256k tmpfs ${root}`, 'put', root, '1024');
    expect(line).toMatch(new RegExp(`^ERROR StoreIOError: cannot write ${root}/objects/[0-9a-f]{2}/[0-9a-f]{64}: no space left on device \\(ENOSPC\\)$`));
  });

  it.skipIf(!isRoot)('an unreadable directory: EACCES ("permission denied"), not "not in store"', async () => {
    const base = path.join(temp.dir, 'perm');
    const store = new LocalArtifactStore({ root: path.join(base, 'store') });
    const ref = await store.putBytes('json', 'none', new Uint8Array([1, 2]), { producer: { stage: 's', version: '1' }, params: {}, inputs: {} }, null);
    chmodSync(temp.dir, 0o755);
    const shard = path.dirname(store.objectPath(ref.digest));
    chmodSync(shard, 0o700);
    const asNobody = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', STORE_OP, ...args], { encoding: 'utf8', uid: 65534, gid: 65534 }).stdout.trim();
    expect(asNobody('get', store.root, ref.digest)).toBe(`ERROR StoreIOError: cannot read ${store.objectPath(ref.digest)}: permission denied (EACCES)`);
    expect(asNobody('has', store.root, ref.digest)).toBe(`ERROR StoreIOError: cannot look up ${store.objectPath(ref.digest)}: permission denied (EACCES)`);
  });
});
