/**
 * Declared schemas of the DRO analysis artifacts (issue 4): every artifact that crosses a stage boundary
 * is declared here, because stage packages may not import each other.
 *
 *   query-set/v1        importQueries (data-prep) → data-prep
 *   prompt-set/v1       importPrompts (data-prep) → data-prep
 *   rendered-inputs/v1  data-prep → sampling, refusal-logprob, extract, dro, evaluate
 *   samples/v2          sampling (all responses + verdicts)
 *   compliance-scores/v1 sampling or refusal-logprob → directions (refusal-boundary labels)
 *   hidden-states/v1    extract → directions, evaluate
 *   directions/v1       directions → dro, evaluate (safetensors)
 *   directions-report/v1 directions (per-fold CV numbers)
 *
 * Row identity: `input_id` = "<set>/<query_id>/<prompt_id>" is unique within a rendered-inputs table and
 * is the join key for every per-input table downstream.
 */
import * as arrow from 'apache-arrow';
import { BadInputError, SchemaError } from '../errors.ts';
import { toFloat32 } from '../safetensors.ts';
import type { ArtifactRef, ArtifactStore, ManifestInput } from '../types.ts';
import {
  type ColumnType,
  type TableSchema,
  defineJsonSchema,
  defineTableSchema,
  defineTensorSchema,
  vectorColumn,
} from '../schemas.ts';

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

