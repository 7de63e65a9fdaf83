/**
 * The prompt-tuning stage: the vanilla prompt-tuning baseline (see prompt-tuning.ts).
 *
 * Inputs:  rendered (rendered-inputs/v1: training queries; rows with params.promptId)
 *          samples  (samples/v1: the sampling stage's judged responses to those rows)
 * Outputs: softPrompt (soft-prompt/v1, method "prompt-tuning"), curve (training-curve/v1),
 *          nearestTokens (nearest-tokens/v1)
 */
import {
  BadInputError,
  NEAREST_TOKENS_SCHEMA,
  SOFT_PROMPT_SCHEMA,
  TRAINING_CURVE_SCHEMA,
  columnValues,
  samplesSchema,
  type ArtifactRef,
  type ManifestInput,
} from '@dro/artifacts';
import type { Stage, StageContext } from '@dro/pipeline';
import { readTrainingInputs } from './inputs.ts';
import { parsePromptTuningParams, type PromptTuningParams } from './params.ts';
import { trainPromptTuning, type ResponseExample } from './prompt-tuning.ts';
import { initialSoftPrompt, openModel, writeSoftPromptOutputs } from './stage.ts';

async function runPromptTuning(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: PromptTuningParams): Promise<Record<string, ArtifactRef>> {
  const training = await readTrainingInputs(ctx.store, inputs.rendered!, params);
  const samplesRef = inputs.samples!;
  if (samplesRef.schema !== samplesSchema.name) throw new BadInputError(`input "samples": expected a ${samplesSchema.name} artifact, got ${samplesRef.schema}`);
  const table = await ctx.store.getTable(samplesRef);
  const name = `samples ${samplesRef.digest.slice(0, 12)}`;
  const prompts = columnValues<string>(table, 'prompt_id', name);
  const sets = columnValues<string>(table, 'set', name);
  const queryIds = columnValues<string>(table, 'query_id', name);
  const outputs = columnValues<string>(table, 'output', name);
  const refused = columnValues<boolean>(table, 'refused', name);
  const sampleIndex = columnValues<number>(table, 'sample_index', name);

  const model = await openModel(ctx, promptTuningStage.name);
  try {
    const byQuery = new Map(training.examples.map((x) => [`${x.set}\u0000${x.queryId}`, x]));
    const eot = model.tokenizer.eosTokenId;
    const examples: ResponseExample[] = [];
    prompts.forEach((p, i) => {
      const x = byQuery.get(`${sets[i]}\u0000${queryIds[i]}`);
      if (p !== params.promptId || !x) return;
      if (params.samplesPerQuery !== null && sampleIndex[i]! >= params.samplesPerQuery) return;
      // Refusal is desirable for harmful queries (label 0), compliance for harmless ones (label 1).
      const desirable = x.label === 0 ? Boolean(refused[i]) : !refused[i];
      let response = model.tokenizer.encode(outputs[i]!, { addSpecialTokens: false }).slice(0, params.maxResponseTokens);
      // The desirable answer also teaches where to stop; an undesirable one is penalised on its words only.
      if (desirable && eot !== null && response.length < params.maxResponseTokens) response = [...response, eot];
      if (response.length === 0) return;
      examples.push({ prompt: x, response, desirable });
    });
    if (examples.length === 0) {
      throw new BadInputError(`${name}: no sampled responses for the ${training.examples.length} training queries with prompt_id "${params.promptId}"`);
    }
    const d = model.config.hiddenSize;
    const init = initialSoftPrompt(model, training.promptIds);
    ctx.log.info('prompt-tuning: start', { responses: examples.length, desirable: examples.filter((x) => x.desirable).length });
    const result = await trainPromptTuning(model, examples, { values: init, nTokens: training.promptIds.length, d }, params.weights, params, {
      signal: ctx.signal,
      progress: (done, total, message) => ctx.progress({ done, total, message }),
    });
    const manifest: ManifestInput = {
      producer: { stage: promptTuningStage.name, version: promptTuningStage.version },
      params,
      inputs: { rendered: inputs.rendered!.digest, samples: samplesRef.digest },
      modelDigest: ctx.modelDigest,
      backend: model.backend,
    };
    return await writeSoftPromptOutputs(ctx, model, manifest, 'prompt-tuning', params, training, result.softPrompt, result.curve);
  } finally {
    model.dispose();
  }
}

export const promptTuningStage: Stage<PromptTuningParams> = {
  name: 'prompt-tuning',
  version: '1',
  needs: 'model',
  inputs: ['rendered', 'samples'],
  outputs: ['softPrompt', 'curve', 'nearestTokens'],
  outputSchemas: { softPrompt: SOFT_PROMPT_SCHEMA.name, curve: TRAINING_CURVE_SCHEMA.name, nearestTokens: NEAREST_TOKENS_SCHEMA.name },
  parseParams: parsePromptTuningParams,
  run: runPromptTuning,
};
