/**
 * DAG planning on the worker side (where the stage registry lives): checks that every node names a known
 * stage, that its params parse, that its inputs match the stage's declared inputs and point at declared
 * outputs of existing nodes, and that there is no cycle. Every problem is a BadInputError naming the node.
 */
import { acceptsInput, BadInputError, type Dag, type Stage, type StageNeeds } from '@dro/pipeline';
import type { DagPlan } from './shared.ts';

/** Anything that finds a stage by name: the spine's StageRegistry, a Map, or a function. */
export type StageLookup = { get(name: string): Stage<unknown> | undefined } | ((name: string) => Stage<unknown> | undefined);

export function lookupStage(stages: StageLookup, name: string): Stage<unknown> | undefined {
  return typeof stages === 'function' ? stages(name) : stages.get(name);
}

export function planDag(dag: Dag, stages: StageLookup): DagPlan {
  const where = `DAG "${dag.name}"`;
  if (!Array.isArray(dag.nodes) || dag.nodes.length === 0) throw new BadInputError(`${where}: "nodes" must be a non-empty array`);
  const byId = new Map<string, Stage<unknown>>();
  for (const node of dag.nodes) {
    if (byId.has(node.id)) throw new BadInputError(`${where}: duplicate node id "${node.id}"`);
    const stage = lookupStage(stages, node.stage);
    if (!stage) throw new BadInputError(`${where}: node "${node.id}" uses unknown stage "${node.stage}"`);
    byId.set(node.id, stage);
  }
  const needs: Record<string, StageNeeds> = {};
  for (const node of dag.nodes) {
    const stage = byId.get(node.id)!;
    needs[node.id] = stage.needs;
    stage.parseParams?.(node.params); // throws BadInputError naming the field
    const declared = [...stage.inputs, ...(stage.variadicInputs ?? []).map((p) => `${p}:*`)];
    for (const name of Object.keys(node.inputs)) {
      if (!acceptsInput(stage, name)) {
        throw new BadInputError(`${where}: node "${node.id}" has input "${name}" but stage ${stage.name} expects [${declared.join(', ')}]`);
      }
    }
    for (const name of stage.inputs) {
      if (!node.inputs[name]) throw new BadInputError(`${where}: node "${node.id}" is missing input "${name}" of stage ${stage.name}`);
    }
    for (const [name, src] of Object.entries(node.inputs)) {
      if ('node' in src) {
        const from = byId.get(src.node);
        if (!from) throw new BadInputError(`${where}: node "${node.id}" input "${name}" refers to unknown node "${src.node}"`);
        if (!from.outputs.includes(src.output)) {
          throw new BadInputError(`${where}: node "${node.id}" input "${name}" wants output "${src.output}" of node "${src.node}", which produces [${from.outputs.join(', ')}]`);
        }
      }
    }
  }
  return { needs, order: topologicalOrder(dag) };
}

/** Kahn's algorithm, stable in node declaration order; a cycle is a BadInputError naming its nodes. */
function topologicalOrder(dag: Dag): string[] {
  const remaining = new Map(dag.nodes.map((n) => [n.id, new Set(Object.values(n.inputs).flatMap((s) => ('node' in s ? [s.node] : [])))]));
  const order: string[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining].filter(([, deps]) => deps.size === 0).map(([id]) => id);
    if (ready.length === 0) {
      const stuck = [...remaining.keys()].map((id) => `"${id}"`).join(', ');
      throw new BadInputError(`DAG "${dag.name}": dependency cycle; these nodes can never run: ${stuck}`);
    }
    for (const id of ready) {
      remaining.delete(id);
      order.push(id);
    }
    for (const deps of remaining.values()) for (const id of ready) deps.delete(id);
  }
  return order;
}
