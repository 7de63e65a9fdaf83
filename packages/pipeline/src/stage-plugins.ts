/**
 * Stage plugins: a module whose default export is a Stage replaces the registered stage of the same name
 * for the nodes that name it (DagNode.plugin). Both engines load plugins through here — the local runner
 * before it validates a DAG, a Temporal worker when it plans a DAG or runs a node — so a plugin that
 * cannot load, or does not fit the stage it replaces, is a BadInputError (never retried) naming the module
 * and the field, raised before any stage runs. A worker passes its allowlist (`allow`): a DAG's plugin it
 * does not admit is refused the same way, before the module is read (plugin-allowlist.ts).
 *
 * "Fits" means the DAG built for the replaced stage works unchanged: the same name, `needs` (it routes the
 * node and decides whether it gets a model) and required inputs, every variadic input prefix and every
 * output of the replaced stage, and for each output with a declared schema the same schema.
 *
 * Loaded plugins are kept per process by (stage, module, identity). A path plugin is imported under a URL
 * carrying its identity, so an edited module file loads afresh; the local files it imports are loaded
 * once per process (Node caches them by path), so a process refuses a plugin whose imported files changed
 * since it first loaded them rather than run stale code under a new identity: restart it.
 */
import { BadInputError, listSchemas } from '@dro/artifacts';
import type { Dag, DagNode, Stage, StagePluginRef, StagePluginSource } from './stage.ts';
import { lookupStage, type StageLookup } from './registry.ts';
import { pluginLabel, resolvePluginModule } from './plugin-module.ts';
import { assertPluginAllowed, type PluginAllowlist } from './plugin-allowlist.ts';

export interface LoadedStagePlugin {
  stage: Stage<unknown>;
  ref: StagePluginRef;
}

/** Plugins loaded in this process, per stage they replace (it was checked against that one), by pluginKey. */
const loading = new WeakMap<Stage<unknown>, Map<string, Promise<LoadedStagePlugin>>>();
const ready = new WeakMap<Stage<unknown>, Map<string, LoadedStagePlugin>>();
/** Local files imported by a plugin in this process (absolute path → sha256 when first imported). */
const importedFiles = new Map<string, string>();

function pluginKey(ref: StagePluginRef): string {
  return JSON.stringify([ref.module, ref.resolveFrom ?? null, ref.identity]);
}

function mapOf<V>(maps: WeakMap<Stage<unknown>, Map<string, V>>, stage: Stage<unknown>): Map<string, V> {
  let map = maps.get(stage);
  if (!map) maps.set(stage, (map = new Map()));
  return map;
}

/**
 * Load the plugin `source` in place of stage `stageName` of `stages`, check it against that stage, and
 * return it with its identity. With `source.identity` (a ref from a DAG), the module this process finds
 * must have that identity: a worker that sees other files than the run was planned with refuses.
 */
