/**
 * An experiment's inputs — query files, safety prompts, models — read and checked before anything is
 * written, then imported into the store (so the cache follows file content, not paths).
 *
 * `readExperimentInputs` reads every file into memory (strict UTF-8, every row validated) and opens every
 * model; `checkOverlap` compares the training set with the evaluation sets; `importExperimentInputs`
 * writes what was read. run.ts's checkExperiment puts these together with the DAG's own checks.
 */
import path from 'node:path';
import { QUERY_LABELS, type ArtifactRef, type ArtifactStore, type PromptSet, type QueryLabel } from '@dro/artifacts';
import { putPromptSet, putQuerySet, queryKey, readPromptFiles, readQuerySet, type QuerySetFile } from '@dro/data-prep';
import { loadWeights } from '@dro/llm';
import { BadInputError } from '@dro/pipeline';
import { evalSetFile, type ExperimentConfig, type ModelSpec } from './config.ts';

/** One query file as the run sees it: the config field that named it, and its rows. */
export interface QueryInput extends QuerySetFile {
  /** "queries.train", "queries.eval[1]". */
  field: string;
}

/** Everything the run reads from files, validated, not yet in the store. */
export interface ReadExperimentInputs {
  train: QueryInput;
  eval: QueryInput[];
  prompts: PromptSet;
  models: Array<ModelSpec & { digest: string }>;
}

/** A query set as the DAG sees it: its name (the set column) and the labels it holds. */
export interface QuerySetInfo {
  name: string;
  labels: QueryLabel[];
}

/** Artifacts the DAG starts from, imported into the store before it runs. */
export interface ExperimentInputs {
  train: ArtifactRef;
  eval: ArtifactRef[];
  /** What each set holds, aligned with train / eval: the DAG answers references only where harmless queries are. */
  sets: { train: QuerySetInfo; eval: QuerySetInfo[] };
  prompts: ArtifactRef;
  models: Array<ModelSpec & { digest: string }>;
}

function setInfo(q: QuerySetFile): QuerySetInfo {
  const labels = new Set(q.records.map((r) => r.label));
  return { name: q.set, labels: QUERY_LABELS.filter((l) => labels.has(l)) };
}

const setsOf = (read: ReadExperimentInputs): ExperimentInputs['sets'] => ({ train: setInfo(read.train), eval: read.eval.map(setInfo) });

/** Read and validate every input file and open every model; writes nothing. */
export function readExperimentInputs(config: ExperimentConfig): ReadExperimentInputs {
  const train: QueryInput = { field: 'queries.train', ...readQuerySet(config.queries.train, { set: 'train' }) };
  const evalSets: QueryInput[] = [];
  const seen = new Set<string>(['train']);
  for (const [i, spec] of config.queries.eval.entries()) {
    const file = evalSetFile(spec);
    const field = `queries.eval[${i}]`;
    const set = path.basename(file, path.extname(file));
    if (seen.has(set)) throw new BadInputError(`${field}: query files must have distinct base names ("${set}" appears twice, or is "train"): ${file}`);
    seen.add(set);
    evalSets.push({ field, ...readQuerySet(file, { set, ...(typeof spec === 'string' ? {} : { label: spec.label }) }) });
  }
  const prompts = readPromptFiles(Object.entries(config.prompts).map(([id, file]) => ({ id, file })));
  // Opening the weights validates the model file up front (a bad file fails before any stage runs).
  const models = config.models.map((m) => ({ ...m, digest: loadWeights(m.path).digest }));
  return { train, eval: evalSets, prompts, models };
}

/** How many examples an overlap message shows. */
const OVERLAP_EXAMPLES = 3;

/**
 * Queries of the evaluation sets that are also in the training set (compared as data-prep's queryKey folds
 * them: case, whitespace, punctuation). Held-out numbers on training queries measure memorisation, so an
 * overlap is an error unless the config sets `allowOverlap`; then it is a warning with the count.
 * Returns the warning, or null when the sets are disjoint.
 */
export function checkOverlap(config: ExperimentConfig, read: ReadExperimentInputs): string | null {
  const trainByKey = new Map(read.train.records.map((r) => [queryKey(r.query), r]));
  const parts: string[] = [];
  const examples: string[] = [];
  let total = 0;
  for (const e of read.eval) {
    const shared = e.records.filter((r) => trainByKey.has(queryKey(r.query)));
    if (shared.length === 0) continue;
    total += shared.length;
    parts.push(`${e.field} (${e.file}): ${shared.length} of ${e.records.length}`);
    for (const r of shared.slice(0, OVERLAP_EXAMPLES - examples.length)) {
      examples.push(`"${r.query_id}" = train "${trainByKey.get(queryKey(r.query))!.query_id}": ${JSON.stringify(r.query.length > 80 ? `${r.query.slice(0, 77)}...` : r.query)}`);
    }
  }
  if (total === 0) return null;
  const what =
    `${total} evaluation ${total === 1 ? 'query is' : 'queries are'} also in the training set ${read.train.file} ` +
    `(compared with case, whitespace and punctuation folded) — ${parts.join('; ')}; e.g. ${examples.join('; ')}`;
  if (!config.allowOverlap) {
    throw new BadInputError(
      `${what}. Held-out numbers on training queries measure memorisation: remove them from one side, ` +
        `or set "allowOverlap": true in the config to run anyway`,
    );
  }
  return `allowOverlap: ${what}. The evaluation of these queries is not held out.`;
}

/** Stand-in refs for checking the DAG before anything is imported (the DAG's shape does not depend on digests). */
export function provisionalInputs(read: ReadExperimentInputs): ExperimentInputs {
  const ref = (name: string, format: ArtifactRef['format'], schema: string): ArtifactRef => ({
    digest: `provisional:${name}`,
    format,
    schema,
  });
  return {
    train: ref('queries.train', 'parquet', 'query-set/v1'),
    eval: read.eval.map((e) => ref(e.field, 'parquet', 'query-set/v1')),
    sets: setsOf(read),
    prompts: ref('prompts', 'json', 'prompt-set/v1'),
    models: read.models,
  };
}

/** Write what readExperimentInputs read into the store. */
export async function importExperimentInputs(store: ArtifactStore, read: ReadExperimentInputs): Promise<ExperimentInputs> {
  const train = await putQuerySet(store, read.train);
  const evalRefs: ArtifactRef[] = [];
  for (const e of read.eval) evalRefs.push(await putQuerySet(store, e));
  const prompts = await putPromptSet(store, read.prompts);
  return { train, eval: evalRefs, sets: setsOf(read), prompts, models: read.models };
}
