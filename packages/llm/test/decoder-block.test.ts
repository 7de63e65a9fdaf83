/**
 * decoder-block.ts's hand-derived backward (the one the native backward graph runs) against tfjs autodiff
 * of the same block's forward, eagerly, on whichever backend is active: so the derivation is checked on
 * every backend, not only where the native graph exists. Llama with GQA, and Qwen2 with q|k|v and o biases
 * and one kv head, both with left padding, exercise every optional path of the block.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend, padBatch } from '../src/index.ts';
import { blockBackward, decoderBlock, finalNorm, finalNormBackward } from '../src/model/decoder-block.ts';
import { eagerOps } from '../src/model/eager-ops.ts';
import { disposeStepContext, disposeWeights, ropeFrequencies, stepContext, uploadWeights, type DecoderWeights, type StepContext } from '../src/model/llama.ts';
import { memoryWeightSource, randomWeights, tinyConfig } from '../src/testing/tiny-model.ts';

const { mask } = padBatch([[1, 2, 3, 4, 5], [6, 7, 8]], 0);
const [b, t] = [mask.length, mask[0].length];

beforeAll(async () => {
  await initBackend();
});

/** max |a - b| / max |b|. */
function relativeError(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(b)).dataSync()[0]);
}

describe.each([
  ['llama, GQA', tinyConfig({ numKvHeads: 2 })],
  ['qwen2, biases, one kv head', tinyConfig({ architecture: 'qwen2', attentionBias: true, attentionOutputBias: true, numKvHeads: 1 })],
])('the shared decoder block (%s)', (_, config) => {
  let w: DecoderWeights;
  let ctx: StepContext;
  beforeAll(() => {
    w = uploadWeights(config, memoryWeightSource(randomWeights(config, 5)));
    ctx = stepContext(config, ropeFrequencies(config), mask, t, { rotationMatrices: false });
  });
  afterAll(() => {
    disposeStepContext(ctx);
    disposeWeights(w);
  });

  it('blockBackward equals tf.grad of the block forward (GQA, q|k|v and o biases, padding)', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([b * t, config.hiddenSize], 0, 1, 'float32', 1);
      const dNext = tf.randomNormal([b * t, config.hiddenSize], 0, 1, 'float32', 2);
      const step = { cos: ctx.cos, sin: ctx.sin, bias: ctx.bias };
      const block = w.blocks[0];
      // The runtime's ops (RMSNorm with its custom gradient), differentiated by tfjs.
      const runtime = eagerOps(config, w, b, t);
      const reference = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(decoderBlock(runtime, config, block, z, step, null).next, dNext)))(x);
      // The plain ops expose what the backward reads; their forward is the runtime's, op for op.
      const plain = eagerOps(config, w, b, t, { customNormGradient: false });
      const out = decoderBlock(plain, config, block, x, step, null);
      expect(relativeError(out.next, decoderBlock(runtime, config, block, x, step, null).next)).toBe(0);
      const derived = blockBackward(plain, block, out.saved!, dNext, ctx);
      expect(tf.max(tf.abs(reference)).dataSync()[0]).toBeGreaterThan(0.1);
      expect(relativeError(derived, reference)).toBeLessThan(1e-5);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('finalNormBackward equals tf.grad of the final norm', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([b * t, config.hiddenSize], 0, 3, 'float32', 3);
      const dHidden = tf.randomNormal([b * t, config.hiddenSize], 0, 1, 'float32', 4);
      const plain = eagerOps(config, w, b, t, { customNormGradient: false });
      const reference = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(finalNorm(eagerOps(config, w, b, t), z, w.finalNorm).hidden, dHidden)))(x);
      const { y, r } = finalNorm(plain, x, w.finalNorm);
      expect(relativeError(finalNormBackward(plain, y, r!, w.finalNorm, dHidden), reference)).toBeLessThan(1e-5);
    });
  });
});
