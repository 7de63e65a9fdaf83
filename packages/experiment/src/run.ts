/**
 * Running an experiment with the embedded local engine: import the data files, build the DAG, run it,
 * and collect what `dro run` prints at the end (summary rows, report path). The Temporal engine runs the
 * same DAG (see packages/cli/src/commands/run.ts).
 */
import { LocalArtifactStore, type ArtifactRef } from '@dro/artifacts';
import { reportHtmlPath } from '@dro/evaluate';
import { runDag, validateDag, type Dag, type RunDagOptions, type RunRecord, type StagePluginRef } from '@dro/pipeline';
import type { ExperimentConfig } from './config.ts';
import { buildExperimentDag, importExperimentInputs, type ExperimentDag, type ExperimentInputs } from './dag.ts';
import { droStageRegistry, loadExperimentPlugins, withStagePlugins } from './stages.ts';
import { heldOutComparisons, summarize, trainingObjectives, type ObjectiveRow, type SummaryRow } from './summary.ts';
import type { ConditionComparison } from '@dro/evaluate';

export interface PreparedExperiment extends ExperimentDag {
  store: LocalArtifactStore;
}

/**
 * Load the config's stage plugins, check the DAG, then import the data into the store and build the DAG.
 * Plugins and every node's params are checked before the store is touched, so a plugin that does not fit
 * (or params a plugin rejects) writes nothing.
 */
export async function prepareExperiment(config: ExperimentConfig, storeRoot?: string): Promise<PreparedExperiment> {
  const plugins = await loadExperimentPlugins(config);
  checkExperimentDag(config, plugins);
  const store = new LocalArtifactStore({ root: storeRoot ?? config.store });
  const inputs = await importExperimentInputs(store, config);
  const built = buildExperimentDag(config, inputs);
  return { store, ...built, dag: withStagePlugins(built.dag, plugins) };
}

/** validateDag on the experiment's DAG over stand-in inputs (digests do not affect stages, wiring or params). */
function checkExperimentDag(config: ExperimentConfig, plugins: Record<string, StagePluginRef>): void {
  const standIn = (schema: string, format: ArtifactRef['format'] = 'parquet'): ArtifactRef => ({ digest: '0'.repeat(64), format, schema });
  const inputs: ExperimentInputs = {
    train: standIn('query-set/v1'),
    eval: config.queries.eval.map(() => standIn('query-set/v1')),
    prompts: standIn('prompt-set/v1', 'json'),
    models: config.models.map((m) => ({ ...m, digest: '0'.repeat(64) })),
  };
  validateDag(withStagePlugins(buildExperimentDag(config, inputs).dag, plugins), droStageRegistry());
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
