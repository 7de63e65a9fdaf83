import { existsSync, readFileSync, readdirSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BadInputError,
  DigestMismatchError,
  InvalidNameError,
  LocalArtifactStore,
  NotFoundError,
  SchemaError,
  canonicalJson,
  codeVersion,
  defaultStoreRoot,
  defineJsonSchema,
  defineTensorSchema,
  sha256Hex,
  type ManifestInput,
} from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('store');
afterAll(temp.cleanup);

interface Labels {
  labels: { id: string; refused: boolean }[];
}
defineJsonSchema<Labels>({
  name: 'test-labels/v1',
  validate(value) {
    const problems: string[] = [];
    const labels = (value as Labels)?.labels;
    if (!Array.isArray(labels)) return ['labels: expected an array'];
    labels.forEach((label, i) => {
      if (typeof label?.id !== 'string') problems.push(`labels[${i}].id: expected a string`);
      if (typeof label?.refused !== 'boolean') problems.push(`labels[${i}].refused: expected a boolean`);
    });
    return problems;
  },
});
defineTensorSchema({ name: 'test-weights/v1', tensors: { w: { dtype: 'F32', rank: 2 } } });

const made = (stage: string, inputs: Record<string, string> = {}): ManifestInput => ({
  producer: { stage, version: '1' },
  params: { k: 4 },
  inputs,
});

let storeCount = 0;
const freshStore = () => new LocalArtifactStore({ root: path.join(temp.dir, `store-${storeCount++}`) });

