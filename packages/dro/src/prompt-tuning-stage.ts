/**
 * The prompt-tuning stage: the vanilla prompt-tuning baseline (see prompt-tuning.ts).
 *
 * Training examples are the judged samples (samples/v2 `complied` not null) of the training queries under
 * the basic prompt, desirable when their recorded verdict is the one wanted (harmful: not complied, harmless:
 * complied); with unpromptedNegatives, also the judged samples under "none" that failed (harmful complied,
 * harmless refused), as undesirable examples under the soft prompt. Targets: the response's first
 * maxResponseTokens tokens, plus the end-of-turn token per eosTargets.
 *
 * Inputs:  rendered (rendered-inputs/v1: training queries; rows with params.promptId)
 *          samples  (samples/v2: the sampling stage's judged responses to those rows, and to "none")
 * Outputs: softPrompt (soft-prompt/v1, method "prompt-tuning"), curve (training-curve/v1),
 *          nearestTokens (nearest-tokens/v1)
 */
import {
  BadInputError,
  NO_PROMPT_ID,
  nearestTokensSchema,
  softPromptSchema,
  trainingCurveSchema,
  readSamples,
  renderedInputsSchema,
  samplesSchema,
  type ArtifactRef,
} from '@dro/artifacts';
import type { Stage, StageContext } from '@dro/pipeline';
import { readTrainingInputs } from './inputs.ts';
import { parsePromptTuningParams, type PromptTuningParams } from './params.ts';
import { trainPromptTuning, type ResponseExample } from './prompt-tuning.ts';
import { initialSoftPrompt, writeSoftPromptOutputs } from './stage.ts';

/** Target token ids of one response: its first maxResponseTokens tokens, and the end of turn per eosTargets. */
export function responseTargets(tokens: number[], desirable: boolean, eos: number | null, params: Pick<PromptTuningParams, 'maxResponseTokens' | 'eosTargets'>): number[] {
  const kept = tokens.slice(0, params.maxResponseTokens);
  if (eos === null) return kept;
  if (params.eosTargets === 'every') return [...kept, eos];
  // The desirable answer also teaches where to stop; an undesirable one is penalised on its words only.
  return desirable && tokens.length < params.maxResponseTokens ? [...kept, eos] : kept;
}

async function runPromptTuning(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: PromptTuningParams): Promise<Record<string, ArtifactRef>> {
  const training = await readTrainingInputs(ctx.store, inputs.rendered!, params);
  const samplesRef = inputs.samples!;
  const samples = await readSamples(ctx.store, samplesRef);
  const name = `samples ${samplesRef.digest.slice(0, 12)}`;

  const model = await ctx.openModel();
  const byQuery = new Map(training.examples.map((x) => [`${x.set}\u0000${x.queryId}`, x]));
  const eot = model.tokenizer.eosTokenId;
  const examples: ResponseExample[] = [];
  let unprompted = 0;
  for (const sample of samples) {
    const p = sample.promptId;
    const x = byQuery.get(`${sample.set}\u0000${sample.queryId}`);
    const verdict = sample.complied;
    if (!x || verdict === null) continue; // not a training query, or outside the judged selection
    if (params.samplesPerQuery !== null && sample.sampleIndex >= params.samplesPerQuery) continue;
    // Refusal is desirable for harmful queries (label 0), compliance for harmless ones (label 1).
    const desirable = x.label === 0 ? !verdict : verdict;
    if (p === NO_PROMPT_ID && p !== params.promptId) {
      // The unprompted model's failures only, as extra negatives under the soft prompt.
      if (!params.unpromptedNegatives || desirable) continue;
      unprompted++;
    } else if (p !== params.promptId) continue;
    const response = responseTargets(
      // A response is text: a control-token string in it (generated as plain pieces) stays plain text.
      model.tokenizer.encode(sample.output, { addSpecialTokens: false, splitSpecialTokens: true }),
      desirable, eot, params,
    );
    if (response.length === 0) continue;
    examples.push({ prompt: x, response, desirable });
  }
  if (examples.length === unprompted) {
    throw new BadInputError(`${name}: no judged sampled responses for the ${training.examples.length} training queries with prompt_id "${params.promptId}"`);
  }
  if (params.unpromptedNegatives && !samples.some((s) => s.promptId === NO_PROMPT_ID)) {
    throw new BadInputError(`${name}: unpromptedNegatives needs samples with prompt_id "${NO_PROMPT_ID}" of the training queries (render and sample the "none" variant)`);
  }
  const d = model.config.hiddenSize;
  const init = initialSoftPrompt(model, training.promptIds);
  ctx.log.info('prompt-tuning: start', { responses: examples.length, desirable: examples.filter((x) => x.desirable).length, unpromptedNegatives: unprompted });
  const result = await trainPromptTuning(
    model, examples, { values: init, nTokens: training.promptIds.length, d }, { weights: params.weights, averaging: params.lossAveraging }, params,
    { signal: ctx.signal, progress: (done, total, message) => ctx.progress({ done, total, message }) },
  );
  const manifest = ctx.manifest({ summary: { responses: examples.length, desirable: examples.filter((x) => x.desirable).length, unpromptedNegatives: unprompted } });
  return await writeSoftPromptOutputs(ctx, model, manifest, 'prompt-tuning', params, training, result.softPrompt, result.curve);
}

export const promptTuningStage: Stage<PromptTuningParams> = {
  name: 'prompt-tuning',
  // 3: responses are tokenised as plain text (control-token strings in them are not control tokens); recorded
  //    verdicts and the judged selection (samples/v2), eosTargets, lossAveraging, unpromptedNegatives.
  version: '3',
  needs: 'model',
  inputs: ['rendered', 'samples'],
  inputSchemas: { rendered: renderedInputsSchema.name, samples: samplesSchema.name },
  outputs: ['softPrompt', 'curve', 'nearestTokens'],
  outputSchemas: { softPrompt: softPromptSchema.name, curve: trainingCurveSchema.name, nearestTokens: nearestTokensSchema.name },
  parseParams: parsePromptTuningParams,
  run: runPromptTuning,
};
