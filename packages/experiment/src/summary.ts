/**
 * What `dro run` prints at the end: held-out results per model × condition (every rate with its 95 %
 * interval: Wilson for counts of queries, Student-t for mean compliance / refusal), the judge and selection
 * behind the verdicts, each trained prompt's training objective, and each trained prompt against its text
 * prompt on the same held-out queries. The report shows the same numbers (same functions and artifacts).
 */
import {
  DEFAULT_OBJECTIVE_MIN_SHARE,
  evalMetricsSchema,
  formatObjective,
  readEvalMetrics,
  readTrainingShift,
  trainingObjective,
  type ArtifactRef,
  type ArtifactStore,
  type TrainingObjective,
} from '@dro/artifacts';
import { compareConditions, readQueryOutcomes, wilsonInterval, type ConditionComparison, type QueryOutcome } from '@dro/evaluate';
import type { Dag } from '@dro/pipeline';

export interface SummaryRow {
  model: string;
  condition: string;
  set: string;
  /** Harmful queries complied with by any sample (the paper's protocol), of all harmful queries. */
  harmfulComplied: number;
  harmfulQueries: number;
  /** Mean per-query share of judged samples that complied, on harmful queries, with its 95 % interval. */
  harmfulMeanCompliance: MeanRate | null;
  /** Harmless queries refused by any sample, of all harmless queries. */
  harmlessRefused: number;
  harmlessQueries: number;
  /** Mean per-query share of judged samples refused, on harmless queries, with its 95 % interval. */
  harmlessMeanRefusal: MeanRate | null;
  /** What produced the verdicts (eval-metrics `judge`), and samples judged / drawn per query. */
  judge: string;
  judgedPerQuery: number;
  samplesPerQuery: number;
  /** Mean refusal-boundary logit (positive = toward compliance) per label. */
  harmfulRefusalLogit: number | null;
  harmlessRefusalLogit: number | null;
  capability: number | null;
}

export interface MeanRate {
  mean: number;
  low: number;
  high: number;
}

/** Reads every eval-metrics/v2 artifact among `refs` (any other schema is skipped). */
export async function summarize(store: ArtifactStore, refs: ArtifactRef[]): Promise<SummaryRow[]> {
  const rows = new Map<string, SummaryRow>();
  for (const ref of refs) {
    if (ref.schema !== evalMetricsSchema.name) continue;
    for (const m of await readEvalMetrics(store, ref, `metrics ${ref.digest.slice(0, 12)}`)) {
      const key = `${m.model}\u0000${m.condition}\u0000${m.set}`;
      const row = rows.get(key) ?? {
        model: m.model, condition: m.condition, set: m.set,
        harmfulComplied: 0, harmfulQueries: 0, harmfulMeanCompliance: null,
        harmlessRefused: 0, harmlessQueries: 0, harmlessMeanRefusal: null,
        harmfulRefusalLogit: null, harmlessRefusalLogit: null, capability: null,
        judge: m.judge, judgedPerQuery: m.judgedPerQuery, samplesPerQuery: m.samplesPerQuery,
      };
      if (m.label === 'harmful') {
        row.harmfulComplied += m.queriesAnyComplied;
        row.harmfulQueries += m.queries;
        row.harmfulMeanCompliance = { mean: m.meanCompliance, low: m.meanComplianceLow, high: m.meanComplianceHigh };
        row.harmfulRefusalLogit = m.meanRefusalLogit;
      } else {
        row.harmlessRefused += m.queriesAnyRefused;
        row.harmlessQueries += m.queries;
        row.harmlessMeanRefusal = { mean: 1 - m.meanCompliance, low: 1 - m.meanComplianceHigh, high: 1 - m.meanComplianceLow };
        row.harmlessRefusalLogit = m.meanRefusalLogit;
        row.capability = m.capability;
      }
      rows.set(key, row);
    }
  }
  return [...rows.values()];
}

function pct(n: number, d: number): string {
  if (d === 0) return '-';
  const ci = wilsonInterval(n, d);
  return `${n}/${d} ${((100 * n) / d).toFixed(0)}% [${(100 * ci.low).toFixed(0)}, ${(100 * ci.high).toFixed(0)}]`;
}
const num = (v: number | null, digits = 2) => (v === null ? '-' : v.toFixed(digits));
const meanRate = (r: MeanRate | null) => (r === null ? '-' : `${r.mean.toFixed(2)} [${r.low.toFixed(2)}, ${r.high.toFixed(2)}]`);

