/**
 * Crash consistency and multi-process writes, on real child processes and a real store on disk.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore, defineTensorSchema, isTempName } from '../src/index.ts';
import { killLiveChildren, makeTempDir, seededRandom, spawnTsx, waitForExit, waitForLine } from './helpers.ts';

const WRITER = fileURLToPath(new URL('./fixtures/write-artifact.ts', import.meta.url));
const MEGABYTES = '12';
defineTensorSchema({ name: 'test-blob/v1', tensors: { blob: { dtype: 'F32', rank: 1 } } });

const temp = makeTempDir('crash');
afterAll(() => {
  killLiveChildren();
  temp.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function filesUnder(dir: string): { file: string; name: string }[] {
  const out: { file: string; name: string }[] = [];
  for (const shard of readdirSync(dir, { withFileTypes: true })) {
    if (!shard.isDirectory()) continue;
    for (const name of readdirSync(path.join(dir, shard.name))) out.push({ file: path.join(dir, shard.name, name), name });
  }
  return out;
}

/**
 * The invariant: every non-temp object file hashes to its own name (no partial bytes ever carry a
 * digest name), every manifest is complete JSON for its digest, and every committed artifact verifies
 * and reads back. Returns how many temp files (interrupted writes) were lying around.
 */
async function assertStoreConsistent(
  store: LocalArtifactStore,
  alreadyChecked = new Set<string>(),
): Promise<{ committed: number; tempFiles: number }> {
  let tempFiles = 0;
  for (const { file, name } of filesUnder(path.join(store.root, 'objects'))) {
    if (isTempName(name)) {
      tempFiles++;
      continue;
    }
    // Named files are only ever replaced whole by rename, so one that hashed right once still does.
    const identity = `${name}:${statSync(file).ino}`;
    if (alreadyChecked.has(identity)) continue;
    alreadyChecked.add(identity);
    expect(createHash('sha256').update(readFileSync(file)).digest('hex'), file).toBe(name);
  }
  for (const { file, name } of filesUnder(path.join(store.root, 'manifests'))) {
    if (isTempName(name)) {
      tempFiles++;
      continue;
    }
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { digest: string; bytes: number };
    expect(`${manifest.digest}.json`).toBe(name);
  }
  const committed = await store.list();
  for (const digest of committed) {
    if (alreadyChecked.has(`committed:${digest}`)) continue;
    alreadyChecked.add(`committed:${digest}`);
    await store.verify(digest);
    const manifest = await store.manifest(digest);
    const tensors = await store.getTensors({ digest, format: 'safetensors', schema: manifest.schema });
    expect(tensors.blob.shape).toEqual([(Number(MEGABYTES) * 1024 * 1024) / 4]);
  }
  return { committed: committed.length, tempFiles };
}

describe('crash consistency', () => {
  it('a writer SIGKILLed at 20 random moments never leaves a partial or corrupt artifact; a rerun completes', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'killed') });

    // Calibrate the kill window to how long one write takes on this machine right now.
    const calibration = spawnTsx(WRITER, [store.root, MEGABYTES, '1000', '3']);
    const calibrationExit = waitForExit(calibration);
    await waitForLine(calibration, /^ready/);
    const started = performance.now();
    await waitForLine(calibration, /^wrote 1002 /);
    const oneWriteMs = (performance.now() - started) / 3;
    expect((await calibrationExit).code).toBe(0);

    const random = seededRandom(20_24);
    let killedMidRun = 0;
    let tempFilesLeft = 0;
    const checked = new Set<string>();
    for (let attempt = 0; attempt < 20; attempt++) {
      // Each child would write 100 artifacts back to back; the kill lands anywhere within the first ~2.5.
      const child = spawnTsx(WRITER, [store.root, MEGABYTES, String(attempt * 100), '100']);
      const exited = waitForExit(child);
      await waitForLine(child, /^ready/);
      await sleep(random() * oneWriteMs * 2.5);
      child.kill('SIGKILL');
      const result = await exited;
      if (result.signal === 'SIGKILL') killedMidRun++;
      tempFilesLeft = (await assertStoreConsistent(store, checked)).tempFiles;
    }
    console.log(`crash test: one write ${oneWriteMs.toFixed(0)} ms, ${killedMidRun}/20 killed mid-run, ${tempFilesLeft} interrupted writes left as temp files`);
    expect(killedMidRun).toBe(20);

    // Rerun the first killed writer's work to completion: it succeeds and everything verifies.
    const rerun = spawnTsx(WRITER, [store.root, MEGABYTES, '0', '3']);
    const rerunResult = await waitForExit(rerun);
    expect(rerunResult.code, rerunResult.stderr).toBe(0);
    const digests = rerunResult.stdout.split('\n').filter((l) => l.startsWith('wrote ')).map((l) => l.split(' ')[2]);
    expect(digests).toHaveLength(3);
    for (const digest of digests) expect(await store.has(digest)).toBe(true);

    // gc (nothing pinned, no grace) clears every interrupted write and every unreferenced artifact.
    await store.gc({ graceMs: 0 });
    expect(await assertStoreConsistent(store)).toEqual({ committed: 0, tempFiles: 0 });
  });
});

describe('concurrent writers', () => {
  it('two processes writing the same artifact both succeed and leave one copy', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'concurrent') });
    const startAt = String(Date.now() + 4000);
    const writers = [0, 1].map(() => spawnTsx(WRITER, [store.root, MEGABYTES, '500', '1', startAt]));
    const results = await Promise.all(writers.map(waitForExit));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const digests = results.map((r) => /wrote 500 ([0-9a-f]{64})/.exec(r.stdout)?.[1]);
    expect(digests[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(digests[1]).toBe(digests[0]);

    const objects = filesUnder(path.join(store.root, 'objects')).map((f) => f.name);
    const manifests = filesUnder(path.join(store.root, 'manifests')).map((f) => f.name);
    expect(objects).toEqual([digests[0]]);
    expect(manifests).toEqual([`${digests[0]}.json`]);
    await store.verify(digests[0]!);
  });

  it('concurrent identical writes within one process also leave one copy', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'in-process') });
    const data = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const refs = await Promise.all(
      Array.from({ length: 6 }, () =>
        store.putTensors('test-blob/v1', { blob: { dtype: 'F32', shape: [1000], data } }, { producer: { stage: 't', version: '1' }, params: {}, inputs: {} }),
      ),
    );
    expect(new Set(refs.map((r) => r.digest)).size).toBe(1);
    expect(filesUnder(path.join(store.root, 'objects'))).toHaveLength(1);
    expect(await store.list()).toEqual([refs[0].digest]);
  });
});
