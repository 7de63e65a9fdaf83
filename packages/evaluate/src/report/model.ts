/**
 * What the HTML report shows, as plain data. The report stage fills it from artifacts; the renderer turns
 * it into one self-contained HTML page. Keeping this separate lets the renderer be tested without a store.
 */

import type { TrainingObjective } from '@dro/artifacts';
import type { ConditionComparison } from '../comparison.ts';
import type { SetMetrics } from '../metrics.ts';

/** One row of the summary table: one model under one prompt condition on one query set. */
export interface SummaryRow extends SetMetrics {
  model: string;
  condition: string;
  /** Mean refusal-boundary logit r(h) (higher = more compliant), null when not measured. */
  meanRefusalLogit: number | null;
  /** Mean harmfulness-boundary logit a(h) (higher = judged more harmless), null when not measured. */
  meanHarmfulnessLogit: number | null;
  /** General-capability proxy (harmless sets only), see the evaluate stage's docs; null where undefined. */
  capability: number | null;
}

/** A set of points in the leading PCA coordinates, for one condition and one label. */
export interface PcaPoints {
  condition: string;
  label: 'harmful' | 'harmless';
  /** Coordinates z = V_k (h − μ), one array of length k per query. */
  z: number[][];
  /** Optional hover text per point (the query). */
  titles?: string[];
}

/** A logistic boundary on the k PCA coordinates: logit = w·z + b. */
export interface Boundary {
  w: number[];
  b: number;
}

export interface PcaView {
  model: string;
  explainedVarianceRatio: number[];
  refusal: Boundary;
  harmfulness: Boundary;
  points: PcaPoints[];
}

export interface TrainingCurve {
  /** Run name, e.g. "dro:safety-short" or "prompt-tuning:safety-short". */
  name: string;
  step: number[];
  /** Loss terms by name ("total", "refusal", "harmfulness", "norm", …), each aligned with `step`. */
  terms: Record<string, number[]>;
}

export interface NearestTokens {
  name: string;
  /** Per soft-prompt position: the init token and the nearest vocabulary tokens by cosine. */
  positions: { position: number; initToken: string; nearest: { token: string; cosine: number }[] }[];
}

export interface ExampleResponse {
  model: string;
  condition: string;
  label: 'harmful' | 'harmless';
  query: string;
  response: string;
  /** The sample's recorded verdict ("not judged": outside the judged selection). */
  verdict: 'complied' | 'refused' | 'not judged';
}

/** Training queries' refusal logits under the basic text prompt and under a trained soft prompt. */
export interface TrainingShift {
  name: string;
  rows: { label: 'harmful' | 'harmless'; baseRefusal: number; softRefusal: number }[];
}

/** A trained prompt's own objective on its training queries (see trainingObjective in @dro/artifacts). */
export interface ObjectiveView {
  model: string;
  /** The training run and the condition its prompt is evaluated as ("dro", "dro-no-norm", …). */
  condition: string;
  objective: TrainingObjective;
}

export interface ReportData {
  title: string;
  /** When the data was gathered (shown under the title; empty = not shown). */
  generatedAt: string;
  /** Short protocol notes shown under the title (how metrics are defined). */
  notes: string[];
  summary: SummaryRow[];
  pca: PcaView[];
  curves: TrainingCurve[];
  nearestTokens: NearestTokens[];
  trainingShifts: TrainingShift[];
  examples: ExampleResponse[];
  /** Training objectives of the trained prompts; a prompt that missed its objective is flagged. */
  objectives: ObjectiveView[];
  /** Trained prompts against their text prompts on the held-out queries. */
  comparisons: ConditionComparison[];
}
