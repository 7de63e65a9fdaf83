/** executeNode on its own: the unit both engines call (the Temporal activity calls exactly this). */
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BadInputError, LocalArtifactStore, type ArtifactRef } from '@dro/artifacts';
import { CACHE_NAMESPACE, computeCacheKey, executeNode, type DagNode, type Stage } from '../src/index.ts';
import { numbersSchema, numbersStage, runCounts, scaleStage, testStages } from './fixtures/stages.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('execute-node');
afterAll(temp.cleanup);
beforeEach(() => runCounts.clear());

const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });
const numbersNode: DagNode = { id: 'numbers', stage: 'numbers', params: { count: 3 }, inputs: {} };

describe('executeNode', () => {
  it('runs on a miss, records the outputs, and returns them on a hit without running', async () => {
    const first = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} });
    expect(first.cacheHit).toBe(false);
    expect(await store.getJson(first.outputs.numbers)).toEqual({ values: [0, 1, 2] });
    expect(await store.records.get(CACHE_NAMESPACE, first.cacheKey)).toMatchObject({ stage: 'numbers', node: 'numbers', outputs: first.outputs });
    // A different process/engine with only the store in common gets the hit: no runner state involved.
    const otherEngine = new LocalArtifactStore({ root: store.root });
    const second = await executeNode({ store: otherEngine, stage: numbersStage as Stage<unknown>, node: numbersNode, inputs: {} });
    expect(second).toEqual({ ...first, cacheHit: true });
    expect(runCounts.get('numbers')).toBe(1);
    const forced = await executeNode({ store, stages: (name) => testStages.get(name), node: numbersNode, inputs: {}, force: true });
    expect(forced.cacheHit).toBe(false);
    expect(runCounts.get('numbers')).toBe(2);
  });

  it('keys the cache on stage name, version, parsed params, input digests and model digest', async () => {
    const { outputs } = await executeNode({ store, stages: testStages, node: numbersNode, inputs: {} });
    const other = await executeNode({ store, stages: testStages, node: { ...numbersNode, params: { count: 4 } }, inputs: {} });
    const inputs = { numbers: outputs.numbers };
    const base = computeCacheKey(scaleStage, { factor: 2 }, inputs, null);
    expect(computeCacheKey(scaleStage, { factor: 2 }, inputs, null)).toBe(base);
    expect(computeCacheKey({ ...scaleStage, version: '2' }, { factor: 2 }, inputs, null)).not.toBe(base);
    expect(computeCacheKey({ ...scaleStage, name: 'scale2' }, { factor: 2 }, inputs, null)).not.toBe(base);
    expect(computeCacheKey(scaleStage, { factor: 3 }, inputs, null)).not.toBe(base);
    expect(computeCacheKey(scaleStage, { factor: 2 }, { numbers: other.outputs.numbers }, null)).not.toBe(base);
    expect(computeCacheKey(scaleStage, { factor: 2 }, inputs, 'a'.repeat(64))).not.toBe(base);
    // Canonical: key order in params does not matter; defaults filled by parseParams count as given.
    expect(computeCacheKey(scaleStage, { b: 1, a: { y: 2, x: 1 } }, inputs, null)).toBe(computeCacheKey(scaleStage, { a: { x: 1, y: 2 }, b: 1 }, inputs, null));
    const implicit = await executeNode({ store, stages: testStages, node: { id: 's', stage: 'scale', params: {}, inputs: {} }, inputs });
    const explicit = await executeNode({ store, stages: testStages, node: { id: 's', stage: 'scale', params: { factor: 1 }, inputs: {} }, inputs });
    expect(explicit).toEqual({ ...implicit, cacheHit: true });
    expect(() => computeCacheKey(scaleStage, { factor: NaN }, inputs, null)).toThrow(BadInputError);
  });

  it('refuses inputs that are missing or not in the store, naming node and input', async () => {
    const node: DagNode = { id: 'scale-x', stage: 'scale', params: {}, inputs: {} };
    await expect(executeNode({ store, stages: testStages, node, inputs: {} })).rejects.toThrow(/node "scale-x" \(stage scale\) is missing input "numbers"/);
    const ghost: ArtifactRef = { digest: 'c'.repeat(64), format: 'json', schema: numbersSchema.name };
    await expect(executeNode({ store, stages: testStages, node, inputs: { numbers: ghost } })).rejects.toThrow(
      new RegExp(`node "scale-x" \\(stage scale\\) input "numbers": artifact ${'c'.repeat(64)} is not in store`),
    );
    await expect(executeNode({ store, stages: testStages, node: { ...node, stage: 'nope' }, inputs: {} })).rejects.toThrow(/unknown stage "nope"/);
  });

  it('refuses a stage that returns undeclared or missing outputs (a bug: never cached, never retried)', async () => {
    const liar: Stage = {
      name: 'liar',
      version: '1',
      needs: 'cpu',
      inputs: [],
      outputs: ['a'],
      async run(ctx, inputs, params): Promise<Record<string, ArtifactRef>> {
        const ref = await ctx.store.putJson(numbersSchema.name, { values: [] }, ctx.manifest());
        return (params as { mode: string }).mode === 'extra' ? { a: ref, b: ref } : {};
      },
    };
    const node = (mode: string): DagNode => ({ id: `liar-${mode}`, stage: 'liar', params: { mode }, inputs: {} });
    await expect(executeNode({ store, stage: liar, node: node('extra'), inputs: {} })).rejects.toThrow(/returned undeclared output "b"/);
    await expect(executeNode({ store, stage: liar, node: node('none'), inputs: {} })).rejects.toThrow(BadInputError);
    await expect(executeNode({ store, stage: liar, node: node('none'), inputs: {} })).rejects.toThrow(/did not return its output "a"/);
  });

  it('does not start a stage when already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      executeNode({ store, stages: testStages, node: { ...numbersNode, params: { count: 99 } }, inputs: {}, signal: controller.signal }),
    ).rejects.toThrow(/abort/i);
    expect(runCounts.get('numbers')).toBeUndefined();
  });
});
