/** Parameters of the data-prep stage, their defaults and their validation (errors name the field). */
import { ParamReader } from '@dro/pipeline';
import { SYSTEM_PROMPT_PLACEMENTS, type SystemPromptPlacement } from './render.ts';

export interface DataPrepParams {
  /**
   * Prompt variants to render, by id: "none" and/or ids of the prompt set. Empty = "none" followed by
   * every prompt of the set, in the set's order.
   */
  promptVariants: string[];
  /** Where a safety prompt goes: the system message, prepended to the user message, or auto-detected. */
  systemPrompt: SystemPromptPlacement;
  /**
   * Keep only the first N harmful and the first N harmless queries of the set (file order), e.g. for a
   * quick run; null = all. In a paired file the first N of each label are the first N pairs.
   */
  limitPerLabel: number | null;
  /**
   * Longest query accepted, in the model's tokens (the query alone, before the chat template). A longer
   * query is an error naming it, not a silent truncation: the run would measure something else. The
   * project's longest query is 21 SmolLM2 tokens (measured on data/queries); 1,024 leaves room for long
   * benchmark prompts while a query, an 80-token safety prompt and the paper's 300-token answers still fit
   * a 2k context. The import's MAX_QUERY_CHARS (16,384) bounds what gets this far.
   */
  maxQueryTokens: number;
}

export const DEFAULT_MAX_QUERY_TOKENS = 1024;

/** What the stage does when given no params (a preset sets its own: experiment/src/presets/). */
export const defaultDataPrepParams: DataPrepParams = { promptVariants: [], systemPrompt: 'auto', limitPerLabel: null, maxQueryTokens: DEFAULT_MAX_QUERY_TOKENS };

export function parseDataPrepParams(raw: unknown): DataPrepParams {
  const r = ParamReader.of('data-prep', raw);
  const d = defaultDataPrepParams;
  const promptVariants = r.strings('promptVariants', d.promptVariants, 'an array of prompt ids ("none" or a prompt file id)');
  if (new Set(promptVariants).size !== promptVariants.length) r.fail('promptVariants', 'distinct ids', promptVariants);
  const params: DataPrepParams = {
    promptVariants,
    systemPrompt: r.oneOf('systemPrompt', d.systemPrompt, SYSTEM_PROMPT_PLACEMENTS),
    limitPerLabel: r.nullableInt('limitPerLabel', d.limitPerLabel, 1),
    maxQueryTokens: r.int('maxQueryTokens', d.maxQueryTokens, 1),
  };
  r.done();
  return params;
}
