/**
 * The DRO loss gradient w.r.t. the soft prompt, through the real tiny model, matches central finite
 * differences, and the soft prompt at its initialisation reproduces the basic text prompt exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAllGradients } from '@dro/llm';
import { boundaryLogits, directionTensors, disposeDirections, droLoss, type DirectionArrays, type LossWeights } from '../src/loss.ts';
import { baseHiddenStates, softHiddenStates, trainDro } from '../src/train-dro.ts';
import type { PromptedInput } from '../src/soft-prompt.ts';
import { loadTinyModel, orthonormalRows, seededRandom } from './helpers.ts';

type Model = Awaited<ReturnType<typeof loadTinyModel>>['model'];

const N_SOFT = 5;

/** Four inputs of different lengths, each with a 5-token "prompt" span at a different place. */
function inputs(rand: () => number, vocab: number): PromptedInput[] {
  const prompt = Array.from({ length: N_SOFT }, () => Math.floor(rand() * 250));
  return [3, 4, 2, 6].map((prefix, i) => {
    const suffix = 4 + i * 2;
    const ids = [
      ...Array.from({ length: prefix }, () => Math.floor(rand() * vocab)),
      ...prompt,
      ...Array.from({ length: suffix }, () => Math.floor(rand() * vocab)),
    ];
    return { ids, spanStart: prefix, spanEnd: prefix + N_SOFT };
  });
}

describe('DRO gradient through the tiny model', () => {
  let model: Model;
  let examples: PromptedInput[];
  let dirs: ReturnType<typeof directionTensors>;
  let init: tf.Tensor2D;

  beforeAll(async () => {
    model = (await loadTinyModel()).model;
    await registerAllGradients();
    const rand = seededRandom(11);
    const d = model.config.hiddenSize;
    examples = inputs(rand, 250);
    const arrays: DirectionArrays = {
      d,
      k: 4,
      mean: new Float32Array(d),
      components: orthonormalRows(4, d, rand),
      refusalW: Float32Array.from([3, -2, 1.5, 1]),
      refusalB: 0.1,
      harmfulnessW: Float32Array.from([-1, 2, 0.5, -2]),
      harmfulnessB: 0,
    };
    dirs = directionTensors(arrays);
    init = tf.tidy(() => tf.reshape(model.embed([examples[0]!.ids.slice(examples[0]!.spanStart, examples[0]!.spanEnd)]), [N_SOFT, d]) as tf.Tensor2D);
  });
  afterAll(() => {
    disposeDirections(dirs);
    init?.dispose();
    model?.dispose();
  });

  it('at initialisation the soft prompt reproduces the basic prompt hidden states', () => {
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(softHiddenStates(model, examples, init), baseHiddenStates(model, examples, 2)))).dataSync()[0]!);
    expect(diff).toBeLessThan(1e-4);
  });

  it('matches central finite differences along random directions', () => {
    const labels = tf.tensor1d([0, 1, 0, 1]);
    const baseHidden = baseHiddenStates(model, examples, 4);
    const baseLogits = boundaryLogits(baseHidden, dirs);
    const base = { hidden: baseHidden, refusalLogit: baseLogits.refusal, harmfulnessLogit: baseLogits.harmfulness, labels };
    // Start away from the initialisation so Δ ≠ 0 and every term has a non-trivial gradient.
    const rand = seededRandom(5);
    const start = tf.tidy(() => tf.add(init, tf.mul(tf.randomNormal(init.shape, 0, 1, 'float32', 3), 0.3)) as tf.Tensor2D);
    const weights: LossWeights = { refusal: 1, harmfulness: 0.5, norm: 0.5 };
    const lossAt = (p: tf.Tensor2D): number => tf.tidy(() => droLoss(softHiddenStates(model, examples, p), base, dirs, weights).total.dataSync()[0]!);

    const before = tf.memory().numTensors;
    const grad = tf.tidy(() => tf.grad((p: tf.Tensor) => droLoss(softHiddenStates(model, examples, p as tf.Tensor2D), base, dirs, weights).total)(start));
    expect(tf.memory().numTensors).toBe(before + 1); // only the gradient itself survives

    // float32 forward passes carry ~1e-6 relative rounding noise in the loss; with step 1e-2 along a unit
    // direction that is ~1e-4 absolute error in the difference quotient, and the O(ε²) truncation error
    // of central differences is of the same order for these smooth functions. So 2% relative (+1e-4
    // absolute) separates a correct gradient from a wrong one (a missing term or sign is off by ≥ 10%).
    const eps = 1e-2;
    for (let trial = 0; trial < 4; trial++) {
      const u = tf.tidy(() => {
        const r = tf.tensor2d(Float32Array.from({ length: init.size }, () => rand() - 0.5), init.shape);
        return tf.div(r, tf.norm(r)) as tf.Tensor2D;
      });
      const analytic = tf.tidy(() => tf.sum(tf.mul(grad, u)).dataSync()[0]!);
      const plus = tf.tidy(() => tf.add(start, tf.mul(u, eps)) as tf.Tensor2D);
      const minus = tf.tidy(() => tf.sub(start, tf.mul(u, eps)) as tf.Tensor2D);
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * eps);
      tf.dispose([u, plus, minus]);
      expect(Math.abs(analytic - numeric)).toBeLessThan(0.02 * Math.abs(numeric) + 1e-4);
    }
    tf.dispose([grad, start, baseHidden, baseLogits.refusal, baseLogits.harmfulness, labels]);
  });

  it('accumulating micro-batch gradients equals one full-batch step', async () => {
    const arrays: DirectionArrays = {
      d: model.config.hiddenSize, k: 4, mean: new Float32Array(model.config.hiddenSize),
      components: orthonormalRows(4, model.config.hiddenSize, seededRandom(4)),
      refusalW: Float32Array.from([3, -2, 1.5, 1]), refusalB: 0.1, harmfulnessW: Float32Array.from([-1, 2, 0.5, -2]), harmfulnessB: 0,
    };
    const labelled = examples.map((x, i) => ({ ...x, queryId: `q${i}`, label: (i % 2) as 0 | 1 }));
    const initValues = Float32Array.from(init.dataSync());
    const train = (microBatchSize: number) =>
      trainDro(model, labelled, arrays, { values: initValues, nTokens: N_SOFT }, { refusal: 1, harmfulness: 0.5, norm: 0.5 }, {
        lr: 0.01, lrUnit: 'absolute', weightDecay: 0.01, maxGradNorm: 1, batchSize: 4, microBatchSize, epochs: 2, maxSteps: null, seed: 1,
      });
    const whole = await train(4);
    const split = await train(1);
    let worst = 0;
    whole.softPrompt.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - split.softPrompt[i]!))));
    expect(worst).toBeLessThan(1e-5);
    expect(whole.curve.map((c) => c.terms.total)).toEqual(split.curve.map((c) => expect.closeTo(c.terms.total!, 5)));
    // And the steps moved the prompt (the comparison is not between two untouched copies).
    expect(whole.softPrompt.some((v, i) => Math.abs(v - initValues[i]!) > 1e-3)).toBe(true);
  });
});
