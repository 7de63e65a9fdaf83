/**
 * What each stage needs from the query rows it is given, checked on the DAG before anything runs: a
 * stage that would find no rows, one label only, or too few rows for its cross-validation fails here —
 * naming the node, the config field and the file — instead of after minutes of sampling and extraction.
 *
 * Rows reach a stage through data-prep: (queries of its set, up to limitPerLabel per label) × prompt
 * variants. A node's rows are those of the data-prep node upstream of it (through `rendered` or
 * `hiddenStates`), narrowed by its own `promptId` and `sets` params where it has them.
 */
import { NO_PROMPT_ID, QUERY_LABELS, type PromptSet, type QueryLabel } from '@dro/artifacts';
import type { DataPrepParams } from '@dro/data-prep';
import { BadInputError, type Dag, type DagNode, type DagPlan } from '@dro/pipeline';
import type { QueryInput } from './inputs.ts';

interface RowNeed {
  /** Labels that must each have at least one row. */
  labels: readonly QueryLabel[];
  minRows: number;
  /** Why minRows, for the message. */
  why?: string;
}

type Params = { promptId?: unknown; sets?: unknown; boundary?: { folds?: number } };

/** Stages that read query rows, and what they need of them. Stages not listed read no query rows. */
const ROW_NEEDS: Record<string, (params: Params) => RowNeed> = {
  sampling: () => ({ labels: [], minRows: 1 }),
  'refusal-logprob': () => ({ labels: [], minRows: 1 }),
  extract: () => ({ labels: [], minRows: 1 }),
  // Both boundaries are fitted with k-fold cross-validation; the harmfulness boundary separates the labels.
  directions: (p) => ({
    labels: QUERY_LABELS,
    minRows: Math.max(2, p.boundary?.folds ?? 2),
    why: `its ${p.boundary?.folds ?? 2}-fold cross-validation (directions' boundary.folds)`,
  }),
  'dro-train': () => ({ labels: [], minRows: 1 }),
  'prompt-tuning': () => ({ labels: [], minRows: 1 }),
  // The capability proxy's yardstick: greedy answers to harmless queries.
  'reference-answers': () => ({ labels: ['harmless'], minRows: 1 }),
  'eval-forward': () => ({ labels: [], minRows: 1 }),
  evaluate: () => ({ labels: [], minRows: 1 }),
};

/** The data-prep node whose rendered rows `node` reads, or null for nodes that read no query rows. */
function renderedSource(node: DagNode, byId: Map<string, DagNode>): DagNode | null {
  if (node.stage === 'data-prep') return node;
  for (const name of ['rendered', 'hiddenStates']) {
    const source = node.inputs[name];
    if (source && 'node' in source) return renderedSource(byId.get(source.node)!, byId);
  }
  return null;
}

/**
 * Check every node's row needs. `queryInputs` maps the digest of each query-set ref in the DAG to the file
 * it came from; `plan` holds the parsed params of every node (validateDag's).
 */
export function checkRowNeeds(dag: Dag, plan: DagPlan, queryInputs: Map<string, QueryInput>, prompts: PromptSet): void {
  const byId = new Map(dag.nodes.map((n) => [n.id, n]));
  for (const node of dag.nodes) {
    const needOf = ROW_NEEDS[node.stage];
    if (!needOf) continue;
    const prep = renderedSource(node, byId);
    if (!prep) continue;
    const queriesSource = prep.inputs.queries;
    const queries = queriesSource && 'ref' in queriesSource ? queryInputs.get(queriesSource.ref.digest) : undefined;
    if (!queries) continue;
    const prepParams = plan.paramsOf.get(prep.id) as DataPrepParams;
    const params = plan.paramsOf.get(node.id) as Params;
    const need = needOf(params);

    // Queries kept per label (data-prep keeps the first limitPerLabel of each), times the variants this node reads.
    const perLabel = Object.fromEntries(QUERY_LABELS.map((l) => [l, queries.records.filter((r) => r.label === l).length])) as Record<QueryLabel, number>;
    const kept = Object.fromEntries(
      QUERY_LABELS.map((l) => [l, prepParams.limitPerLabel === null ? perLabel[l] : Math.min(perLabel[l], prepParams.limitPerLabel)]),
    ) as Record<QueryLabel, number>;
    const variants = prepParams.promptVariants.length > 0 ? prepParams.promptVariants : [NO_PROMPT_ID, ...prompts.prompts.map((p) => p.id)];
    const read = typeof params.promptId === 'string' ? variants.filter((v) => v === params.promptId) : variants;
    const sets = Array.isArray(params.sets) ? (params.sets as string[]) : [];
    const inSets = sets.length === 0 || sets.includes(queries.set);
    const rows = (l: QueryLabel) => (inSets ? kept[l] * read.length : 0);
    const total = QUERY_LABELS.reduce((n, l) => n + rows(l), 0);

    const where = `DAG node "${node.id}" (${node.stage})`;
    const source = `${queries.field} (${queries.file})`;
    if (!inSets) throw new BadInputError(`${where}: params.sets ${JSON.stringify(sets)} does not include "${queries.set}", the set of ${source}, so it gets no rows`);
    if (read.length === 0) {
      throw new BadInputError(`${where}: reads prompt variant "${String(params.promptId)}", which its data-prep node "${prep.id}" does not render (${variants.join(', ')})`);
    }
    for (const label of need.labels) {
      if (rows(label) === 0) {
        const has = QUERY_LABELS.filter((l) => perLabel[l] > 0).join(' and ') || 'none';
        throw new BadInputError(`${where} needs ${label} queries, but ${source} has none (it has ${has} queries)`);
      }
    }
    if (total < need.minRows) {
      throw new BadInputError(
        `${where} needs at least ${need.minRows} rows${need.why ? ` for ${need.why}` : ''}, but gets ${total}: ${source} keeps ` +
          `${kept.harmful} harmful + ${kept.harmless} harmless queries × ${read.length} prompt variant${read.length === 1 ? '' : 's'}`,
      );
    }
  }
}
