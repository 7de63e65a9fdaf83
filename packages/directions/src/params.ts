/** Parameters of the directions stage, their defaults and their validation (errors name the field). */
import { ParamReader } from '@dro/pipeline';
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

/** What the stage does when given no params: the published protocol (presets: experiment/src/presets/). */
export const defaultDirectionsParams: DirectionsParams = {
  k: 4,
  sets: [],
  pcaSeed: 0,
  boundary: { ...PAPER_LOGISTIC_OPTIONS },
  refusalLabels: 'compliance',
};

const BOUNDARY_KEYS = Object.keys(PAPER_LOGISTIC_OPTIONS) as (keyof LogisticTrainingOptions)[];

/** Validate raw params and fill the defaults. */
export function parseDirectionsParams(raw: unknown): DirectionsParams {
  const r = ParamReader.of('directions', raw);
  const d = defaultDirectionsParams;
  const integer = (v: number) => Number.isInteger(v);
  const k = r.number('k', d.k, (v) => integer(v) && v >= 1 && v <= 64, 'an integer in [1, 64]');
  const sets = r.strings('sets', d.sets, 'an array of set names');
  const pcaSeed = r.number('pcaSeed', d.pcaSeed, integer, 'an integer');
  const b = r.child('boundary');
  const db = d.boundary;
  const boundary: LogisticTrainingOptions = {
    learningRate: b.number('learningRate', db.learningRate, (v) => v > 0, 'a positive number'),
    weightDecay: b.number('weightDecay', db.weightDecay, (v) => v >= 0, 'a number ≥ 0'),
    maxEpochs: b.int('maxEpochs', db.maxEpochs, 1),
    patience: b.int('patience', db.patience, 1),
    minImprovement: b.number('minImprovement', db.minImprovement, (v) => v >= 0, 'a number ≥ 0'),
    folds: b.int('folds', db.folds, 2),
    seed: b.number('seed', db.seed, integer, 'an integer'),
  };
  BOUNDARY_KEYS.forEach((key) => b.mark(key));
  b.done();
  const refusalLabels = r.oneOf('refusalLabels', d.refusalLabels, ['compliance', 'relative'] as const);
  r.done();
  return { k, sets, pcaSeed, boundary, refusalLabels };
}
