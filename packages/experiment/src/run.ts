/**
 * Running an experiment with the embedded local engine: check everything the run needs, import the data
 * files, build the DAG, run it, and collect what `dro run` prints at the end (summary rows, report path).
 * The Temporal engine runs the same DAG (see packages/cli/src/commands/run.ts).
 */
import { openStore, type ArtifactRef, type IndexedArtifactStore } from '@dro/artifacts';
import { reportHtmlPath } from '@dro/evaluate';
import { runDag, validateDag, type Dag, type RunDagOptions, type RunRecord, type StagePluginRef } from '@dro/pipeline';
import type { ExperimentConfig } from './config.ts';
import { buildExperimentDag, type ExperimentDag } from './dag.ts';
import { checkOverlap, importExperimentInputs, provisionalInputs, readExperimentInputs, type QueryInput, type ReadExperimentInputs } from './inputs.ts';
import { checkRowNeeds } from './row-needs.ts';
import { droStageRegistry, loadExperimentPlugins, withStagePlugins } from './stages.ts';
import { heldOutComparisons, summarize, trainingObjectives, type ObjectiveRow, type SummaryRow } from './summary.ts';
import type { ConditionComparison } from '@dro/evaluate';

/** An experiment whose inputs were read and checked; nothing written yet. */
export interface CheckedExperiment {
  config: ExperimentConfig;
  read: ReadExperimentInputs;
  /** The DAG with stand-in refs for the imported inputs: node ids, stages and params as the run will have them. */
  dag: Dag;
  /** The config's stage plugins, loaded and checked, by the stage they replace. */
  plugins: Record<string, StagePluginRef>;
  /** Things the run goes ahead with but the user must hear about (e.g. allowOverlap). */
  warnings: string[];
}

/**
 * Everything a run needs, checked before anything is written: the config's stage plugins (loaded and
 * checked against the stages they replace), every query and prompt file (strict UTF-8, every row), every
 * model file, the train/eval overlap, the DAG (every node's params through its stage's — or plugin's —
 * parseParams, inputs, cycles) and what each node needs of its query rows (labels, row counts).
 */
export async function checkExperiment(config: ExperimentConfig): Promise<CheckedExperiment> {
  const plugins = await loadExperimentPlugins(config);
  const read = readExperimentInputs(config);
  const warning = checkOverlap(config, read);
  const provisional = provisionalInputs(read);
  const dag = withStagePlugins(buildExperimentDag(config, provisional).dag, plugins);
  const plan = validateDag(dag, droStageRegistry());
  const queryInputs = new Map<string, QueryInput>([[provisional.train.digest, read.train], ...read.eval.map((e, i): [string, QueryInput] => [provisional.eval[i]!.digest, e])]);
  checkRowNeeds(dag, plan, queryInputs, read.prompts);
  return { config, read, dag, plugins, warnings: warning ? [warning] : [] };
}

export interface PreparedExperiment extends ExperimentDag {
  store: IndexedArtifactStore;
  /** The checks' warnings, for the caller to show. */
  warnings: string[];
}

/**
 * Check the experiment (unless already checked), then import its inputs into the store (`storeLocation`, else
 * the config's `store`, else $DRO_STORE: a directory or an s3:// URI) and build the DAG.
 */
export async function prepareExperiment(config: ExperimentConfig, storeLocation?: string, checked?: CheckedExperiment): Promise<PreparedExperiment> {
  const ok = checked ?? (await checkExperiment(config));
  const store = openStore(storeLocation ?? config.store);
  const inputs = await importExperimentInputs(store, ok.read);
  const built = buildExperimentDag(config, inputs);
  return { store, warnings: ok.warnings, ...built, dag: withStagePlugins(built.dag, ok.plugins) };
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
export async function collectOutcome(store: IndexedArtifactStore, dag: Dag, outputsOf: (nodeId: string) => Record<string, ArtifactRef> | undefined, reportNode: string): Promise<Omit<ExperimentOutcome, 'record'>> {
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
