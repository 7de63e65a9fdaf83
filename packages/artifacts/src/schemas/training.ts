/**
 * What soft-prompt training produces (dro-train, its ablations, prompt-tuning) and what reads it (sampling
 * and evaluate splice the prompt in; the report draws curves, nearest tokens and shifts):
 *
 *   soft-prompt/v1      safetensors {"soft_prompt": F32 [n_tokens, d]} — the layout the paper's Python code loads
 *   training-curve/v1   step, epoch, term, value (long form: DRO and prompt tuning share it)
 *   nearest-tokens/v1   nearest vocabulary tokens of each soft-prompt position
 *   training-shift/v1   boundary logits of each training query, basic vs soft prompt (dro-train)
 */
import type { ArtifactRef, ArtifactStore, ManifestInput } from '../types.ts';
import { toFloat32 } from '../safetensors.ts';
import { checkedLabel, defineTableSchema, defineTensorSchema, expectSchema, readStoredTable, tableForSchema } from '../schemas.ts';

/** Metadata keys every soft-prompt artifact carries (all strings, as safetensors requires). */
export const SOFT_PROMPT_METADATA_KEYS = ['method', 'prompt_id', 'span_start', 'span_end', 'init_token_ids'] as const;

/**
 * A trained soft prompt with metadata: method ("dro", "dro:no-norm", "prompt-tuning", …), prompt_id (the
 * basic prompt it was initialised from), span_start/span_end (where the basic prompt's tokens sit in the
 * chat template, for the first training query), init_token_ids (JSON array).
 */
