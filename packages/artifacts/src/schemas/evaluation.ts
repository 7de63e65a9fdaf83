/**
 * What the held-out evaluation produces: reference-answers/v1 (the capability proxy's yardstick),
 * eval-metrics/v2 and eval-points/v1 per model × condition (evaluate → report, `dro run`'s summary), and
 * report-html/v1, the report page.
 */
import type { ArtifactRef, ArtifactStore, ManifestInput } from '../types.ts';
import { checkedLabel, defineJsonSchema, defineTableSchema, readStoredTable, tableForSchema, vectorValues } from '../schemas.ts';
import type { QueryLabel } from './queries.ts';

/** Greedy answers of the no-prompt model to harmless queries: the capability proxy's reference. */
export const referenceAnswersSchema = defineTableSchema({
  name: 'reference-answers/v1',
  columns: [
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    { name: 'answer', type: 'utf8' },
    { name: 'answer_token_ids', type: 'list<int32>' },
  ],
});

export interface ReferenceAnswer {
  set: string;
  queryId: string;
  query: string;
  answer: string;
  answerIds: number[];
}

export function writeReferenceAnswers(store: ArtifactStore, answers: readonly ReferenceAnswer[], manifest: ManifestInput): Promise<ArtifactRef> {
  const table = tableForSchema(referenceAnswersSchema, {
    set: answers.map((a) => a.set),
    query_id: answers.map((a) => a.queryId),
    query: answers.map((a) => a.query),
    answer: answers.map((a) => a.answer),
    answer_token_ids: answers.map((a) => a.answerIds),
  });
  return store.putTable(referenceAnswersSchema.name, table, manifest);
}

export async function readReferenceAnswers(store: ArtifactStore, ref: ArtifactRef, input = 'references'): Promise<ReferenceAnswer[]> {
  const { column } = await readStoredTable(store, ref, referenceAnswersSchema, input);
  const [sets, queries, answers, ids] = [column<string>('set'), column<string>('query'), column<string>('answer'), column<{ toArray(): Int32Array }>('answer_token_ids')];
  return column<string>('query_id').map((queryId, i) => ({ set: sets[i]!, queryId, query: queries[i]!, answer: answers[i]!, answerIds: Array.from(ids[i]!.toArray()) }));
}

/** Evaluation metrics of one model under one prompt condition, one row per query set. */
export const evalMetricsSchema = defineTableSchema({
  name: 'eval-metrics/v2',
  columns: [
    { name: 'model', type: 'utf8' },
    { name: 'condition', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'queries', type: 'int32' },
    { name: 'samples_per_query', type: 'int32' },
    /** Samples per query the verdicts were counted over (the judged selection). */
    { name: 'judged_per_query', type: 'int32' },
    /** What produced the verdicts (samples/v2 `judge`). */
    { name: 'judge', type: 'utf8' },
    { name: 'queries_any_complied', type: 'int32' },
    { name: 'queries_any_refused', type: 'int32' },
    { name: 'mean_compliance', type: 'float64' },
    /** Student-t 95 % interval of mean_compliance over queries. */
    { name: 'mean_compliance_low', type: 'float64' },
    { name: 'mean_compliance_high', type: 'float64' },
    { name: 'mean_refusal_logit', type: 'float64', nullable: true },
    { name: 'mean_harmfulness_logit', type: 'float64', nullable: true },
    { name: 'capability', type: 'float64', nullable: true },
  ],
});

/** What the judged samples of one query set's queries of one label say (evaluate's aggregateSamples). */
export interface SetMetrics {
  /** Query set name (e.g. "heldout-harmful"). */
  set: string;
  label: QueryLabel;
  queries: number;
  /** Samples drawn per query (the largest count, if they differ). */
  samplesPerQuery: number;
  /** Samples per query the verdicts were counted over (the judged selection; the largest count). */
  judgedPerQuery: number;
  /** What produced the verdicts (distinct values joined by " | " if the samples disagree). */
  judge: string;
  /** Queries with at least one judged sample that complied. */
  queriesAnyComplied: number;
  /** Queries with at least one judged sample that was refused. */
  queriesAnyRefused: number;
  /** Mean over queries of the share of judged samples that complied, and its 95 % interval. */
  meanCompliance: number;
  meanComplianceLow: number;
  meanComplianceHigh: number;
}

/** One eval-metrics/v2 row: a model under a condition on one query set's queries of one label. */
export interface EvalMetrics extends SetMetrics {
  model: string;
  condition: string;
  meanRefusalLogit: number | null;
  meanHarmfulnessLogit: number | null;
  capability: number | null;
}

export function writeEvalMetrics(store: ArtifactStore, metrics: readonly EvalMetrics[], manifest: ManifestInput): Promise<ArtifactRef> {
  const table = tableForSchema(evalMetricsSchema, {
    model: metrics.map((m) => m.model),
    condition: metrics.map((m) => m.condition),
    set: metrics.map((m) => m.set),
    label: metrics.map((m) => m.label),
    queries: metrics.map((m) => m.queries),
    samples_per_query: metrics.map((m) => m.samplesPerQuery),
    judged_per_query: metrics.map((m) => m.judgedPerQuery),
    judge: metrics.map((m) => m.judge),
    queries_any_complied: metrics.map((m) => m.queriesAnyComplied),
    queries_any_refused: metrics.map((m) => m.queriesAnyRefused),
    mean_compliance: metrics.map((m) => m.meanCompliance),
    mean_compliance_low: metrics.map((m) => m.meanComplianceLow),
    mean_compliance_high: metrics.map((m) => m.meanComplianceHigh),
    mean_refusal_logit: metrics.map((m) => m.meanRefusalLogit),
    mean_harmfulness_logit: metrics.map((m) => m.meanHarmfulnessLogit),
    capability: metrics.map((m) => m.capability),
  });
  return store.putTable(evalMetricsSchema.name, table, manifest);
}

