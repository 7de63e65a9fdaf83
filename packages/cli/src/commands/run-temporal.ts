/**
 * `dro run --engine temporal`: the experiment DAG on a Temporal cluster. One model → one dagWorkflow over
 * the whole DAG. Several models → experimentWorkflow (one child workflow per model's sub-graph), then the
 * cross-model report as a one-node DAG whose inputs are the children's output refs.
 *
 * Workers (`dro worker`) must serve the dro-cpu and dro-model queues and share this store root.
 */
import type { ArtifactRef } from '@dro/artifacts';
import type { ExperimentOutcome, PreparedExperiment } from '@dro/experiment';
import type { Dag, DagNode } from '@dro/pipeline';

export interface TemporalOutcome extends Omit<ExperimentOutcome, 'record'> {
  status: string;
  runId: string;
  error?: string;
}

function subDag(prepared: PreparedExperiment, model: string): Dag {
  const ids = new Set(prepared.modelNodes[model]);
  return { name: `${prepared.dag.name}/${model}`, nodes: prepared.dag.nodes.filter((n) => ids.has(n.id)) };
}

/** The report node with each `{ node, output }` input replaced by the ref that node produced. */
function reportDag(prepared: PreparedExperiment, outputs: Record<string, Record<string, ArtifactRef>>): Dag {
  const report = prepared.dag.nodes.find((n) => n.id === prepared.reportNode)!;
  const inputs: DagNode['inputs'] = {};
  for (const [name, src] of Object.entries(report.inputs)) {
    if ('ref' in src) inputs[name] = src;
    else {
      const ref = outputs[src.node]?.[src.output];
      if (!ref) throw new Error(`report input ${name}: node ${src.node} produced no output "${src.output}"`);
      inputs[name] = { ref };
    }
  }
  return { name: `${prepared.dag.name}/report`, nodes: [{ ...report, inputs }] };
}

export async function runExperimentOnTemporal(
  prepared: PreparedExperiment,
  target: { address?: string; namespace?: string },
): Promise<TemporalOutcome> {
  const wf = await import('@dro/workflows');
  const { collectOutcome } = await import('@dro/experiment');
  const storeRoot = prepared.store.root;
  const onStatus = (s: { done: number; total: number; nodes: Array<{ id: string; state: string }> }) => {
    const running = s.nodes.filter((n) => n.state === 'running').map((n) => n.id);
    process.stderr.write(`[temporal] ${s.done}/${s.total} stages done${running.length ? `; running ${running.join(', ')}` : ''}\n`);
  };
  const models = Object.keys(prepared.modelNodes);
  let outputs: Record<string, Record<string, ArtifactRef>>;
  let runId: string;
  try {
    if (models.length === 1) {
      const r = await wf.runDagOnTemporal({ ...target, dag: prepared.dag, storeRoot, onStatus, pollMs: 5000 });
      outputs = r.outputs;
      runId = r.runId;
    } else {
      const exp = await wf.runExperimentOnTemporal({ ...target, models: models.map((m) => ({ name: m, dag: subDag(prepared, m) })) });
      outputs = Object.assign({}, ...Object.values(exp.models).map((r) => r.outputs));
      const report = await wf.runDagOnTemporal({ ...target, dag: reportDag(prepared, outputs), storeRoot });
      Object.assign(outputs, report.outputs);
      runId = exp.runId;
    }
  } catch (err) {
    return { status: 'failed', runId: '', summary: [], objectives: [], comparisons: [], reportPath: null, error: (err as Error).message };
  }
  const outcome = await collectOutcome(prepared.store, prepared.dag, (id) => outputs[id], prepared.reportNode);
  return { status: 'succeeded', runId, ...outcome };
}
