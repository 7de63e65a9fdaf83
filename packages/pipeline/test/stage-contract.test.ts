/**
 * What the stage contract does for every stage, checked on real stages, a real store and a real (tiny) model:
 * declared input schemas are checked before a stage runs (by executeNode, runStage and validateDag), a
 * model-needing stage without a model fails once with one message, ctx.openModel() loads the node's model
 * once and the engine disposes it, and ctx.manifest() records producer, params, inputs, model and backend.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore, defineJsonSchema, type ArtifactRef, type Manifest } from '@dro/artifacts';
import { tf, type ChatModel } from '@dro/llm';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { StageRegistry, executeNode, runStage, validateDag, type Dag, type DagNode, type Stage } from '../src/index.ts';
import { numbersSchema, numbersStage } from './fixtures/stages.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('stage-contract');
afterAll(temp.cleanup);
const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });

const otherSchema = defineJsonSchema<{ text: string }>({ name: 'test-other/v1', validate: (v) => (typeof (v as { text?: unknown })?.text === 'string' ? [] : ['text: expected a string']) });

/** Reads "numbers" (declared test-numbers/v1) and any "extra:<key>" (declared test-other/v1). */
const sumStage: Stage<Record<string, never>> = {
  name: 'typed-sum',
  version: '1',
  needs: 'cpu',
  inputs: ['numbers'],
  variadicInputs: ['extra'],
  inputSchemas: { numbers: numbersSchema.name, extra: otherSchema.name },
  outputs: ['total'],
  outputSchemas: { total: numbersSchema.name },
  async run(ctx, inputs) {
    const { values } = await ctx.store.getJson<{ values: number[] }>(inputs.numbers!);
    return { total: await ctx.store.putJson(numbersSchema.name, { values: [values.reduce((a, b) => a + b, 0)] }, ctx.manifest()) };
  },
};

let opened: ChatModel[] = [];
/** Opens its model twice and writes what it saw. */
const modelStage: Stage<{ tag: string }> = {
  name: 'model-user',
  version: '1',
  needs: 'model',
  inputs: [],
  outputs: ['seen'],
  outputSchemas: { seen: otherSchema.name },
  parseParams: (raw) => ({ tag: String((raw as { tag?: string } | null)?.tag ?? 'x') }),
  async run(ctx, _inputs, params) {
    const first = await ctx.openModel();
    const second = await ctx.openModel();
    opened = [first, second];
    return { seen: await ctx.store.putJson(otherSchema.name, { text: `${params.tag}: hidden size ${first.config.hiddenSize}` }, ctx.manifest({ summary: { same: first === second } })) };
  },
};

async function numbers(): Promise<ArtifactRef> {
  return (await executeNode({ store, stage: numbersStage as Stage<unknown>, node: { id: 'n', stage: 'numbers', params: { count: 3 }, inputs: {} }, inputs: {} })).outputs.numbers!;
}

