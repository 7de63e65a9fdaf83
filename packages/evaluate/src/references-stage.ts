/**
 * The reference-answers stage: greedy answers of the model with no safety prompt to harmless eval queries.
 * They are the yardstick of the evaluate stage's general-capability proxy (how likely each condition
 * finds the answers the unprompted model would give).
 *
 * Inputs:  rendered (rendered-inputs/v1)   Outputs: references (reference-answers/v1)
 */
import { referenceAnswersSchema, readRenderedInputs, renderedInputsSchema, renderedRowIndices, renderedTokenCount, writeReferenceAnswers, type ArtifactRef } from '@dro/artifacts';
import type { Stage, StageContext } from '@dro/pipeline';
import { BadInputError } from '@dro/artifacts';
import { yieldToEventLoop } from './model-pass.ts';
import { parseReferenceAnswersParams, type ReferenceAnswersParams } from './params.ts';

async function runReferences(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: ReferenceAnswersParams): Promise<Record<string, ArtifactRef>> {
  const rows = (await readRenderedInputs(ctx.store, inputs.rendered!, { promptId: params.promptId, sets: params.sets }))
    .filter((r) => r.label === 'harmless')
    .slice(0, params.maxQueries ?? Infinity);
  if (rows.length === 0) throw new BadInputError(`rendered: no harmless queries with prompt_id "${params.promptId}" to answer`);
  const model = await ctx.openModel();
  const answers: { text: string; ids: number[] }[] = [];
  for (let i = 0; i < rows.length; i += params.batch) {
    ctx.signal.throwIfAborted();
    const batch = rows.slice(i, i + params.batch);
    const result = await model.generate({ inputIds: batch.map((r) => r.tokenIds), greedy: true, maxNewTokens: params.maxNewTokens, signal: ctx.signal });
    for (const seqs of result.sequences) answers.push({ text: seqs[0]!.text, ids: seqs[0]!.tokenIds });
    ctx.progress({ done: answers.length, total: rows.length, message: 'greedy reference answers' });
    await yieldToEventLoop();
  }
  const references = rows.map((r, i) => ({ set: r.set, queryId: r.queryId, query: r.query, answer: answers[i]!.text, answerIds: answers[i]!.ids }));
  return { references: await writeReferenceAnswers(ctx.store, references, ctx.manifest()) };
}

export const referenceAnswersStage: Stage<ReferenceAnswersParams> = {
  name: 'reference-answers',
  version: '1',
  needs: 'model',
  inputs: ['rendered'],
  inputSchemas: { rendered: renderedInputsSchema.name },
  outputs: ['references'],
  outputSchemas: { references: referenceAnswersSchema.name },
  parseParams: parseReferenceAnswersParams,
  // Greedy answers: a row's answer depends on its own tokens (and the batch it is decoded in).
  rowParallel: {
    input: 'rendered',
    chunkRows: (params) => params.batch,
    selectRows: (table, params) => renderedRowIndices(table, { promptId: params.promptId, sets: params.sets, label: 'harmless' }).slice(0, params.maxQueries ?? Infinity),
    rowCost: (table, row, params) => renderedTokenCount(table, row) + params.maxNewTokens,
  },
  run: runReferences,
};
