/**
 * Cache hits are served only when intact, on a real store on disk: a bit-flipped cached output or a torn
 * cache record is a miss (reported, recomputed, the store repaired), never a hit and never a stage
 * failure; a torn run index entry is skipped by path; a run over a corrupted cache ends `succeeded` only
 * with every output intact.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore, defineJsonSchema, type ArtifactRef, type CorruptRecordError } from '@dro/artifacts';
import { CACHE_NAMESPACE, ChunkCheckpoints, createProgressReporter, executeNode, listRuns, loadRun, runDag, type Dag, type DagNode, type StageLogger } from '../src/index.ts';
import { numbersSchema, runCounts, testStages } from './fixtures/stages.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('cache-integrity');
afterAll(temp.cleanup);
beforeEach(() => runCounts.clear());
let storeCount = 0;
const freshStore = () => new LocalArtifactStore({ root: path.join(temp.dir, `store-${storeCount++}`) });

const otherSchema = defineJsonSchema<{ note: string }>({ name: 'test-other/v1', validate: () => [] });
const numbersNode: DagNode = { id: 'numbers', stage: 'numbers', params: { count: 6 }, inputs: {} };
const chain: Dag = {
  name: 'chain',
  nodes: [numbersNode, { id: 'scale', stage: 'scale', params: { factor: 2 }, inputs: { numbers: { node: 'numbers', output: 'numbers' } } }],
};

/** Flip one bit in the middle of the file: same size, different bytes. */
function flipBit(file: string): void {
  const bytes = readFileSync(file);
  bytes[bytes.length >> 1] ^= 0x01;
  writeFileSync(file, bytes);
}

function captureLog(): StageLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, warn: (message) => warnings.push(message) };
}

