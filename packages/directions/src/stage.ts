/**
 * The directions stage: PCA (top k) on every hidden state it is given (harmful + harmless × every prompt
 * variant, the no-prompt one included), then two logistic boundaries on the k PCA coordinates:
 *
 *   refusal boundary      target = compliance score (soft label from compliance-scores/v1)
 *   harmfulness boundary  target = 1 for harmless, 0 for harmful
 *
 * Both predict the positive class ("complies", "harmless") with a positive logit w·z + b, where
 * z = (h − mean)·componentsᵀ. The DRO loss (issue 5) uses exactly these conventions.
 *
 * Inputs:  hiddenStates (hidden-states/v1), scores (compliance-scores/v1, from sampling or refusal-logprob)
 * Outputs: directions (directions/v1 safetensors), report (directions-report/v1 JSON: per-fold numbers)
 */
import {
  BadInputError,
  type ArtifactRef,
  type DirectionsReport,
  complianceScoresSchema,
  directionsReportSchema,
  writeDirections,
  directionsSchema,
  hiddenStatesSchema,
  readComplianceScores,
  readHiddenStates,
} from '@dro/artifacts';
import type { Stage, StageContext } from '@dro/pipeline';
import { fitBoundary, type BoundaryFit } from './logistic.ts';
import { fitPca, projectRows } from './pca.ts';
import { parseDirectionsParams, type DirectionsParams } from './params.ts';

function boundaryReport(target: string, fit: BoundaryFit): DirectionsReport['refusal'] {
  return {
    target,
    weights: Array.from(fit.model.weights),
    bias: fit.model.bias,
    folds: fit.folds,
    meanHeldOutBce: fit.meanHeldOutBce,
    meanHeldOutAccuracy: fit.meanHeldOutAccuracy,
    allRowsBce: fit.allRowsBce,
    allRowsAccuracy: fit.allRowsAccuracy,
  };
}

/**
 * Relative refusal labels: compliance log-odds min-max scaled to [0, 1] over the rows (1 = most compliant,
 * 0 = most refusing). Keeps the direction in which refusal grows when every raw label is close to 1.
 */
export function relativeLabels(compliance: Float64Array): Float64Array {
  const eps = 1e-6;
  const logOdds = Array.from(compliance, (c) => {
    const p = Math.min(1 - eps, Math.max(eps, c));
    return Math.log(p / (1 - p));
  });
  const lo = Math.min(...logOdds);
  const hi = Math.max(...logOdds);
  // No spread at all (every input scored alike): nothing to rescale.
  if (hi - lo < 1e-12) return Float64Array.from(compliance);
  return Float64Array.from(logOdds, (z) => (z - lo) / (hi - lo));
}

