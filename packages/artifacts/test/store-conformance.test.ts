/**
 * What every artifact store promises, run against both real stores: a directory on disk and an S3 store on
 * a real SeaweedFS server. Damage is done through the layout (files, or objects through the S3 API), never
 * through the store under test. Filesystem-only behaviour (links, FIFOs, temp files, OS errors, stores from
 * before markers) is tested in store.test.ts, store-integrity.test.ts and store-marker.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadInputError,
  CorruptRecordError,
  DigestMismatchError,
  InvalidNameError,
  NotAStoreError,
  NotFoundError,
  STORE_FORMAT,
  STORE_FORMAT_VERSION,
  STORE_MARKER,
  SchemaError,
  canonicalJson,
  codeVersion,
  defineJsonSchema,
  defineTableSchema,
  defineTensorSchema,
  sha256Hex,
  type ArtifactRef,
  type ManifestInput,
} from '../src/index.ts';
import * as arrow from 'apache-arrow';
import { readFileSync } from 'node:fs';
import { localBackend, s3Backend, type StoreBackend } from './store-backends.ts';
import { runPython, type Labels } from './helpers.ts';

defineJsonSchema<{ n: number }>({ name: 'test-n/v1', validate: (v) => (typeof (v as { n?: unknown })?.n === 'number' ? [] : ['n: expected a number']) });
defineTensorSchema({ name: 'test-weights/v1', tensors: { w: { dtype: 'F32', rank: 2 } } });
defineTableSchema({ name: 'test-rows/v1', columns: [{ name: 'id', type: 'utf8' }, { name: 'score', type: 'float64' }] });

const rowsTable = (ids: string[], scores: number[]) =>
  new arrow.Table({ id: arrow.vectorFromArray(ids, new arrow.Utf8()), score: arrow.vectorFromArray(Float64Array.from(scores)) });
const made = (stage: string, inputs: Record<string, string> = {}): ManifestInput => ({ producer: { stage, version: '1' }, params: { k: 4 }, inputs });
const objectRel = (digest: string) => `objects/${digest.slice(0, 2)}/${digest}`;
const manifestRel = (digest: string) => `manifests/${digest.slice(0, 2)}/${digest}.json`;

for (const backend of [localBackend(), s3Backend()] as StoreBackend[]) describe(`${backend.kind} store`, () => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  describe('artifacts', () => {
    it('stores JSON, tensors and tables content-addressed with a full manifest', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const value: Labels = { labels: [{ id: 'q1', refused: true }] };
      const ref = await store.putJson('test-labels/v1', value, made('sampling'));
      expect(ref).toEqual({ digest: sha256Hex(canonicalJson(value)), format: 'json', schema: 'test-labels/v1' });
      expect((await raw.read(objectRel(ref.digest)))!.toString('utf8')).toBe(canonicalJson(value));
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
        bytes: (await raw.read(objectRel(weights.digest)))!.byteLength,
        code: codeVersion(),
      });
      expect(Date.parse(manifest.createdAt)).not.toBeNaN();
      const back = await store.getTensorsWithMetadata(weights);
      expect(Array.from(back.tensors.w.data as Float32Array)).toEqual([1, 2, 3, 4]);
      expect(back.metadata).toEqual({ note: 'pca' });
      const lazy = await store.openTensors(weights);
      expect(lazy.tensors.map((t) => t.name)).toEqual(['w']);

      const rows = await store.putTable('test-rows/v1', rowsTable(['a', 'b'], [0.5, 1.5]), made('scores'));
      expect((await store.getTable(rows)).getChild('score')!.toArray()).toEqual(Float64Array.from([0.5, 1.5]));
      expect(await store.list()).toEqual([ref.digest, weights.digest, rows.digest].sort());
      expect(await store.has(rows.digest)).toBe(true);
    });

    it('hands tools a verified local file (pyarrow reads the Parquet back); pathOf only where files are local', async () => {
      const store = backend.fresh();
      const rows = await store.putTable('test-rows/v1', rowsTable(['x', 'y', 'z'], [1, 2, 3]), made('scores'));
      const file = await store.localCopy(rows);
      expect(sha256Hex(readFileSync(file))).toBe(rows.digest);
      const out = runPython('import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); print(t.column("id").to_pylist(), t.column("score").to_pylist())', [file]);
      expect(out.trim()).toBe("['x', 'y', 'z'] [1.0, 2.0, 3.0]");
      if (backend.kind === 'local') expect(store.pathOf(rows)).toBe(file);
      else expect(() => store.pathOf(rows)).toThrow(/has no local files: use `await store.localCopy\(ref\)`/);
    });

    it('writing the same artifact twice keeps one copy and the first manifest', async () => {
      const store = backend.fresh();
      const first = await store.putJson('test-labels/v1', { labels: [] }, made('first'));
      const second = await store.putJson('test-labels/v1', { labels: [] }, made('second'));
      expect(second).toEqual(first);
      expect((await store.manifest(first.digest)).producer.stage).toBe('first');
      expect(await backend.raw(store).list('objects/')).toEqual([objectRel(first.digest)]);
    });

    it('a flipped byte makes a verified read fail with a digest error naming the artifact and its location', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const ref = await store.putJson('test-labels/v1', { labels: [{ id: 'abc', refused: false }] }, made('s'));
      const bytes = (await raw.read(objectRel(ref.digest)))!;
      bytes[10] ^= 0x01;
      await raw.write(objectRel(ref.digest), bytes);
      const expectDigestError = (error: unknown) => {
        expect(error).toBeInstanceOf(DigestMismatchError);
        expect(error).toBeInstanceOf(BadInputError); // never retried: retrying cannot fix corrupt bytes
        expect((error as Error).message).toContain(ref.digest);
        expect((error as Error).message).toContain(raw.where(objectRel(ref.digest)));
      };
      await store.getJson(ref).then(() => expect.fail('read of corrupt artifact succeeded'), expectDigestError);
      await store.verify(ref.digest).then(() => expect.fail('verify of corrupt artifact succeeded'), expectDigestError);
      await store.localCopy(ref).then(() => expect.fail('local copy of corrupt artifact succeeded'), expectDigestError);
      // Opting out of verification reads the (corrupt) bytes, as asked.
      expect(Buffer.from(await store.getBytes(ref, { verify: false })).equals(bytes)).toBe(true);
    });

    it('re-writing an artifact replaces a same-size bit-flipped object and a torn manifest', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const ref = await store.putJson('test-n/v1', { n: 12345 }, made('t'));
      const bytes = (await raw.read(objectRel(ref.digest)))!;
      bytes[3] ^= 0x20;
      await raw.write(objectRel(ref.digest), bytes);
      await expect(store.verify(ref.digest)).rejects.toThrow(DigestMismatchError);
      await raw.write(manifestRel(ref.digest), '{"digest": "'); // torn
      await expect(store.manifest(ref.digest)).rejects.toThrow(CorruptRecordError);

      expect(await store.putJson('test-n/v1', { n: 12345 }, made('t'))).toEqual(ref);
      await store.verify(ref.digest);
      expect(sha256Hex((await raw.read(objectRel(ref.digest)))!)).toBe(ref.digest);
      expect((await store.manifest(ref.digest)).digest).toBe(ref.digest);
    });

    it('validates on write and on read, naming the artifact and field', async () => {
      const store = backend.fresh();
      await expect(store.putJson('test-labels/v1', { labels: [{ id: 3 }] }, made('sampling'))).rejects.toThrow(
        /writing test-labels\/v1 from sampling \(schema test-labels\/v1\): labels\[0\]\.id: expected a string; labels\[0\]\.refused: expected a boolean/,
      );
      await expect(store.putTensors('test-weights/v1', { w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } }, made('x'))).rejects.toThrow(
        /tensor "w": expected rank 2, got shape \[4\]/,
      );
      await expect(store.putJson('no-such/v1', {}, made('x'))).rejects.toThrow(/unknown schema "no-such\/v1"/);
      // Bytes stored under a schema they do not satisfy are caught when read.
      const raw = await store.putBytes('json', 'test-labels/v1', new TextEncoder().encode('{"labels":"no"}'), made('x'), null);
      await expect(store.getJson(raw)).rejects.toThrow(SchemaError);
      await expect(store.getJson(raw)).rejects.toThrow(new RegExp(`artifact ${raw.digest} \\(schema test-labels/v1\\): labels: expected an array`));
      await expect(store.getTensors(raw)).rejects.toThrow(/is json, but was read as safetensors/);
    });

    it('rejects digests and record names that could escape the store', async () => {
      const store = backend.fresh();
      for (const bad of ['../../etc/passwd', '..', 'A'.repeat(64), `${'a'.repeat(63)}/`, '', 'a'.repeat(65)]) {
        await expect(store.getJson({ digest: bad, format: 'json', schema: 'test-labels/v1' })).rejects.toThrow(InvalidNameError);
        await expect(store.has(bad)).rejects.toThrow(InvalidNameError);
        await expect(store.manifest(bad)).rejects.toThrow(InvalidNameError);
      }
      for (const bad of ['..', '../x', 'a/b', '/abs', '.hidden', '', 'a\\b', 'x'.repeat(201), 'nul\0']) {
        await expect(store.records.put('runs', bad, {}), JSON.stringify(bad)).rejects.toThrow(InvalidNameError);
        await expect(store.records.put(bad, 'key', {})).rejects.toThrow(InvalidNameError);
        await expect(store.records.get('runs', bad)).rejects.toThrow(InvalidNameError);
      }
      await expect(store.putJson('test-labels/v1', { labels: [] }, made('x', { evil: '../../x' }))).rejects.toThrow(/manifest input "evil"/);
      expect(await backend.raw(store).list('')).toEqual([]); // nothing written, not even the marker
    });

    it('reports a missing artifact as not found, naming it', async () => {
      const store = backend.fresh();
      const digest = 'ab'.repeat(32);
      await expect(store.getJson({ digest, format: 'json', schema: 'test-labels/v1' })).rejects.toThrow(NotFoundError);
      await expect(store.verify(digest)).rejects.toThrow(NotFoundError);
      await expect(store.manifest(digest)).rejects.toThrow(new RegExp(`artifact ${digest} has no manifest`));
      expect(await store.has(digest)).toBe(false);
    });

    it('keeps a derived file (a report page) holding exactly the given bytes, rewriting a stale one', async () => {
      const store = backend.fresh();
      const ref = await store.putJson('test-n/v1', { n: 7 }, made('report'));
      const file = await store.materialize('reports', ref.digest, '<html>one</html>');
      expect(readFileSync(file, 'utf8')).toBe('<html>one</html>');
      expect(await store.materialize('reports', ref.digest, '<html>two</html>')).toBe(file);
      expect(readFileSync(file, 'utf8')).toBe('<html>two</html>');
      await expect(store.materialize('reports', '../x', 'y')).rejects.toThrow(InvalidNameError);
    });
  });

  describe('records, gc and verify', () => {
    it('records: put, get, scan oldest first, namespaces, delete', async () => {
      const store = backend.fresh();
      await store.records.put('runs', 'b', { n: 1 }, { refs: ['c'.repeat(64)], pin: true });
      await new Promise((resolve) => setTimeout(resolve, 1100)); // S3's Last-Modified has 1 s resolution
      await store.records.put('runs', 'a', { n: 2 });
      await store.records.put('cache', 'k', { n: 3 });
      expect(await store.records.get('runs', 'b')).toEqual({ n: 1 });
      expect(await store.records.getRecord('runs', 'b')).toMatchObject({ value: { n: 1 }, refs: ['c'.repeat(64)], pin: true });
      expect(await store.records.list('runs')).toEqual(['b', 'a']);
      expect(await store.records.namespaces()).toEqual(['cache', 'runs']);
      expect(await store.records.list('nothing-here')).toEqual([]);
      expect(await store.records.overwriteInPlace('runs', 'a', { n: 4 })).toBe(true);
      expect(await store.records.get('runs', 'a')).toEqual({ n: 4 });
      expect(await store.records.overwriteInPlace('runs', 'missing', { n: 5 })).toBe(false);
      await store.records.delete('runs', 'a');
      expect(await store.records.get('runs', 'a')).toBeNull();
    });

    it('gc keeps what pinned records reference (with inputs, transitively) and deletes the rest', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const put = (id: string, inputs: Record<string, string> = {}) => store.putJson('test-labels/v1', { labels: [{ id, refused: false }] }, made(id, inputs));
      const source = await put('source');
      const derived = await put('derived', { source: source.digest });
      const result = await put('result', { derived: derived.digest });
      const unrelated = await put('unrelated');
      const cachedOnly = await put('cached-only');
      await store.records.put('runs', 'run-1', { status: 'ok' }, { refs: [result.digest], pin: true });
      await store.records.put('cache', 'key-unrelated', { outputs: [unrelated.digest] }, { refs: [unrelated.digest] });
      await store.records.put('cache', 'key-result', { outputs: [result.digest] }, { refs: [result.digest] });
      void cachedOnly;
      // Leftovers of an interrupted write: bytes whose manifest never landed (and, on a filesystem, temp files).
      const orphanBytes = new TextEncoder().encode('orphan');
      const orphan = await store.putBytes('json', 'test-labels/v1', orphanBytes, made('o'), null);
      await raw.remove(manifestRel(orphan.digest));
      const temps = [backend.plantTempFile(store, `objects/${source.digest.slice(0, 2)}`), backend.plantTempFile(store, 'records/runs')].filter(Boolean).length;

      // Within the grace period nothing is touched.
      expect((await store.gc({ dryRun: false })).deleted).toEqual([]);

      const dry = await store.gc({ dryRun: true, graceMs: 0 });
      expect(dry.deleted).toEqual([unrelated.digest, cachedOnly.digest].sort());
      expect(dry.recordsDeleted).toEqual(['cache/key-unrelated']);
      expect(dry.strayFilesDeleted).toBe(1 + temps);
      expect(await store.has(unrelated.digest)).toBe(true); // a dry run deletes nothing

      const real = await store.gc({ graceMs: 0 });
      expect(real).toEqual({ ...dry, dryRun: false });
      expect(await store.list()).toEqual([source.digest, derived.digest, result.digest].sort());
      expect(await store.records.get('cache', 'key-unrelated')).toBeNull();
      expect(await store.records.get('cache', 'key-result')).toEqual({ outputs: [result.digest] });
      expect(await raw.read(objectRel(orphan.digest))).toBeNull();
      expect(real.bytesFreed).toBeGreaterThan(0);
      expect((await raw.list('objects/')).filter((rel) => rel.includes('.tmp-'))).toEqual([]);
    });

    it('torn records are reported by location, listed as bad by scan, and stop gc from deleting artifacts', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const pinned = await store.putJson('test-n/v1', { n: 1 }, made('t'));
      const unreferenced = await store.putJson('test-n/v1', { n: 2 }, made('t'));
      await store.records.put('runs', 'good', { ok: true }, { refs: [pinned.digest], pin: true });
      await store.records.put('runs', 'torn', { ok: true }, { refs: [unreferenced.digest], pin: true });
      const tornRel = 'records/runs/torn.json';
      await raw.write(tornRel, (await raw.read(tornRel))!.subarray(0, 20));

      const error = await store.records.get('runs', 'torn').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptRecordError);
      expect((error as Error).message).toContain(raw.where(tornRel));
      const scanned = await store.records.scan('runs');
      expect(scanned.map((e) => [e.key, 'error' in e]).sort()).toEqual([
        ['good', false],
        ['torn', true],
      ]);
      // The torn run record might pin `unreferenced`: gc reports it and deletes no artifact.
      const report = await store.gc({ graceMs: 0 });
      expect(report.badRecords).toEqual([raw.where(tornRel)]);
      expect(report.deleted).toEqual([]);
      expect(await store.has(unreferenced.digest)).toBe(true);
    });

    it('verifyAll re-hashes every object, finds corrupt objects, torn manifests and records, and removes them on request', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const good = await store.putJson('test-n/v1', { n: 1 }, made('t'));
      const bad = await store.putJson('test-n/v1', { n: 2 }, made('t'));
      const tornManifest = await store.putJson('test-n/v1', { n: 3 }, made('t'));
      await store.records.put('cache', 'k', {}, { refs: [good.digest] });
      const badBytes = (await raw.read(objectRel(bad.digest)))!;
      badBytes[3] ^= 0x20;
      await raw.write(objectRel(bad.digest), badBytes);
      await raw.write(manifestRel(tornManifest.digest), '{');
      await raw.write('records/cache/k.json', '{"value":');

      const report = await store.verifyAll();
      expect(report.objects).toBe(3);
      let total = 0;
      for (const rel of await raw.list('objects/')) total += (await raw.read(rel))!.byteLength;
      expect(report.bytes).toBe(total);
      expect(report.badObjects.map((b) => [b.digest, b.file])).toEqual([[bad.digest, raw.where(objectRel(bad.digest))]]);
      expect(report.badManifests).toEqual([raw.where(manifestRel(tornManifest.digest))]);
      expect(report.badRecords).toEqual([raw.where('records/cache/k.json')]);
      expect(report.removed).toEqual([]);
      expect(await raw.read(objectRel(bad.digest))).not.toBeNull(); // read-only without `remove`

      const removed = await store.verifyAll({ remove: true });
      expect(removed.removed).toEqual([manifestRel(bad.digest), objectRel(bad.digest), manifestRel(tornManifest.digest), 'records/cache/k.json'].map(raw.where));
      expect(await store.has(bad.digest)).toBe(false);
      const clean = await store.verifyAll();
      expect([clean.badObjects, clean.badManifests, clean.badRecords]).toEqual([[], [], []]);
      await store.verify(good.digest);
    });
  });

  describe('the store marker', () => {
    it('a new store gets a marker naming the format and version on its first write, also when writers race', async () => {
      const stores = Array.from({ length: 4 }, () => backend.at('racing-new-store'));
      const refs: ArtifactRef[] = await Promise.all(stores.map((store, n) => store.putJson('test-n/v1', { n }, made('t'))));
      const marker = JSON.parse((await backend.raw(stores[0]!).read(STORE_MARKER))!.toString('utf8')) as Record<string, unknown>;
      expect(marker).toMatchObject({ format: STORE_FORMAT, version: STORE_FORMAT_VERSION });
      expect(await stores[0]!.list()).toEqual(refs.map((r) => r.digest).sort());
    });

    it('a location holding other data is refused by writers, gc and verify, and nothing is written or deleted', async () => {
      const store = backend.at('someone-elses-data');
      const raw = backend.raw(store);
      await raw.write('precious.txt', 'do not touch');
      await raw.write(objectRel('a'.repeat(64)), 'looks content-addressed');
      const before = await raw.list('');
      await expect(store.putJson('test-n/v1', { n: 1 }, made('t'))).rejects.toThrow(NotAStoreError);
      await expect(store.records.put('runs', 'r', {})).rejects.toThrow(/is not a DRO store/);
      await expect(store.gc({ graceMs: 0 })).rejects.toThrow(NotAStoreError);
      await expect(store.verifyAll({ remove: true })).rejects.toThrow(NotAStoreError);
      expect(await raw.list('')).toEqual(before);
      expect((await raw.read('precious.txt'))!.toString()).toBe('do not touch');
    });

    it('a marker of another format or a newer version is refused for writing and gc', async () => {
      for (const [name, marker, pattern] of [
        ['newer', { format: STORE_FORMAT, version: STORE_FORMAT_VERSION + 1 }, /store format version 2; this dro reads and writes version 1/],
        ['other', { format: 'something-else', version: 1 }, /names format "something-else"/],
        ['torn', '{"format": "dro-', /is not valid JSON/],
      ] as const) {
        const store = backend.at(`marker-${name}`);
        const raw = backend.raw(store);
        await raw.write(STORE_MARKER, typeof marker === 'string' ? marker : JSON.stringify(marker));
        await expect(store.putJson('test-n/v1', { n: 1 }, made('t'))).rejects.toThrow(pattern);
        await expect(store.gc()).rejects.toThrow(pattern);
        expect(await raw.list('')).toEqual([STORE_MARKER]);
      }
    });

    it('gc deletes only names the store made: a foreign entry inside a marked store is left alone', async () => {
      const store = backend.fresh();
      const raw = backend.raw(store);
      const ref = await store.putJson('test-n/v1', { n: 1 }, made('t'));
      const shard = `objects/${ref.digest.slice(0, 2)}`;
      const foreign = [`${shard}/notes.txt`, `${shard}/${'f'.repeat(64)}`, 'objects/README'];
      for (const rel of foreign) await raw.write(rel, 'mine');
      const report = await store.gc({ graceMs: 0 });
      expect(report.deleted).toEqual([ref.digest]); // unpinned: collected
      for (const rel of foreign) expect((await raw.read(rel))!.toString()).toBe('mine');
      expect(report.skipped).toEqual(expect.arrayContaining(foreign.map(raw.where)));
    });
  });
});