export const renderedInputsSchema = defineTableSchema({
  name: 'rendered-inputs/v1',
  columns: [
    { name: 'input_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    /** Position of the query in its set (0-based): the paper's sampling seed. */
    { name: 'query_index', type: 'int32' },
    { name: 'label', type: 'utf8' },
    { name: 'category', type: 'utf8', nullable: true },
    { name: 'pair_id', type: 'utf8', nullable: true },
    { name: 'prompt_id', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    /** The chat-templated text, ending with the assistant-turn opener (generation prompt). */
    { name: 'rendered', type: 'utf8' },
    { name: 'token_ids', type: 'list<int32>' },
    /**
     * Where the safety prompt's own tokens (tokenized alone, no BOS) sit in token_ids: [start, start+count).
     * Null for "none" or when the template's tokenization does not contain them verbatim.
     */
    { name: 'prompt_token_start', type: 'int32', nullable: true },
    { name: 'prompt_token_count', type: 'int32', nullable: true },
  ],
});

export const samplesSchema = defineTableSchema({
  name: 'samples/v2',
  columns: [
    { name: 'input_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'prompt_id', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'sample_index', type: 'int32' },
    { name: 'seed', type: 'int32' },
    { name: 'output', type: 'utf8' },
    { name: 'new_tokens', type: 'int32' },
    { name: 'refused', type: 'bool' },
    { name: 'matched_phrase', type: 'utf8', nullable: true },
    /** LLM judge verdict (true = unsafe/harmful answer); null when no LLM judge ran on this sample. */
    { name: 'llm_unsafe', type: 'bool', nullable: true },
    /**
     * The sample's final verdict (see schemas/verdicts.ts): true = counts as complied, false = counts as
     * refused; null = outside the judged selection (judgeTopLongest). Every consumer counts this column.
     */
    { name: 'complied', type: 'bool', nullable: true },
    /** What produced the verdicts (string-judge mode, LLM judge, selection); one value per table. */
    { name: 'judge', type: 'utf8' },
  ],
});

/** Label sources of compliance-scores: sampled responses + judge, or one forward pass (refusal openers). */
export type ComplianceSource = 'sampled' | 'logprob';

export const complianceScoresSchema = defineTableSchema({
  name: 'compliance-scores/v1',
  columns: [
    { name: 'input_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'prompt_id', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    /** Soft label of the refusal boundary in [0, 1]: fraction of samples not refused, or 1 − P(refusal opener). */
    { name: 'compliance', type: 'float64' },
    /** Samples judged (0 for the logprob source). */
    { name: 'n_samples', type: 'int32' },
    { name: 'source', type: 'utf8' },
    /** P(the answer opens with a refusal opener); null for the sampled source. */
    { name: 'refusal_prob', type: 'float64', nullable: true },
  ],
});

export const hiddenStatesSchema = defineTableSchema({
  name: 'hidden-states/v1',
  columns: [
    { name: 'input_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'prompt_id', type: 'utf8' },
    { name: 'label', type: 'utf8' },
    { name: 'n_tokens', type: 'int32' },
    /** [d] final hidden state after the final norm, at the last input position. */
    { name: 'hidden', type: 'vector', listSize: 'any' },
  ],
});

/** hidden-states/v1 plus every layer's residual stream at the last position (extract with allLayers). */
export const hiddenStatesAllLayersSchema = defineTableSchema({
  name: 'hidden-states-all-layers/v1',
  columns: [
    ...hiddenStatesSchema.columns,
    { name: 'num_layers', type: 'int32' },
    /** [num_layers × d] layer-major: the output of each decoder block (before the final norm). */
    { name: 'layers', type: 'vector', listSize: 'any' },
  ],
});

export const directionsSchema = defineTensorSchema({
  name: 'directions/v1',
  tensors: {
    mean: { dtype: 'F32', rank: 1 },
    components: { dtype: 'F32', rank: 2 },
    explained_variance_ratio: { dtype: 'F32', rank: 1 },
    refusal_w: { dtype: 'F32', rank: 1 },
    refusal_b: { dtype: 'F32', rank: 1 },
    harmfulness_w: { dtype: 'F32', rank: 1 },
    harmfulness_b: { dtype: 'F32', rank: 1 },
  },
  validate(tensors) {
    const { mean, components, explained_variance_ratio: ratio, refusal_w, refusal_b, harmfulness_w, harmfulness_b } = tensors;
    if (!mean || !components || !ratio || !refusal_w || !refusal_b || !harmfulness_w || !harmfulness_b) return [];
    const [k, d] = components.shape;
    const problems: string[] = [];
    if (mean.shape[0] !== d) problems.push(`tensor "mean": expected [${d}] to match components [${k}, ${d}]`);
    for (const [name, t] of Object.entries({ explained_variance_ratio: ratio, refusal_w, harmfulness_w }))
      if (t.shape[0] !== k) problems.push(`tensor "${name}": expected [${k}] (k), got [${t.shape.join(', ')}]`);
    for (const [name, t] of Object.entries({ refusal_b, harmfulness_b }))
      if (t.shape[0] !== 1) problems.push(`tensor "${name}": expected [1], got [${t.shape.join(', ')}]`);
    return problems;
  },
});

export interface BoundaryReport {
  target: string;
  weights: number[];
  bias: number;
  folds: {
    fold: number;
    trainRows: number;
    heldOutRows: number;
    epochs: number;
    bestEpoch: number;
    heldOutBce: number;
    heldOutAccuracy: number;
  }[];
  meanHeldOutBce: number;
  meanHeldOutAccuracy: number;
  allRowsBce: number;
  allRowsAccuracy: number;
}

export interface DirectionsReport {
  rows: number;
  dim: number;
  k: number;
  explainedVarianceRatio: number[];
  /** Rows per set × prompt × label that the fit used. */
  counts: { set: string; prompt_id: string; label: string; rows: number; meanCompliance: number }[];
  refusal: BoundaryReport;
  harmfulness: BoundaryReport;
}

export const directionsReportSchema = defineJsonSchema<DirectionsReport>({
  name: 'directions-report/v1',
  validate(value) {
    const v = value as Partial<DirectionsReport> | null;
    const problems: string[] = [];
    if (typeof v?.k !== 'number') problems.push('k: expected a number');
    for (const key of ['refusal', 'harmfulness'] as const)
      if (!Array.isArray(v?.[key]?.folds)) problems.push(`${key}.folds: expected an array`);
    return problems;
  },
});

/** Plain column values accepted by tableForSchema, by declared column type. */
export type PlainColumn =
  | readonly (string | null)[]
  | readonly (number | null)[]
  | readonly (boolean | null)[]
  | readonly (readonly number[])[]
  | Float32Array
  | Float64Array
  | Int32Array;

/**
 * Build an Arrow table whose column types are exactly the declared ones (utf8 stays Utf8, not the
 * dictionary type arrow infers for strings). "vector" columns take row-major Float32Array values plus
 * their width in `vectorWidths`.
 */
export function tableForSchema(
  schema: TableSchema,
  columns: Record<string, PlainColumn>,
  vectorWidths: Record<string, number> = {},
): arrow.Table {
  const vectors: Record<string, arrow.Vector> = {};
  for (const spec of schema.columns) {
    const values = columns[spec.name];
    if (values === undefined) throw new Error(`tableForSchema(${schema.name}): no values for column "${spec.name}"`);
    if (spec.type === 'vector') {
      const width = vectorWidths[spec.name];
      if (!(values instanceof Float32Array) || width === undefined)
        throw new Error(`tableForSchema(${schema.name}): vector column "${spec.name}" needs a Float32Array and a width`);
      vectors[spec.name] = vectorColumn(values, width);
      continue;
    }
    const type = ARROW_TYPE_OF[spec.type]();
    vectors[spec.name] = arrow.vectorFromArray(Array.from(values as ArrayLike<unknown>), type);
  }
  return new arrow.Table(vectors);
}

const ARROW_TYPE_OF: Record<Exclude<ColumnType, 'vector'>, () => arrow.DataType> = {
  utf8: () => new arrow.Utf8(),
  bool: () => new arrow.Bool(),
  int32: () => new arrow.Int32(),
  int64: () => new arrow.Int64(),
  float32: () => new arrow.Float32(),
  float64: () => new arrow.Float64(),
  'list<int32>': () => new arrow.List(new arrow.Field('item', new arrow.Int32(), true)),
  'list<utf8>': () => new arrow.List(new arrow.Field('item', new arrow.Utf8(), true)),
};

/** Column `name` of `table` as plain JS values (strings, numbers, booleans, null). */
export function columnValues<T = unknown>(table: arrow.Table, name: string, artifact: string): T[] {
  const column = table.getChild(name);
  if (!column) throw new SchemaError(`${artifact}: missing column "${name}"`);
  return Array.from({ length: table.numRows }, (_, i) => column.get(i) as T);
}

/** The directions artifact as plain arrays (what DRO training, evaluation and the report read). */
export interface Directions {
  k: number;
  d: number;
  mean: Float32Array; // [d]
  /** [k, d] row-major. */
  components: Float32Array;
  explainedVarianceRatio: Float32Array; // [k]
  refusalW: Float32Array; // [k]
  refusalB: number;
  harmfulnessW: Float32Array; // [k]
  harmfulnessB: number;
}

/** Read a directions/v1 artifact; `input` names it in errors (e.g. "directions"). */
export async function readDirections(store: ArtifactStore, ref: ArtifactRef, input = 'directions'): Promise<Directions> {
  if (ref.schema !== directionsSchema.name) throw new BadInputError(`input "${input}": expected a ${directionsSchema.name} artifact, got ${ref.schema}`);
  const t = await store.getTensors(ref);
  const [k, d] = t.components!.shape as [number, number];
  return {
    k,
    d,
    mean: toFloat32(t.mean!),
    components: toFloat32(t.components!),
    explainedVarianceRatio: toFloat32(t.explained_variance_ratio!),
    refusalW: toFloat32(t.refusal_w!),
    refusalB: toFloat32(t.refusal_b!)[0]!,
    harmfulnessW: toFloat32(t.harmfulness_w!),
    harmfulnessB: toFloat32(t.harmfulness_b!)[0]!,
  };
}

/** The directions artifact's values, as written (k and d follow from the array lengths). */
export type DirectionsValues = Omit<Directions, 'k' | 'd' | 'explainedVarianceRatio' | 'mean' | 'components' | 'refusalW' | 'harmfulnessW'> & {
  [K in 'mean' | 'components' | 'explainedVarianceRatio' | 'refusalW' | 'harmfulnessW']: ArrayLike<number>;
};

/** Write a directions/v1 artifact (the inverse of readDirections); components are [k, d] row-major. */
export function writeDirections(store: ArtifactStore, v: DirectionsValues, manifest: ManifestInput): Promise<ArtifactRef> {
  const k = v.explainedVarianceRatio.length;
  const d = v.mean.length;
  const f32 = (data: ArrayLike<number>, shape: number[]) => ({ dtype: 'F32' as const, shape, data: Float32Array.from(data) });
  return store.putTensors(
    directionsSchema.name,
    {
      mean: f32(v.mean, [d]),
      components: f32(v.components, [k, d]),
      explained_variance_ratio: f32(v.explainedVarianceRatio, [k]),
      refusal_w: f32(v.refusalW, [k]),
      refusal_b: f32([v.refusalB], [1]),
      harmfulness_w: f32(v.harmfulnessW, [k]),
      harmfulness_b: f32([v.harmfulnessB], [1]),
    },
    manifest,
    { conventions: 'logit = w·((h − mean)·componentsᵀ) + b; positive = compliance (refusal_*) / harmless (harmfulness_*)' },
  );
}
