import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  InvalidNameError,
  LocalArtifactStore,
  codeVersion,
  defaultStoreLocation,
  defaultStoreRoot,
  defineTensorSchema,
  type ManifestInput,
} from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('store');
afterAll(temp.cleanup);

defineTensorSchema({ name: 'test-weights/v1', tensors: { w: { dtype: 'F32', rank: 2 } } });

const made = (stage: string, inputs: Record<string, string> = {}): ManifestInput => ({
  producer: { stage, version: '1' },
  params: { k: 4 },
  inputs,
});

let storeCount = 0;
const freshStore = () => new LocalArtifactStore({ root: path.join(temp.dir, `store-${storeCount++}`) });

describe('LocalArtifactStore', () => {
  it('never maps a digest to a path outside the root (the store-conformance tests cover the rest)', async () => {
    const store = freshStore();
    for (const bad of ['../../etc/passwd', '..', 'A'.repeat(64), `${'a'.repeat(63)}/`, '', 'a'.repeat(65)]) {
      expect(() => store.objectPath(bad), bad).toThrow(InvalidNameError);
      expect(() => store.manifestPath(bad), bad).toThrow(InvalidNameError);
    }
    await expect(store.putJson('test-labels/v1', { labels: [] }, made('x', { evil: '../../x' }))).rejects.toThrow(/manifest input "evil"/);
    expect(existsSync(path.join(store.root, '..', 'x'))).toBe(false);
  });

  it('refuses a URI as its root instead of making a directory named after it', () => {
    for (const uri of ['s3://bucket/prefix', 's3:/bucket/typo', 'gs://bucket', 'https://example.com/store']) {
      expect(() => new LocalArtifactStore({ root: uri }), uri).toThrow(/is not a directory: a LocalArtifactStore needs a directory/);
    }
    expect(existsSync('s3:')).toBe(false);
  });

  it('records code version null when git is unavailable, and honours DRO_GIT_SHA', () => {
    const probe = `import { codeVersion } from ${JSON.stringify(path.resolve('src/code-version.ts'))}; console.log(JSON.stringify(codeVersion()));`;
    const run = (env: Record<string, string>) => {
      const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
        encoding: 'utf8',
        env: { ...process.env, DRO_GIT_SHA: '', ...env },
      });
      expect(out.status, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as unknown;
    };
    expect(codeVersion().gitSha).toMatch(/^[0-9a-f]{40}$/); // the tests run inside the git checkout
    expect(run({ PATH: '/nonexistent' })).toEqual({ gitSha: null, dirty: false });
    expect(run({ DRO_GIT_SHA: 'abc123', DRO_GIT_DIRTY: '1' })).toEqual({ gitSha: 'abc123', dirty: true });
  });

  it('defaults its root to $DRO_STORE, else .dro/store under the working directory', () => {
    const saved = process.env.DRO_STORE;
    try {
      process.env.DRO_STORE = path.join(temp.dir, 'from-env');
      expect(defaultStoreRoot()).toBe(path.join(temp.dir, 'from-env'));
      expect(new LocalArtifactStore().root).toBe(path.join(temp.dir, 'from-env'));
      delete process.env.DRO_STORE;
      expect(defaultStoreRoot()).toBe(path.resolve('.dro/store'));
      // An S3 location is the default store's business (openStore), never a directory.
      process.env.DRO_STORE = 's3://bucket/prefix';
      expect(defaultStoreLocation()).toBe('s3://bucket/prefix');
      expect(() => defaultStoreRoot()).toThrow(/needs a directory/);
      expect(() => new LocalArtifactStore()).toThrow(/needs a directory/);
    } finally {
      if (saved === undefined) delete process.env.DRO_STORE;
      else process.env.DRO_STORE = saved;
    }
  });
});
