/**
 * The DRO loss on synthetic hidden states: its value equals a float64 re-computation written directly
 * from the paper's formula, its gradient w.r.t. h matches central finite differences, switched-off terms
 * give no gradient, and nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerAllGradients } from '@dro/llm';
import { beforeAll, describe, expect, it } from 'vitest';
import { boundaryLogits, directionTensors, disposeDirections, droLoss, PAPER_LOSS_WEIGHTS, type DirectionArrays, type LossWeights } from '../src/loss.ts';
import { orthonormalRows, seededRandom } from './helpers.ts';

const B = 6;
const D = 16;
const K = 4;

function fixture() {
  const rand = seededRandom(3);
  const normal = () => (rand() + rand() + rand() - 1.5) * 1.5;
  const dirs: DirectionArrays = {
    d: D,
    k: K,
    mean: Float32Array.from({ length: D }, normal),
    components: orthonormalRows(K, D, rand),
    refusalW: Float32Array.from({ length: K }, normal),
    refusalB: 0.3,
    harmfulnessW: Float32Array.from({ length: K }, normal),
    harmfulnessB: -0.2,
  };
  const h = Float64Array.from({ length: B * D }, normal);
  const hb = Float64Array.from({ length: B * D }, normal);
  const y = Float64Array.from({ length: B }, (_, i) => i % 2);
  return { dirs, h, hb, y };
}

/** The loss straight from the formula, in float64, with no tfjs. */
function referenceLoss(f: ReturnType<typeof fixture>, h: Float64Array, w: LossWeights): number {
  const { dirs, hb, y } = f;
  const coords = (v: Float64Array, row: number, useMean: boolean) =>
    Array.from({ length: K }, (_, j) => {
      let s = 0;
      for (let i = 0; i < D; i++) s += (v[row * D + i]! - (useMean ? dirs.mean[i]! : 0)) * dirs.components[j * D + i]!;
      return s;
    });
  const dot = (a: number[], b: Float32Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);
  const bce = (x: number, t: number) => Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
  let lr = 0;
  let la = 0;
  let ln = 0;
  for (let b = 0; b < B; b++) {
    const z = coords(h, b, true);
    const zb = coords(hb, b, true);
    lr += bce(dot(z, dirs.refusalW) + dirs.refusalB - (dot(zb, dirs.refusalW) + dirs.refusalB), y[b]!);
    la += bce(dot(z, dirs.harmfulnessW) - dot(zb, dirs.harmfulnessW), y[b]!);
    const delta = new Float64Array(D).map((_, i) => h[b * D + i]! - hb[b * D + i]!);
    const proj = coords(delta, 0, false);
    ln += (delta.reduce((s, v) => s + v * v, 0) - proj.reduce((s, v) => s + v * v, 0)) / (D - K);
  }
  return (w.refusal * lr + w.harmfulness * la + w.norm * ln) / B;
}

function tfLoss(f: ReturnType<typeof fixture>, dirs: ReturnType<typeof directionTensors>, w: LossWeights) {
  const hidden = tf.tensor2d(Float32Array.from(f.hb), [B, D]);
  const base = {
    hidden,
    labels: tf.tensor1d(Float32Array.from(f.y)),
    refusalLogit: boundaryLogits(hidden, dirs).refusal,
    harmfulnessLogit: boundaryLogits(hidden, dirs).harmfulness,
  };
  return (h: tf.Tensor2D) => droLoss(h, base, dirs, w);
}

describe('DRO loss', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await registerAllGradients();
  });

  it('equals the formula computed in float64', () => {
    const f = fixture();
    const dirs = directionTensors(f.dirs);
    for (const w of [PAPER_LOSS_WEIGHTS, { refusal: 0, harmfulness: 1, norm: 0 }, { refusal: 0, harmfulness: 0, norm: 1 }]) {
      const value = tf.tidy(() => tfLoss(f, dirs, w)(tf.tensor2d(Float32Array.from(f.h), [B, D])).total.dataSync()[0]!);
      expect(value).toBeCloseTo(referenceLoss(f, f.h, w), 5);
    }
    disposeDirections(dirs);
  });

  it('has the gradient of central finite differences, and leaks no tensors', () => {
    const f = fixture();
    const dirs = directionTensors(f.dirs);
    const before = tf.memory().numTensors;
    // Weights chosen so every term contributes visibly to the gradient.
    const w = { refusal: 1, harmfulness: 0.5, norm: 0.3 };
    const grad = tf.tidy(() => {
      const loss = tfLoss(f, dirs, w);
      return tf.grad((h: tf.Tensor) => loss(h as tf.Tensor2D).total)(tf.tensor2d(Float32Array.from(f.h), [B, D])).dataSync();
    });
    expect(tf.memory().numTensors).toBe(before);
    // Finite differences in float64 on the reference (step 1e-5 is safe there); relative error per entry.
    const eps = 1e-5;
    let worst = 0;
    for (let i = 0; i < B * D; i++) {
      const plus = Float64Array.from(f.h);
      const minus = Float64Array.from(f.h);
      plus[i]! += eps;
      minus[i]! -= eps;
      const fd = (referenceLoss(f, plus, w) - referenceLoss(f, minus, w)) / (2 * eps);
      worst = Math.max(worst, Math.abs(grad[i]! - fd) / Math.max(1e-3, Math.abs(fd)));
    }
    expect(worst).toBeLessThan(1e-3);
    disposeDirections(dirs);
  });

  it('switched-off terms give no gradient', () => {
    const f = fixture();
    const dirs = directionTensors(f.dirs);
    const h0 = tf.tensor2d(Float32Array.from(f.h), [B, D]);
    const g = (pick: (t: ReturnType<ReturnType<typeof tfLoss>>) => tf.Scalar, w: LossWeights) =>
      tf.tidy(() => tf.grad((h: tf.Tensor) => pick(tfLoss(f, dirs, w)(h as tf.Tensor2D)))(h0).dataSync());
    const refusalOnly = g((t) => t.total, { refusal: 1, harmfulness: 0, norm: 0 });
    const refusalTerm = g((t) => t.refusal, PAPER_LOSS_WEIGHTS);
    const everything = g((t) => t.total, { refusal: 1, harmfulness: 1, norm: 1 });
    expect(Array.from(refusalOnly)).toEqual(Array.from(refusalTerm));
    expect(Array.from(refusalOnly)).not.toEqual(Array.from(everything));
    h0.dispose();
    disposeDirections(dirs);
  });
});