describe('LocalArtifactStore', () => {
  it('stores JSON and tensors content-addressed with a full manifest', async () => {
    const store = freshStore();
    const value: Labels = { labels: [{ id: 'q1', refused: true }] };
    const ref = await store.putJson('test-labels/v1', value, made('sampling'));
    expect(ref).toEqual({ digest: sha256Hex(canonicalJson(value)), format: 'json', schema: 'test-labels/v1' });
    expect(readFileSync(store.pathOf(ref), 'utf8')).toBe(canonicalJson(value));
    expect(store.pathOf(ref)).toBe(path.join(store.root, 'objects', ref.digest.slice(0, 2), ref.digest));
    expect(await store.getJson(ref)).toEqual(value);

    const weights = await store.putTensors(
      'test-weights/v1',
      { w: { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } },
      { ...made('directions', { labels: ref.digest }), modelDigest: 'f'.repeat(64), backend: 'cpu' },
      { note: 'pca' },
    );
    const manifest = await store.manifest(weights.digest);
    expect(manifest).toMatchObject({
      digest: weights.digest,
      format: 'safetensors',
      schema: 'test-weights/v1',
      producer: { stage: 'directions', version: '1' },
      params: { k: 4 },
      inputs: { labels: ref.digest },
      modelDigest: 'f'.repeat(64),
      backend: 'cpu',
      rows: 1,
      bytes: readFileSync(store.pathOf(weights)).byteLength,
      code: codeVersion(),
    });
    expect(Date.parse(manifest.createdAt)).not.toBeNaN();
    expect(codeVersion().gitSha).toMatch(/^[0-9a-f]{40}$/); // the tests run inside the git checkout
    const back = await store.getTensorsWithMetadata(weights);
    expect(Array.from(back.tensors.w.data as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(back.metadata).toEqual({ note: 'pca' });
    expect(await store.list()).toEqual([ref.digest, weights.digest].sort());
  });

  it('writing the same artifact twice keeps one copy and the first manifest', async () => {
    const store = freshStore();
    const first = await store.putJson('test-labels/v1', { labels: [] }, made('first'));
    const second = await store.putJson('test-labels/v1', { labels: [] }, made('second'));
    expect(second).toEqual(first);
    expect((await store.manifest(first.digest)).producer.stage).toBe('first');
    expect(readdirSync(path.dirname(store.pathOf(first)))).toEqual([first.digest]);
  });

  it('a flipped byte makes a verified read fail with a digest error naming the artifact and file', async () => {
    const store = freshStore();
    const ref = await store.putJson('test-labels/v1', { labels: [{ id: 'abc', refused: false }] }, made('s'));
    const file = store.pathOf(ref);
    const bytes = readFileSync(file);
    bytes[10] ^= 0x01;
    writeFileSync(file, bytes);
    const expectDigestError = (error: unknown) => {
      expect(error).toBeInstanceOf(DigestMismatchError);
      expect(error).toBeInstanceOf(BadInputError); // never retried: retrying cannot fix corrupt bytes
      expect((error as Error).message).toContain(ref.digest);
      expect((error as Error).message).toContain(file);
    };
    await store.getJson(ref).then(() => expect.fail('read of corrupt artifact succeeded'), expectDigestError);
    await store.verify(ref.digest).then(() => expect.fail('verify of corrupt artifact succeeded'), expectDigestError);
    // Opting out of verification reads the (corrupt) bytes, as asked.
    expect(Buffer.from(await store.getBytes(ref, { verify: false })).equals(bytes)).toBe(true);
  });

  it('validates on write and on read, naming the artifact and field', async () => {
    const store = freshStore();
    await expect(store.putJson('test-labels/v1', { labels: [{ id: 3 }] }, made('sampling'))).rejects.toThrow(
      /writing test-labels\/v1 from sampling \(schema test-labels\/v1\): labels\[0\]\.id: expected a string; labels\[0\]\.refused: expected a boolean/,
    );
    await expect(
      store.putTensors('test-weights/v1', { w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } }, made('x')),
    ).rejects.toThrow(/tensor "w": expected rank 2, got shape \[4\]/);
    await expect(store.putJson('no-such/v1', {}, made('x'))).rejects.toThrow(/unknown schema "no-such\/v1"/);
    await expect(store.putJson('test-weights/v1', {}, made('x'))).rejects.toThrow(/is a tensors schema/);

    // Bytes stored under a schema they do not satisfy are caught when read.
    const raw = await store.putBytes('json', 'test-labels/v1', new TextEncoder().encode('{"labels":"no"}'), made('x'), null);
    await expect(store.getJson(raw)).rejects.toThrow(SchemaError);
    await expect(store.getJson(raw)).rejects.toThrow(new RegExp(`artifact ${raw.digest} \\(schema test-labels/v1\\): labels: expected an array`));
    await expect(store.getTensors(raw)).rejects.toThrow(/is json, but was read as safetensors/);
  });

  it('rejects digests and record names that could escape the root', async () => {
    const store = freshStore();
    for (const bad of ['../../etc/passwd', '..', 'A'.repeat(64), `${'a'.repeat(63)}/`, '', 'a'.repeat(65)]) {
      expect(() => store.objectPath(bad), bad).toThrow(InvalidNameError);
      await expect(store.getJson({ digest: bad, format: 'json', schema: 'test-labels/v1' })).rejects.toThrow(InvalidNameError);
      await expect(store.has(bad)).rejects.toThrow(InvalidNameError);
    }
    for (const bad of ['..', '../x', 'a/b', '/abs', '.hidden', '', 'a\\b', 'x'.repeat(201), 'nul\0']) {
      await expect(store.records.put('runs', bad, {}), JSON.stringify(bad)).rejects.toThrow(InvalidNameError);
      await expect(store.records.put(bad, 'key', {})).rejects.toThrow(InvalidNameError);
      await expect(store.records.get('runs', bad)).rejects.toThrow(InvalidNameError);
    }
    await expect(store.putJson('test-labels/v1', { labels: [] }, made('x', { evil: '../../x' }))).rejects.toThrow(
      /manifest input "evil"/,
    );
    expect(existsSync(path.join(store.root, '..', 'x'))).toBe(false);
  });

  it('reports a missing artifact as not found, naming it', async () => {
    const store = freshStore();
    const digest = 'ab'.repeat(32);
    await expect(store.getJson({ digest, format: 'json', schema: 'test-labels/v1' })).rejects.toThrow(NotFoundError);
    await expect(store.manifest(digest)).rejects.toThrow(new RegExp(`artifact ${digest} has no manifest`));
    expect(await store.has(digest)).toBe(false);
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
    } finally {
      if (saved === undefined) delete process.env.DRO_STORE;
      else process.env.DRO_STORE = saved;
    }
  });
});

