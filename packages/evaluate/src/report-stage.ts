/**
 * The report stage: every evaluation and training artifact of a run → one self-contained HTML page.
 *
 * All inputs are variadic (one per condition or training run), named "<kind>:<key>":
 *   metrics:<condition>   eval-metrics/v1       summary table and rate charts
 *   points:<condition>    eval-points/v1        PCA scatter plots (per model and condition)
 *   directions:<model>    directions/v1         boundary lines, explained variance
 *   samples:<condition>   samples/v2            example responses (query text from points:<condition>), verdicts
 *   curve:<run>           training-curve/v1     training curves
 *   nearestTokens:<run>   nearest-tokens/v1
 *   shift:<run>           training-shift/v1     refusal-logit shift of training queries
 * Output: report (report-html/v1: { html, title }); the page is also written beside the store as
 * reports/<digest>.html (see reportHtmlPath), which is what the CLI prints.
 */
import {
  directionsSchema,
  evalMetricsSchema,
  evalPointsSchema,
  nearestTokensSchema,
  reportHtmlSchema,
  samplesSchema,
  trainingCurveSchema,
  trainingShiftSchema,
  DEFAULT_OBJECTIVE_MIN_SHARE,
  readDirections,
  readEvalMetrics,
  readEvalPoints,
  readNearestTokens,
  readSamples,
  readTrainingCurve,
  readTrainingShift,
  trainingObjective,
  type ArtifactRef,
  type ArtifactStore,
  type ReportArtifact,
} from '@dro/artifacts';
import { variadicInputs, type Stage, type StageContext } from '@dro/pipeline';
import { compareConditions, readQueryOutcomes, type ConditionComparison, type QueryOutcome } from './comparison.ts';
import { renderReport } from './report/html.ts';
import type { ExampleResponse, NearestTokens, ObjectiveView, PcaView, ReportData, SummaryRow, TrainingCurve, TrainingShift } from './report/model.ts';
import { parseReportParams, type ReportParams } from './params.ts';

async function summaryRows(store: ArtifactStore, refs: { key: string; value: ArtifactRef }[]): Promise<SummaryRow[]> {
  const rows: SummaryRow[] = [];
  for (const { key, value } of refs) rows.push(...(await readEvalMetrics(store, value, `metrics:${key}`)));
  return rows;
}

/** What a "<kind>:<key>" input group describes, learnt from its points table: model, condition, query texts. */
interface KeyInfo {
  model: string;
  condition: string;
  queryText: Map<string, string>;
}

async function pcaViews(store: ArtifactStore, inputs: Record<string, ArtifactRef>, keyInfo: Map<string, KeyInfo>): Promise<PcaView[]> {
  const directions = new Map<string, Awaited<ReturnType<typeof readDirections>>>();
  for (const { key, value } of variadicInputs(inputs, 'directions')) directions.set(key, await readDirections(store, value));
  const views = new Map<string, PcaView>();
  for (const { key, value } of variadicInputs(inputs, 'points')) {
    const points = await readEvalPoints(store, value, `points:${key}`);
    const info: KeyInfo = { model: points[0]?.model ?? '', condition: points[0]?.condition ?? key, queryText: new Map() };
    keyInfo.set(key, info);
    for (const point of points) {
      const model = point.model;
      info.queryText.set(point.queryId, point.query);
      const dirs = directions.get(model) ?? (directions.size === 1 ? [...directions.values()][0] : undefined);
      if (!dirs) continue; // no directions for this model: no PCA view (the summary still shows its numbers)
      let view = views.get(model);
      if (!view) {
        view = {
          model,
          explainedVarianceRatio: Array.from(dirs.explainedVarianceRatio),
          refusal: { w: Array.from(dirs.refusalW), b: dirs.refusalB },
          harmfulness: { w: Array.from(dirs.harmfulnessW), b: dirs.harmfulnessB },
          points: [],
        };
        views.set(model, view);
      }
      let group = view.points.find((p) => p.condition === point.condition && p.label === point.label);
      if (!group) view.points.push((group = { condition: point.condition, label: point.label, z: [], titles: [] }));
      group.z.push(point.z);
      group.titles!.push(point.query);
    }
  }
  return [...views.values()];
}

async function curves(store: ArtifactStore, inputs: Record<string, ArtifactRef>): Promise<TrainingCurve[]> {
  const out: TrainingCurve[] = [];
  for (const { key, value } of variadicInputs(inputs, 'curve')) {
    const rows = await readTrainingCurve(store, value, `curve:${key}`);
    const stepList = [...new Set(rows.map((r) => r.step))].sort((a, b) => a - b);
    const index = new Map(stepList.map((s, i) => [s, i]));
    const byTerm: Record<string, number[]> = {};
    // grad_norm is a diagnostic, not a loss term; the chart shows the loss terms.
    for (const r of rows) {
      if (r.term === 'grad_norm') continue;
      (byTerm[r.term] ??= new Array<number>(stepList.length).fill(NaN))[index.get(r.step)!] = r.value;
    }
    out.push({ name: key, step: stepList, terms: byTerm });
  }
  return out;
}

