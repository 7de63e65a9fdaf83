/**
 * Logistic boundaries on the k PCA coordinates, trained as in the DRO paper: full batch, AdamW
 * (lr 1e-4, weight decay 0.01 by default), early stopping on held-out BCE (patience 3, min improvement
 * 1e-4, at most 10000 epochs), 10-fold cross-validation over a seeded shuffle; the final boundary is the
 * average of the folds' weights and biases.
 *
 * Sign convention: logit(z) = w·z + b predicts the POSITIVE class, which is "compliance" for the refusal
 * boundary (target = compliance score, the fraction of non-refused samples; soft labels) and
 * "harmlessness" for the harmfulness boundary (target 1 = harmless, 0 = harmful). A positive logit
 * therefore means "will comply" / "looks harmless".
 *
 * Details: weights start at zero and the bias at the log-odds of the fold's mean training target, so a
 * fold starts from the base rate. (Why not zero: with lr 1e-4 one epoch lowers the BCE by only ~1e-4 ×
 * |gradient|; when labels are skewed — SmolLM2 complies with ~95% of samples — the first epochs improve by
 * less than min improvement 1e-4, early stopping fires at epoch 3, and a zero-bias model would predict
 * "refuse" (logit 0) for every row. Starting at the base rate makes that fallback the majority class.) Weight
 * decay is decoupled (AdamW) and applied to bias too, as torch's AdamW does with one parameter group;
 * each fold keeps the parameters of its best held-out epoch.
 */
import type { FoldReport } from '@dro/artifacts';
import { mulberry32 } from '@dro/llm';
import { shuffledIndices } from '@dro/pipeline';

export interface LogisticTrainingOptions {
  learningRate: number;
  weightDecay: number;
  maxEpochs: number;
  patience: number;
  minImprovement: number;
  folds: number;
  seed: number;
}

export const PAPER_LOGISTIC_OPTIONS: LogisticTrainingOptions = {
  learningRate: 1e-4,
  weightDecay: 0.01,
  maxEpochs: 10_000,
  patience: 3,
  minImprovement: 1e-4,
  folds: 10,
  seed: 0,
};

export interface LogisticModel {
  /** [k] */
  weights: Float64Array;
  bias: number;
}

/** A fold's numbers, as the directions report records them. */
export type { FoldReport };

export interface BoundaryFit {
  model: LogisticModel;
  folds: FoldReport[];
  /** Mean over folds of the held-out numbers. */
  meanHeldOutBce: number;
  meanHeldOutAccuracy: number;
  /** The averaged model on all rows. */
  allRowsBce: number;
  allRowsAccuracy: number;
}

const EPSILON_ADAM = 1e-8;
const BETA1 = 0.9;
const BETA2 = 0.999;

function logitOf(model: LogisticModel, features: Float64Array, row: number, k: number): number {
  let s = model.bias;
  for (let c = 0; c < k; c++) s += model.weights[c] * features[row * k + c];
  return s;
}

/** Numerically stable BCE-with-logits: max(x,0) − x·y + log(1 + e^−|x|). */
function bceWithLogits(logit: number, target: number): number {
  return Math.max(logit, 0) - logit * target + Math.log1p(Math.exp(-Math.abs(logit)));
}

/** Mean BCE and accuracy of `model` over `rows` of ([n, k] features, [n] targets). */
export function evaluateBoundary(
  model: LogisticModel,
  features: Float64Array,
  targets: ArrayLike<number>,
  rows: readonly number[],
  k: number,
): { bce: number; accuracy: number } {
  let loss = 0;
  let correct = 0;
  for (const row of rows) {
    const logit = logitOf(model, features, row, k);
    loss += bceWithLogits(logit, targets[row]);
    if (logit > 0 === targets[row] >= 0.5) correct++;
  }
  return { bce: loss / rows.length, accuracy: correct / rows.length };
}

/** log(p / (1 − p)) of the mean target over `rows`, p clamped to [1e-4, 1 − 1e-4]. */
export function baseRateLogit(targets: ArrayLike<number>, rows: readonly number[]): number {
  let sum = 0;
  for (const row of rows) sum += targets[row];
  const p = Math.min(1 - 1e-4, Math.max(1e-4, sum / rows.length));
  return Math.log(p / (1 - p));
}