describe('cache hits are verified', () => {
  it('a same-size bit-flipped cached output is a miss: the stage reruns and the object is repaired', async () => {
    const store = freshStore();
    const first = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} });
    const file = store.pathOf(first.outputs.numbers);
    flipBit(file);

    const log = captureLog();
    const second = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {}, log });
    expect(second.cacheHit).toBe(false);
    expect(runCounts.get('numbers')).toBe(2);
    expect(second.outputs).toEqual(first.outputs); // deterministic stage: same digest, now intact again
    await store.verify(second.outputs.numbers.digest);
    expect(log.warnings.join('\n')).toContain(file);

    // And the next lookup is a real hit.
    expect((await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} })).cacheHit).toBe(true);
  });

  it('a torn cache record is a miss named in a warning, not a stage failure, and is rewritten', async () => {
    const store = freshStore();
    const first = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} });
    const recordFile = path.join(store.records.dir, CACHE_NAMESPACE, `${first.cacheKey}.json`);
    writeFileSync(recordFile, readFileSync(recordFile, 'utf8').slice(0, 25));

    const log = captureLog();
    const second = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {}, log });
    expect(second).toEqual({ ...first, cacheHit: false });
    expect(log.warnings.join('\n')).toMatch(new RegExp(`unreadable.*${recordFile}`));
    expect(await store.records.get(CACHE_NAMESPACE, first.cacheKey)).toMatchObject({ outputs: first.outputs });
  });

  it('a cache entry naming an artifact its manifest contradicts, or with a torn manifest, is a miss and is repaired', async () => {
    const store = freshStore();
    const first = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} });
    const recordFile = path.join(store.records.dir, CACHE_NAMESPACE, `${first.cacheKey}.json`);
    // The entry names another, intact artifact (of another schema) as the "numbers" output.
    const other = await store.putJson(otherSchema.name, { note: 'not numbers' }, { producer: { stage: 'other', version: '1' }, params: {}, inputs: {} });
    const entry = JSON.parse(readFileSync(recordFile, 'utf8')) as { value: { outputs: Record<string, ArtifactRef> } };
    entry.value.outputs.numbers = { ...first.outputs.numbers, digest: other.digest };
    writeFileSync(recordFile, JSON.stringify(entry));

    const log = captureLog();
    const second = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {}, log });
    expect([second.cacheHit, second.outputs]).toEqual([false, first.outputs]);
    expect(log.warnings.join('\n')).toContain(`is a ${otherSchema.name} (json) artifact, not the ${numbersSchema.name} (json) the cache entry names`);

    // A torn manifest of a cached output: a miss, and the rerun rewrites the manifest.
    const manifestFile = store.manifestPath(first.outputs.numbers.digest);
    writeFileSync(manifestFile, '{"digest": "');
    const third = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {}, log });
    expect(third.cacheHit).toBe(false);
    expect((await store.manifest(first.outputs.numbers.digest)).schema).toBe(numbersSchema.name);
    expect((await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} })).cacheHit).toBe(true);
  });

  it('a cache entry naming an artifact of a schema the stage does not declare is a miss and is repaired', async () => {
    const store = freshStore();
    const numbers = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} });
    const scaleNode = chain.nodes[1]!;
    const first = await executeNode({ store, stages: testStages, node: scaleNode, inputs: numbers.outputs });
    const recordFile = path.join(store.records.dir, CACHE_NAMESPACE, `${first.cacheKey}.json`);
    // Entry and manifest agree with each other, but "scaled" is declared as test-numbers/v1.
    const other = await store.putJson(otherSchema.name, { note: 'not numbers' }, { producer: { stage: 'other', version: '1' }, params: {}, inputs: {} });
    const entry = JSON.parse(readFileSync(recordFile, 'utf8')) as { value: { outputs: Record<string, ArtifactRef> } };
    entry.value.outputs.scaled = other;
    writeFileSync(recordFile, JSON.stringify(entry));

    const log = captureLog();
    const second = await executeNode({ store, stages: testStages, node: scaleNode, inputs: numbers.outputs, log });
    expect([second.cacheHit, second.outputs]).toEqual([false, first.outputs]);
    expect(log.warnings.join('\n')).toContain(`output "scaled" is a ${otherSchema.name} artifact, the stage declares ${numbersSchema.name}`);
    expect((await executeNode({ store, stages: testStages, node: scaleNode, inputs: numbers.outputs })).cacheHit).toBe(true);
  });

  it('a resumable chunk whose record is torn or whose artifact is corrupt is recomputed, not served', async () => {
    const store = freshStore();
    const chunks = new ChunkCheckpoints(store, { stage: 'test', params: { a: 1 } });
    const ref: ArtifactRef = await store.putJson(numbersSchema.name, { values: [1, 2, 3] }, { producer: { stage: 't', version: '1' }, params: {}, inputs: {} });
    await chunks.remember(0, ref);
    await chunks.remember(1, ref);
    expect(await chunks.find(0)).toEqual(ref);
    const [chunkRecord] = (await store.records.scan('stage-chunks')).map((e) => e.file);
    writeFileSync(chunkRecord!, '{"value":{"dig');
    flipBit(store.pathOf(ref));
    expect([await chunks.find(0), await chunks.find(1)]).toEqual([null, null]);
  });

  it('a run over a store whose cached artifact was corrupted recomputes it and ends succeeded with every output intact', async () => {
    const store = freshStore();
    const quiet = { progress: createProgressReporter({ mode: 'silent' }) };
    const first = await runDag(chain, { store, stages: testStages, ...quiet });
    expect(first.status).toBe('succeeded');
    flipBit(store.pathOf(first.nodes[0]!.outputs.numbers!));
    flipBit(store.pathOf(first.nodes[1]!.outputs.scaled!));

    const second = await runDag(chain, { store, stages: testStages, ...quiet });
    expect(second.nodes.map((n) => [n.id, n.status, n.cacheHit])).toEqual([
      ['numbers', 'succeeded', false],
      ['scale', 'succeeded', false],
    ]);
    expect(second.status).toBe('succeeded');
    for (const node of second.nodes) for (const ref of Object.values(node.outputs)) await store.verify(ref.digest);
    expect((await store.getJson<{ values: number[] }>(second.nodes[1]!.outputs.scaled!)).values).toEqual([0, 2, 4, 6, 8, 10]);
  });
});

describe('torn run index entries', () => {
  it('are skipped by listRuns and loadRun with their path reported; the other runs still show', async () => {
    const store = freshStore();
    const quiet = { progress: createProgressReporter({ mode: 'silent' }) };
    const older = await runDag(chain, { store, stages: testStages, ...quiet, runId: 'run-a' });
    await runDag(chain, { store, stages: testStages, ...quiet, runId: 'run-b' });
    const torn = path.join(store.records.dir, 'runs', 'run-b.json');
    writeFileSync(torn, readFileSync(torn, 'utf8').slice(0, 40));

    const skipped: CorruptRecordError[] = [];
    const runs = await listRuns(store, (error) => skipped.push(error));
    expect(runs.map((r) => r.runId)).toEqual(['run-a']);
    expect(skipped.map((e) => e.path)).toEqual([torn]);
    expect((await loadRun(store)).runId).toBe(older.runId);
    await expect(loadRun(store, 'run-b')).rejects.toThrow(torn);
    // A new run in the same store is unaffected (and rewrites its own entry).
    expect((await runDag(chain, { store, stages: testStages, ...quiet, runId: 'run-b' })).status).toBe('succeeded');
    expect((await listRuns(store)).map((r) => r.runId).sort()).toEqual(['run-a', 'run-b']);
  });
});
