/** What a preset is: the experiment-level rules a config does not set itself, and every DAG role's params. */

/** The presets a config's `preset` (or --preset) may name. */
export const PRESET_NAMES = ['quick', 'paper'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** Whether `name` is a preset's name. */
export function isPresetName(name: unknown): name is PresetName {
  return (PRESET_NAMES as readonly unknown[]).includes(name);
}

/**
 * A DAG role: a stage name, or "stage:role" where one stage plays two parts with different params
 * ("sampling:train" labels the training set, "sampling:eval" evaluates held-out sets).
 */
export const PRESET_ROLES = [
  'data-prep:train', 'data-prep:eval', 'sampling:train', 'sampling:eval', 'refusal-logprob', 'extract', 'directions',
  'dro-train', 'prompt-tuning', 'reference-answers', 'eval-forward', 'evaluate', 'report',
] as const;
export type PresetRole = (typeof PRESET_ROLES)[number];

export interface Preset {
  /** Where refusal-boundary labels come from when the config does not say (`labelSource`). */
  labelSource: 'sampling' | 'logprob';
  /** Prompts soft prompts are trained from when the config names none: the basic prompt, or every prompt. */
  trainPrompts: 'basic' | 'every';
  /** Text prompts evaluated (besides "none" and the trained prompts' own) when the config names none. */
  evalPrompts: 'basic' | 'every';
  /**
   * Rows per shard of a row-parallel node (sampling, refusal-logprob, extract, reference-answers,
   * eval-forward); a config's
   * `shardSize` overrides it, null there runs every node whole.
   */
  shardSize: number;
  /** Each role's params before the config's overrides (stages fill what a role leaves out with their defaults). */
  params: Readonly<Record<PresetRole, object>>;
}