export const softPromptSchema = defineTensorSchema({
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

export interface SoftPrompt {
  /** [n, d] row-major. */
  values: Float32Array;
  n: number;
  d: number;
  /** method, prompt_id, span_start, span_end, init_token_ids. */
  metadata: Record<string, string>;
}

/** Read a soft-prompt/v1 artifact; `input` names it in errors. */
export async function readSoftPrompt(store: ArtifactStore, ref: ArtifactRef, input = 'softPrompt'): Promise<SoftPrompt> {
  expectSchema(ref, softPromptSchema.name, input);
  const { tensors, metadata } = await store.getTensorsWithMetadata(ref);
  const t = tensors.soft_prompt!;
  return { values: toFloat32(t), n: t.shape[0]!, d: t.shape[1]!, metadata };
}

/** Write a soft-prompt/v1 artifact: the [n, d] values and where the prompt it was trained from sits. */
export function writeSoftPrompt(
  store: ArtifactStore,
  soft: { values: Float32Array; n: number; d: number; method: string; promptId: string; span: { start: number; end: number }; initTokenIds: readonly number[] },
  manifest: ManifestInput,
): Promise<ArtifactRef> {
  return store.putTensors(
    softPromptSchema.name,
    { soft_prompt: { dtype: 'F32', shape: [soft.n, soft.d], data: soft.values } },
    manifest,
    {
      method: soft.method,
      prompt_id: soft.promptId,
      span_start: String(soft.span.start),
      span_end: String(soft.span.end),
      init_token_ids: JSON.stringify(soft.initTokenIds),
    },
  );
}

/** Training curve in long form: one row per (step, term), so DRO and prompt tuning share one schema. */
export const trainingCurveSchema = defineTableSchema({
  name: 'training-curve/v1',
  columns: [
    { name: 'step', type: 'int32' },
    { name: 'epoch', type: 'int32' },
    { name: 'term', type: 'utf8' },
    { name: 'value', type: 'float64' },
  ],
});

/** One optimiser step: its loss terms (and diagnostics such as grad_norm) by name. */
export interface CurvePoint {
  step: number;
  epoch: number;
  terms: Record<string, number>;
}

export function writeTrainingCurve(store: ArtifactStore, curve: readonly CurvePoint[], manifest: ManifestInput): Promise<ArtifactRef> {
  const rows = curve.flatMap((c) => Object.entries(c.terms).map(([term, value]) => ({ step: c.step, epoch: c.epoch, term, value })));
  const table = tableForSchema(trainingCurveSchema, {
    step: rows.map((r) => r.step),
    epoch: rows.map((r) => r.epoch),
    term: rows.map((r) => r.term),
    value: rows.map((r) => r.value),
  });
  return store.putTable(trainingCurveSchema.name, table, manifest);
}

/** The rows of a stored training curve (long form). */
export async function readTrainingCurve(store: ArtifactStore, ref: ArtifactRef, input = 'curve'): Promise<{ step: number; epoch: number; term: string; value: number }[]> {
  const { column } = await readStoredTable(store, ref, trainingCurveSchema, input);
  const [epochs, terms, values] = [column<number>('epoch'), column<string>('term'), column<number>('value')];
  return column<number>('step').map((step, i) => ({ step, epoch: epochs[i]!, term: terms[i]!, value: values[i]! }));
}

/** Nearest vocabulary tokens (by cosine) of each soft-prompt position, ranked. */
export const nearestTokensSchema = defineTableSchema({
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

export interface NearestToken {
  position: number;
  initTokenId: number;
  initToken: string;
  rank: number;
  tokenId: number;
  token: string;
  cosine: number;
}

export function writeNearestTokens(store: ArtifactStore, rows: readonly NearestToken[], manifest: ManifestInput): Promise<ArtifactRef> {
  const table = tableForSchema(nearestTokensSchema, {
    position: rows.map((x) => x.position),
    init_token_id: rows.map((x) => x.initTokenId),
    init_token: rows.map((x) => x.initToken),
    rank: rows.map((x) => x.rank),
    token_id: rows.map((x) => x.tokenId),
    token: rows.map((x) => x.token),
    cosine: Float32Array.from(rows.map((x) => x.cosine)),
  });
  return store.putTable(nearestTokensSchema.name, table, manifest);
}

export async function readNearestTokens(store: ArtifactStore, ref: ArtifactRef, input = 'nearestTokens'): Promise<NearestToken[]> {
  const { column } = await readStoredTable(store, ref, nearestTokensSchema, input);
  const [initIds, initTokens, ranks, tokenIds, tokens, cosines] = [
    column<number>('init_token_id'), column<string>('init_token'), column<number>('rank'), column<number>('token_id'), column<string>('token'), column<number>('cosine'),
  ];
  return column<number>('position').map((position, i) => ({
    position, initTokenId: initIds[i]!, initToken: initTokens[i]!, rank: ranks[i]!, tokenId: tokenIds[i]!, token: tokens[i]!, cosine: cosines[i]!,
  }));
}

/** Per training query: boundary logits under the basic text prompt and under the trained soft prompt. */
export const trainingShiftSchema = defineTableSchema({
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

/** One training query: boundary logits under the basic text prompt and under the trained soft prompt. */
export interface TrainingShiftRow {
  queryId: string;
  label: 'harmful' | 'harmless';
  baseRefusal: number;
  softRefusal: number;
  baseHarmfulness: number;
  softHarmfulness: number;
}

export function writeTrainingShift(store: ArtifactStore, shifts: readonly TrainingShiftRow[], manifest: ManifestInput): Promise<ArtifactRef> {
  const table = tableForSchema(trainingShiftSchema, {
    query_id: shifts.map((s) => s.queryId),
    label: shifts.map((s) => s.label),
    base_refusal_logit: shifts.map((s) => s.baseRefusal),
    soft_refusal_logit: shifts.map((s) => s.softRefusal),
    base_harmfulness_logit: shifts.map((s) => s.baseHarmfulness),
    soft_harmfulness_logit: shifts.map((s) => s.softHarmfulness),
  });
  return store.putTable(trainingShiftSchema.name, table, manifest);
}

export async function readTrainingShift(store: ArtifactStore, ref: ArtifactRef, input = 'shift'): Promise<TrainingShiftRow[]> {
  const { column } = await readStoredTable(store, ref, trainingShiftSchema, input);
  const [labels, br, sr, ba, sa] = [
    column<string>('label'), column<number>('base_refusal_logit'), column<number>('soft_refusal_logit'), column<number>('base_harmfulness_logit'), column<number>('soft_harmfulness_logit'),
  ];
  return column<string>('query_id').map((queryId, i) => ({
    queryId,
    label: checkedLabel(labels[i], `${input}: row ${i}`),
    baseRefusal: br[i]!,
    softRefusal: sr[i]!,
    baseHarmfulness: ba[i]!,
    softHarmfulness: sa[i]!,
  }));
}