describe('records and gc', () => {
  it('keeps what pinned records reference (with inputs, transitively) and deletes the rest', async () => {
    const store = freshStore();
    const put = (id: string, inputs: Record<string, string> = {}) =>
      store.putJson('test-labels/v1', { labels: [{ id, refused: false }] }, made(id, inputs));
    const source = await put('source');
    const derived = await put('derived', { source: source.digest });
    const result = await put('result', { derived: derived.digest });
    const unrelated = await put('unrelated');
    const cachedOnly = await put('cached-only');
    await store.records.put('runs', 'run-1', { status: 'ok' }, { refs: [result.digest], pin: true });
    await store.records.put('cache', 'key-unrelated', { outputs: [unrelated.digest] }, { refs: [unrelated.digest] });
    await store.records.put('cache', 'key-result', { outputs: [result.digest] }, { refs: [result.digest] });
    void cachedOnly;

    // Leftovers of an interrupted write: a temp file and bytes whose manifest never landed.
    const strayTemp = path.join(path.dirname(store.pathOf(source)), '.tmp-999-deadbeefcafe-x');
    writeFileSync(strayTemp, 'partial');
    const strayRecordTemp = path.join(store.records.dir, 'runs', '.tmp-999-cafe00000000-run-1.json');
    const orphanBytes = new TextEncoder().encode('orphan');
    const orphan = path.join(store.root, 'objects', sha256Hex(orphanBytes).slice(0, 2), sha256Hex(orphanBytes));
    writeFileSync(strayRecordTemp, 'partial');
    await store.putBytes('json', 'test-labels/v1', orphanBytes, made('o'), null);
    unlinkSync(store.manifestPath(sha256Hex(orphanBytes)));

    // Within the grace period nothing is touched.
    const young = await store.gc({ dryRun: false });
    expect(young.deleted).toEqual([]);

    const dry = await store.gc({ dryRun: true, graceMs: 0 });
    expect(dry.deleted).toEqual([unrelated.digest, cachedOnly.digest].sort());
    expect(dry.recordsDeleted).toEqual(['cache/key-unrelated']);
    expect(dry.strayFilesDeleted).toBe(3);
    expect(await store.has(unrelated.digest)).toBe(true); // dry run deletes nothing
    expect(existsSync(strayTemp)).toBe(true);

    const real = await store.gc({ graceMs: 0 });
    expect(real).toEqual({ ...dry, dryRun: false });
    expect(await store.list()).toEqual([source.digest, derived.digest, result.digest].sort());
    expect(await store.records.get('cache', 'key-unrelated')).toBeNull();
    expect(await store.records.get('cache', 'key-result')).toEqual({ outputs: [result.digest] });
    expect(existsSync(strayTemp)).toBe(false);
    expect(existsSync(strayRecordTemp)).toBe(false);
    expect(existsSync(orphan)).toBe(false);
    expect(real.bytesFreed).toBeGreaterThan(0);
  });

  it('lists records oldest first', async () => {
    const store = freshStore();
    await store.records.put('runs', 'b', 1);
    await store.records.put('runs', 'a', 2);
    const older = path.join(store.records.dir, 'runs', 'b.json');
    utimesSync(older, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    expect(await store.records.list('runs')).toEqual(['b', 'a']);
    expect(await store.records.list('nothing-here')).toEqual([]);
  });
});
