/** Parameters of the eval-forward, evaluate, reference-answers and report stages: their defaults and validation naming the field. */
import { ParamReader } from '@dro/pipeline';

const ID = /^[A-Za-z0-9._:-]+$/;

export interface EvalForwardParams {
  /** Rendered rows run: the text prompt, or the basic prompt a soft prompt replaces. */
  promptId: string;
  /** Eval sets (empty = every set in the rendered inputs). */
  sets: string[];
  /** Queries per forward pass (the hidden states of a chunk are computed together: a shard holds whole chunks). */
  chunk: number;
}

/** What the stage does when given no params (a preset sets its own: experiment/src/presets/). */
export const defaultEvalForwardParams: Omit<EvalForwardParams, 'promptId'> = { sets: [], chunk: 8 };

export function parseEvalForwardParams(raw: unknown): EvalForwardParams {
  const r = ParamReader.of('eval-forward', raw);
  const d = defaultEvalForwardParams;
  const params: EvalForwardParams = {
    promptId: r.string('promptId', undefined, ID),
    sets: r.strings('sets', d.sets),
    chunk: r.int('chunk', d.chunk, 1),
  };
  r.done();
  return params;
}

export interface EvaluateParams {
  /** Model label for tables and the report (e.g. "smollm2"). */
  model: string;
  /** Condition name: "none", "basic:<id>", "dro:<id>", "prompt-tuning:<id>", "dro:no-norm:<id>", … */
  condition: string;
  /** Rendered rows used: the text prompt, or the basic prompt a soft prompt replaces. */
  promptId: string;
  /** Eval sets (empty = every set in the rendered inputs). */
  sets: string[];
  /**
   * Harmless queries whose answer log-likelihood the capability proxy averages: the first this many, in row
   * order, that eval-forward scored (null = all of them). eval-forward scores every harmless query with a
   * reference answer; reference-answers' maxQueries bounds that work.
   */
  capabilityQueries: number | null;
}

/** What the stage does when given no params (a preset sets its own: experiment/src/presets/). */
export const defaultEvaluateParams: Omit<EvaluateParams, 'model' | 'condition' | 'promptId'> = { sets: [], capabilityQueries: null };

export function parseEvaluateParams(raw: unknown): EvaluateParams {
  const r = ParamReader.of('evaluate', raw);
  const d = defaultEvaluateParams;
  const params: EvaluateParams = {
    model: r.string('model', undefined, ID),
    condition: r.string('condition', undefined, ID),
    promptId: r.string('promptId', undefined, ID),
    sets: r.strings('sets', d.sets),
    capabilityQueries: r.nullableInt('capabilityQueries', d.capabilityQueries, 1),
  };
  r.done();
  return params;
}

export interface ReferenceAnswersParams {
  /** Prompt variant whose rendered rows are answered (the paper's "no prompt" = "none"). */
  promptId: string;
  sets: string[];
  maxNewTokens: number;
  /** Prompts decoded together. */
  batch: number;
  /** Harmless queries answered (null = all). */
  maxQueries: number | null;
}

export const defaultReferenceParams: ReferenceAnswersParams = { promptId: 'none', sets: [], maxNewTokens: 128, batch: 8, maxQueries: null };

export function parseReferenceAnswersParams(raw: unknown): ReferenceAnswersParams {
  const r = ParamReader.of('reference-answers', raw);
  const d = defaultReferenceParams;
  const params: ReferenceAnswersParams = {
    promptId: r.string('promptId', d.promptId, ID),
    sets: r.strings('sets', d.sets),
    maxNewTokens: r.int('maxNewTokens', d.maxNewTokens, 1),
    batch: r.int('batch', d.batch, 1),
    maxQueries: r.nullableInt('maxQueries', d.maxQueries, 1),
  };
  r.done();
  return params;
}

/** A trained condition and the text condition it is compared with on the same held-out queries. */
export interface ConditionPair {
  condition: string;
  against: string;
}

export interface ReportParams {
  title: string;
  /** Example responses shown per condition and label. */
  examplesPerCondition: number;
  /** Paired comparisons shown per model (the DAG lists each trained prompt against its basic prompt). */
  comparisons: ConditionPair[];
}

export const defaultReportParams: ReportParams = { title: 'DRO report', examplesPerCondition: 3, comparisons: [] };

export function parseReportParams(raw: unknown): ReportParams {
  const r = ParamReader.of('report', raw);
  const pairs = r.raw.comparisons === undefined ? defaultReportParams.comparisons : r.raw.comparisons;
  r.mark('comparisons');
  const isPair = (p: unknown): p is ConditionPair =>
    typeof p === 'object' && p !== null && typeof (p as ConditionPair).condition === 'string' && ID.test((p as ConditionPair).condition) &&
    typeof (p as ConditionPair).against === 'string' && ID.test((p as ConditionPair).against);
  if (!Array.isArray(pairs) || !pairs.every(isPair)) r.fail('comparisons', 'an array of { condition, against } condition ids', pairs);
  const params: ReportParams = {
    title: r.string('title', defaultReportParams.title, /^.{1,200}$/),
    examplesPerCondition: r.int('examplesPerCondition', defaultReportParams.examplesPerCondition, 0),
    comparisons: (pairs as ConditionPair[]).map((p) => ({ condition: p.condition, against: p.against })),
  };
  r.done();
  return params;
}
