/**
 * Stage plugins on the real store and the local runner: a module file (TypeScript, loaded as the engines
 * load it) replaces a registered stage; its identity keys the cache and stamps its manifests; an edit
 * re-runs exactly its node; a plugin that does not fit is refused before anything runs or is written.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BadInputError, LocalArtifactStore, defineJsonSchema } from '@dro/artifacts';
import {
  CACHE_NAMESPACE,
  ChunkCheckpoints,
  StageRegistry,
  createProgressReporter,
  executeNode,
  loadStagePlugin,
  runDag,
  type Dag,
  type Stage,
  type StagePluginRef,
} from '../src/index.ts';
import { numbersStage, runCounts, testStages } from './fixtures/stages.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('stage-plugins');
afterAll(temp.cleanup);
beforeEach(() => runCounts.clear());

const repoNodeModules = path.resolve(import.meta.dirname, '..', '..', '..', 'node_modules');
const silent = { progress: createProgressReporter({ mode: 'silent' }) };
defineJsonSchema({ name: 'test-other/v1', validate: () => [] });

/** A directory for plugin modules: ESM (package.json "type": "module"), the workspace's packages importable. */
function pluginDir(name: string, options: { esm?: boolean } = {}): string {
  const dir = path.join(temp.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  if (options.esm !== false) fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  fs.symlinkSync(repoNodeModules, path.join(dir, 'node_modules'));
  return dir;
}

/** A plugin replacing `scale` (numbers → scaled): x · factor + offset, written as TypeScript. */
function scalePlugin(fields: { offset?: number; extra?: string; stage?: string } = {}): string {
  return `${fields.extra ?? ''}
const OFFSET: number = ${fields.offset ?? 100};
export default ${fields.stage ?? `{
  name: 'scale',
  version: '1',
  needs: 'cpu',
  inputs: ['numbers'],
  outputs: ['scaled'],
  outputSchemas: { scaled: 'test-numbers/v1' },
  parseParams: (raw: { factor?: number } | null) => ({ factor: raw?.factor ?? 1 }),
  async run(ctx: any, inputs: any, params: { factor: number }) {
    const { values } = await ctx.store.getJson(inputs.numbers);
    const manifest = { producer: { stage: 'scale', version: '1' }, params, inputs: { numbers: inputs.numbers.digest } };
    return { scaled: await ctx.store.putJson('test-numbers/v1', { values: values.map((v: number) => v * params.factor + OFFSET) }, manifest) };
  },
}`};
`;
}

function write(file: string, text: string): string {
  fs.writeFileSync(file, text);
  return file;
}

function scaleDag(plugin: StagePluginRef | undefined): Dag {
  return {
    name: 'plugin-test',
    nodes: [
      { id: 'numbers', stage: 'numbers', params: { count: 3 }, inputs: {} },
      { id: 'scale', stage: 'scale', params: { factor: 2 }, inputs: { numbers: { node: 'numbers', output: 'numbers' } }, ...(plugin ? { plugin } : {}) },
    ],
  };
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('stage plugins', () => {
  it('replace a stage: the outputs are the plugin\'s, and its identity keys the cache and stamps every manifest', async () => {
    const file = write(path.join(pluginDir('replace'), 'scale-plus.ts'), scalePlugin());
    const { ref, stage } = await loadStagePlugin('scale', { module: file }, testStages);
    expect(ref).toEqual({ module: file, identity: `sha256:${sha256(file)}` });
    expect(stage.version).toBe('1');

    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store-replace') });
    const withPlugin = await runDag(scaleDag(ref), { store, stages: testStages, ...silent });
    expect(withPlugin.status).toBe('succeeded');
    const scaled = withPlugin.nodes.find((n) => n.id === 'scale')!;
    expect(await store.getJson(scaled.outputs.scaled)).toEqual({ values: [100, 102, 104] });
    expect((await store.manifest(scaled.outputs.scaled.digest)).producer).toEqual({ stage: 'scale', version: '1', plugin: { module: file, identity: ref.identity } });
    expect(await store.records.get(CACHE_NAMESPACE, scaled.cacheKey!)).toMatchObject({ plugin: { module: file, identity: ref.identity } });

    // The registered stage, same name, version and params: another cache key, its own outputs.
    const builtIn = await runDag(scaleDag(undefined), { store, stages: testStages, ...silent });
    const registered = builtIn.nodes.find((n) => n.id === 'scale')!;
    expect(registered.cacheHit).toBe(false);
    expect(registered.cacheKey).not.toBe(scaled.cacheKey);
    expect(await store.getJson(registered.outputs.scaled)).toEqual({ values: [0, 2, 4] });
    expect((await store.manifest(registered.outputs.scaled.digest)).producer.plugin).toBeUndefined();
  });

  it('editing the plugin re-runs its node and nothing upstream', async () => {
    const file = write(path.join(pluginDir('edit'), 'scale-plus.ts'), scalePlugin());
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store-edit') });
    const run = async () => {
      const { ref } = await loadStagePlugin('scale', { module: file }, testStages);
      const record = await runDag(scaleDag(ref), { store, stages: testStages, ...silent });
      expect(record.status).toBe('succeeded');
      return Object.fromEntries(record.nodes.map((n) => [n.id, n]));
    };
    const first = await run();
    const again = await run();
    expect([again.numbers!.cacheHit, again.scale!.cacheHit]).toEqual([true, true]);

    // A comment: another identity, so the plugin's node runs again (to the same bytes); upstream is a hit.
    write(file, `// reviewed\n${fs.readFileSync(file, 'utf8')}`);
    const commented = await run();
    expect([commented.numbers!.cacheHit, commented.scale!.cacheHit]).toEqual([true, false]);
    expect(commented.scale!.outputs).toEqual(first.scale!.outputs);

    // A change in what it computes: new outputs; upstream still a hit.
    write(file, scalePlugin({ offset: 1000 }));
    const changed = await run();
    expect([changed.numbers!.cacheHit, changed.scale!.cacheHit]).toEqual([true, false]);
    expect(await store.getJson(changed.scale!.outputs.scaled)).toEqual({ values: [1000, 1002, 1004] });
    expect(runCounts.get('numbers')).toBe(1);
  });

  it('a plugin importing local files: they are part of its identity, and a process refuses stale ones', async () => {
    const dir = pluginDir('siblings');
    write(path.join(dir, 'offset.ts'), 'export const OFFSET_BASE: number = 7;\n');
    const file = write(path.join(dir, 'scale-sibling.ts'), scalePlugin({ extra: "import { OFFSET_BASE } from './offset.js';", offset: 0 }).replace('v * params.factor + OFFSET', 'v * params.factor + OFFSET + OFFSET_BASE'));
    const first = await loadStagePlugin('scale', { module: file }, testStages);
    expect(first.ref.identity).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(first.ref.identity).not.toBe(`sha256:${sha256(file)}`);
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store-siblings') });
    const record = await runDag(scaleDag(first.ref), { store, stages: testStages, ...silent });
    expect(await store.getJson(record.nodes.find((n) => n.id === 'scale')!.outputs.scaled)).toEqual({ values: [7, 9, 11] });

    write(path.join(dir, 'offset.ts'), 'export const OFFSET_BASE: number = 8;\n');
    const stale = loadStagePlugin('scale', { module: file }, testStages);
    await expect(stale).rejects.toThrow(BadInputError);
    await expect(stale).rejects.toThrow(`stage plugin ${file}: ${path.join(dir, 'offset.ts')}, which it imports, changed since this process first loaded it`);
  });

  const wrong = (fields: string) => scalePlugin({ stage: `{ name: 'scale', version: '1', needs: 'cpu', inputs: ['numbers'], outputs: ['scaled'], outputSchemas: { scaled: 'test-numbers/v1' }, run: async () => ({}), ${fields} }` });
  it.each([
    ['no default export', scalePlugin().replace('export default', 'export const stage ='), 'field "default export": expected a Stage object'],
    ['a default export that is not a Stage', 'export default 42;\n', 'field "default export": expected a Stage object, got 42'],
    ['another stage name', wrong("name: 'scale-plus'"), 'field "name": expected "scale" (the stage it replaces), got "scale-plus"'],
    ['wrong needs', wrong("needs: 'model'"), 'field "needs": expected "cpu"'],
    ['a missing input', wrong('inputs: []'), 'field "inputs": expected [numbers]'],
    ['an input the DAG does not give', wrong("inputs: ['numbers', 'weights']"), 'field "inputs": expected [numbers]'],
    ['a missing output', wrong("outputs: ['values']"), 'field "outputs": expected distinct names including [scaled]'],
    ['the wrong output schema', wrong("outputSchemas: { scaled: 'test-other/v1' }"), 'field "outputSchemas.scaled": expected "test-numbers/v1" (the schema the consumers of stage scale read), got "test-other/v1"'],
    ['no output schema', wrong('outputSchemas: undefined'), 'field "outputSchemas.scaled": expected "test-numbers/v1"'],
    ['an undeclared schema', wrong("outputs: ['scaled', 'log'], outputSchemas: { scaled: 'test-numbers/v1', log: 'nope/v1' }"), 'field "outputSchemas.log": expected a declared schema name'],
    ['no run function', wrong('run: undefined'), 'field "run": expected a function'],
    ['parseParams that is not a function', wrong("parseParams: 'strict'"), 'field "parseParams": expected a function'],
    ['a module that throws on load', `throw new Error('needs a GPU');\n${scalePlugin()}`, 'throws on load: needs a GPU'],
    ['a syntax error', 'export default {\n', 'cannot be loaded: Expected identifier but found end of file (plugin.ts:2:0)'],
    ['an import that does not resolve', `import './helpers.ts';\n${scalePlugin()}`, 'cannot be loaded: Could not resolve "./helpers.ts"'],
  ])('are refused before any stage runs, naming the module and the field: %s', async (_name, source, message) => {
    const file = write(path.join(pluginDir(`bad-${crypto.randomUUID()}`), 'plugin.ts'), source);
    const root = path.join(temp.dir, `store-${crypto.randomUUID()}`);
    // As a config would plan it (the identity of a single file is its sha256), then run: refused first.
    const ref: StagePluginRef = { module: file, identity: `sha256:${sha256(file)}` };
    const run = runDag(scaleDag(ref), { store: new LocalArtifactStore({ root }), stages: testStages, ...silent });
    await expect(run).rejects.toThrow(BadInputError);
    await expect(run).rejects.toThrow(`DAG "plugin-test": node "scale": stage plugin ${file}: ${message}`);
    await expect(loadStagePlugin('scale', { module: file }, testStages)).rejects.toThrow(`stage plugin ${file}: ${message}`);
    expect(runCounts.size).toBe(0);
    expect(fs.existsSync(root)).toBe(false);
  });

  it('refuses a plugin that would load as CommonJS, and a module that is not there', async () => {
    const cjs = write(path.join(pluginDir('cjs', { esm: false }), 'plugin.ts'), scalePlugin());
    await expect(loadStagePlugin('scale', { module: cjs }, testStages)).rejects.toThrow(`stage plugin ${cjs}: ${cjs} would load as CommonJS`);
    const missing = path.join(temp.dir, 'nowhere', 'plugin.ts');
    await expect(loadStagePlugin('scale', { module: missing }, testStages)).rejects.toThrow(`stage plugin ${missing}: cannot read the module (ENOENT)`);
    await expect(loadStagePlugin('no-such-stage', { module: cjs }, testStages)).rejects.toThrow('replaces stage "no-such-stage", which is not a stage of this engine');
  });

  it('a process that finds other plugin files than the run was planned with refuses the node', async () => {
    const file = write(path.join(pluginDir('planned'), 'scale-plus.ts'), scalePlugin());
    const planned: StagePluginRef = { module: file, identity: `sha256:${'0'.repeat(64)}` };
    const root = path.join(temp.dir, 'store-planned');
    await expect(runDag(scaleDag(planned), { store: new LocalArtifactStore({ root }), stages: testStages, ...silent })).rejects.toThrow(
      `this process finds identity sha256:${sha256(file)}, the run was planned with sha256:${'0'.repeat(64)}`,
    );
    expect(fs.existsSync(root)).toBe(false);
  });

  it('the executor checks the schema a plugin actually writes, and records nothing on a mismatch', async () => {
    const file = write(path.join(pluginDir('liar'), 'plugin.ts'), scalePlugin().replace("putJson('test-numbers/v1'", "putJson('test-other/v1'"));
    const { ref } = await loadStagePlugin('scale', { module: file }, testStages);
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store-liar') });
    const numbers = await executeNode({ store, stages: testStages, node: scaleDag(undefined).nodes[0]!, inputs: {} });
    const node = { ...scaleDag(ref).nodes[1]!, plugin: ref };
    const run = executeNode({ store, stages: testStages, node, inputs: { numbers: numbers.outputs.numbers } });
    await expect(run).rejects.toThrow('node "scale" (stage scale) output "scaled" is a test-other/v1 artifact, declared test-numbers/v1');
    expect(await store.records.list(CACHE_NAMESPACE)).toEqual([numbers.cacheKey]);
  });

  it('never resume from the chunk checkpoints of the stage they replace (records are scoped by identity)', async () => {
    // A registered stage and a plugin copied from it: same name, version, params and checkpoint identity.
    const chunkIdentity = { stage: 'chunky', version: '1' };
    const chunky: Stage<unknown> = {
      name: 'chunky',
      version: '1',
      needs: 'cpu',
      inputs: [],
      outputs: ['numbers'],
      async run(ctx) {
        const checkpoints = new ChunkCheckpoints(ctx.store, chunkIdentity);
        const ref = (await checkpoints.find(0)) ?? (await ctx.store.putJson('test-numbers/v1', { values: [1] }, ctx.manifest()));
        await checkpoints.remember(0, ref);
        return { numbers: ref };
      },
    };
    const stages = new StageRegistry([numbersStage, chunky]);
    const file = write(
      path.join(pluginDir('chunky'), 'chunky.ts'),
      `import { ChunkCheckpoints } from '@dro/pipeline';
export default {
  name: 'chunky', version: '1', needs: 'cpu', inputs: [], outputs: ['numbers'],
  async run(ctx: any) {
    const checkpoints = new ChunkCheckpoints(ctx.store, ${JSON.stringify(chunkIdentity)});
    const resumed = await checkpoints.find(0);
    const ref = resumed ?? (await ctx.store.putJson('test-numbers/v1', { values: [2] }, { producer: { stage: 'chunky', version: '1' }, params: {}, inputs: {} }));
    await checkpoints.remember(0, ref);
    return { numbers: ref };
  },
};
`,
    );
    const { ref } = await loadStagePlugin('chunky', { module: file }, stages);
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store-chunky') });
    const dag = (plugin?: StagePluginRef): Dag => ({ name: 'chunky', nodes: [{ id: 'c', stage: 'chunky', params: {}, inputs: {}, ...(plugin ? { plugin } : {}) }] });
    const builtIn = await runDag(dag(), { store, stages, ...silent });
    expect(await store.getJson(builtIn.nodes[0]!.outputs.numbers)).toEqual({ values: [1] });
    const plugin = await runDag(dag(ref), { store, stages, ...silent });
    expect(await store.getJson(plugin.nodes[0]!.outputs.numbers)).toEqual({ values: [2] });
  });

  it('a package plugin: identity name@version, resolved from its directory; a new version re-runs', async () => {
    const project = path.join(temp.dir, 'package-project');
    const pkg = path.join(project, 'node_modules', '@lab', 'scale-plugin');
    fs.mkdirSync(pkg, { recursive: true });
    const manifest = (version: string) => JSON.stringify({ name: '@lab/scale-plugin', version, type: 'module', exports: { '.': { import: './index.js' } } });
    write(path.join(pkg, 'package.json'), manifest('1.0.0'));
    write(
      path.join(pkg, 'index.js'),
      `export default {
  name: 'scale', version: '1', needs: 'cpu', inputs: ['numbers'], outputs: ['scaled'], outputSchemas: { scaled: 'test-numbers/v1' },
  parseParams: (raw) => ({ factor: raw?.factor ?? 1 }),
  async run(ctx, inputs, params) {
    const { values } = await ctx.store.getJson(inputs.numbers);
    const manifest = { producer: { stage: 'scale', version: '1' }, params, inputs: { numbers: inputs.numbers.digest } };
    return { scaled: await ctx.store.putJson('test-numbers/v1', { values: values.map((v) => v * params.factor + 5) }, manifest) };
  },
};
`,
    );
    const source = { module: '@lab/scale-plugin', resolveFrom: project };
    const first = await loadStagePlugin('scale', source, testStages);
    expect(first.ref).toEqual({ ...source, identity: '@lab/scale-plugin@1.0.0' });
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store-package') });
    const one = await runDag(scaleDag(first.ref), { store, stages: testStages, ...silent });
    expect(await store.getJson(one.nodes.find((n) => n.id === 'scale')!.outputs.scaled)).toEqual({ values: [5, 7, 9] });

    write(path.join(pkg, 'package.json'), manifest('1.0.1'));
    const next = await loadStagePlugin('scale', source, testStages);
    expect(next.ref.identity).toBe('@lab/scale-plugin@1.0.1');
    const two = await runDag(scaleDag(next.ref), { store, stages: testStages, ...silent });
    expect(two.nodes.map((n) => n.cacheHit)).toEqual([true, false]);

    await expect(loadStagePlugin('scale', { module: '@lab/missing', resolveFrom: project }, testStages)).rejects.toThrow(
      `stage plugin package "@lab/missing" (from ${project}): cannot be resolved (Could not resolve "@lab/missing")`,
    );
  });
});
