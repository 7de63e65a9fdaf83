/**
 * The evaluate stage: metrics of one model under one prompt condition on held-out query sets.
 *
 * Design (stage packages stay independent): responses are generated and judged by the sampling stage, and
 * the model's forward passes under the condition run in the eval-forward stage (row-parallel: it shards
 * over model workers), both on the eval inputs under each condition; this stage needs no model. It
 * aggregates the samples/v2 table and projects eval-forward's results:
 *  - the final hidden state of every eval query → PCA coordinates and refusal/harmfulness boundary logits
 *    (how far the condition moves harmful vs harmless queries in the representation space);
 *  - the general-capability proxy: the mean per-token log-likelihood (nats) of the no-prompt model's greedy
 *    answers to harmless queries (reference-answers stage) under the condition, over the first
 *    params.capabilityQueries harmless queries eval-forward scored. The no-prompt model scores its own
 *    greedy answers highest; a prompt that makes the model less able or less willing to give those answers
 *    lowers it. Reported per harmless set; null for harmful sets.
 *
 * The sampled outcome is counted from the verdicts the sampling stage recorded (samples/v2 `complied`,
 * counted with tallyQueries of @dro/artifacts): this stage never re-judges, so its rates are exactly what
 * the refusal-boundary labels and the paired comparisons count, and the metrics carry the `judge` and the
 * judged selection that produced them.
 *
 * Inputs:  rendered (rendered-inputs/v1, eval sets), directions (directions/v1), samples (samples/v2 of this
 *          condition), hiddenStates (eval-hidden-states/v1 of this condition: eval-forward)
 * Outputs: metrics (eval-metrics/v2), points (eval-points/v1)
 */
import {
  BadInputError,
  directionsSchema,
  evalHiddenStatesSchema,
  evalMetricsSchema,
  evalPointsSchema,
  readDirections,
  readEvalHiddenStates,
  readRenderedInputs,
  readSamples,
  renderedInputsSchema,
  samplesSchema,
  writeEvalMetrics,
  writeEvalPoints,
  type ArtifactRef,
} from '@dro/artifacts';
import type { Stage, StageContext } from '@dro/pipeline';
import { project } from './inputs.ts';
import { aggregateSamples } from './metrics.ts';
import { parseEvaluateParams, type EvaluateParams } from './params.ts';

async function runEvaluate(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: EvaluateParams): Promise<Record<string, ArtifactRef>> {
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { promptId: params.promptId, sets: params.sets });
  const directions = await readDirections(ctx.store, inputs.directions!);
  const samples = (await readSamples(ctx.store, inputs.samples!, params.promptId, 'samples')).filter((s) => params.sets.length === 0 || params.sets.includes(s.set));
  const forward = await readEvalHiddenStates(ctx.store, inputs.hiddenStates!);
  const sampled = new Set(samples.map((s) => `${s.set}\u0000${s.queryId}`));
  const missing = rows.filter((r) => !sampled.has(`${r.set}\u0000${r.queryId}`));
  if (missing.length > 0) {
    throw new BadInputError(`samples: no samples with prompt_id "${params.promptId}" for ${missing.length} eval queries (e.g. ${missing[0]!.set}/${missing[0]!.queryId})`);
  }
  if (forward.dim !== directions.d) throw new BadInputError(`${forward.name}: hidden states of width ${forward.dim} ≠ the directions' dimension ${directions.d}`);
  const forwardRow = new Map(forward.rows.map((r, j) => [r.inputId, j]));
  const at = rows.map((r) => {
    const j = forwardRow.get(r.inputId);
    if (j === undefined) throw new BadInputError(`${forward.name}: no hidden state for eval input "${r.inputId}" (${r.set}/${r.queryId}, prompt_id "${params.promptId}")`);
    return j;
  });
  const projected = at.map((j) => project(directions, forward.values, j * directions.d));
  // The capability proxy: the first capabilityQueries harmless rows that eval-forward scored, in row order.
  const capability = new Map(
    rows
      .map((r, i) => ({ r, i, logLik: forward.answerLogLikelihood[at[i]!] ?? null }))
      .filter((x) => x.r.label === 'harmless' && x.logLik !== null)
      .slice(0, params.capabilityQueries ?? Infinity)
      .map((x) => [x.i, x.logLik!]),
  );

  const metrics = aggregateSamples(samples, `samples ${inputs.samples!.digest.slice(0, 12)}`).map((m) => {
    const idx = rows.map((r, i) => (r.set === m.set && r.label === m.label ? i : -1)).filter((i) => i >= 0);
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
    const caps = idx.filter((i) => capability.has(i)).map((i) => capability.get(i)!);
    return {
      ...m,
      meanRefusalLogit: mean(idx.map((i) => projected[i]!.refusal)),
      meanHarmfulnessLogit: mean(idx.map((i) => projected[i]!.harmfulness)),
      capability: m.label === 'harmless' ? mean(caps) : null,
    };
  });
  const manifest = ctx.manifest();
  const metricsRef = await writeEvalMetrics(ctx.store, metrics.map((m) => ({ ...m, model: params.model, condition: params.condition })), manifest);
  const points = rows.map((r, i) => ({
    model: params.model,
    condition: params.condition,
    queryId: r.queryId,
    set: r.set,
    label: r.label,
    query: r.query,
    z: projected[i]!.z,
    refusalLogit: projected[i]!.refusal,
    harmfulnessLogit: projected[i]!.harmfulness,
  }));
  const pointsRef = await writeEvalPoints(ctx.store, points, directions.k, manifest);
  return { metrics: metricsRef, points: pointsRef };
}

export const evaluateStage: Stage<EvaluateParams> = {
  name: 'evaluate',
  // 2: counts the recorded verdicts (samples/v2), metrics v2 (judge, selection, interval), optional references.
  // 3: the model pass moved to eval-forward (row-parallel); this stage reads its table and needs no model.
  version: '3',
  needs: 'cpu',
  inputs: ['rendered', 'directions', 'samples', 'hiddenStates'],
  inputSchemas: {
    rendered: renderedInputsSchema.name,
    directions: directionsSchema.name,
    samples: samplesSchema.name,
    hiddenStates: evalHiddenStatesSchema.name,
  },
  outputs: ['metrics', 'points'],
  outputSchemas: { metrics: evalMetricsSchema.name, points: evalPointsSchema.name },
  parseParams: parseEvaluateParams,
  run: runEvaluate,
};
