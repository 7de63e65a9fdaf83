/**
 * Running an experiment with the embedded local engine: import the data files, build the DAG, run it,
 * and collect what `dro run` prints at the end (summary rows, report path). The Temporal engine runs the
 * same DAG (see packages/cli/src/commands/run.ts).
 */
import { LocalArtifactStore, type ArtifactRef } from '@dro/artifacts';
import { reportHtmlPath } from '@dro/evaluate';
import { runDag, type Dag, type RunDagOptions, type RunRecord } from '@dro/pipeline';
import type { ExperimentConfig } from './config.ts';
import { buildExperimentDag, importExperimentInputs, type ExperimentDag } from './dag.ts';
import { droStageRegistry } from './stages.ts';
import { heldOutComparisons, summarize, trainingObjectives, type ObjectiveRow, type SummaryRow } from './summary.ts';
import type { ConditionComparison } from '@dro/evaluate';

export interface PreparedExperiment extends ExperimentDag {
  store: LocalArtifactStore;
}

export async function prepareExperiment(config: ExperimentConfig, storeRoot?: string): Promise<PreparedExperiment> {
  const store = new LocalArtifactStore({ root: storeRoot ?? config.store });
  const inputs = await importExperimentInputs(store, config);
  return { store, ...buildExperimentDag(config, inputs) };
}

export interface ExperimentOutcome {
  record: RunRecord;
  summary: SummaryRow[];
  /** Each trained prompt's objective on its training queries. */
  objectives: ObjectiveRow[];
  /** Each trained prompt against its text prompt on the held-out queries. */
  comparisons: ConditionComparison[];
  reportPath: string | null;
}

/** Summary rows and the report file of a finished run, from the outputs its nodes recorded. */
export async function collectOutcome(store: LocalArtifactStore, dag: Dag, outputsOf: (nodeId: string) => Record<string, ArtifactRef> | undefined, reportNode: string): Promise<Omit<ExperimentOutcome, 'record'>> {
  const metrics = dag.nodes.filter((n) => n.stage === 'evaluate').map((n) => outputsOf(n.id)?.metrics).filter((r): r is ArtifactRef => !!r);
  const summary = await summarize(store, metrics);
  const objectives = await trainingObjectives(store, dag, outputsOf);
  const comparisons = await heldOutComparisons(store, dag, outputsOf, reportNode);
  const report = outputsOf(reportNode)?.report;
  return { summary, objectives, comparisons, reportPath: report ? await reportHtmlPath(store, report) : null };
}

export async function runExperimentLocally(
  prepared: PreparedExperiment,
  options: Omit<RunDagOptions, 'store' | 'stages'> = {},
): Promise<ExperimentOutcome> {
  const record = await runDag(prepared.dag, { ...options, store: prepared.store, stages: droStageRegistry() });
  if (record.status !== 'succeeded') return { record, summary: [], objectives: [], comparisons: [], reportPath: null };
  const byId = new Map(record.nodes.map((n) => [n.id, n.outputs]));
  return { record, ...(await collectOutcome(prepared.store, prepared.dag, (id) => byId.get(id), prepared.reportNode)) };
}
