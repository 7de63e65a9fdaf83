/**
 * The reference-answers stage: greedy answers of the model with no safety prompt to harmless eval queries.
 * They are the yardstick of the evaluate stage's general-capability proxy (how likely each condition
 * finds the answers the unprompted model would give).
 *
 * Inputs:  rendered (rendered-inputs/v1)   Outputs: references (reference-answers/v1)
 */
import { REFERENCE_ANSWERS_SCHEMA, tableForSchema, type ArtifactRef } from '@dro/artifacts';
import { loadModel } from '@dro/llm';
import type { Stage, StageContext } from '@dro/pipeline';
import { BadInputError } from '@dro/artifacts';
import { readEvalRows } from './inputs.ts';
import { yieldToEventLoop } from './model-pass.ts';
import { parseReferenceAnswersParams, type ReferenceAnswersParams } from './params.ts';

async function runReferences(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: ReferenceAnswersParams): Promise<Record<string, ArtifactRef>> {
  const rows = (await readEvalRows(ctx.store, inputs.rendered!, params.promptId, params.sets))
    .filter((r) => r.label === 'harmless')
    .slice(0, params.maxQueries ?? Infinity);
  if (rows.length === 0) throw new BadInputError(`rendered: no harmless queries with prompt_id "${params.promptId}" to answer`);
  if (!ctx.modelPath) throw new BadInputError('reference-answers: needs a model (the DAG node has no model path)');
  const model = await loadModel(ctx.modelPath);
  const answers: { text: string; ids: number[] }[] = [];
  try {
    for (let i = 0; i < rows.length; i += params.batch) {
      ctx.signal.throwIfAborted();
      const batch = rows.slice(i, i + params.batch);
      const result = await model.generate({ inputIds: batch.map((r) => r.ids), greedy: true, maxNewTokens: params.maxNewTokens, signal: ctx.signal });
      for (const seqs of result.sequences) answers.push({ text: seqs[0]!.text, ids: seqs[0]!.tokenIds });
      ctx.progress({ done: answers.length, total: rows.length, message: 'greedy reference answers' });
      await yieldToEventLoop();
    }
  } finally {
    model.dispose();
  }
  const table = tableForSchema(REFERENCE_ANSWERS_SCHEMA, {
    set: rows.map((r) => r.set),
    query_id: rows.map((r) => r.queryId),
    query: rows.map((r) => r.query),
    answer: answers.map((a) => a.text),
    answer_token_ids: answers.map((a) => a.ids),
  });
  const manifest = {
    producer: { stage: referenceAnswersStage.name, version: referenceAnswersStage.version },
    params,
    inputs: { rendered: inputs.rendered!.digest },
    modelDigest: ctx.modelDigest,
    backend: model.backend,
  };
  return { references: await ctx.store.putTable(REFERENCE_ANSWERS_SCHEMA.name, table, manifest) };
}

export const referenceAnswersStage: Stage<ReferenceAnswersParams> = {
  name: 'reference-answers',
  version: '1',
  needs: 'model',
  inputs: ['rendered'],
  outputs: ['references'],
  outputSchemas: { references: REFERENCE_ANSWERS_SCHEMA.name },
  parseParams: parseReferenceAnswersParams,
  run: runReferences,
};