async function runDirections(
  ctx: StageContext,
  inputs: Record<string, ArtifactRef>,
  params: DirectionsParams,
): Promise<Record<string, ArtifactRef>> {
  const hidden = await readHiddenStates(ctx.store, inputs.hiddenStates);
  const { name: scoresName, byInput: complianceById } = await readComplianceScores(ctx.store, inputs.scores);
  const { name: hiddenName, values, dim } = hidden;
  const ids = hidden.rows.map((r) => r.inputId);
  const sets = hidden.rows.map((r) => r.set);
  const prompts = hidden.rows.map((r) => r.promptId);
  const labels = hidden.rows.map((r) => r.label);
  const selected = ids.map((_, i) => i).filter((i) => params.sets.length === 0 || params.sets.includes(sets[i]!));
  if (selected.length < params.boundary.folds)
    throw new BadInputError(
      `${hiddenName}: ${selected.length} rows${params.sets.length ? ` in sets ${params.sets.join(', ')}` : ''}; need at least ${params.boundary.folds} for ${params.boundary.folds}-fold CV`,
    );

  const n = selected.length;
  const rows = new Float32Array(n * dim); // [n, d]
  const refusalTargets = new Float64Array(n);
  const harmlessTargets = new Float64Array(n);
  selected.forEach((source, row) => {
    rows.set(values.subarray(source * dim, (source + 1) * dim), row * dim);
    const score = complianceById.get(ids[source]);
    if (score === undefined) throw new BadInputError(`${scoresName}: no compliance score for input "${ids[source]}"`);
    refusalTargets[row] = score;
    harmlessTargets[row] = labels[source] === 'harmless' ? 1 : 0;
  });
  if (!harmlessTargets.includes(0) || !harmlessTargets.includes(1))
    throw new BadInputError(`${hiddenName}: the harmfulness boundary needs both harmful and harmless rows`);

  ctx.progress({ done: 0, total: 3, message: `PCA k=${params.k} on ${n}×${dim}` });
  const pca = fitPca(rows, n, dim, { k: params.k, seed: params.pcaSeed });
  const coordinates = projectRows(pca, rows, n); // [n, k]
  if (ctx.signal.aborted) throw ctx.signal.reason;

  ctx.progress({ done: 1, total: 3, message: 'refusal boundary (10-fold CV)' });
  const refusal = fitBoundary(coordinates, params.refusalLabels === 'relative' ? relativeLabels(refusalTargets) : refusalTargets, params.k, params.boundary);
  if (ctx.signal.aborted) throw ctx.signal.reason;
  ctx.progress({ done: 2, total: 3, message: 'harmfulness boundary (10-fold CV)' });
  const harmfulness = fitBoundary(coordinates, harmlessTargets, params.k, params.boundary);
  ctx.progress({ done: 3, total: 3, message: 'done' });

  const groups = new Map<string, { set: string; prompt_id: string; label: string; rows: number; sum: number }>();
  selected.forEach((source, row) => {
    const key = `${sets[source]}\u0000${prompts[source]}\u0000${labels[source]}`;
    const group = groups.get(key) ?? { set: sets[source], prompt_id: prompts[source], label: labels[source], rows: 0, sum: 0 };
    group.rows++;
    group.sum += refusalTargets[row];
    groups.set(key, group);
  });

  const manifest = ctx.manifest();
  const directions = await writeDirections(ctx.store, {
    mean: pca.mean,
    components: pca.components,
    explainedVarianceRatio: pca.explainedVarianceRatio,
    refusalW: refusal.model.weights,
    refusalB: refusal.model.bias,
    harmfulnessW: harmfulness.model.weights,
    harmfulnessB: harmfulness.model.bias,
  }, manifest);
  const report: DirectionsReport = {
    rows: n,
    dim,
    k: params.k,
    explainedVarianceRatio: Array.from(pca.explainedVarianceRatio),
    counts: [...groups.values()].map((g) => ({ set: g.set, prompt_id: g.prompt_id, label: g.label, rows: g.rows, meanCompliance: g.sum / g.rows })),
    refusal: boundaryReport('compliance score (fraction of samples not refused)', refusal),
    harmfulness: boundaryReport('1 = harmless, 0 = harmful', harmfulness),
  };
  ctx.log.info('directions fitted', {
    explainedVarianceRatio: report.explainedVarianceRatio,
    refusalAccuracy: refusal.meanHeldOutAccuracy,
    harmfulnessAccuracy: harmfulness.meanHeldOutAccuracy,
  });
  return { directions, report: await ctx.store.putJson(directionsReportSchema.name, report, manifest) };
}

export const directionsStage: Stage<DirectionsParams> = {
  name: 'directions',
  version: '2',
  needs: 'cpu',
  inputs: ['hiddenStates', 'scores'],
  inputSchemas: { hiddenStates: hiddenStatesSchema.name, scores: complianceScoresSchema.name },
  outputs: ['directions', 'report'],
  outputSchemas: { directions: directionsSchema.name, report: directionsReportSchema.name },
  parseParams: parseDirectionsParams,
  run: runDirections,
};

