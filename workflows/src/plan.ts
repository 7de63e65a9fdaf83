/**
 * DAG planning for the workflow, on a worker (where the stage registry lives). Validation is the spine's
 * validateDag — the same checks the local runner makes — reduced to what the deterministic workflow
 * needs and can serialise: each node's resource class (→ task queue) and a dependency order.
 */
import { validateDag, type Dag, type StageLookup } from '@dro/pipeline';
import type { DagPlan } from './shared.ts';

export function planDag(dag: Dag, stages: StageLookup): DagPlan {
  const plan = validateDag(dag, stages);
  const needs: DagPlan['needs'] = {};
  const sharded: Record<string, boolean> = {};
  const shardSizeOf = new Map(dag.nodes.map((n) => [n.id, n.shardSize]));
  for (const [id, stage] of plan.stageOf) {
    needs[id] = stage.needs;
    if (stage.rowParallel && shardSizeOf.get(id) !== undefined) sharded[id] = true;
  }
  return { needs, order: plan.order, sharded };
}