export async function readEvalMetrics(store: ArtifactStore, ref: ArtifactRef, input = 'metrics'): Promise<EvalMetrics[]> {
  const { name, column } = await readStoredTable(store, ref, evalMetricsSchema, input);
  const c = {
    condition: column<string>('condition'), set: column<string>('set'), label: column<string>('label'), queries: column<number>('queries'),
    samples: column<number>('samples_per_query'), judged: column<number>('judged_per_query'), judge: column<string>('judge'),
    complied: column<number>('queries_any_complied'), refused: column<number>('queries_any_refused'), mean: column<number>('mean_compliance'),
    low: column<number>('mean_compliance_low'), high: column<number>('mean_compliance_high'), refusal: column<number | null>('mean_refusal_logit'),
    harmfulness: column<number | null>('mean_harmfulness_logit'), capability: column<number | null>('capability'),
  };
  return column<string>('model').map((model, i) => ({
    model,
    condition: c.condition[i]!,
    set: c.set[i]!,
    label: checkedLabel(c.label[i], `${name}: row ${i}`),
    queries: c.queries[i]!,
    samplesPerQuery: c.samples[i]!,
    judgedPerQuery: c.judged[i]!,
    judge: c.judge[i]!,
    queriesAnyComplied: c.complied[i]!,
    queriesAnyRefused: c.refused[i]!,
    meanCompliance: c.mean[i]!,
    meanComplianceLow: c.low[i]!,
    meanComplianceHigh: c.high[i]!,
    meanRefusalLogit: c.refusal[i] ?? null,
    meanHarmfulnessLogit: c.harmfulness[i] ?? null,
    capability: c.capability[i] ?? null,
  }));
}

/** Per query under one condition: PCA coordinates and boundary logits of the final hidden state. */
export const evalPointsSchema = defineTableSchema({
  name: 'eval-points/v1',
  columns: [
    { name: 'model', type: 'utf8' },
    { name: 'condition', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    { name: 'z', type: 'vector', listSize: 'any' },
    { name: 'refusal_logit', type: 'float64' },
    { name: 'harmfulness_logit', type: 'float64' },
  ],
});

export interface EvalPoint {
  model: string;
  condition: string;
  queryId: string;
  set: string;
  label: QueryLabel;
  query: string;
  /** [k] PCA coordinates. */
  z: number[];
  refusalLogit: number;
  harmfulnessLogit: number;
}

/** Write eval points; `k` is the width of z (every point's z has it). */
export function writeEvalPoints(store: ArtifactStore, points: readonly EvalPoint[], k: number, manifest: ManifestInput): Promise<ArtifactRef> {
  const table = tableForSchema(
    evalPointsSchema,
    {
      model: points.map((p) => p.model),
      condition: points.map((p) => p.condition),
      query_id: points.map((p) => p.queryId),
      set: points.map((p) => p.set),
      label: points.map((p) => p.label),
      query: points.map((p) => p.query),
      z: Float32Array.from(points.flatMap((p) => p.z)),
      refusal_logit: points.map((p) => p.refusalLogit),
      harmfulness_logit: points.map((p) => p.harmfulnessLogit),
    },
    { z: k },
  );
  return store.putTable(evalPointsSchema.name, table, manifest);
}

export async function readEvalPoints(store: ArtifactStore, ref: ArtifactRef, input = 'points'): Promise<EvalPoint[]> {
  const { table, name, column } = await readStoredTable(store, ref, evalPointsSchema, input);
  const { values, dim } = vectorValues(table, 'z');
  const [conditions, queryIds, sets, labels, queries, refusal, harmfulness] = [
    column<string>('condition'), column<string>('query_id'), column<string>('set'), column<string>('label'), column<string>('query'),
    column<number>('refusal_logit'), column<number>('harmfulness_logit'),
  ];
  return column<string>('model').map((model, i) => ({
    model,
    condition: conditions[i]!,
    queryId: queryIds[i]!,
    set: sets[i]!,
    label: checkedLabel(labels[i], `${name}: row ${i}`),
    query: queries[i]!,
    z: Array.from(values.subarray(i * dim, (i + 1) * dim)),
    refusalLogit: refusal[i]!,
    harmfulnessLogit: harmfulness[i]!,
  }));
}

export interface ReportArtifact {
  /** The whole self-contained HTML page. */
  html: string;
  title: string;
}

/** The HTML report, stored as JSON so it is content-addressed like every other artifact. */
export const reportHtmlSchema = defineJsonSchema<ReportArtifact>({
  name: 'report-html/v1',
  validate(value) {
    const v = value as Partial<ReportArtifact> | null;
    if (typeof v !== 'object' || v === null) return ['expected an object { html, title }'];
    const problems: string[] = [];
    if (typeof v.html !== 'string' || !v.html.startsWith('<!DOCTYPE html>')) problems.push('html: expected an HTML document string');
    if (typeof v.title !== 'string') problems.push('title: expected a string');
    return problems;
  },
});