/** Train one fold with early stopping; returns the best-epoch model. */
function trainFold(
  features: Float64Array,
  targets: ArrayLike<number>,
  trainRows: readonly number[],
  heldOutRows: readonly number[],
  k: number,
  options: LogisticTrainingOptions,
): { model: LogisticModel; epochs: number; bestEpoch: number; heldOutBce: number } {
  const params = new Float64Array(k + 1); // [w_0 … w_{k−1}, b]
  params[k] = baseRateLogit(targets, trainRows);
  const firstMoment = new Float64Array(k + 1);
  const secondMoment = new Float64Array(k + 1);
  const gradient = new Float64Array(k + 1);
  const asModel = (p: Float64Array): LogisticModel => ({ weights: p.slice(0, k), bias: p[k] });

  let best = { params: params.slice(), bce: evaluateBoundary(asModel(params), features, targets, heldOutRows, k).bce, epoch: 0 };
  let epochsSinceImprovement = 0;
  let epoch = 0;
  while (epoch < options.maxEpochs) {
    epoch++;
    // Full-batch gradient of mean BCE: (σ(logit) − y)·[z, 1] averaged over the training rows.
    gradient.fill(0);
    for (const row of trainRows) {
      let logit = params[k];
      for (let c = 0; c < k; c++) logit += params[c] * features[row * k + c];
      const error = 1 / (1 + Math.exp(-logit)) - targets[row];
      for (let c = 0; c < k; c++) gradient[c] += error * features[row * k + c];
      gradient[k] += error;
    }
    const correction1 = 1 - BETA1 ** epoch;
    const correction2 = 1 - BETA2 ** epoch;
    for (let j = 0; j <= k; j++) {
      const g = gradient[j] / trainRows.length;
      params[j] -= options.learningRate * options.weightDecay * params[j];
      firstMoment[j] = BETA1 * firstMoment[j] + (1 - BETA1) * g;
      secondMoment[j] = BETA2 * secondMoment[j] + (1 - BETA2) * g * g;
      params[j] -= (options.learningRate * (firstMoment[j] / correction1)) / (Math.sqrt(secondMoment[j] / correction2) + EPSILON_ADAM);
    }
    const heldOutBce = evaluateBoundary(asModel(params), features, targets, heldOutRows, k).bce;
    if (heldOutBce < best.bce - options.minImprovement) {
      best = { params: params.slice(), bce: heldOutBce, epoch };
      epochsSinceImprovement = 0;
    } else if (++epochsSinceImprovement >= options.patience) break;
  }
  return { model: asModel(best.params), epochs: epoch, bestEpoch: best.epoch, heldOutBce: best.bce };
}

/**
 * Fit a boundary on `features` ([n, k] row-major) with soft `targets` in [0, 1] by k-fold CV.
 * Fold f holds out rows perm[i] with i ≡ f (mod folds) — near-equal folds over the seeded shuffle.
 */
export function fitBoundary(
  features: Float64Array,
  targets: ArrayLike<number>,
  k: number,
  options: LogisticTrainingOptions = PAPER_LOGISTIC_OPTIONS,
): BoundaryFit {
  const n = targets.length;
  if (features.length !== n * k) throw new RangeError(`fitBoundary: ${features.length} features are not ${n} rows of ${k}`);
  if (options.folds < 2 || n < options.folds) throw new RangeError(`fitBoundary: need at least ${Math.max(2, options.folds)} rows for ${options.folds}-fold CV, got ${n}`);
  for (let i = 0; i < n; i++)
    if (!(targets[i] >= 0 && targets[i] <= 1)) throw new RangeError(`fitBoundary: target[${i}] = ${targets[i]} is not in [0, 1]`);

  const permutation = shuffledIndices(n, mulberry32(options.seed));
  const foldOf = new Int32Array(n);
  permutation.forEach((row, position) => (foldOf[row] = position % options.folds));
  const all = Array.from({ length: n }, (_, i) => i);

  const averaged: LogisticModel = { weights: new Float64Array(k), bias: 0 };
  const folds: FoldReport[] = [];
  for (let fold = 0; fold < options.folds; fold++) {
    const heldOut = all.filter((row) => foldOf[row] === fold);
    const train = all.filter((row) => foldOf[row] !== fold);
    const result = trainFold(features, targets, train, heldOut, k, options);
    for (let c = 0; c < k; c++) averaged.weights[c] += result.model.weights[c] / options.folds;
    averaged.bias += result.model.bias / options.folds;
    const { accuracy } = evaluateBoundary(result.model, features, targets, heldOut, k);
    folds.push({
      fold,
      trainRows: train.length,
      heldOutRows: heldOut.length,
      epochs: result.epochs,
      bestEpoch: result.bestEpoch,
      heldOutBce: result.heldOutBce,
      heldOutAccuracy: accuracy,
    });
  }
  const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
  const overall = evaluateBoundary(averaged, features, targets, all, k);
  return {
    model: averaged,
    folds,
    meanHeldOutBce: mean(folds.map((f) => f.heldOutBce)),
    meanHeldOutAccuracy: mean(folds.map((f) => f.heldOutAccuracy)),
    allRowsBce: overall.bce,
    allRowsAccuracy: overall.accuracy,
  };
}