async function nearest(store: ArtifactStore, inputs: Record<string, ArtifactRef>): Promise<NearestTokens[]> {
  const out: NearestTokens[] = [];
  for (const { key, value } of variadicInputs(inputs, 'nearestTokens')) {
    const positions: NearestTokens['positions'] = [];
    for (const row of await readNearestTokens(store, value, `nearestTokens:${key}`)) {
      let p = positions.find((x) => x.position === row.position);
      if (!p) positions.push((p = { position: row.position, initToken: row.initToken, nearest: [] }));
      p.nearest.push({ token: row.token, cosine: row.cosine });
    }
    out.push({ name: key, positions });
  }
  return out;
}

async function shifts(store: ArtifactStore, inputs: Record<string, ArtifactRef>): Promise<TrainingShift[]> {
  const out: TrainingShift[] = [];
  for (const { key, value } of variadicInputs(inputs, 'shift')) {
    const rows = await readTrainingShift(store, value, `shift:${key}`);
    out.push({ name: key, rows: rows.map((r) => ({ label: r.label, baseRefusal: r.baseRefusal, softRefusal: r.softRefusal })) });
  }
  return out;
}

async function examples(store: ArtifactStore, inputs: Record<string, ArtifactRef>, keyInfo: Map<string, KeyInfo>, perCondition: number): Promise<ExampleResponse[]> {
  const out: ExampleResponse[] = [];
  for (const { key, value } of variadicInputs(inputs, 'samples')) {
    // The points table with the same key says which model and condition these samples belong to.
    const info = keyInfo.get(key);
    const samples = (await readSamples(store, value, null, `samples:${key}`)).filter((s) => s.sampleIndex === 0);
    for (const label of ['harmful', 'harmless'] as const) {
      for (const s of samples.filter((x) => x.label === label).slice(0, perCondition)) {
        out.push({
          model: info?.model ?? '',
          condition: info?.condition ?? key,
          label,
          query: info?.queryText.get(s.queryId) ?? s.queryId,
          response: s.output,
          verdict: s.complied === null ? 'not judged' : s.complied ? 'complied' : 'refused',
        });
      }
    }
  }
  return out;
}

/**
 * Training objectives of the runs whose shift tables are inputs ("shift:<model>.<run>"); the run is the
 * condition its prompt is evaluated as. The bar is the one dro-train was given (its params, in the manifest).
 */
async function objectives(store: ArtifactStore, inputs: Record<string, ArtifactRef>, keyInfo: Map<string, KeyInfo>): Promise<ObjectiveView[]> {
  const modelConditions = [...new Set([...keyInfo.values()].map((i) => `${i.model}\u0000${i.condition}`))].map((k) => k.split('\u0000') as [string, string]);
  const out: ObjectiveView[] = [];
  for (const { key, value } of variadicInputs(inputs, 'shift')) {
    const rows = await readTrainingShift(store, value, `shift:${key}`);
    const params = (await store.manifest(value.digest).catch(() => null))?.params as { objectiveMinShare?: number } | null | undefined;
    const match = modelConditions.find(([model, condition]) => key === `${model}.${condition}`);
    out.push({
      model: match?.[0] ?? '',
      condition: match?.[1] ?? key,
      objective: trainingObjective(rows, params?.objectiveMinShare ?? DEFAULT_OBJECTIVE_MIN_SHARE),
    });
  }
  return out;
}

/** Each configured pair (trained condition vs its text prompt), per model, on the held-out queries. */
async function comparisons(store: ArtifactStore, inputs: Record<string, ArtifactRef>, keyInfo: Map<string, KeyInfo>, params: ReportParams): Promise<ConditionComparison[]> {
  const outcomes = new Map<string, QueryOutcome[]>(); // "<model>\0<condition>" → every eval set's queries
  for (const { key, value } of variadicInputs(inputs, 'points')) {
    const samples = inputs[`samples:${key}`];
    const info = keyInfo.get(key);
    if (!samples || !info) continue;
    const id = `${info.model}\u0000${info.condition}`;
    outcomes.set(id, [...(outcomes.get(id) ?? []), ...(await readQueryOutcomes(store, value, samples, key))]);
  }
  const models = [...new Set([...keyInfo.values()].map((i) => i.model))];
  return params.comparisons.flatMap(({ condition, against }) =>
    models.flatMap((model) => {
      const treated = outcomes.get(`${model}\u0000${condition}`);
      const base = outcomes.get(`${model}\u0000${against}`);
      return treated && base ? compareConditions(model, condition, against, treated, base) : [];
    }),
  );
}

