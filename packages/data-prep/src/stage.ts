/**
 * The data-prep stage: a query set × prompt variants → rendered chat inputs (rendered-inputs/v1), one
 * row per (query, variant), ordered query-major within each variant: all queries under "none", then
 * all under the first prompt, and so on. `input_id` = "<set>/<query_id>/<prompt_id>".
 *
 * Inputs:  queries (query-set/v1), prompts (prompt-set/v1)
 * Outputs: rendered (rendered-inputs/v1)
 * Needs the model only for its tokenizer and chat template (the weights are not loaded).
 */
import {
  type ArtifactRef,
  BadInputError,
  NO_PROMPT_ID,
  type PromptSet,
  type QueryLabel,
  type RenderedInput,
  columnValues,
  promptSetSchema,
  querySetSchema,
  renderedInputsSchema,
  writeRenderedInputs,
} from '@dro/artifacts';
import fs from 'node:fs';
import { ChatTemplate, GgufFile, loadModelConfig, loadTokenizer } from '@dro/llm';
import type { Stage, StageContext } from '@dro/pipeline';
import { parseDataPrepParams, type DataPrepParams } from './params.ts';
import { renderInput, resolvePlacement, type ChatRenderer } from './render.ts';

/** The tokenizer, chat template and context length of the model at `modelPath`, without loading its weights. */
export function rendererFor(modelPath: string): ChatRenderer {
  const gguf = fs.statSync(modelPath, { throwIfNoEntry: false })?.isDirectory() ? undefined : GgufFile.open(modelPath);
  const config = loadModelConfig(modelPath, gguf);
  const tokenizer = loadTokenizer(modelPath, gguf);
  const template = ChatTemplate.of(tokenizer);
  return {
    applyChatTemplate: (messages, options) => template.applyChatTemplate(messages, options),
    encodeChat: (messages, options) => template.encodeWithText(messages, options),
    encode: (text, options) => tokenizer.encode(text, options),
    systemContentSpan: (messages, options) => template.systemContentSpan(messages, options),
    controlTokenIds: tokenizer.controlTokenIds,
    contextLength: config.maxPositionEmbeddings,
  };
}

interface QueryRow {
  set: string;
  query_id: string;
  query: string;
  label: string;
  category: string | null;
  pair_id: string | null;
  query_index: number;
}

export async function renderQuerySet(
  ctx: StageContext,
  renderer: ChatRenderer,
  inputs: Record<string, ArtifactRef>,
  params: DataPrepParams,
): Promise<ArtifactRef> {
  const queryTable = await ctx.store.getTable(inputs.queries);
  const promptSet = await ctx.store.getJson<PromptSet>(inputs.prompts);
  const name = `query set ${inputs.queries.digest.slice(0, 12)}`;
  const column = <T,>(c: string) => columnValues<T>(queryTable, c, name);
  const sets = column<string>('set');
  const ids = column<string>('query_id');
  const texts = column<string>('query');
  const labels = column<string>('label');
  const categories = column<string | null>('category');
  const pairs = column<string | null>('pair_id');
  const taken = { harmful: 0, harmless: 0 } as Record<string, number>;
  const queries: QueryRow[] = [];
  ids.forEach((id, i) => {
    if (params.limitPerLabel !== null && (taken[labels[i]] ?? 0) >= params.limitPerLabel) return;
    taken[labels[i]] = (taken[labels[i]] ?? 0) + 1;
    queries.push({ set: sets[i], query_id: id, query: texts[i], label: labels[i], category: categories[i], pair_id: pairs[i], query_index: i });
  });

  for (const q of queries) {
    const tokens = renderer.encode(q.query, { addSpecialTokens: false }).length;
    if (tokens > params.maxQueryTokens)
      throw new BadInputError(
        `query "${q.query_id}" of set "${q.set}" is ${tokens} tokens long; data-prep's maxQueryTokens is ${params.maxQueryTokens} ` +
          `(shorten the query, or raise it with overrides: { "data-prep": { "maxQueryTokens": N } })`,
      );
  }
  const promptText = new Map(promptSet.prompts.map((p) => [p.id, p.text]));
  const variants = params.promptVariants.length > 0 ? params.promptVariants : [NO_PROMPT_ID, ...promptSet.prompts.map((p) => p.id)];
  for (const v of variants)
    if (v !== NO_PROMPT_ID && !promptText.has(v))
      throw new BadInputError(
        `data-prep params: promptVariants: unknown prompt "${v}" (prompt set has: ${[NO_PROMPT_ID, ...promptText.keys()].join(', ')})`,
      );
  const placement = resolvePlacement(renderer, params.systemPrompt);
  ctx.log.info('rendering', { queries: queries.length, variants, placement });

  const rows: RenderedInput[] = [];
  const total = variants.length * queries.length;
  for (const variant of variants) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    for (const q of queries) {
      const inputId = `${q.set}/${q.query_id}/${variant}`;
      const r = renderInput(renderer, variant, variant === NO_PROMPT_ID ? null : promptText.get(variant)!, q.query, placement, inputId);
      const start = r.promptTokenStart;
      const count = r.promptTokenCount;
      rows.push({
        inputId, set: q.set, queryId: q.query_id, queryIndex: q.query_index, label: q.label as QueryLabel, category: q.category, pairId: q.pair_id,
        promptId: variant, query: q.query, rendered: r.rendered, tokenIds: r.tokenIds,
        promptSpan: start === null || count === null ? null : { start, end: start + count },
      });
    }
    ctx.progress({ done: rows.length, total, message: `rendered prompt "${variant}"` });
  }
  // The placement "auto" resolved to is part of what the rows mean: the manifest records it.
  return writeRenderedInputs(ctx.store, rows, ctx.manifest({ params: { ...params, placement } }));
}

export const dataPrepStage: Stage<DataPrepParams> = {
  name: 'data-prep',
  // 2: control-token strings in queries and prompts are plain text; inputs are checked for turns and context.
  version: '2',
  needs: 'model',
  inputs: ['queries', 'prompts'],
  inputSchemas: { queries: querySetSchema.name, prompts: promptSetSchema.name },
  outputs: ['rendered'],
  outputSchemas: { rendered: renderedInputsSchema.name },
  parseParams: parseDataPrepParams,
  async run(ctx, inputs, params) {
    // Only the model's tokenizer and chat template: the weights are not loaded.
    return { rendered: await renderQuerySet(ctx, rendererFor(ctx.modelPath!), inputs, params) };
  },
};
