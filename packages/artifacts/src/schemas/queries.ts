/**
 * The experiment's inputs as artifacts: query sets (import → data-prep) and safety-prompt sets.
 */
import { defineJsonSchema, defineTableSchema } from '../schemas.ts';

/** The two query labels. Harmfulness-boundary targets: harmless = 1, harmful = 0. */
export const QUERY_LABELS = ['harmful', 'harmless'] as const;
export type QueryLabel = (typeof QUERY_LABELS)[number];

/** The prompt variant that adds no safety prompt (the paper's "no prompt" condition). */
export const NO_PROMPT_ID = 'none';

export const querySetSchema = defineTableSchema({
  name: 'query-set/v1',
  columns: [
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'category', type: 'utf8', nullable: true },
    { name: 'pair_id', type: 'utf8', nullable: true },
  ],
});

export interface PromptSet {
  /** Named safety prompts; "none" is implicit and may not be used as an id. */
  prompts: { id: string; text: string }[];
}

export const promptSetSchema = defineJsonSchema<PromptSet>({
  name: 'prompt-set/v1',
  validate(value) {
    const problems: string[] = [];
    const prompts = (value as PromptSet | null)?.prompts;
    if (!Array.isArray(prompts)) return ['prompts: expected an array of {id, text}'];
    const seen = new Set<string>();
    prompts.forEach((p, i) => {
      if (typeof p?.id !== 'string' || !/^[A-Za-z0-9._-]+$/.test(p.id)) problems.push(`prompts[${i}].id: expected [A-Za-z0-9._-]+`);
      else if (p.id === NO_PROMPT_ID) problems.push(`prompts[${i}].id: "${NO_PROMPT_ID}" is reserved for the no-prompt variant`);
      else if (seen.has(p.id)) problems.push(`prompts[${i}].id: duplicate id "${p.id}"`);
      else seen.add(p.id);
      if (typeof p?.text !== 'string' || p.text.trim() === '') problems.push(`prompts[${i}].text: expected non-empty text`);
    });
    return problems;
  },
});
