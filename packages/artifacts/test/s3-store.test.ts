/**
 * What only the S3 store has to get right, on a real SeaweedFS server: locations and settings from the
 * AWS environment, honest errors (missing bucket, refused keys, a dead endpoint), the server-checked
 * sha256 of every upload, two writer processes at once (artifacts and the record index), and writers
 * SIGKILLed mid-upload. What both stores promise is in store-conformance.test.ts.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadInputError,
  InvalidNameError,
  LocalArtifactStore,
  S3ArtifactStore,
  S3Objects,
  StoreAccessError,
  StoreIOError,
  defineJsonSchema,
  defineTensorSchema,
  openStore,
  parseS3Uri,
  resolveStoreLocation,
  s3SettingsFromEnv,
  type ManifestInput,
} from '../src/index.ts';
import { freeLoopbackPort, startSeaweedFs, type SeaweedFsHandle } from '../src/testing/index.ts';
import { killLiveChildren, makeTempDir, seededRandom, spawnTsx, waitForExit, waitForLine } from './helpers.ts';

const WRITER = fileURLToPath(new URL('./fixtures/write-artifact.ts', import.meta.url));
const RECORDS = fileURLToPath(new URL('./fixtures/write-records.ts', import.meta.url));
const BUCKET = 'dro-s3-test';
defineJsonSchema<{ n: number }>({ name: 'test-n/v1', validate: (v) => (typeof (v as { n?: unknown })?.n === 'number' ? [] : ['n: expected a number']) });
defineTensorSchema({ name: 'test-blob/v1', tensors: { blob: { dtype: 'F32', rank: 1 } } });
const made: ManifestInput = { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} };

const cache = makeTempDir('s3-store-cache');
let server: SeaweedFsHandle;
let count = 0;
const freshStore = () => new S3ArtifactStore({ uri: `s3://${BUCKET}/s3-test-${count++}`, settings: server.settings, cacheDir: cache.dir });

beforeAll(async () => {
  server = await startSeaweedFs();
  await server.createBucket(BUCKET);
});
afterAll(async () => {
  killLiveChildren();
  await server?.stop();
  cache.cleanup();
});

describe('locations and settings', () => {
  it('parses s3://bucket[/prefix] strictly, naming what is wrong', () => {
    expect(parseS3Uri('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '', uri: 's3://my-bucket' });
    expect(parseS3Uri('s3://my.bucket/team/dro/')).toEqual({ bucket: 'my.bucket', prefix: 'team/dro', uri: 's3://my.bucket/team/dro' });
    for (const [bad, why] of [
      ['s3://', /is not a valid S3 bucket name/],
      ['s3:/bucket/x', /starts with "s3:\/\/"/],
      ['S3://bucket/x', /starts with "s3:\/\/"/],
      ['s3://My_Bucket/x', /is not a valid S3 bucket name/],
      ['s3://ab', /is not a valid S3 bucket name/],
      ['s3://bucket/a//b', /prefix segment "" must be/],
      ['s3://bucket/a/../b', /prefix segment ".." must be/],
      ['s3://key:secret@bucket/x', /no credentials, query/],
      ['s3://bucket/x?versionId=1', /no credentials, query/],
      ['s3://bucket/with space', /no credentials, query/],
    ] as const) {
      expect(() => parseS3Uri(bad), bad).toThrow(InvalidNameError);
      expect(() => parseS3Uri(bad), bad).toThrow(why);
    }
    expect(resolveStoreLocation('s3://bucket/p/')).toBe('s3://bucket/p');
    expect(() => resolveStoreLocation('s3:/bucket/p')).toThrow(InvalidNameError); // a typo, not a directory named "s3:"
    expect(() => resolveStoreLocation('gs://bucket/p', '/', '--store')).toThrow(/--store "gs:\/\/bucket\/p": only directories and s3:\/\/bucket\/prefix URIs are stores/);
  });

  it('openStore opens an S3 store for an s3:// location and a directory store otherwise, also from $DRO_STORE', () => {
    expect(openStore('s3://bucket/a')).toBeInstanceOf(S3ArtifactStore);
    expect(openStore('s3://bucket/a').root).toBe('s3://bucket/a');
    expect(openStore(cache.dir)).toBeInstanceOf(LocalArtifactStore);
    const saved = process.env.DRO_STORE;
    try {
      process.env.DRO_STORE = 's3://bucket/from-env/';
      expect(openStore().root).toBe('s3://bucket/from-env');
      process.env.DRO_STORE = 's3://Bad/x';
      expect(() => openStore()).toThrow(/\$DRO_STORE "s3:\/\/Bad\/x": bucket "Bad"/);
    } finally {
      if (saved === undefined) delete process.env.DRO_STORE;
      else process.env.DRO_STORE = saved;
    }
  });

  it('takes the endpoint and region from the AWS environment; path-style for any endpoint but AWS', () => {
    expect(s3SettingsFromEnv({})).toEqual({ endpoint: undefined, region: 'us-east-1', forcePathStyle: false });
    expect(s3SettingsFromEnv({ AWS_ENDPOINT_URL: 'http://127.0.0.1:8333', AWS_REGION: 'eu-west-1' })).toEqual({ endpoint: 'http://127.0.0.1:8333', region: 'eu-west-1', forcePathStyle: true });
    expect(s3SettingsFromEnv({ AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'https://s3.example.com', AWS_DEFAULT_REGION: 'x' })).toMatchObject({ endpoint: 'https://s3.example.com', region: 'x' });
    expect(s3SettingsFromEnv({ AWS_ENDPOINT_URL_S3: 'https://s3.eu-west-1.amazonaws.com' }).forcePathStyle).toBe(false);
    expect(() => s3SettingsFromEnv({ AWS_ENDPOINT_URL: 'localhost:8333' })).toThrow(/AWS_ENDPOINT_URL="localhost:8333": expected an http/);
    expect(() => s3SettingsFromEnv({ AWS_ENDPOINT_URL_S3: 'not a url' })).toThrow(StoreAccessError);
  });
});

describe('errors say what to fix', () => {
  it('a bucket that does not exist is a StoreAccessError naming it (bad input: never retried); nothing is created', async () => {
    const store = new S3ArtifactStore({ uri: 's3://no-such-bucket-here/x', settings: server.settings, cacheDir: cache.dir });
    const error = await store.putJson('test-n/v1', { n: 1 }, made).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreAccessError);
    expect(error).toBeInstanceOf(BadInputError);
    expect((error as Error).message).toMatch(/bucket "no-such-bucket-here" does not exist at endpoint http:\/\/127\.0\.0\.1:\d+/);
    await expect(store.has('a'.repeat(64))).rejects.toThrow(/does not exist/);
  });

  it('refused credentials are a StoreAccessError saying which variables to check', async () => {
    const settings = { ...server.settings, credentials: { accessKeyId: 'dro-test-access-key', secretAccessKey: 'wrong-secret' } };
    const store = new S3ArtifactStore({ uri: `s3://${BUCKET}/refused`, settings, cacheDir: cache.dir });
    const error = await store.putJson('test-n/v1', { n: 1 }, made).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreAccessError);
    expect((error as Error).message).toMatch(/refused the request \(SignatureDoesNotMatch.*check AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY/);
  });

  it('no credentials at all are named as such, before any write', async () => {
    const home = makeTempDir('no-aws-home');
    try {
      // Nothing the AWS credential chain could find: no variables, no ~/.aws, no instance metadata.
      const env = { PATH: process.env.PATH, HOME: home.dir, AWS_ENDPOINT_URL: server.endpoint, AWS_EC2_METADATA_DISABLED: 'true', DRO_CACHE: cache.dir };
      const result = await waitForExit(spawnTsx(WRITER, [`s3://${BUCKET}/no-credentials`, '1', '1', '1'], env));
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/cannot read s3:\/\/dro-s3-test\/no-credentials\/dro-store\.json: no S3 credentials \(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE\)/);
    } finally {
      home.cleanup();
    }
  });

  it('an endpoint that does not answer is a StoreIOError (transient: the engines retry it) naming the endpoint', async () => {
    const dead = `http://127.0.0.1:${await freeLoopbackPort()}`;
    const store = new S3ArtifactStore({ uri: `s3://${BUCKET}/dead`, settings: { ...server.settings, endpoint: dead }, cacheDir: cache.dir });
    const error = await store.has('a'.repeat(64)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreIOError);
    expect(error).not.toBeInstanceOf(BadInputError);
    expect((error as Error).message).toContain(`endpoint ${dead}`);
    expect((error as Error).message).toContain(`s3://${BUCKET}/dead/manifests/aa/`);
  });

  it('a server that accepts the connection and then says nothing fails the request instead of hanging', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket)); // reads nothing, answers nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}`;
      const store = new S3ArtifactStore({ uri: `s3://${BUCKET}/silent`, settings: { ...server.settings, endpoint, requestTimeoutMs: 300 }, cacheDir: cache.dir });
      const error = await store.getBytes('a'.repeat(64)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreIOError);
      expect((error as Error).message).toContain(`endpoint ${endpoint}`);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('the server refuses an upload whose bytes do not match the sha256 sent with it: a corrupted upload is never stored', async () => {
    const objects = new S3Objects(parseS3Uri(`s3://${BUCKET}/checksum`), server.settings);
    const body = Buffer.from('the bytes that were meant');
    const wrong = createHash('sha256').update('other bytes').digest('hex');
    await expect(objects.put('objects/xx/probe', body, { sha256: wrong })).rejects.toThrow(StoreIOError);
    expect(await objects.get('objects/xx/probe')).toBeNull();
    const right = createHash('sha256').update(body).digest('hex');
    expect(await objects.put('objects/xx/probe', body, { sha256: right })).toBe('written');
  });
});

describe('two writers at once', () => {
  const childEnv = () => ({ ...process.env, ...server.env, DRO_CACHE: cache.dir });

  it('two processes writing the same artifact both succeed and leave one object and one complete manifest', async () => {
    const store = freshStore();
    const startAt = String(Date.now() + 5000);
    const writers = [0, 1].map(() => spawnTsx(WRITER, [store.root, '8', '500', '1', startAt], childEnv()));
    const results = await Promise.all(writers.map(waitForExit));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const digests = results.map((r) => /wrote 500 ([0-9a-f]{64})/.exec(r.stdout)?.[1]);
    expect(digests[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(digests[1]).toBe(digests[0]);
    const digest = digests[0]!;
    const keys: string[] = [];
    for await (const entry of store.objects.list('')) keys.push(entry.rel);
    expect(keys.sort()).toEqual(['dro-store.json', `manifests/${digest.slice(0, 2)}/${digest}.json`, `objects/${digest.slice(0, 2)}/${digest}`]);
    await store.verify(digest);
    expect((await store.manifest(digest)).bytes).toBe((await store.getBytes(digest)).byteLength);
  });

  it('two processes updating the cache index and their run records at once lose no record and tear none', async () => {
    const store = freshStore();
    const startAt = String(Date.now() + 5000);
    const writers = ['a', 'b'].map((id) => spawnTsx(RECORDS, [store.root, id, '40', startAt], childEnv()));
    const results = await Promise.all(writers.map(waitForExit));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const cache = await store.records.scan<{ writer: string; i: number; outputs: { out: string } }>('cache');
    expect(cache.filter((entry) => 'error' in entry)).toEqual([]);
    const keys = cache.map((entry) => entry.key).sort();
    expect(keys).toEqual([...['a', 'b'].flatMap((w) => Array.from({ length: 40 }, (_, i) => `${w}-${i}`)), 'shared'].sort());
    for (const entry of cache) {
      if ('error' in entry) continue;
      const { writer, i, outputs } = entry.record.value;
      expect(outputs.out).toBe(entry.key === 'shared' ? 'same for every writer' : `${writer}/${i}`);
    }
    // Each run record holds its own writer's last word.
    expect(await store.records.get('runs', 'run-a')).toEqual({ writer: 'a', done: 40 });
    expect(await store.records.get('runs', 'run-b')).toEqual({ writer: 'b', done: 40 });
    expect((await store.verifyAll()).badRecords).toEqual([]);
  });
});

describe('crashes', () => {
  it('writers SIGKILLed mid-upload never leave a partial object, a manifest without its bytes, or a torn record', async () => {
    const store = freshStore();
    const random = seededRandom(16);
    for (let kill = 0; kill < 6; kill++) {
      const child = spawnTsx(WRITER, [store.root, '12', String(100 + kill * 10), '10'], { ...process.env, ...server.env, DRO_CACHE: cache.dir });
      const exited = waitForExit(child);
      await waitForLine(child, /^ready$/);
      await new Promise((resolve) => setTimeout(resolve, 200 + random() * 2500));
      child.kill('SIGKILL');
      await exited;
      // Every object under a digest name hashes to it; every manifest names its digest and has its bytes.
      const objects = new Map<string, string>();
      const manifests: string[] = [];
      for await (const entry of store.objects.list('')) {
        const object = /^objects\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(entry.rel);
        const manifest = /^manifests\/[0-9a-f]{2}\/([0-9a-f]{64})\.json$/.exec(entry.rel);
        if (object) objects.set(object[1]!, entry.rel);
        if (manifest) manifests.push(manifest[1]!);
      }
      for (const [digest, rel] of objects) expect((await store.objects.sha256(rel))!.sha256, rel).toBe(digest);
      for (const digest of manifests) {
        expect(objects.has(digest), `manifest ${digest} without its object`).toBe(true);
        expect((await store.manifest(digest)).digest).toBe(digest);
      }
    }
    const report = await store.verifyAll();
    expect([report.badObjects, report.badManifests, report.badRecords]).toEqual([[], [], []]);
  });
});
