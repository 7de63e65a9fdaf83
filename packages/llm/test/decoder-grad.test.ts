/**
 * The backward decoder-grad.ts derives from the block's ops (what the native backward graph runs) against
 * tfjs autodiff of the same forward, eagerly, on whichever backend is active: so the derivation is checked
 * on every backend, not only where the native graph exists. Llama with GQA, and Qwen2 with q|k|v and o biases
 * and one kv head, both with left padding, exercise every optional path of the block.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend, padBatch } from '../src/index.ts';
import { decoderBlock, finalNorm } from '../src/model/decoder-block.ts';
import { recordingOps, Tape } from '../src/model/decoder-grad.ts';
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

  it('the derived gradient of two blocks and the final norm equals tf.grad of the same forward (GQA, biases, padding)', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([b * t, config.hiddenSize], 0, 1, 'float32', 1);
      const dHidden = tf.randomNormal([b * t, config.hiddenSize], 0, 1, 'float32', 2);
      const step = { cos: ctx.cos, sin: ctx.sin, bias: ctx.bias };
      const forward = (o: ReturnType<typeof eagerOps>, rows: tf.Tensor): tf.Tensor => {
        const afterBlocks = w.blocks.reduce((residual, block) => decoderBlock(o, config, block, residual, step, null).next, rows);
        return finalNorm(o, afterBlocks, w.finalNorm);
      };
      // The runtime's ops (RMSNorm with its custom gradient), differentiated by tfjs.
      const runtime = eagerOps(config, w, b, t);
      const reference = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(forward(runtime, z), dHidden)))(x);
      // The plain ops (they expose RMSNorm's r), recorded; their forward is the runtime's, op for op.
      const plain = eagerOps(config, w, b, t, { customNormGradient: false });
      const tape = new Tape<tf.Tensor>();
      tape.watch(x);
      const hidden = forward(recordingOps(plain, tape), x);
      expect(relativeError(hidden, forward(runtime, x))).toBe(0);
      const derived = tape.gradient(plain, hidden, dHidden, x, (v) => v);
      expect(tf.max(tf.abs(reference)).dataSync()[0]).toBeGreaterThan(0.1);
      expect(relativeError(derived, reference)).toBeLessThan(1e-5);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reports an op without a gradient rule on the differentiated path', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([b * t, config.hiddenSize], 0, 1, 'float32', 3);
      const tape = new Tape<tf.Tensor>();
      tape.watch(x);
      const o = recordingOps(eagerOps(config, w, b, t, { customNormGradient: false }), tape);
      const y = o.square(x);
      expect(() => tape.gradient(o, y, tf.onesLike(y), x, (v) => v)).toThrow(/square has no gradient rule/);
    });
  });
});
