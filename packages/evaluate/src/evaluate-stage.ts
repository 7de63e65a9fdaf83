/**
 * The evaluate stage: metrics of one model under one prompt condition on held-out query sets.
 *
 * Design (stage packages stay independent): responses are generated and judged by the sampling stage,
 * which the DAG runs on the eval inputs under each condition; this stage aggregates its samples/v1 table
 * and adds what needs the model under the condition:
 *  - the final hidden state of every eval query → PCA coordinates and refusal/harmfulness boundary logits
 *    (how far the condition moves harmful vs harmless queries in the representation space);
 *  - the general-capability proxy: the mean per-token log-likelihood (nats) of the no-prompt model's greedy
 *    answers to harmless queries (reference-answers stage) under the condition. The no-prompt model scores
 *    its own greedy answers highest; a prompt that makes the model less able or less willing to give those
 *    answers lowers it. Reported per harmless set; null for harmful sets.
 *
 * The sampled outcome is counted from the verdicts the sampling stage recorded (samples/v2 `complied`,
 * counted with tallyQueries of @dro/artifacts): this stage never re-judges, so its rates are exactly what
 * the refusal-boundary labels and the paired comparisons count, and the metrics carry the `judge` and the
 * judged selection that produced them.
 *
 * A condition is a text prompt (params.promptId, "none" included) or a soft prompt: one input named
 * "softPrompt:<anything>" (soft-prompt/v1), spliced into the span of params.promptId, the basic prompt it
 * was trained from.
 *
 * Inputs:  rendered (rendered-inputs/v1, eval sets), directions (directions/v1), samples (samples/v2 of this
 *          condition); optional references:<key> (reference-answers/v1: any number, merged; a set without
 *          harmless queries has none, and its capability is null); optional softPrompt:<key> (soft-prompt/v1)
 * Outputs: metrics (eval-metrics/v2), points (eval-points/v1)
 */
import {
  BadInputError,
  directionsSchema,
  evalMetricsSchema,
  referenceAnswersSchema,
  renderedInputsSchema,
  samplesSchema,
  softPromptSchema,
  evalPointsSchema,
  readDirections,
  readReferenceAnswers,
  readRenderedInputs,
  readSamples,
  readSoftPrompt,
  writeEvalMetrics,
  writeEvalPoints,
  type ArtifactRef,
  type ReferenceAnswer,
} from '@dro/artifacts';
import { tf } from '@dro/llm';
import { variadicInputs, type Stage, type StageContext } from '@dro/pipeline';
import { project, promptedInput } from './inputs.ts';
import { aggregateSamples } from './metrics.ts';
import { answerLogLikelihood, lastHiddenStates, yieldToEventLoop } from './model-pass.ts';
import { parseEvaluateParams, type EvaluateParams } from './params.ts';

async function runEvaluate(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: EvaluateParams): Promise<Record<string, ArtifactRef>> {
  const softInputs = variadicInputs(inputs, 'softPrompt');
  if (softInputs.length > 1) throw new BadInputError(`evaluate: at most one softPrompt:* input, got ${softInputs.map((s) => s.key).join(', ')}`);
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { promptId: params.promptId, sets: params.sets });
  const directions = await readDirections(ctx.store, inputs.directions!);
  const samples = (await readSamples(ctx.store, inputs.samples!, params.promptId, 'samples')).filter((s) => params.sets.length === 0 || params.sets.includes(s.set));
  const references: ReferenceAnswer[] = [];
  for (const { key, value } of variadicInputs(inputs, 'references')) references.push(...(await readReferenceAnswers(ctx.store, value, `references:${key}`)));
  const soft = softInputs.length ? await readSoftPrompt(ctx.store, softInputs[0]!.value, `softPrompt:${softInputs[0]!.key}`) : null;
  if (soft && soft.metadata.prompt_id !== undefined && soft.metadata.prompt_id !== params.promptId) {
    throw new BadInputError(`softPrompt:${softInputs[0]!.key}: trained from prompt "${soft.metadata.prompt_id}", but params.promptId is "${params.promptId}"`);
  }
  const sampled = new Set(samples.map((s) => `${s.set}\u0000${s.queryId}`));
  const missing = rows.filter((r) => !sampled.has(`${r.set}\u0000${r.queryId}`));
  if (missing.length > 0) {
    throw new BadInputError(`samples: no samples with prompt_id "${params.promptId}" for ${missing.length} eval queries (e.g. ${missing[0]!.set}/${missing[0]!.queryId})`);
  }

  const model = await ctx.openModel();
  const softTensor = soft ? tf.tensor2d(soft.values, [soft.n, soft.d]) : null;
  try {
    if (model.config.hiddenSize !== directions.d) throw new BadInputError(`directions: dimension ${directions.d} ≠ the model's hidden size ${model.config.hiddenSize}`);
    if (soft && soft.d !== directions.d) throw new BadInputError(`softPrompt: width ${soft.d} ≠ the model's hidden size ${model.config.hiddenSize}`);
    const inputsOf = rows.map((r) => promptedInput(r, soft !== null));
    const refByKey = new Map(references.map((r) => [`${r.set}\u0000${r.queryId}`, r.answerIds]));
    const capabilityRows = rows
      .map((r, i) => ({ r, i, answer: refByKey.get(`${r.set}\u0000${r.queryId}`) }))
      .filter((x) => x.r.label === 'harmless' && x.answer !== undefined)
      .slice(0, params.capabilityQueries ?? Infinity);
    const total = rows.length + capabilityRows.length;
    const hidden = await lastHiddenStates(model, inputsOf, softTensor, params.chunk, (done) =>
      ctx.progress({ done, total, message: `${params.condition}: hidden states` }),
    );
    ctx.signal.throwIfAborted();
    const logLik = new Map<number, number>();
    for (const [j, x] of capabilityRows.entries()) {
      logLik.set(x.i, answerLogLikelihood(model, inputsOf[x.i]!, softTensor, x.answer!));
      ctx.progress({ done: rows.length + j + 1, total, message: `${params.condition}: capability proxy` });
      await yieldToEventLoop();
      ctx.signal.throwIfAborted();
    }
    const projected = rows.map((_, i) => project(directions, hidden, i * directions.d));

    const metrics = aggregateSamples(samples, `samples ${inputs.samples!.digest.slice(0, 12)}`).map((m) => {
      const idx = rows.map((r, i) => (r.set === m.set && r.label === m.label ? i : -1)).filter((i) => i >= 0);
      const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
      const caps = idx.filter((i) => logLik.has(i)).map((i) => logLik.get(i)!);
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
  } finally {
    softTensor?.dispose();
  }
}

export const evaluateStage: Stage<EvaluateParams> = {
  name: 'evaluate',
  // 2: counts the recorded verdicts (samples/v2), metrics v2 (judge, selection, interval), optional references.
  version: '2',
  needs: 'model',
  inputs: ['rendered', 'directions', 'samples'],
  variadicInputs: ['softPrompt', 'references'],
  inputSchemas: {
    rendered: renderedInputsSchema.name,
    directions: directionsSchema.name,
    samples: samplesSchema.name,
    softPrompt: softPromptSchema.name,
    references: referenceAnswersSchema.name,
  },
  outputs: ['metrics', 'points'],
  outputSchemas: { metrics: evalMetricsSchema.name, points: evalPointsSchema.name },
  parseParams: parseEvaluateParams,
  run: runEvaluate,
};
