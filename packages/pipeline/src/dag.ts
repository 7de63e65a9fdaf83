/**
 * DAG validation and ordering, shared by both engines: every node names a known stage, its params parse,
 * it has a model when its stage needs one, its inputs match the stage's declared inputs and point at
 * declared outputs of existing nodes whose declared schemas the stage reads, and there is no cycle. Every
 * problem is a BadInputError naming the DAG and node, raised before anything runs.
 */
import { BadInputError, schemaReadableAs, type ArtifactRef } from '@dro/artifacts';
import { acceptsInput, declaredInputSchema, type Dag, type DagNode, type Stage } from './stage.ts';
import { checkModel } from './run-stage.ts';
import type { StageLookup } from './registry.ts';
import { lookupNodeStage } from './stage-plugins.ts';
import { pluginLabel } from './plugin-module.ts';
import { checkShardSize } from './shards.ts';

export interface DagPlan {
  /** Node ids in a topological order (stable: declaration order among ready nodes). */
  order: string[];
  stageOf: Map<string, Stage<unknown>>;
  /** Parsed (defaults filled) params per node: what the cache key hashes. */
  paramsOf: Map<string, unknown>;
  /** Node ids each node waits for. */
  dependsOn: Map<string, Set<string>>;
}

/** Nodes that name a stage plugin need it loaded first (loadDagPlugins); the engines do that. */
export function validateDag(dag: Dag, stages: StageLookup): DagPlan {
  const where = `DAG "${dag?.name}"`;
  if (!dag || !Array.isArray(dag.nodes) || dag.nodes.length === 0) throw new BadInputError(`${where}: "nodes" must be a non-empty array`);
  const stageOf = new Map<string, Stage<unknown>>();
  for (const node of dag.nodes) {
    if (typeof node.id !== 'string' || node.id === '') throw new BadInputError(`${where}: every node needs a non-empty string "id"`);
    if (stageOf.has(node.id)) throw new BadInputError(`${where}: duplicate node id "${node.id}"`);
    const stage = lookupNodeStage(stages, node);
    if (!stage) throw new BadInputError(`${where}: node "${node.id}" uses unknown stage "${node.stage}"`);
    stageOf.set(node.id, stage);
  }
  const paramsOf = new Map<string, unknown>();
  const dependsOn = new Map<string, Set<string>>();
  for (const node of dag.nodes) {
    const stage = stageOf.get(node.id)!;
    paramsOf.set(node.id, parseNodeParams(stage, node, where));
    checkModel(stage, node.model?.path, node.id);
    checkShardSize(node);
    const declared = [...stage.inputs, ...(stage.variadicInputs ?? []).map((prefix) => `${prefix}:*`)];
    for (const name of Object.keys(node.inputs ?? {})) {
      if (!acceptsInput(stage, name)) {
        throw new BadInputError(`${where}: node "${node.id}" has input "${name}" but stage ${stage.name} expects [${declared.join(', ')}]`);
      }
    }
    for (const name of stage.inputs) {
      if (!node.inputs?.[name]) throw new BadInputError(`${where}: node "${node.id}" is missing input "${name}" of stage ${stage.name}`);
    }
    const deps = new Set<string>();
    for (const [name, source] of Object.entries(node.inputs ?? {})) {
      if ('node' in source) {
        const from = stageOf.get(source.node);
        if (!from) throw new BadInputError(`${where}: node "${node.id}" input "${name}" refers to unknown node "${source.node}"`);
        if (!from.outputs.includes(source.output)) {
          throw new BadInputError(
            `${where}: node "${node.id}" input "${name}" wants output "${source.output}" of node "${source.node}", which produces [${from.outputs.join(', ')}]`,
          );
        }
        deps.add(source.node);
        checkSchemaFits(where, node, stage, name, from.outputSchemas?.[source.output], `output "${source.output}" of node "${source.node}"`);
      } else if (!source || typeof source.ref?.digest !== 'string') {
        throw new BadInputError(`${where}: node "${node.id}" input "${name}" must be { node, output } or { ref }`);
      } else {
        checkSchemaFits(where, node, stage, name, source.ref.schema, `artifact ${source.ref.digest}`);
      }
    }
    dependsOn.set(node.id, deps);
  }
  return { order: topologicalOrder(dag, dependsOn), stageOf, paramsOf, dependsOn };
}

/** The schema an input gets (when known) must read as the one its stage declares for it (when declared). */
function checkSchemaFits(where: string, node: DagNode, stage: Stage<unknown>, input: string, given: string | undefined, source: string): void {
  const declared = declaredInputSchema(stage, input);
  if (given === undefined || declared === undefined) return;
  const problem = schemaReadableAs(given, declared);
  if (problem !== null) {
    throw new BadInputError(`${where}: node "${node.id}" input "${input}" gets ${source}, a ${given} artifact, but stage ${stage.name} reads ${declared}: ${problem}`);
  }
}

/** Run the stage's parseParams, wrapping any failure so it names the node. */
export function parseNodeParams(stage: Stage<unknown>, node: DagNode, where = 'DAG'): unknown {
  if (!stage.parseParams) return node.params ?? {};
  try {
    return stage.parseParams(node.params ?? {});
  } catch (error) {
    const by = node.plugin ? ` (stage plugin ${pluginLabel(node.plugin)})` : '';
    if (error instanceof BadInputError) throw new BadInputError(`${where}: node "${node.id}"${by} params: ${error.message}`, { cause: error });
    throw error;
  }
}

/** Kahn's algorithm, stable in declaration order; a cycle is a BadInputError naming its nodes. */
function topologicalOrder(dag: Dag, dependsOn: Map<string, Set<string>>): string[] {
  const remaining = new Map([...dependsOn].map(([id, deps]) => [id, new Set(deps)]));
  const order: string[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining].filter(([, deps]) => deps.size === 0).map(([id]) => id);
    if (ready.length === 0) {
      throw new BadInputError(`DAG "${dag.name}": cycle among nodes ${[...remaining.keys()].map((id) => `"${id}"`).join(', ')}`);
    }
    for (const id of ready) remaining.delete(id);
    for (const deps of remaining.values()) for (const id of ready) deps.delete(id);
    order.push(...ready);
  }
  return order;
}

/** A node's inputs as artifact refs, given the outputs of the nodes it depends on. */
export function resolveInputs(node: DagNode, outputsOf: (nodeId: string) => Record<string, ArtifactRef> | undefined): Record<string, ArtifactRef> {
  const resolved: Record<string, ArtifactRef> = {};
  for (const [name, source] of Object.entries(node.inputs ?? {})) {
    if ('ref' in source) {
      resolved[name] = source.ref;
      continue;
    }
    const ref = outputsOf(source.node)?.[source.output];
    if (!ref) throw new Error(`node "${node.id}" input "${name}": node "${source.node}" has not produced "${source.output}"`);
    resolved[name] = ref;
  }
  return resolved;
}
