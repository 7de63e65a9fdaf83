import { describe, expect, it } from 'vitest';
import { PAPER_LOGISTIC_OPTIONS, baseRateLogit, evaluateBoundary, fitBoundary } from '../src/logistic.ts';
import { mulberry32 } from '@dro/llm';
import { gaussian } from '../src/random.ts';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** n rows of k Gaussian features with `scale`, and soft targets σ(w·z + b). */
function plantedBoundary(n: number, weights: number[], bias: number, scale: number, seed: number) {
  const k = weights.length;
  const random = mulberry32(seed);
  const features = Float64Array.from({ length: n * k }, () => scale * gaussian(random));
  const targets = Float64Array.from({ length: n }, (_, r) =>
    sigmoid(weights.reduce((s, w, c) => s + w * features[r * k + c], bias)),
  );
  return { features, targets };
}

describe('fitBoundary', () => {
  it('recovers a planted boundary from soft labels (fast lr, no weight decay)', () => {
    const truth = [1.5, -0.8, 0, 0.3];
    const { features, targets } = plantedBoundary(300, truth, 0.4, 2, 11);
    const fit = fitBoundary(features, targets, 4, {
      ...PAPER_LOGISTIC_OPTIONS,
      learningRate: 0.05,
      weightDecay: 0,
      minImprovement: 1e-7,
      patience: 20,
    });
    truth.forEach((w, c) => expect(fit.model.weights[c]).toBeCloseTo(w, 1));
    expect(fit.model.bias).toBeCloseTo(0.4, 1);
    expect(fit.folds).toHaveLength(10);
    expect(fit.folds.reduce((s, f) => s + f.heldOutRows, 0)).toBe(300);
    for (const f of fit.folds) {
      expect(f.heldOutRows).toBe(30);
      expect(f.trainRows).toBe(270);
      expect(f.bestEpoch).toBeLessThanOrEqual(f.epochs);
    }
    // The averaged model is at least as good as the folds on average (convex loss).
    expect(fit.allRowsBce).toBeLessThanOrEqual(fit.meanHeldOutBce + 0.01);
  });

  it('with the paper options (lr 1e-4) it learns a separable harmfulness boundary and stops early', () => {
    // Hard labels: 1 (harmless) when the first coordinate is positive. Coordinates of PCA scale (~10).
    const random = mulberry32(5);
    const n = 200;
    const features = Float64Array.from({ length: n * 4 }, () => 10 * gaussian(random));
    const targets = Float64Array.from({ length: n }, (_, r) => (features[r * 4] > 0 ? 1 : 0));
    const fit = fitBoundary(features, targets, 4, PAPER_LOGISTIC_OPTIONS);
    expect(fit.meanHeldOutAccuracy).toBeGreaterThan(0.9);
    expect(fit.model.weights[0]).toBeGreaterThan(0); // positive logit = harmless
    expect(Math.abs(fit.model.weights[0])).toBeGreaterThan(3 * Math.abs(fit.model.weights[1]));
    for (const f of fit.folds) expect(f.epochs).toBeLessThan(PAPER_LOGISTIC_OPTIONS.maxEpochs);
    expect(fit.folds.some((f) => f.epochs > 50)).toBe(true);
  });

  it('a boundary on noise learns nothing useful: held-out accuracy near chance', () => {
    const random = mulberry32(9);
    const features = Float64Array.from({ length: 400 * 4 }, () => gaussian(random));
    const targets = Float64Array.from({ length: 400 }, () => (random() < 0.5 ? 1 : 0));
    const fit = fitBoundary(features, targets, 4, { ...PAPER_LOGISTIC_OPTIONS, learningRate: 0.01 });
    expect(fit.meanHeldOutAccuracy).toBeLessThan(0.62);
    expect(fit.meanHeldOutBce).toBeGreaterThan(0.65);
  });

  it('is deterministic for a seed; another seed gives other folds', () => {
    const { features, targets } = plantedBoundary(100, [1, 0.5], -0.2, 1, 2);
    const options = { ...PAPER_LOGISTIC_OPTIONS, learningRate: 0.01 };
    const a = fitBoundary(features, targets, 2, options);
    const b = fitBoundary(features, targets, 2, options);
    expect(a).toEqual(b);
    const c = fitBoundary(features, targets, 2, { ...options, seed: 1 });
    expect(c.folds.map((f) => f.heldOutBce)).not.toEqual(a.folds.map((f) => f.heldOutBce));
  });

  it('with skewed soft labels and the paper options, an early stop falls back to the majority class', () => {
    // Like SmolLM2's compliance scores: most inputs comply (0.75–1), a few are refused (0–0.25), weakly
    // related to the features. lr 1e-4 improves the held-out BCE by < 1e-4 per epoch, so folds stop early.
    const random = mulberry32(3);
    const n = 60;
    const features = Float64Array.from({ length: n * 4 }, () => 0.5 * gaussian(random));
    const targets = Float64Array.from({ length: n }, (_, r) => (r % 10 === 0 ? 0.25 * random() : 0.75 + 0.25 * random()));
    const fit = fitBoundary(features, targets, 4, PAPER_LOGISTIC_OPTIONS);
    expect(fit.folds.every((f) => f.epochs < 50)).toBe(true);
    expect(fit.meanHeldOutAccuracy).toBeCloseTo(0.9, 5); // the majority class, not "refuse everything"
    expect(fit.model.bias).toBeGreaterThan(1);
    expect(baseRateLogit([0.5, 1, 0, 1], [0, 1, 2, 3])).toBeCloseTo(Math.log(0.625 / 0.375), 12);
    expect(baseRateLogit([1, 1], [0, 1])).toBeCloseTo(Math.log((1 - 1e-4) / 1e-4), 12);
  });

  it('evaluateBoundary counts a soft target ≥ 0.5 as positive', () => {
    const model = { weights: Float64Array.from([1]), bias: 0 };
    const features = Float64Array.from([2, -2, 1]);
    const { accuracy, bce } = evaluateBoundary(model, features, [0.9, 0.1, 0.4], [0, 1, 2], 1);
    expect(accuracy).toBeCloseTo(2 / 3, 10);
    const expected = [[2, 0.9], [-2, 0.1], [1, 0.4]].reduce((s, [x, y]) => s - y * Math.log(sigmoid(x)) - (1 - y) * Math.log(1 - sigmoid(x)), 0) / 3;
    expect(bce).toBeCloseTo(expected, 10);
  });

  it('rejects bad inputs', () => {
    expect(() => fitBoundary(new Float64Array(8), new Float64Array(5), 2)).toThrow(/not 5 rows of 2/);
    expect(() => fitBoundary(new Float64Array(10), new Float64Array(5), 2)).toThrow(/10-fold CV/);
    expect(() => fitBoundary(new Float64Array(40), Float64Array.from({ length: 20 }, () => 2), 2)).toThrow(/target\[0\] = 2/);
  });
});
