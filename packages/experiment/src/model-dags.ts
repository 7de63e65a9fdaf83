/**
 * A multi-model experiment split for an engine that runs each model apart (Temporal: one child workflow per
 * model) and then stitches the cross-model report: each model's sub-DAG, and the report node as a one-node
 * DAG whose inputs are the refs the models' nodes produced.
 */
import type { ArtifactRef } from '@dro/artifacts';
import type { Dag, DagNode } from '@dro/pipeline';
import type { ExperimentDag } from './dag.ts';

/** The nodes of one model (everything but the report), as a DAG of its own. */
export function modelDag(experiment: ExperimentDag, model: string): Dag {
  const ids = new Set(experiment.modelNodes[model]);
  return { name: `${experiment.dag.name}/${model}`, nodes: experiment.dag.nodes.filter((n) => ids.has(n.id)) };
}

/** The report node with each `{ node, output }` input replaced by the ref that node produced. */
export function reportDag(experiment: ExperimentDag, outputs: Record<string, Record<string, ArtifactRef>>): Dag {
  const report = experiment.dag.nodes.find((n) => n.id === experiment.reportNode)!;
  const inputs: DagNode['inputs'] = {};
  for (const [name, src] of Object.entries(report.inputs)) {
    if ('ref' in src) inputs[name] = src;
    else {
      const ref = outputs[src.node]?.[src.output];
      if (!ref) throw new Error(`report input ${name}: node ${src.node} produced no output "${src.output}"`);
      inputs[name] = { ref };
    }
  }
  return { name: `${experiment.dag.name}/report`, nodes: [{ ...report, inputs }] };
}
