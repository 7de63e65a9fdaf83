/** Parameters of the directions stage, their validation (errors name the field) and presets. */
import { BadInputError } from '@dro/artifacts';
import { PAPER_LOGISTIC_OPTIONS, type LogisticTrainingOptions } from './logistic.ts';

export interface DirectionsParams {
  /** PCA dimensions (paper: 4). */
  k: number;
  /** Fit only on rows of these query sets (e.g. ["train"]); empty = every row. */
  sets: string[];
  /** Seed of the PCA start block. */
  pcaSeed: number;
  /** Training of both logistic boundaries. */
  boundary: LogisticTrainingOptions;
  /**
   * Targets of the refusal boundary. "compliance" (paper): the compliance scores as soft labels.
   * "relative": the scores' log-odds min-max scaled over the fitted rows to [0, 1] (1 = the most compliant
   * row, 0 = the most refusing). For a model that almost never refuses (SmolLM2: P(refusal opener) ≈ 1%
   * everywhere) every raw label is ≈ 1, the boundary degenerates to its bias and DRO's refusal term has no
   * direction to push along; relative labels keep the direction in which refusal grows, at the cost of
   * the boundary's absolute calibration.
   */
  refusalLabels: 'compliance' | 'relative';
}

export const paperDirectionsParams: DirectionsParams = {
  k: 4,
  sets: [],
  pcaSeed: 0,
  boundary: { ...PAPER_LOGISTIC_OPTIONS },
  refusalLabels: 'compliance',
};

/**
 * The quick preset (small data, a model that rarely refuses): relative refusal labels (see refusalLabels)
 * and a boundary learning rate of 1e-2. With the paper's 1e-4, early stopping (patience 3, min improvement
 * 1e-4) fires within a few epochs on SmolLM2's nearly constant labels and the refusal weights stay at 0,
 * which silently switches off DRO's main loss term.
 */
export const quickDirectionsParams: DirectionsParams = {
  ...paperDirectionsParams,
  boundary: { ...PAPER_LOGISTIC_OPTIONS, learningRate: 1e-2, maxEpochs: 5000 },
  refusalLabels: 'relative',
};

function fail(field: string, expected: string, got: unknown): never {
  throw new BadInputError(`directions params: ${field}: expected ${expected}, got ${JSON.stringify(got)}`);
}

function number(raw: Record<string, unknown>, key: string, fallback: number, field: string, check: (v: number) => boolean, expected: string): number {
  const v = raw[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) fail(field, expected, v);
  return v as number;
}

function objectOf(raw: unknown, field: string): Record<string, unknown> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) fail(field, 'an object', raw);
  return raw as Record<string, unknown>;
}

const BOUNDARY_KEYS = Object.keys(PAPER_LOGISTIC_OPTIONS);
const TOP_KEYS = ['k', 'sets', 'pcaSeed', 'boundary', 'refusalLabels'];

/** Validate raw params and fill defaults from the paper preset. */
export function parseDirectionsParams(rawInput: unknown): DirectionsParams {
  const raw = objectOf(rawInput, '(params)');
  for (const key of Object.keys(raw)) if (!TOP_KEYS.includes(key)) fail(key, `one of the known fields (${TOP_KEYS.join(', ')})`, key);
  const defaults = paperDirectionsParams;
  const integer = (v: number) => Number.isInteger(v);
  const k = number(raw, 'k', defaults.k, 'k', (v) => integer(v) && v >= 1 && v <= 64, 'an integer in [1, 64]');
  const pcaSeed = number(raw, 'pcaSeed', defaults.pcaSeed, 'pcaSeed', integer, 'an integer');
  const sets = raw.sets ?? defaults.sets;
  if (!Array.isArray(sets) || sets.some((s) => typeof s !== 'string' || s === '')) fail('sets', 'an array of set names', sets);
  const b = objectOf(raw.boundary, 'boundary');
  for (const key of Object.keys(b)) if (!BOUNDARY_KEYS.includes(key)) fail(`boundary.${key}`, `one of ${BOUNDARY_KEYS.join(', ')}`, key);
  const d = defaults.boundary;
  const boundary: LogisticTrainingOptions = {
    learningRate: number(b, 'learningRate', d.learningRate, 'boundary.learningRate', (v) => v > 0, 'a positive number'),
    weightDecay: number(b, 'weightDecay', d.weightDecay, 'boundary.weightDecay', (v) => v >= 0, 'a number ≥ 0'),
    maxEpochs: number(b, 'maxEpochs', d.maxEpochs, 'boundary.maxEpochs', (v) => integer(v) && v >= 1, 'an integer ≥ 1'),
    patience: number(b, 'patience', d.patience, 'boundary.patience', (v) => integer(v) && v >= 1, 'an integer ≥ 1'),
    minImprovement: number(b, 'minImprovement', d.minImprovement, 'boundary.minImprovement', (v) => v >= 0, 'a number ≥ 0'),
    folds: number(b, 'folds', d.folds, 'boundary.folds', (v) => integer(v) && v >= 2, 'an integer ≥ 2'),
    seed: number(b, 'seed', d.seed, 'boundary.seed', integer, 'an integer'),
  };
  const refusalLabels = raw.refusalLabels ?? defaults.refusalLabels;
  if (refusalLabels !== 'compliance' && refusalLabels !== 'relative') fail('refusalLabels', '"compliance" or "relative"', refusalLabels);
  return { k, sets: sets as string[], pcaSeed, boundary, refusalLabels };
}
