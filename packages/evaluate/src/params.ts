/** Parameters of the evaluate, reference-answers and report stages: validation naming the field, presets. */
import { BadInputError } from '@dro/artifacts';

const ID = /^[A-Za-z0-9._:-]+$/;

function reader(stage: string, raw: unknown, known: string[]) {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new BadInputError(`${stage} params: expected an object, got ${JSON.stringify(raw)}`);
  }
  const r = (raw ?? {}) as Record<string, unknown>;
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new BadInputError(`${stage} params: ${field}: expected ${expected}, got ${JSON.stringify(got)}`);
  };
  for (const key of Object.keys(r)) if (!known.includes(key)) fail(key, `one of the known fields (${known.join(', ')})`, key);
  return {
    string(key: string, fallback?: string, pattern = ID): string {
      const v = r[key] ?? fallback;
      if (typeof v !== 'string' || !pattern.test(v)) fail(key, `a string matching ${pattern}`, v);
      return v as string;
    },
    int(key: string, fallback: number, min: number): number {
      const v = r[key] ?? fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(key, `an integer ≥ ${min}`, v);
      return v as number;
    },
    nullableInt(key: string, fallback: number | null, min: number): number | null {
      const v = r[key] === undefined ? fallback : r[key];
      if (v === null) return null;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(key, `null or an integer ≥ ${min}`, v);
      return v as number;
    },
    strings(key: string, fallback: string[]): string[] {
      const v = r[key] ?? fallback;
      if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) fail(key, 'an array of non-empty strings', v);
      return [...(v as string[])];
    },
  };
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
  /** Queries per forward pass. */
  chunk: number;
  /** Harmless queries scored for the capability proxy (null = all with a reference answer). */
  capabilityQueries: number | null;
}

export const paperEvaluateParams: Omit<EvaluateParams, 'model' | 'condition' | 'promptId'> = { sets: [], chunk: 8, capabilityQueries: null };
export const quickEvaluateParams: Omit<EvaluateParams, 'model' | 'condition' | 'promptId'> = { sets: [], chunk: 8, capabilityQueries: 16 };

export function parseEvaluateParams(raw: unknown): EvaluateParams {
  const r = reader('evaluate', raw, ['model', 'condition', 'promptId', 'sets', 'chunk', 'capabilityQueries']);
  const d = paperEvaluateParams;
  return {
    model: r.string('model'),
    condition: r.string('condition'),
    promptId: r.string('promptId'),
    sets: r.strings('sets', d.sets),
    chunk: r.int('chunk', d.chunk, 1),
    capabilityQueries: r.nullableInt('capabilityQueries', d.capabilityQueries, 1),
  };
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

export const paperReferenceParams: ReferenceAnswersParams = { promptId: 'none', sets: [], maxNewTokens: 128, batch: 8, maxQueries: null };
export const quickReferenceParams: ReferenceAnswersParams = { promptId: 'none', sets: [], maxNewTokens: 32, batch: 8, maxQueries: 16 };

export function parseReferenceAnswersParams(raw: unknown): ReferenceAnswersParams {
  const r = reader('reference-answers', raw, ['promptId', 'sets', 'maxNewTokens', 'batch', 'maxQueries']);
  const d = paperReferenceParams;
  return {
    promptId: r.string('promptId', d.promptId),
    sets: r.strings('sets', d.sets),
    maxNewTokens: r.int('maxNewTokens', d.maxNewTokens, 1),
    batch: r.int('batch', d.batch, 1),
    maxQueries: r.nullableInt('maxQueries', d.maxQueries, 1),
  };
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

export const paperReportParams: ReportParams = { title: 'DRO report', examplesPerCondition: 3, comparisons: [] };
export const quickReportParams: ReportParams = paperReportParams;

export function parseReportParams(raw: unknown): ReportParams {
  const r = reader('report', raw, ['title', 'examplesPerCondition', 'comparisons']);
  const pairs = (raw as { comparisons?: unknown } | null | undefined)?.comparisons ?? [];
  const isPair = (p: unknown): p is ConditionPair =>
    typeof p === 'object' && p !== null && typeof (p as ConditionPair).condition === 'string' && ID.test((p as ConditionPair).condition) &&
    typeof (p as ConditionPair).against === 'string' && ID.test((p as ConditionPair).against);
  if (!Array.isArray(pairs) || !pairs.every(isPair)) {
    throw new BadInputError(`report params: comparisons: expected an array of { condition, against } condition ids, got ${JSON.stringify(pairs)}`);
  }
  return {
    title: r.string('title', paperReportParams.title, /^.{1,200}$/),
    examplesPerCondition: r.int('examplesPerCondition', paperReportParams.examplesPerCondition, 0),
    comparisons: pairs.map((p) => ({ condition: p.condition, against: p.against })),
  };
}