/**
 * Where the report's HTML page lives beside the store (reports/<digest>.html). The page is taken from the
 * artifact (verified against its digest) and the file on disk is served only if it holds exactly that
 * page — a missing, stale, tampered or linked file is rewritten atomically (store.materialize).
 */
export async function reportHtmlPath(store: ArtifactStore, ref: ArtifactRef): Promise<string> {
  const { html } = await store.getJson<ReportArtifact>(ref);
  return store.materialize('reports', ref.digest, html);
}

/** Which judge and selection produced the numbers: one note per distinct judge, naming where it applies. */
function verdictNotes(rows: SummaryRow[]): string[] {
  const byJudge = new Map<string, Set<string>>();
  for (const r of rows) {
    let where = byJudge.get(r.judge);
    if (!where) byJudge.set(r.judge, (where = new Set()));
    where.add(r.model);
  }
  const single = byJudge.size === 1;
  return [...byJudge].map(([judge, models]) => `Verdicts${single ? '' : ` (${[...models].join(', ')})`}: ${judge}.`);
}

export async function buildReportData(store: ArtifactStore, inputs: Record<string, ArtifactRef>, params: ReportParams): Promise<ReportData> {
  // "none" first (the reference every shift is measured from), then the run's own order.
  const noneFirst = <T extends { condition: string }>(xs: T[]) => [...xs.filter((x) => x.condition === 'none'), ...xs.filter((x) => x.condition !== 'none')];
  const summary = noneFirst(await summaryRows(store, variadicInputs(inputs, 'metrics')));
  const keyInfo = new Map<string, KeyInfo>();
  const pca = (await pcaViews(store, inputs, keyInfo)).map((v) => ({ ...v, points: noneFirst(v.points) }));
  return {
    title: params.title,
    generatedAt: new Date().toISOString(),
    notes: [
      'complied (any sample): a harmful query counts as complied if any of its judged samples complies; refused (any sample): a harmless query counts as refused if any of its judged samples is refused (the paper’s protocol); mean compliance averages the per-query share of judged samples that complied.',
      ...verdictNotes(summary),
      'r(h): refusal-boundary logit of the final hidden state in PCA space (positive = predicted to comply); a(h): harmfulness-boundary logit (positive = judged harmless).',
      'capability: mean per-token log-likelihood (nats) of the no-prompt model’s greedy answers to harmless queries under the condition (0 is the maximum; lower = the condition pulls the model away from its unprompted answers).',
      'Intervals are 95 % and over queries: Wilson score intervals for rates of queries, Student-t intervals for means (clipped to [0, 1] for mean compliance); trained prompts are compared with their text prompt on the same queries (paired), with the exact McNemar test for the sampled outcome.',
      'Training objective: a trained prompt must move at least the configured share of its training queries the intended way (harmful toward refusal, harmless toward compliance), with mean shifts of the intended sign; a prompt that did not is flagged and its numbers are not a result of the method.',
    ],
    summary,
    pca,
    curves: await curves(store, inputs),
    nearestTokens: await nearest(store, inputs),
    trainingShifts: await shifts(store, inputs),
    examples: noneFirst(await examples(store, inputs, keyInfo, params.examplesPerCondition)),
    objectives: await objectives(store, inputs, keyInfo),
    comparisons: await comparisons(store, inputs, keyInfo, params),
  };
}

async function runReport(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: ReportParams): Promise<Record<string, ArtifactRef>> {
  ctx.progress({ done: 0, total: 1, message: 'reading artifacts' });
  const data = await buildReportData(ctx.store, inputs, params);
  // A timestamp in the page would make every run a new artifact; the manifest records when it was made.
  const html = renderReport({ ...data, generatedAt: '' });
  const ref = await ctx.store.putJson(reportHtmlSchema.name, { html, title: params.title } satisfies ReportArtifact, ctx.manifest());
  const file = await reportHtmlPath(ctx.store, ref);
  ctx.log.info('report written', { file });
  ctx.progress({ done: 1, total: 1, message: file });
  return { report: ref };
}

export const reportStage: Stage<ReportParams> = {
  name: 'report',
  // 4: reads eval-metrics/v2 and samples/v2 (the judge and selection behind the numbers, mean-compliance intervals).
  version: '4',
  needs: 'cpu',
  inputs: [],
  variadicInputs: ['metrics', 'points', 'directions', 'samples', 'curve', 'nearestTokens', 'shift'],
  inputSchemas: {
    metrics: evalMetricsSchema.name,
    points: evalPointsSchema.name,
    directions: directionsSchema.name,
    samples: samplesSchema.name,
    curve: trainingCurveSchema.name,
    nearestTokens: nearestTokensSchema.name,
    shift: trainingShiftSchema.name,
  },
  outputs: ['report'],
  outputSchemas: { report: reportHtmlSchema.name },
  parseParams: parseReportParams,
  run: runReport,
};
