/**
 * The dro-train stage: DRO soft-prompt training (or one of its ablations) on the model the run configures.
 *
 * Inputs:  rendered   (rendered-inputs/v1: training queries; rows with params.promptId are used)
 *          directions (directions/v1: PCA mean/components + refusal and harmfulness boundaries)
 * Outputs: softPrompt    (soft-prompt/v1 safetensors {"soft_prompt": [n_tokens, d]})
 *          curve         (training-curve/v1: step, epoch, term, value)
 *          nearestTokens (nearest-tokens/v1)
 *          shift         (training-shift/v1: boundary logits per training query, basic vs soft prompt)
 */
import {
  BadInputError,
  directionsSchema,
  nearestTokensSchema,
  renderedInputsSchema,
  softPromptSchema,
  trainingCurveSchema,
  trainingShiftSchema,
  formatObjective,
  trainingObjective,
  writeNearestTokens,
  writeSoftPrompt,
  writeTrainingCurve,
  writeTrainingShift,
  type ArtifactRef,
  type CurvePoint,
  type ManifestInput,
  type TrainingShiftRow,
} from '@dro/artifacts';
import type { ChatModel } from '@dro/llm';
import type { Stage, StageContext } from '@dro/pipeline';
import * as tf from '@tensorflow/tfjs-core';
import { readDirections, readTrainingInputs, type TrainingInputs } from './inputs.ts';
import { nearestTokens } from './nearest.ts';
import { effectiveWeights, parseDroTrainParams, type CommonTrainParams, type DroTrainParams } from './params.ts';
import { trainDro } from './train-dro.ts';

/** The basic prompt's token embeddings: the soft prompt's starting point, [n, d] row-major. */
export function initialSoftPrompt(model: ChatModel, promptIds: number[]): Float32Array {
  return tf.tidy(() => Float32Array.from(model.embed([promptIds]).dataSync()));
}

/** Writes what every soft-prompt trainer outputs: the prompt, its curve and its nearest tokens. */
export async function writeSoftPromptOutputs(
  ctx: StageContext,
  model: ChatModel,
  manifest: ManifestInput,
  method: string,
  params: CommonTrainParams,
  inputs: TrainingInputs,
  softPrompt: Float32Array,
  curve: CurvePoint[],
): Promise<Record<string, ArtifactRef>> {
  const d = model.config.hiddenSize;
  const n = inputs.promptIds.length;
  const first = inputs.examples[0]!;
  const span = { start: first.spanStart, end: first.spanEnd };
  const softPromptRef = await writeSoftPrompt(ctx.store, { values: softPrompt, n, d, method, promptId: params.promptId, span, initTokenIds: inputs.promptIds }, manifest);
  const curveRef = await writeTrainingCurve(ctx.store, curve, manifest);
  const token = (id: number) => model.tokenizer.decode([id], { skipSpecialTokens: false });
  const near = nearestTokens(model, softPrompt, n, d, model.config.vocabSize, params.nearestTokens).map((x) => {
    const initTokenId = inputs.promptIds[x.position]!;
    return { ...x, initTokenId, initToken: token(initTokenId), token: token(x.tokenId) };
  });
  const nearestRef = await writeNearestTokens(ctx.store, near, manifest);
  return { softPrompt: softPromptRef, curve: curveRef, nearestTokens: nearestRef };
}

async function runDroTrain(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: DroTrainParams): Promise<Record<string, ArtifactRef>> {
  const training = await readTrainingInputs(ctx.store, inputs.rendered!, params);
  const directions = await readDirections(ctx.store, inputs.directions!);
  const model = await ctx.openModel();
  if (model.config.hiddenSize !== directions.d) {
    throw new BadInputError(`directions: PCA dimension ${directions.d} does not match the model's hidden size ${model.config.hiddenSize}`);
  }
  const init = initialSoftPrompt(model, training.promptIds);
  const weights = effectiveWeights(params);
  ctx.log.info('dro-train: start', { variant: params.variant, queries: training.examples.length, promptTokens: training.promptIds.length, weights });
  const result = await trainDro(model, training.examples, directions, { values: init, nTokens: training.promptIds.length }, weights, params, {
    signal: ctx.signal,
    progress: (done, total, message) => ctx.progress({ done, total, message }),
  });
  const shifts: TrainingShiftRow[] = result.shifts.map((s) => ({ ...s, label: s.label === 1 ? 'harmless' : 'harmful' }));
  const objective = trainingObjective(shifts, params.objectiveMinShare);
  (objective.met ? ctx.log.info : ctx.log.warn).call(ctx.log, `dro-train: training objective ${formatObjective(objective)}`, { variant: params.variant });
  const manifest = ctx.manifest({ summary: { objective, effectiveLr: result.effectiveLr } });
  const method = params.variant === 'dro' ? 'dro' : `dro:${params.variant}`;
  const outputs = await writeSoftPromptOutputs(ctx, model, manifest, method, params, training, result.softPrompt, result.curve);
  return { ...outputs, shift: await writeTrainingShift(ctx.store, shifts, manifest) };
}

export const droTrainStage: Stage<DroTrainParams> = {
  name: 'dro-train',
  // 2: lrUnit (step size relative to the prompt's scale) and the training objective in the manifest.
  // 3: ablationWeights (the published ablations' weights).
  version: '3',
  needs: 'model',
  inputs: ['rendered', 'directions'],
  inputSchemas: { rendered: renderedInputsSchema.name, directions: directionsSchema.name },
  outputs: ['softPrompt', 'curve', 'nearestTokens', 'shift'],
  outputSchemas: {
    softPrompt: softPromptSchema.name,
    curve: trainingCurveSchema.name,
    nearestTokens: nearestTokensSchema.name,
    shift: trainingShiftSchema.name,
  },
  parseParams: parseDroTrainParams,
  run: runDroTrain,
};
