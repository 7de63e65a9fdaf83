/**
 * `~` in user-written paths means the home directory everywhere: store roots (`--store`, config `store`,
 * $DRO_STORE), the asset cache ($DRO_CACHE) and any path given to resolveUserPath. A literal `~` directory
 * is never created.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore, defaultStoreRoot, droCacheDir, expandHome, resolveUserPath } from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const saved = { HOME: process.env.HOME, DRO_STORE: process.env.DRO_STORE, DRO_CACHE: process.env.DRO_CACHE, cwd: process.cwd() };
let home: ReturnType<typeof makeTempDir>;
let work: ReturnType<typeof makeTempDir>;

beforeEach(() => {
  home = makeTempDir('home');
  work = makeTempDir('cwd');
  process.env.HOME = home.dir;
  process.chdir(work.dir);
});

afterEach(() => {
  process.chdir(saved.cwd);
  for (const key of ['HOME', 'DRO_STORE', 'DRO_CACHE'] as const) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
  home.cleanup();
  work.cleanup();
});

describe('~ in user paths', () => {
  it('expandHome and resolveUserPath: "~" and "~/…" only', () => {
    expect(expandHome('~')).toBe(home.dir);
    expect(expandHome('~/a/b')).toBe(path.join(home.dir, 'a/b'));
    expect(expandHome('~user/a')).toBe('~user/a');
    expect(expandHome('a/~/b')).toBe('a/~/b');
    expect(resolveUserPath('~/x', '/elsewhere')).toBe(path.join(home.dir, 'x'));
    expect(resolveUserPath('rel/x', '/base')).toBe('/base/rel/x');
    expect(resolveUserPath('/abs/../x', '/base')).toBe('/x');
  });

  it('a store rooted at "~/store" writes under the home directory, and no literal "~" appears', async () => {
    const store = new LocalArtifactStore({ root: '~/store' });
    expect(store.root).toBe(path.join(home.dir, 'store'));
    const ref = await store.putJson('prompt-set/v1', { prompts: [{ id: 'p', text: 'Be safe.' }] }, { producer: { stage: 't', version: '1' }, params: {}, inputs: {} });
    expect(existsSync(path.join(home.dir, 'store', 'objects', ref.digest.slice(0, 2), ref.digest))).toBe(true);
    expect(existsSync(path.join(work.dir, '~'))).toBe(false);
  });

  it('$DRO_STORE and $DRO_CACHE may start with "~" (as in a quoted export or a systemd unit)', () => {
    process.env.DRO_STORE = '~';
    expect(defaultStoreRoot()).toBe(home.dir);
    expect(new LocalArtifactStore().root).toBe(home.dir);
    process.env.DRO_STORE = '~/shared/store';
    expect(new LocalArtifactStore().root).toBe(path.join(home.dir, 'shared/store'));
    process.env.DRO_CACHE = '~/cache';
    mkdirSync(path.join(home.dir, 'cache'));
    expect(droCacheDir()).toBe(path.join(home.dir, 'cache'));
    delete process.env.DRO_CACHE;
    expect(droCacheDir()).toBe(path.join(home.dir, '.cache', 'dro'));
  });
});
