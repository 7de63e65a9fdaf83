/**
 * The eval-forward stage: the held-out evaluation's model pass under one prompt condition, split from the
 * evaluate stage so that it is row-parallel (each row's results depend on that row alone) and shards over
 * model workers like sampling and extract; evaluate then reads its table without a model.
 *
 * For every eval row under the condition (a text prompt, or a soft prompt spliced into the span of
 * params.promptId, the basic prompt it was trained from):
 *  - the final hidden state at the last input position (chunks of params.chunk rows: a shard holds whole
 *    chunks, so it computes exactly what the unsharded run computes);
 *  - for harmless rows with a reference answer (reference-answers stage), the mean per-token log-likelihood
 *    (nats) of that answer under the condition, one row at a time — the general-capability proxy.
 *
 * Inputs:  rendered (rendered-inputs/v1, eval sets); optional references:<key> (reference-answers/v1: any
 *          number, merged); optional softPrompt:<key> (soft-prompt/v1)
 * Outputs: hiddenStates (eval-hidden-states/v1)
 */
import {
  BadInputError,
  evalHiddenStatesSchema,
  evalHiddenStatesTable,
  readReferenceAnswers,
  readRenderedInputs,
  readSoftPrompt,
  referenceAnswersSchema,
  renderedInputsSchema,
  renderedRowIndices,
  renderedTokenCount,
  softPromptSchema,
  type ArtifactRef,
} from '@dro/artifacts';
import { tf } from '@dro/llm';
import { variadicInputs, type Stage, type StageContext } from '@dro/pipeline';
import { promptedInput } from './inputs.ts';
import { answerLogLikelihood, lastHiddenStates, yieldToEventLoop } from './model-pass.ts';
import { parseEvalForwardParams, type EvalForwardParams } from './params.ts';

async function runEvalForward(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: EvalForwardParams): Promise<Record<string, ArtifactRef>> {
  const softInputs = variadicInputs(inputs, 'softPrompt');
  if (softInputs.length > 1) throw new BadInputError(`eval-forward: at most one softPrompt:* input, got ${softInputs.map((s) => s.key).join(', ')}`);
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { promptId: params.promptId, sets: params.sets });
  const answers = new Map<string, number[]>();
  for (const { key, value } of variadicInputs(inputs, 'references')) {
    for (const r of await readReferenceAnswers(ctx.store, value, `references:${key}`)) answers.set(`${r.set}\u0000${r.queryId}`, r.answerIds);
  }
  const soft = softInputs.length ? await readSoftPrompt(ctx.store, softInputs[0]!.value, `softPrompt:${softInputs[0]!.key}`) : null;
  if (soft && soft.metadata.prompt_id !== undefined && soft.metadata.prompt_id !== params.promptId) {
    throw new BadInputError(`softPrompt:${softInputs[0]!.key}: trained from prompt "${soft.metadata.prompt_id}", but params.promptId is "${params.promptId}"`);
  }
  const inputsOf = rows.map((r) => promptedInput(r, soft !== null));
  const scored = rows.map((r, i) => ({ i, answer: r.label === 'harmless' ? answers.get(`${r.set}\u0000${r.queryId}`) : undefined })).filter((x) => x.answer !== undefined);

  const model = await ctx.openModel();
  if (soft && soft.d !== model.config.hiddenSize) throw new BadInputError(`softPrompt:${softInputs[0]!.key}: width ${soft.d} ≠ the model's hidden size ${model.config.hiddenSize}`);
  const softTensor = soft ? tf.tensor2d(soft.values, [soft.n, soft.d]) : null;
  try {
    const total = rows.length + scored.length;
    const hidden = await lastHiddenStates(model, inputsOf, softTensor, params.chunk, (done) => ctx.progress({ done, total, message: 'hidden states' }));
    ctx.signal.throwIfAborted();
    const logLik: (number | null)[] = rows.map(() => null);
    for (const [j, x] of scored.entries()) {
      logLik[x.i] = answerLogLikelihood(model, inputsOf[x.i]!, softTensor, x.answer!);
      ctx.progress({ done: rows.length + j + 1, total, message: 'capability proxy' });
      await yieldToEventLoop();
      ctx.signal.throwIfAborted();
    }
    const tableRows = rows.map((r) => ({ ...r, tokens: r.tokenIds.length }));
    const table = evalHiddenStatesTable(tableRows, hidden, model.config.hiddenSize, logLik);
    return { hiddenStates: await ctx.store.putTable(evalHiddenStatesSchema.name, table, ctx.manifest()) };
  } finally {
    softTensor?.dispose();
  }
}

export const evalForwardStage: Stage<EvalForwardParams> = {
  name: 'eval-forward',
  version: '1',
  needs: 'model',
  inputs: ['rendered'],
  variadicInputs: ['softPrompt', 'references'],
  inputSchemas: { rendered: renderedInputsSchema.name, softPrompt: softPromptSchema.name, references: referenceAnswersSchema.name },
  outputs: ['hiddenStates'],
  outputSchemas: { hiddenStates: evalHiddenStatesSchema.name },
  parseParams: parseEvalForwardParams,
  // A row's hidden state depends on its own tokens and the chunk it is run in; its log-likelihood on itself.
  rowParallel: {
    input: 'rendered',
    chunkRows: (params) => params.chunk,
    selectRows: (table, params) => renderedRowIndices(table, { promptId: params.promptId, sets: params.sets }),
    rowCost: (table, row) => renderedTokenCount(table, row),
  },
  run: runEvalForward,
};
