/**
 * Artifact schemas of the second half of the method: soft prompts (DRO, its ablations, the prompt-tuning
 * baseline), their training curves and nearest vocabulary tokens, evaluation tables and the HTML report.
 */
import { defineJsonSchema, defineTableSchema, defineTensorSchema } from '../schemas.ts';

/** Metadata keys every soft-prompt artifact carries (all strings, as safetensors requires). */
export const SOFT_PROMPT_METADATA_KEYS = ['method', 'prompt_id', 'span_start', 'span_end', 'init_token_ids'] as const;

/**
 * A trained soft prompt: {"soft_prompt": F32 [n_tokens, d]} — the layout the paper's Python code loads —
 * with metadata: method ("dro", "dro:no-norm", "prompt-tuning", …), prompt_id (the basic prompt it was
 * initialised from), span_start/span_end (where the basic prompt's tokens sit in the chat template, for
 * the first training query), init_token_ids (JSON array).
 */
export const SOFT_PROMPT_SCHEMA = defineTensorSchema({
  name: 'soft-prompt/v1',
  tensors: { soft_prompt: { dtype: 'F32', rank: 2 } },
  validate(tensors, metadata) {
    const problems: string[] = [];
    for (const key of SOFT_PROMPT_METADATA_KEYS) {
      if (typeof metadata[key] !== 'string') problems.push(`metadata "${key}" is missing`);
    }
    const shape = tensors.soft_prompt?.shape;
    if (shape && (shape[0]! < 1 || shape[1]! < 1)) problems.push(`tensor "soft_prompt": expected [n_tokens >= 1, d >= 1], got [${shape.join(', ')}]`);
    return problems;
  },
});

/** Training curve in long form: one row per (step, term), so DRO and prompt tuning share one schema. */
export const TRAINING_CURVE_SCHEMA = defineTableSchema({
  name: 'training-curve/v1',
  columns: [
    { name: 'step', type: 'int32' },
    { name: 'epoch', type: 'int32' },
    { name: 'term', type: 'utf8' },
    { name: 'value', type: 'float64' },
  ],
});

/** Nearest vocabulary tokens (by cosine) of each soft-prompt position, ranked. */
export const NEAREST_TOKENS_SCHEMA = defineTableSchema({
  name: 'nearest-tokens/v1',
  columns: [
    { name: 'position', type: 'int32' },
    { name: 'init_token_id', type: 'int32' },
    { name: 'init_token', type: 'utf8' },
    { name: 'rank', type: 'int32' },
    { name: 'token_id', type: 'int32' },
    { name: 'token', type: 'utf8' },
    { name: 'cosine', type: 'float32' },
  ],
});

/** Evaluation metrics of one model under one prompt condition, one row per query set. */
export const EVAL_METRICS_SCHEMA = defineTableSchema({
  name: 'eval-metrics/v2',
  columns: [
    { name: 'model', type: 'utf8' },
    { name: 'condition', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'queries', type: 'int32' },
    { name: 'samples_per_query', type: 'int32' },
    /** Samples per query the verdicts were counted over (the judged selection). */
    { name: 'judged_per_query', type: 'int32' },
    /** What produced the verdicts (samples/v2 `judge`). */
    { name: 'judge', type: 'utf8' },
    { name: 'queries_any_complied', type: 'int32' },
    { name: 'queries_any_refused', type: 'int32' },
    { name: 'mean_compliance', type: 'float64' },
    /** Student-t 95 % interval of mean_compliance over queries. */
    { name: 'mean_compliance_low', type: 'float64' },
    { name: 'mean_compliance_high', type: 'float64' },
    { name: 'mean_refusal_logit', type: 'float64', nullable: true },
    { name: 'mean_harmfulness_logit', type: 'float64', nullable: true },
    { name: 'capability', type: 'float64', nullable: true },
  ],
});

/** Per query under one condition: PCA coordinates and boundary logits of the final hidden state. */
export const EVAL_POINTS_SCHEMA = defineTableSchema({
  name: 'eval-points/v1',
  columns: [
    { name: 'model', type: 'utf8' },
    { name: 'condition', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    { name: 'z', type: 'vector', listSize: 'any' },
    { name: 'refusal_logit', type: 'float64' },
    { name: 'harmfulness_logit', type: 'float64' },
  ],
});

/** Greedy answers of the no-prompt model to harmless queries: the capability proxy's reference. */
export const REFERENCE_ANSWERS_SCHEMA = defineTableSchema({
  name: 'reference-answers/v1',
  columns: [
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    { name: 'answer', type: 'utf8' },
    { name: 'answer_token_ids', type: 'list<int32>' },
  ],
});

export interface ReportArtifact {
  /** The whole self-contained HTML page. */
  html: string;
  title: string;
}

/** The HTML report, stored as JSON so it is content-addressed like every other artifact. */
export const REPORT_SCHEMA = defineJsonSchema<ReportArtifact>({
  name: 'report-html/v1',
  validate(value) {
    const v = value as Partial<ReportArtifact> | null;
    if (typeof v !== 'object' || v === null) return ['expected an object { html, title }'];
    const problems: string[] = [];
    if (typeof v.html !== 'string' || !v.html.startsWith('<!DOCTYPE html>')) problems.push('html: expected an HTML document string');
    if (typeof v.title !== 'string') problems.push('title: expected a string');
    return problems;
  },
});

/** Per training query: boundary logits under the basic text prompt and under the trained soft prompt. */
export const TRAINING_SHIFT_SCHEMA = defineTableSchema({
  name: 'training-shift/v1',
  columns: [
    { name: 'query_id', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'base_refusal_logit', type: 'float64' },
    { name: 'soft_refusal_logit', type: 'float64' },
    { name: 'base_harmfulness_logit', type: 'float64' },
    { name: 'soft_harmfulness_logit', type: 'float64' },
  ],
});
