/**
 * What a config makes impossible, found before any stage runs: each of these would otherwise fail a stage
 * minutes into a run (or, worse, quietly produce nothing). Stage params are validated separately, also up
 * front, by validateDag (every node's parseParams) in checkExperiment (run.ts), before anything is written.
 */
import fs from 'node:fs';
import { NO_PROMPT_ID } from '@dro/artifacts';
import { BadInputError, type DagNode } from '@dro/pipeline';
import { trainPromptsOf, type ExperimentConfig } from './config.ts';
import type { ExperimentInputs } from './inputs.ts';
import { stageParams } from './presets/index.ts';

/** Whole-experiment checks: the training set, the prompts the training needs, the LLM judge's model. */
export function checkTrainingSetup(config: ExperimentConfig, inputs: ExperimentInputs): void {
  for (const label of ['harmful', 'harmless'] as const) {
    if (!inputs.sets.train.labels.includes(label)) {
      throw new BadInputError(
        `queries.train (${config.queries.train}): no ${label} queries; the refusal and harmfulness boundaries and DRO's objective need harmful and harmless training queries`,
      );
    }
  }
  // Training reads the rows of each trained prompt (and, for the baseline's extra negatives, of "none").
  const variants = (stageParams(config, 'data-prep:train').promptVariants ?? []) as string[];
  if (variants.length > 0) {
    const pt = stageParams(config, 'prompt-tuning') as { unpromptedNegatives?: boolean };
    const needed = [...trainPromptsOf(config), ...(config.baselines.promptTuning && pt.unpromptedNegatives ? [NO_PROMPT_ID] : [])];
    const missing = needed.filter((p) => !variants.includes(p));
    if (missing.length > 0) {
      throw new BadInputError(
        `overrides data-prep:train promptVariants ${JSON.stringify(variants)} leave out ${missing.map((p) => `"${p}"`).join(', ')}, which training needs` +
          ` (trainPrompts${missing.includes(NO_PROMPT_ID) ? '; "none" for prompt-tuning\'s unpromptedNegatives' : ''})`,
      );
    }
  }
  const roles = [...(config.labelSource === 'sampling' ? ['sampling:train'] : []), 'sampling:eval'];
  for (const role of roles) {
    const judge = (stageParams(config, role) as { llmJudge?: { model?: unknown } | null }).llmJudge;
    const model = judge?.model;
    if (typeof model === 'string' && model !== 'self' && !fs.existsSync(model)) {
      throw new BadInputError(`overrides ${role} llmJudge.model: expected "self" or an existing model file or directory, got ${JSON.stringify(model)}`);
    }
  }
}

/** A node's `sets` param must name query sets its inputs hold, or the stage would find no rows. */
export function checkNodeSets(node: Omit<DagNode, 'model'>, available: readonly string[]): void {
  const sets = (node.params as { sets?: unknown } | null)?.sets;
  if (!Array.isArray(sets)) return;
  const unknown = sets.filter((s) => !available.includes(s as string));
  if (unknown.length > 0) {
    throw new BadInputError(
      `node "${node.id}": params.sets names ${unknown.map((s) => JSON.stringify(s)).join(', ')}, but its inputs hold only the query set(s) ${available.join(', ')} (check the overrides for ${node.stage})`,
    );
  }
}
