/**
 * DecoderOps on eager tfjs tensors: each call runs one tfjs op now (on whichever backend is active). Shapes
 * are the call's known numbers. Every op here has tfjs's autodiff gradient, except RMSNorm's, which is
 * written out (rmsNormBackward) because autodiff of the plain formula takes about twice the elementwise
 * passes in the backward.
 */
import { tf } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import type { DecoderOps, Layout } from './decoder-ops.ts';
import { rmsNormBackward, rmsNormForward, swiGluForward } from './decoder-block.ts';

/**
 * a @ W for a frozen weight W, differentiable w.r.t. `a` only. tfjs's own matMul gradient computes
 * dy @ Wᵀ with transposeB, which the wasm backend runs on a naive path (~1 GFLOP/s against ~14 without
 * transpose flags); transposing W explicitly first (a cheap copy) keeps the backward on XNNPACK. Other
 * backends handle transposeB natively and use the plain matMul.
 */
export function frozenMatMul(a: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, weight);
  const customFn = ((x: tf.Tensor2D) => ({
    value: tf.matMul(x, weight),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, tf.transpose(weight))),
  })) as unknown as Parameters<typeof tf.customGrad>[0];
  return tf.customGrad(customFn)(a) as tf.Tensor2D;
}

/** Constants the eager ops hold (uploaded once with the weights, not per call). */
export interface EagerConstants {
  /** [d, 1] filled with 1/d: the mean over the hidden axis as a matmul (one small kernel; tfjs's mean costs two). */
  meanColumn: tf.Tensor2D;
  /** RMSNorm epsilon as a held scalar (a JS number would be uploaded as a new tensor on every call). */
  normEps: tf.Scalar;
}

export interface EagerOptions {
  /**
   * RMSNorm as a tf.customGrad whose gradient is rmsNormBackward (the default; r stays inside it). false:
   * the plain formula, which exposes r, so decoder-grad.ts can differentiate eagerly (tests).
   */
  customNormGradient?: boolean;
}

/** Eager ops for a call over b rows of t new positions. */
export function eagerOps(config: ModelConfig, consts: EagerConstants, b: number, t: number, options: EagerOptions = {}): DecoderOps<tf.Tensor> {
  const { hiddenSize: d, numHeads: h, numKvHeads: kvh, headDim: hd } = config;
  const heads = h + 2 * kvh;
  const shapes: Record<Layout, number[]> = {
    rows: [b * t, d],
    hidden: [b, t, d],
    qkvHeads: [b, t, heads, hd],
    qkvRows: [b * t, heads * hd],
    qkvHeadsOnePosition: [b, heads, 1, hd],
    queryHeads: [b, h, t, hd],
    queryHeadsByPosition: [b, t, h, hd],
    grouped: [b, kvh, (h / kvh) * t, hd],
    mergedRows: [b * t, h * hd],
  };
  const ops: DecoderOps<tf.Tensor> = {
    project: (x, w) => frozenMatMul(x as tf.Tensor2D, w as tf.Tensor2D),
    projectT: (x, w) => tf.matMul(x, w, false, true),
    matMul: (a, b2, transposeA = false, transposeB = false) => tf.matMul(a, b2, transposeA, transposeB),
    meanRows: (x) => frozenMatMul(x as tf.Tensor2D, consts.meanColumn),
    sumLast: (x) => tf.sum(x, -1, true),
    add: (a, b2) => tf.add(a, b2),
    sub: (a, b2) => tf.sub(a, b2),
    mul: (a, b2) => tf.mul(a, b2),
    square: (x) => tf.square(x),
    rsqrt: (x) => tf.rsqrt(x),
    sigmoid: (x) => tf.sigmoid(x),
    softmax: (x) => tf.softmax(x),
    reshape: (x, _from, to) => tf.reshape(x, shapes[to]),
    transpose: (x, perm) => tf.transpose(x, perm),
    concat: (values, axis) => tf.concat(values, axis),
    appendCache: (past, fresh, axis) => tf.concat([past, fresh], axis),
    split: (x, sizes, axis) => tf.split(x, sizes, axis),
    swapHalves: (x) => {
      const shape = x.shape;
      const half = shape[shape.length - 1] / 2;
      return tf.reshape(tf.reverse(tf.reshape(x, [...shape.slice(0, -1), 2, half]), -2), shape);
    },
    rmsNorm: (x) => rmsNormForward(ops, x, consts.normEps),
    swiGlu: (gate, up) => swiGluForward(ops, gate, up),
    one: () => tf.scalar(1),
    onePosition: t === 1,
  };
  if (options.customNormGradient !== false) {
    const customFn = ((x: tf.Tensor, save: tf.GradSaveFunc) => {
      const { y, r } = rmsNormForward(ops, x, consts.normEps);
      save([y, r]);
      return { value: y, gradFunc: (dy: tf.Tensor | tf.Tensor[], [savedY, savedR]: tf.Tensor[]) => rmsNormBackward(ops, savedY, savedR, dy as tf.Tensor) };
    }) as unknown as Parameters<typeof tf.customGrad>[0];
    const normalize = tf.customGrad(customFn);
    ops.rmsNorm = (x) => ({ y: normalize(x) as tf.Tensor });
  }
  return ops;
}
