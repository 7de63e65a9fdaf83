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
  NEAREST_TOKENS_SCHEMA,
  SOFT_PROMPT_SCHEMA,
  TRAINING_CURVE_SCHEMA,
  TRAINING_SHIFT_SCHEMA,
  formatObjective,
  tableForSchema,
  trainingObjective,
  type ArtifactRef,
  type ManifestInput,
} from '@dro/artifacts';
import { loadModel, type ChatModel } from '@dro/llm';
import type { Stage, StageContext } from '@dro/pipeline';
import * as tf from '@tensorflow/tfjs-core';
import { readDirections, readTrainingInputs, type TrainingInputs } from './inputs.ts';
import { nearestTokens } from './nearest.ts';
import { effectiveWeights, parseDroTrainParams, type CommonTrainParams, type DroTrainParams } from './params.ts';
import { trainDro, type CurvePoint, type LogitShift } from './train-dro.ts';

export async function openModel(ctx: StageContext, stage: string): Promise<ChatModel> {
  if (!ctx.modelPath) throw new BadInputError(`${stage}: needs a model (the DAG node has no model path)`);
  return loadModel(ctx.modelPath);
}

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
  const softPromptRef = await ctx.store.putTensors(
    SOFT_PROMPT_SCHEMA.name,
    { soft_prompt: { dtype: 'F32', shape: [n, d], data: softPrompt } },
    manifest,
    {
      method,
      prompt_id: params.promptId,
      span_start: String(first.spanStart),
      span_end: String(first.spanEnd),
      init_token_ids: JSON.stringify(inputs.promptIds),
    },
  );
  const rows = curve.flatMap((c) => Object.entries(c.terms).map(([term, value]) => ({ step: c.step, epoch: c.epoch, term, value })));
  const curveRef = await ctx.store.putTable(
    TRAINING_CURVE_SCHEMA.name,
    tableForSchema(TRAINING_CURVE_SCHEMA, {
      step: Int32Array.from(rows.map((r) => r.step)),
      epoch: Int32Array.from(rows.map((r) => r.epoch)),
      term: rows.map((r) => r.term),
      value: Float64Array.from(rows.map((r) => r.value)),
    }),
    manifest,
  );
  const near = nearestTokens(model, softPrompt, n, d, model.config.vocabSize, params.nearestTokens);
  const token = (id: number) => model.tokenizer.decode([id], { skipSpecialTokens: false });
  const nearestRef = await ctx.store.putTable(
    NEAREST_TOKENS_SCHEMA.name,
    tableForSchema(NEAREST_TOKENS_SCHEMA, {
      position: Int32Array.from(near.map((x) => x.position)),
      init_token_id: Int32Array.from(near.map((x) => inputs.promptIds[x.position]!)),
      init_token: near.map((x) => token(inputs.promptIds[x.position]!)),
      rank: Int32Array.from(near.map((x) => x.rank)),
      token_id: Int32Array.from(near.map((x) => x.tokenId)),
      token: near.map((x) => token(x.tokenId)),
      cosine: Float32Array.from(near.map((x) => x.cosine)),
    }),
    manifest,
  );
  return { softPrompt: softPromptRef, curve: curveRef, nearestTokens: nearestRef };
}

export async function writeShiftTable(ctx: StageContext, manifest: ManifestInput, shifts: LogitShift[]): Promise<ArtifactRef> {
  return ctx.store.putTable(
    TRAINING_SHIFT_SCHEMA.name,
    tableForSchema(TRAINING_SHIFT_SCHEMA, {
      query_id: shifts.map((s) => s.queryId),
      label: shifts.map((s) => (s.label === 1 ? 'harmless' : 'harmful')),
      base_refusal_logit: Float64Array.from(shifts.map((s) => s.baseRefusal)),
      soft_refusal_logit: Float64Array.from(shifts.map((s) => s.softRefusal)),
      base_harmfulness_logit: Float64Array.from(shifts.map((s) => s.baseHarmfulness)),
      soft_harmfulness_logit: Float64Array.from(shifts.map((s) => s.softHarmfulness)),
    }),
    manifest,
  );
}

async function runDroTrain(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: DroTrainParams): Promise<Record<string, ArtifactRef>> {
  const training = await readTrainingInputs(ctx.store, inputs.rendered!, params);
  const directions = await readDirections(ctx.store, inputs.directions!);
  const model = await openModel(ctx, droTrainStage.name);
  try {
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
    const objective = trainingObjective(
      result.shifts.map((s) => ({ ...s, label: s.label === 1 ? 'harmless' : 'harmful' })),
      params.objectiveMinShare,
    );
    (objective.met ? ctx.log.info : ctx.log.warn).call(ctx.log, `dro-train: training objective ${formatObjective(objective)}`, { variant: params.variant });
    const manifest: ManifestInput = {
      producer: { stage: droTrainStage.name, version: droTrainStage.version },
      params,
      inputs: { rendered: inputs.rendered!.digest, directions: inputs.directions!.digest },
      modelDigest: ctx.modelDigest,
      backend: model.backend,
      summary: { objective, effectiveLr: result.effectiveLr },
    };
    const method = params.variant === 'dro' ? 'dro' : `dro:${params.variant}`;
    const outputs = await writeSoftPromptOutputs(ctx, model, manifest, method, params, training, result.softPrompt, result.curve);
    return { ...outputs, shift: await writeShiftTable(ctx, manifest, result.shifts) };
  } finally {
    model.dispose();
  }
}

export const droTrainStage: Stage<DroTrainParams> = {
  name: 'dro-train',
  // 2: lrUnit (step size relative to the prompt's scale) and the training objective in the manifest.
  // 3: ablationWeights (the published ablations' weights).
  version: '3',
  needs: 'model',
  inputs: ['rendered', 'directions'],
  outputs: ['softPrompt', 'curve', 'nearestTokens', 'shift'],
  outputSchemas: {
    softPrompt: SOFT_PROMPT_SCHEMA.name,
    curve: TRAINING_CURVE_SCHEMA.name,
    nearestTokens: NEAREST_TOKENS_SCHEMA.name,
    shift: TRAINING_SHIFT_SCHEMA.name,
  },
  parseParams: parseDroTrainParams,
  run: runDroTrain,
};
