/** Parameters of the data-prep stage, their validation (errors name the field) and presets. */
import { BadInputError } from '@dro/artifacts';
import type { SystemPromptPlacement } from './render.ts';

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

export const paperDataPrepParams: DataPrepParams = { promptVariants: [], systemPrompt: 'auto', limitPerLabel: null, maxQueryTokens: DEFAULT_MAX_QUERY_TOKENS };
/** Rendering is cheap; the quick preset differs only downstream (fewer samples, shorter answers). */
export const quickDataPrepParams: DataPrepParams = { ...paperDataPrepParams };

const KEYS = Object.keys(paperDataPrepParams);

function fail(field: string, expected: string, got: unknown): never {
  throw new BadInputError(`data-prep params: ${field}: expected ${expected}, got ${JSON.stringify(got)}`);
}

export function parseDataPrepParams(raw: unknown): DataPrepParams {
  if (raw === undefined || raw === null) return { ...paperDataPrepParams };
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('(params)', 'an object', raw);
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!KEYS.includes(key)) fail(key, `one of the known fields (${KEYS.join(', ')})`, key);
  const promptVariants = r.promptVariants ?? [];
  if (!Array.isArray(promptVariants) || promptVariants.some((v) => typeof v !== 'string' || v === ''))
    fail('promptVariants', 'an array of prompt ids ("none" or a prompt file id)', promptVariants);
  if (new Set(promptVariants).size !== (promptVariants as string[]).length) fail('promptVariants', 'distinct ids', promptVariants);
  const systemPrompt = r.systemPrompt ?? 'auto';
  if (!['auto', 'system', 'user-prefix'].includes(systemPrompt as string)) fail('systemPrompt', '"auto", "system" or "user-prefix"', systemPrompt);
  const limit = r.limitPerLabel ?? null;
  if (limit !== null && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) fail('limitPerLabel', 'a positive integer or null', limit);
  const maxQueryTokens = r.maxQueryTokens ?? DEFAULT_MAX_QUERY_TOKENS;
  if (typeof maxQueryTokens !== 'number' || !Number.isInteger(maxQueryTokens) || maxQueryTokens < 1) fail('maxQueryTokens', 'a positive integer', maxQueryTokens);
  return {
    promptVariants: promptVariants as string[],
    systemPrompt: systemPrompt as SystemPromptPlacement,
    limitPerLabel: limit as number | null,
    maxQueryTokens: maxQueryTokens as number,
  };
}
