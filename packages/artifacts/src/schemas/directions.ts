/**
 * directions/v1 (directions → dro-train, evaluate, report): the PCA space of final hidden states and the
 * two logistic boundaries in it, as safetensors; directions-report/v1, the fit's cross-validation numbers.
 */
import type { ArtifactRef, ArtifactStore, ManifestInput } from '../types.ts';
import { toFloat32 } from '../safetensors.ts';
import { defineJsonSchema, defineTensorSchema, expectSchema } from '../schemas.ts';

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

/** One cross-validation fold of a logistic boundary fit. */
export interface FoldReport {
  fold: number;
  trainRows: number;
  heldOutRows: number;
  /** Epochs run (including the patience epochs after the best one). */
  epochs: number;
  bestEpoch: number;
  heldOutBce: number;
  /** Fraction of held-out rows with (logit > 0) === (target ≥ 0.5). */
  heldOutAccuracy: number;
}

export interface BoundaryReport {
  target: string;
  weights: number[];
  bias: number;
  folds: FoldReport[];
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
  expectSchema(ref, directionsSchema.name, input);
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