export async function loadStagePlugin(stageName: string, source: StagePluginSource & { identity?: string }, stages: StageLookup): Promise<LoadedStagePlugin> {
  const where = `stage plugin ${pluginLabel(source)}`;
  const replaced = lookupStage(stages, stageName);
  if (!replaced) throw new BadInputError(`${where}: replaces stage "${stageName}", which is not a stage of this engine`);
  const loads = mapOf(loading, replaced);
  if (source.identity !== undefined) {
    const known = loads.get(pluginKey(source as StagePluginRef));
    if (known) return known;
  }
  const module = await resolvePluginModule(source);
  if (source.identity !== undefined && module.identity !== source.identity) {
    throw new BadInputError(
      `${where}: this process finds identity ${module.identity}, the run was planned with ${source.identity}; every machine that runs the stage must see the same plugin files (or package version)`,
    );
  }
  const ref: StagePluginRef = { module: source.module, ...(source.resolveFrom !== undefined ? { resolveFrom: source.resolveFrom } : {}), identity: module.identity };
  const key = pluginKey(ref);
  const existing = loads.get(key);
  if (existing) return existing;
  const load = (async (): Promise<LoadedStagePlugin> => {
    for (const [file, hash] of module.imports) {
      const first = importedFiles.get(file);
      if (first !== undefined && first !== hash) {
        throw new BadInputError(`${where}: ${file}, which it imports, changed since this process first loaded it (a process loads imported files once); restart the process`);
      }
    }
    // Recorded before importing: Node caches what the import loads even when the module then throws.
    for (const [file, hash] of module.imports) if (!importedFiles.has(file)) importedFiles.set(file, hash);
    let namespace: Record<string, unknown>;
    try {
      namespace = (await import(/* @vite-ignore */ module.url)) as Record<string, unknown>;
    } catch (error) {
      throw new BadInputError(`${where}: throws on load: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const loaded = { stage: checkPluginStage(where, namespace, replaced), ref };
    mapOf(ready, replaced).set(key, loaded);
    return loaded;
  })();
  loads.set(key, load);
  // A failed load is not remembered: a fixed plugin has another identity, but a missing file may appear.
  load.catch(() => loads.delete(key));
  return load;
}

export interface NodePluginOptions {
  /**
   * Load only the plugins this admits (a worker's allowlist, see plugin-allowlist.ts), checked before the
   * module is read or imported. Omitted: any plugin (the local runner, whose DAG is the user's own config).
   */
  allow?: PluginAllowlist;
}

/** Load every plugin a DAG's nodes name (engines call this before validateDag); errors name the node. */
export async function loadDagPlugins(dag: Dag, stages: StageLookup, options: NodePluginOptions = {}): Promise<void> {
  for (const node of dag?.nodes ?? []) {
    if (node?.plugin === undefined) continue;
    try {
      await loadNodePlugin(node, stages, options);
    } catch (error) {
      if (error instanceof BadInputError) throw new BadInputError(`DAG "${dag.name}": node "${node.id}": ${error.message}`, { cause: error });
      throw error;
    }
  }
}

/** The one place a plugin named by a DAG node is loaded: the allowlist check comes first, before any cache. */
async function loadNodePlugin(node: DagNode, stages: StageLookup, options: NodePluginOptions): Promise<void> {
  const p = node.plugin as Partial<StagePluginRef> | null;
  if (typeof p !== 'object' || p === null || typeof p.module !== 'string' || typeof p.identity !== 'string' || (p.resolveFrom !== undefined && typeof p.resolveFrom !== 'string')) {
    throw new BadInputError(`"plugin" must be { module, identity, resolveFrom? }, got ${JSON.stringify(p)}`);
  }
  if (options.allow) assertPluginAllowed(p as StagePluginRef, options.allow);
  await loadStagePlugin(node.stage, p as StagePluginRef, stages);
}

/** The stage that runs `node`: its plugin (which loadDagPlugins must have loaded) or the registered stage. */
export function lookupNodeStage(stages: StageLookup, node: DagNode): Stage<unknown> | undefined {
  const registered = lookupStage(stages, node.stage);
  if (node.plugin === undefined || registered === undefined) return registered;
  const loaded = ready.get(registered)?.get(pluginKey(node.plugin));
  if (!loaded) throw new BadInputError(`node "${node.id}": stage plugin ${pluginLabel(node.plugin)} (${node.plugin.identity}) is not loaded in this process (call loadDagPlugins first)`);
  return loaded.stage;
}

/** lookupNodeStage, loading the node's plugin first if it names one (errors name the plugin, not the node). */
export async function resolveNodeStage(stages: StageLookup, node: DagNode, options: NodePluginOptions = {}): Promise<Stage<unknown> | undefined> {
  if (node.plugin !== undefined) await loadNodePlugin(node, stages, options);
  return lookupNodeStage(stages, node);
}

function show(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  return value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string' && v !== '');
}

/** The module's default export, checked against the stage it replaces; errors name the field. */
export function checkPluginStage(where: string, namespace: Record<string, unknown>, replaced: Stage<unknown>): Stage<unknown> {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new BadInputError(`${where}: field "${field}": expected ${expected}, got ${show(got)}`);
  };
  if (!('default' in namespace) || namespace.default === undefined) fail('default export', `a Stage object replacing "${replaced.name}" (export default { name, version, needs, inputs, outputs, run })`, undefined);
  const stage = namespace.default as Record<string, unknown>;
  if (typeof stage !== 'object' || stage === null || Array.isArray(stage)) fail('default export', 'a Stage object', stage);
  const of = `of stage ${replaced.name}`;
  if (stage.name !== replaced.name) fail('name', `"${replaced.name}" (the stage it replaces)`, stage.name);
  if (typeof stage.version !== 'string' || stage.version === '') fail('version', 'a non-empty string', stage.version);
  if (stage.needs !== replaced.needs) fail('needs', `"${replaced.needs}" (as ${replaced.name}: the DAG gives its nodes ${replaced.needs === 'model' ? 'a model' : 'no model'} and routes them by it)`, stage.needs);
  const inputs = stage.inputs;
  const sameInputs = isStringArray(inputs) && inputs.length === replaced.inputs.length && replaced.inputs.every((i) => inputs.includes(i));
  if (!sameInputs) fail('inputs', `[${replaced.inputs.join(', ')}] (the inputs the DAG gives ${replaced.name})`, inputs);
  const variadic = stage.variadicInputs ?? [];
  const missingPrefix = (replaced.variadicInputs ?? []).find((prefix) => !isStringArray(variadic) || !variadic.includes(prefix));
  if (!isStringArray(variadic) || missingPrefix !== undefined) fail('variadicInputs', `to include [${(replaced.variadicInputs ?? []).join(', ')}] ${of}`, variadic);
  const outputs = stage.outputs;
  if (!isStringArray(outputs) || new Set(outputs).size !== outputs.length || replaced.outputs.some((o) => !outputs.includes(o))) {
    fail('outputs', `distinct names including [${replaced.outputs.join(', ')}] (what the consumers ${of} read)`, outputs);
  }
  const schemas = stage.outputSchemas ?? {};
  if (typeof schemas !== 'object' || schemas === null || Array.isArray(schemas)) fail('outputSchemas', 'an object { output: schema name }', schemas);
  const declared = schemas as Record<string, unknown>;
  for (const [output, schema] of Object.entries(replaced.outputSchemas ?? {})) {
    if (declared[output] !== schema) fail(`outputSchemas.${output}`, `"${schema}" (the schema the consumers ${of} read)`, declared[output]);
  }
  const known = new Set(listSchemas().map((s) => s.name));
  for (const [output, schema] of Object.entries(declared)) {
    if (!(outputs as string[]).includes(output)) fail(`outputSchemas.${output}`, `one of its outputs (${(outputs as string[]).join(', ')})`, output);
    if (typeof schema !== 'string' || !known.has(schema)) fail(`outputSchemas.${output}`, 'a declared schema name (defineTableSchema etc. in @dro/artifacts or the plugin)', schema);
  }
  if (stage.parseParams !== undefined && typeof stage.parseParams !== 'function') fail('parseParams', 'a function (raw params → params) or nothing', stage.parseParams);
  if (typeof stage.run !== 'function') fail('run', 'a function (ctx, inputs, params) → outputs', stage.run);
  return stage as unknown as Stage<unknown>;
}
