/**
 * Stage plugins named in an experiment config, on the tiny random model with the real stages and store:
 * examples/stage-plugin's middle-layer `extract` runs in place of the built-in (its states are the
 * built-in's all-layers states at that layer), an edit re-runs exactly its node (and what its changed
 * output feeds), and a plugin that does not fit is refused before the store is touched.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BadInputError, vectorValues } from '@dro/artifacts';
import { createProgressReporter, executeNode, type DagNode } from '@dro/pipeline';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { dagFor, droStageRegistry, listStages, prepareExperiment, runExperimentLocally, validateConfig, type ExperimentConfig } from '../src/index.ts';

const repo = path.resolve(import.meta.dirname, '..', '..', '..');
const exampleDir = path.join(repo, 'examples', 'stage-plugin');
const examplePlugin = path.join(exampleDir, 'middle-layer-extract.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-stage-plugin-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const model = writeTinyGgufModel(path.join(tmp, 'tiny.gguf'), 'F32');
const data = (() => {
  const rows = (file: string) => fs.readFileSync(path.join(repo, 'data', 'queries', file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string });
  const pick = (all: Array<{ label: string }>, n: number) => [...all.filter((r) => r.label === 'harmful').slice(0, n), ...all.filter((r) => r.label === 'harmless').slice(0, n)];
  const write = (name: string, list: unknown[]) => {
    fs.writeFileSync(path.join(tmp, name), list.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return path.join(tmp, name);
  };
  return { train: write('train.jsonl', pick(rows('train.jsonl'), 6)), heldout: write('heldout.jsonl', pick(rows('heldout.jsonl'), 2)) };
})();

/**
 * The example's experiment config as committed (its stages and overrides, its paths resolved against
 * examples/stage-plugin), on the tiny model and data; `stages` replaces the plugin when given.
 */