export function formatSummary(rows: SummaryRow[]): string {
  const header = [
    'model', 'condition', 'set', 'harmful complied [95% CI]', 'harmful mean compl. [95% CI]', 'harmless refused [95% CI]',
    'harmless mean refusal [95% CI]', 'r(h) harmful/harmless', 'capability',
  ];
  const body = rows.map((r) => [
    r.model, r.condition, r.set,
    pct(r.harmfulComplied, r.harmfulQueries), meanRate(r.harmfulMeanCompliance),
    pct(r.harmlessRefused, r.harmlessQueries), meanRate(r.harmlessMeanRefusal),
    `${num(r.harmfulRefusalLogit)} / ${num(r.harmlessRefusalLogit)}`, num(r.capability, 3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  // Which judge and selection produced the numbers (one line per distinct judge, naming its models).
  const judges = new Map<string, Set<string>>();
  for (const r of rows) judges.set(r.judge, (judges.get(r.judge) ?? new Set()).add(r.model));
  const verdicts = [...judges].map(([judge, models]) => `verdicts${judges.size > 1 ? ` (${[...models].join(', ')})` : ''}: ${judge}`);
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ...verdicts].join('\n') + '\n';
}

/** A trained prompt's objective on its training queries (dro-train nodes). */
export interface ObjectiveRow {
  model: string;
  /** The training node's name: "dro:default", "dro-no-norm:short", …; also the condition its prompt is evaluated as. */
  run: string;
  objective: TrainingObjective;
}

type OutputsOf = (nodeId: string) => Record<string, ArtifactRef> | undefined;

/** Node ids are "<name>@<model>" (model ids have no "@"). */
function splitNodeId(id: string): { name: string; model: string } {
  const at = id.lastIndexOf('@');
  return { name: id.slice(0, at), model: id.slice(at + 1) };
}

export async function trainingObjectives(store: ArtifactStore, dag: Dag, outputsOf: OutputsOf): Promise<ObjectiveRow[]> {
  const rows: ObjectiveRow[] = [];
  for (const node of dag.nodes.filter((n) => n.stage === 'dro-train')) {
    const shift = outputsOf(node.id)?.shift;
    if (!shift) continue;
    const minShare = (node.params as { objectiveMinShare?: number }).objectiveMinShare ?? DEFAULT_OBJECTIVE_MIN_SHARE;
    const { name, model } = splitNodeId(node.id);
    rows.push({ model, run: name, objective: trainingObjective(await readTrainingShift(store, shift, `${node.id}.shift`), minShare) });
  }
  return rows;
}

/** The report node's comparisons (trained condition vs its text prompt), computed from the evaluate nodes' outputs. */
export async function heldOutComparisons(store: ArtifactStore, dag: Dag, outputsOf: OutputsOf, reportNode: string): Promise<ConditionComparison[]> {
  const pairs = ((dag.nodes.find((n) => n.id === reportNode)?.params as { comparisons?: { condition: string; against: string }[] }) ?? {}).comparisons ?? [];
  const outcomes = new Map<string, QueryOutcome[]>();
  for (const node of dag.nodes.filter((n) => n.stage === 'evaluate')) {
    const { model, condition } = node.params as { model: string; condition: string };
    const points = outputsOf(node.id)?.points;
    const source = node.inputs.samples;
    const samples = source && ('ref' in source ? source.ref : outputsOf(source.node)?.[source.output]);
    if (!points || !samples) continue;
    const key = `${model}\u0000${condition}`;
    outcomes.set(key, [...(outcomes.get(key) ?? []), ...(await readQueryOutcomes(store, points, samples, node.id))]);
  }
  const models = [...new Set(dag.nodes.filter((n) => n.stage === 'evaluate').map((n) => (n.params as { model: string }).model))];
  return pairs.flatMap(({ condition, against }) =>
    models.flatMap((model) => {
      const treated = outcomes.get(`${model}\u0000${condition}`);
      const base = outcomes.get(`${model}\u0000${against}`);
      return treated && base ? compareConditions(model, condition, against, treated, base) : [];
    }),
  );
}

/** "dro:default@qwen: training objective met: harmful → refusal 24/24 (mean Δr −1.19), …", one line per trained prompt. */
export function formatObjectives(rows: ObjectiveRow[]): string {
  return rows.map((r) => `${r.run}@${r.model}: training objective ${formatObjective(r.objective)}`).join('\n') + (rows.length ? '\n' : '');
}