describe('the stage contract', () => {
  it('checks every input against its declared schema before the stage runs, in every engine', async () => {
    const good = await numbers();
    const wrong = await store.putJson(otherSchema.name, { text: 'not numbers' }, { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} });
    const node: DagNode = { id: 'sum', stage: 'typed-sum', params: {}, inputs: { numbers: { ref: wrong } } };
    const expected = `node "sum" (stage typed-sum) input "numbers" is a test-other/v1 artifact, expected test-numbers/v1`;
    await expect(executeNode({ store, stage: sumStage as Stage<unknown>, node, inputs: { numbers: wrong } })).rejects.toThrow(expected);
    await expect(runStage(sumStage, { numbers: wrong }, {}, { store })).rejects.toThrow('stage typed-sum input "numbers" is a test-other/v1 artifact, expected test-numbers/v1');
    // A variadic input is checked against its prefix's schema.
    await expect(runStage(sumStage, { numbers: good, 'extra:a': good }, {}, { store })).rejects.toThrow('input "extra:a" is a test-numbers/v1 artifact, expected test-other/v1');
    const total = await runStage(sumStage, { numbers: good, 'extra:a': wrong }, {}, { store });
    expect(await store.getJson(total.total!)).toEqual({ values: [3] });
    // validateDag sees the mismatch before anything runs: a producer's declared output schema, or a ref's schema.
    const registry = new StageRegistry([numbersStage, sumStage, { ...numbersStage, name: 'words', outputSchemas: { numbers: otherSchema.name } }] as Stage<unknown>[]);
    const dag = (from: string): Dag => ({
      name: 'typed',
      nodes: [
        { id: 'n', stage: from, params: { count: 3 }, inputs: {} },
        { id: 'sum', stage: 'typed-sum', params: {}, inputs: { numbers: { node: 'n', output: 'numbers' } } },
      ],
    });
    expect(() => validateDag(dag('numbers'), registry)).not.toThrow();
    expect(() => validateDag(dag('words'), registry)).toThrow('DAG "typed": node "sum" input "numbers" gets output "numbers" of node "n", a test-other/v1 artifact, but stage typed-sum reads test-numbers/v1');
    expect(() => validateDag({ name: 'typed', nodes: [node] }, registry)).toThrow(`input "numbers" gets artifact ${wrong.digest}, a test-other/v1 artifact`);
  });

  it('refuses a model-needing stage without a model, with one message, before it runs', async () => {
    const node: DagNode = { id: 'm', stage: 'model-user', params: {}, inputs: {} };
    const message = 'node "m" (stage model-user) needs a model, and none is configured (the DAG node has no model path)';
    await expect(executeNode({ store, stage: modelStage as Stage<unknown>, node, inputs: {} })).rejects.toThrow(message);
    expect(() => validateDag({ name: 'no-model', nodes: [node] }, new StageRegistry([modelStage as Stage<unknown>]))).toThrow(message);
    await expect(runStage(modelStage, {}, {}, { store })).rejects.toThrow('stage model-user needs a model');
    // A cpu stage that asks for a model is told it has none.
    const greedy: Stage<unknown> = { ...(sumStage as Stage<unknown>), name: 'greedy', run: async (ctx) => ({ total: (await ctx.openModel()) as never }) };
    await expect(runStage(greedy, { numbers: await numbers() }, {}, { store })).rejects.toThrow('stage greedy opened a model, but it has none (its needs is "cpu")');
  });

  it('opens the model once per run, disposes it after, and records it in the manifest', async () => {
    const model = writeTinyGgufModel(path.join(temp.dir, 'tiny.gguf'));
    // The backend is chosen (and its own tensors made) on the first load: load once before counting.
    await runStage(modelStage, {}, { tag: 'warm' }, { store, modelPath: model, modelDigest: 'd'.repeat(64) });
    const before = tf.memory().numTensors;
    const node: DagNode = { id: 'm', stage: 'model-user', params: { tag: 'a' }, inputs: {}, model: { path: model, digest: 'e'.repeat(64) } };
    const { outputs } = await executeNode({ store, stage: modelStage as Stage<unknown>, node, inputs: {} });
    expect(opened[0]).toBe(opened[1]);
    expect(tf.memory().numTensors).toBe(before);
    const manifest: Manifest = await store.manifest(outputs.seen!.digest);
    expect(manifest).toMatchObject({
      producer: { stage: 'model-user', version: '1' },
      params: { tag: 'a' },
      inputs: {},
      modelDigest: 'e'.repeat(64),
      backend: tf.getBackend(),
      summary: { same: true },
    });
    // A failing run disposes its model too.
    const failing: Stage<unknown> = { ...(modelStage as Stage<unknown>), run: async (ctx) => { await ctx.openModel(); throw new Error('boom'); } };
    await expect(executeNode({ store, stage: failing, node: { ...node, params: { tag: 'b' } }, inputs: {} })).rejects.toThrow('boom');
    expect(tf.memory().numTensors).toBe(before);
  });
});