function exampleConfig(store: string, stages?: Record<string, string>, overrides: Record<string, Record<string, unknown>> = {}): ExperimentConfig {
  const raw = JSON.parse(fs.readFileSync(path.join(exampleDir, 'experiment.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  return validateConfig(
    {
      ...raw,
      models: [{ id: 'tiny', path: model }],
      queries: { train: data.train, eval: [data.heldout] },
      ...(stages ? { stages } : {}),
      overrides: { ...raw.overrides, 'data-prep': { limitPerLabel: null }, directions: { boundary: { maxEpochs: 30, folds: 3 } }, ...overrides },
      store,
    },
    path.join(exampleDir, 'experiment.json'),
    exampleDir,
  );
}

const silent = { concurrency: 2, progress: createProgressReporter({ mode: 'silent' }) };

/** Runs the example's analysis (data-prep → labels, extract → directions) and returns each node's record. */
async function runDirections(config: ExperimentConfig) {
  const prepared = await prepareExperiment(config);
  const outcome = await runExperimentLocally({ ...prepared, dag: dagFor(prepared.dag, 'directions') }, silent);
  expect(outcome.record.nodes.filter((n) => n.status !== 'succeeded').map((n) => `${n.id}: ${n.error?.message}`)).toEqual([]);
  return { prepared, nodes: Object.fromEntries(outcome.record.nodes.map((n) => [n.id, n])) };
}

/** A copy of the example plugin in its own directory (ESM, the workspace's packages importable). */
function pluginCopy(name: string, edit: (source: string) => string = (s) => s): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  const file = path.join(dir, 'plugin.ts');
  fs.writeFileSync(file, edit(fs.readFileSync(examplePlugin, 'utf8')));
  return file;
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('stage plugins in an experiment (tiny model)', () => {
  it('the example replaces extract with a middle layer\'s states; directions fit on them', async () => {
    const config = exampleConfig(path.join(tmp, 'store-example'));
    expect(config.stages).toEqual({ extract: { module: examplePlugin } });
    const { prepared, nodes } = await runDirections(config);
    const identity = `sha256:${sha256(examplePlugin)}`;
    expect(prepared.dag.nodes.filter((n) => n.plugin).map((n) => [n.id, n.plugin])).toEqual([['extract@tiny', { module: examplePlugin, identity }]]);
    const store = prepared.store;
    const states = nodes['extract@tiny']!.outputs.hiddenStates!;
    const manifest = await store.manifest(states.digest);
    expect(manifest.schema).toBe('hidden-states/v1');
    expect(manifest.producer).toEqual({ stage: 'extract', version: '1', plugin: { module: examplePlugin, identity } });
    // The tiny model has 2 blocks: hidden states 0 (embeddings), 1 (block 1), 2 (final norm); "middle" = 1.
    expect(manifest.summary).toEqual({ layer: 1, numLayers: 2 });
    expect(nodes['directions@tiny']!.outputs.directions).toBeDefined();

    // The built-in extract with allLayers, on the same rendered inputs: the plugin's rows are its layer 1.
    const extractNode = prepared.dag.nodes.find((n) => n.id === 'extract@tiny')!;
    const { plugin: _plugin, ...builtInNode } = extractNode;
    const { layer: _layer, ...builtInParams } = extractNode.params as Record<string, unknown>;
    const node: DagNode = { ...builtInNode, params: { ...builtInParams, allLayers: true } };
    const builtIn = await executeNode({ store, stages: droStageRegistry(), node, inputs: { rendered: nodes['prep-train@tiny']!.outputs.rendered! } });
    const all = await store.getTable(builtIn.outputs.hiddenStates!);
    const plugin = await store.getTable(states);
    const layers = vectorValues(all, 'layers');
    const final = vectorValues(all, 'hidden');
    const mine = vectorValues(plugin, 'hidden');
    const d = mine.dim;
    expect(plugin.numRows).toBe(all.numRows);
    let maxDiff = 0;
    let fromFinal = 0;
    for (let row = 0; row < plugin.numRows; row++) {
      for (let i = 0; i < d; i++) {
        const v = mine.values[row * d + i]!;
        maxDiff = Math.max(maxDiff, Math.abs(v - layers.values[(row * 3 + 1) * d + i]!));
        fromFinal = Math.max(fromFinal, Math.abs(v - final.values[row * d + i]!));
      }
    }
    expect(maxDiff).toBeLessThan(1e-5);
    expect(fromFinal).toBeGreaterThan(1e-2);
  });

  it('editing the plugin re-runs its nodes and nothing upstream; what it feeds re-runs only when its outputs change', async () => {
    const file = pluginCopy('editable');
    const config = exampleConfig(path.join(tmp, 'store-edit'), { extract: file });
    const first = await runDirections(config);
    const hits = (nodes: typeof first.nodes) => Object.fromEntries(Object.entries(nodes).map(([id, n]) => [id, n.cacheHit]));
    expect(hits((await runDirections(config)).nodes)).toEqual({ 'prep-train@tiny': true, 'refusal-logprob@tiny': true, 'extract@tiny': true, 'directions@tiny': true });

    fs.writeFileSync(file, `// reviewed\n${fs.readFileSync(file, 'utf8')}`);
    const commented = await runDirections(config);
    expect(hits(commented.nodes)).toEqual({ 'prep-train@tiny': true, 'refusal-logprob@tiny': true, 'extract@tiny': false, 'directions@tiny': true });
    expect(commented.nodes['extract@tiny']!.outputs).toEqual(first.nodes['extract@tiny']!.outputs);

    // Now "middle" reads the final state: new hidden states, so directions re-runs too.
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace("param === 'middle' ? Math.floor(numLayers / 2)", "param === 'middle' ? numLayers"));
    const last = await runDirections(config);
    expect(hits(last.nodes)).toEqual({ 'prep-train@tiny': true, 'refusal-logprob@tiny': true, 'extract@tiny': false, 'directions@tiny': false });
    expect((await last.prepared.store.manifest(last.nodes['extract@tiny']!.outputs.hiddenStates!.digest)).summary).toEqual({ layer: 2, numLayers: 2 });
  });

  it.each([
    ['no default export', (s: string) => s.replace('export default middleLayerExtract;', 'export { middleLayerExtract };'), 'field "default export": expected a Stage object'],
    ['the wrong output schema', (s: string) => s.replace('outputSchemas: { hiddenStates: hiddenStatesSchema.name }', "outputSchemas: { hiddenStates: 'hidden-states-all-layers/v1' }"), 'field "outputSchemas.hiddenStates": expected "hidden-states/v1" (the schema the consumers of stage extract read), got "hidden-states-all-layers/v1"'],
    ['a module that throws on load', (s: string) => `${s}\nthrow new Error('CUDA not found');\n`, 'throws on load: CUDA not found'],
    ['the wrong needs', (s: string) => s.replace("needs: 'model',", "needs: 'cpu',"), 'field "needs": expected "model"'],
    ['missing inputs', (s: string) => s.replace("inputs: ['rendered'],", 'inputs: [],'), 'field "inputs": expected [rendered]'],
  ])('a plugin with %s is refused before anything is written, naming the config field, the module and the field', async (_name, edit, message) => {
    const file = pluginCopy(`bad-${crypto.randomUUID()}`, edit);
    const store = path.join(tmp, `store-${crypto.randomUUID()}`);
    const prepare = prepareExperiment(exampleConfig(store, { extract: file }));
    await expect(prepare).rejects.toThrow(BadInputError);
    await expect(prepare).rejects.toThrow(`config field "stages.extract": stage plugin ${file}: ${message}`);
    expect(fs.existsSync(store)).toBe(false);
  });

  it('params the plugin rejects are refused before anything is written, naming the node and the module', async () => {
    const store = path.join(tmp, 'store-params');
    const prepare = prepareExperiment(exampleConfig(store, undefined, { extract: { layer: 'top' } }));
    await expect(prepare).rejects.toThrow(`node "extract@tiny" (stage plugin ${examplePlugin}) params: middle-layer extract params: layer: expected a layer index ≥ 0 or "middle", got "top"`);
    expect(fs.existsSync(store)).toBe(false);
  });

  it('listStages shows the plugin in place of the built-in, with its source and identity', async () => {
    const stages = await listStages(exampleConfig(path.join(tmp, 'store-list')));
    expect(stages.map((s) => s.name)).toEqual(droStageRegistry().list().map((s) => s.name));
    const extract = stages.find((s) => s.name === 'extract')!;
    expect(extract).toMatchObject({ source: examplePlugin, identity: `sha256:${sha256(examplePlugin)}`, version: '1', needs: 'model', outputs: ['hiddenStates'] });
    expect(stages.filter((s) => s.name !== 'extract').every((s) => s.source === 'built-in' && s.identity === null)).toBe(true);
    expect(fs.existsSync(path.join(tmp, 'store-list'))).toBe(false);
  });
});
