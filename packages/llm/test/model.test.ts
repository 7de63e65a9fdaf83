/** ChatModel on tiny random models: shapes, padding, embeddings input, soft-prompt gradients, errors, leaks. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { tf, initBackend, loadModel, padBatch, lastTokenHidden, createChatModel, type ChatModel } from '../src/index.ts';
import { checkpointsByDefault, PLAIN_BACKPROP_MAX_TOKENS } from '../src/model/chat-model.ts';
import { attentionBias, MASKED, positionIds } from '../src/model/mask.ts';
import { inverseFrequencies } from '../src/model/rope.ts';
import { resolveNativeTfjsNode } from '../src/native/tfjs-node.mjs';
import { memoryWeightSource, randomWeights, tinyConfig, writeTinyHfModel } from '../src/testing/tiny-model.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-model-'));
let model: ChatModel;
let tensorsBefore: number;

beforeAll(async () => {
  model = await loadModel(writeTinyHfModel(path.join(tmp, 'tiny')));
  tensorsBefore = tf.memory().numTensors;
});
afterAll(() => {
  model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

describe('backend', () => {
  it('uses $DRO_TFJS_BACKEND (default auto: native TensorFlow when built, else wasm) and names it', async () => {
    const requested = process.env.DRO_TFJS_BACKEND ?? 'auto';
    const expected = requested === 'auto' ? (resolveNativeTfjsNode() !== null ? 'tensorflow' : 'wasm') : requested;
    expect(model.backend).toBe(expected);
    expect(tf.getBackend()).toBe(expected);
    expect(await initBackend()).toBe(expected);
  });

  it('rejects an unknown backend name with the accepted names', async () => {
    await expect(initBackend('webgpu')).rejects.toThrow(/unknown tfjs backend "webgpu".*wasm, cpu, tensorflow/);
  });
});

describe('batching helpers', () => {
  it('left-pads and masks', () => {
    expect(padBatch([[1, 2, 3], [4]], 0)).toEqual({ ids: [[1, 2, 3], [0, 0, 4]], mask: [[1, 1, 1], [0, 0, 1]] });
  });

  it('positions count real tokens only (cumsum(mask) - 1, pads at 1)', () => {
    expect([...positionIds([[0, 0, 1, 1, 1]], 5)]).toEqual([1, 1, 0, 1, 2]);
    expect([...positionIds([[0, 1, 1, 1]], 1)]).toEqual([2]);
  });

  it('attention bias is causal, hides padding and applies a sliding window', () => {
    const bias = attentionBias([[0, 1, 1, 1]], 4, 2);
    const allowed = (q: number, k: number): boolean => bias[q * 4 + k] === 0;
    expect(allowed(3, 3) && allowed(3, 2)).toBe(true);
    expect(allowed(3, 1)).toBe(false); // window 2
    expect(allowed(2, 3)).toBe(false); // future
    expect(allowed(1, 0)).toBe(false); // padding
    expect(bias[3 * 4 + 1]).toBe(MASKED);
  });

  it('llama3 rope scaling keeps high frequencies and divides low ones by the factor', () => {
    const plain = inverseFrequencies(64, 500000, null);
    const scaled = inverseFrequencies(64, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(scaled[0]).toBe(plain[0]);
    expect(scaled[31]).toBeCloseTo(plain[31] / 8, 12);
  });
});

describe('forward', () => {
  const prompt = [261, 117, 115, 101, 114, 10, 104, 105];

  it('returns logits [b, t, V] and the final hidden state [b, t, d]', () => {
    const out = model.forward({ inputIds: [prompt] });
    expect(out.logits.shape).toEqual([1, prompt.length, model.config.vocabSize]);
    expect(out.lastHidden.shape).toEqual([1, prompt.length, model.config.hiddenSize]);
    tf.dispose([out.logits, out.lastHidden]);
  });

  it("logitsFor 'last' and 'none' agree with 'all'", () => {
    const all = model.forward({ inputIds: [prompt] });
    const last = model.forward({ inputIds: [prompt], logitsFor: 'last' });
    const none = model.forward({ inputIds: [prompt], logitsFor: 'none' });
    const lastOfAll = tf.slice(all.logits, [0, prompt.length - 1, 0], [1, 1, -1]);
    expect(last.logits.shape).toEqual([1, 1, model.config.vocabSize]);
    expect(maxAbsDiff(lastOfAll, last.logits)).toBeLessThan(1e-5);
    expect(none.logits.shape).toEqual([1, 0, model.config.vocabSize]);
    expect(maxAbsDiff(none.lastHidden, all.lastHidden)).toBe(0);
    tf.dispose([all, last, none, lastOfAll] as unknown as tf.Tensor[]);
  });

  it('allLayers returns L + 1 states, the last equal to lastHidden', () => {
    const out = model.forward({ inputIds: [prompt], allLayers: true });
    expect(out.layers).toHaveLength(model.config.numLayers + 1);
    expect(maxAbsDiff(out.layers![model.config.numLayers], out.lastHidden)).toBe(0);
    const embeds = model.embed([prompt]);
    expect(maxAbsDiff(out.layers![0], embeds)).toBe(0);
    tf.dispose([out.logits, out.lastHidden, embeds, ...out.layers!]);
  });

  it('inputsEmbeds gives the same result as inputIds and is not disposed', () => {
    const embeds = model.embed([prompt]);
    const a = model.forward({ inputIds: [prompt] });
    const b = model.forward({ inputsEmbeds: embeds });
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-6);
    expect(embeds.isDisposed).toBe(false);
    tf.dispose([a.logits, a.lastHidden, b.logits, b.lastHidden, embeds]);
  });

  it('left padding does not change a row, and lastTokenHidden picks position t-1', () => {
    const short = prompt.slice(3);
    const { ids, mask } = padBatch([prompt, short], model.padId);
    const batched = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'none' });
    const alone = model.forward({ inputIds: [short], logitsFor: 'none' });
    const lastBatched = lastTokenHidden(batched.lastHidden);
    const lastAlone = lastTokenHidden(alone.lastHidden);
    expect(lastBatched.shape).toEqual([2, model.config.hiddenSize]);
    const secondRow = tf.slice(lastBatched, [1, 0], [1, -1]);
    expect(maxAbsDiff(secondRow, lastAlone)).toBeLessThan(1e-5);
    secondRow.dispose();
    tf.dispose([batched.logits, batched.lastHidden, alone.logits, alone.lastHidden, lastBatched, lastAlone]);
  });

  it('differentiates a loss w.r.t. a soft-prompt variable spliced into the embeddings (weights frozen)', () => {
    const d = model.config.hiddenSize;
    const init = tf.randomNormal([1, 3, d], 0, 0.1, 'float32', 7);
    const softPrompt = tf.variable(init);
    init.dispose();
    const before = model.embed([prompt.slice(0, 2)]);
    const after = model.embed([prompt.slice(2)]);
    const numBefore = tf.memory().numTensors;
    // tidy inside the loss: variableGrads keeps whatever the function leaves undisposed.
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
      const x = tf.concat([before, softPrompt, after], 1) as tf.Tensor3D; // [1, 2 + 3 + 6, d]
      const out = model.forward({ inputsEmbeds: x, logitsFor: 'none' });
      return tf.sum(tf.square(lastTokenHidden(out.lastHidden)));
    }), [softPrompt]);
    expect(Object.keys(grads)).toEqual([softPrompt.name]);
    const g = grads[softPrompt.name];
    expect(g.shape).toEqual([1, 3, d]);
    const gNorm = tf.tidy(() => tf.norm(g).dataSync()[0]);
    expect(gNorm).toBeGreaterThan(0);
    // Finite difference along the gradient direction agrees with the analytic slope.
    const eps = 1e-2;
    const loss = (delta: number): number =>
      tf.tidy(() => {
        const x = tf.concat([before, tf.add(softPrompt, tf.mul(g, delta / gNorm)), after], 1) as tf.Tensor3D;
        const out = model.forward({ inputsEmbeds: x, logitsFor: 'none' });
        return tf.sum(tf.square(lastTokenHidden(out.lastHidden))).dataSync()[0];
      });
    const slope = (loss(eps) - loss(-eps)) / (2 * eps);
    expect(slope / gNorm).toBeCloseTo(1, 2);
    tf.dispose([value, g]);
    expect(tf.memory().numTensors).toBe(numBefore);
    tf.dispose([softPrompt, before, after]);
  });

  // One cached decode step must match the uncached forward's last position. With ≤ 8 rows the step
  // applies RoPE as per-head rotation matrices, with more rows elementwise; both paths are checked, with
  // left padding so rows sit at different positions.
  it.each([2, 10])('a cached one-token step equals the full forward (%i rows)', (rows) => {
    const seqs = Array.from({ length: rows }, (_, r) => prompt.slice(r % 4));
    const { ids, mask } = padBatch(seqs, model.padId);
    const next = Array.from({ length: rows }, (_, r) => [100 + r]);
    const prefixEmbeds = model.embed(ids);
    const prefix = model.forwardWithCache(prefixEmbeds, mask, null);
    const stepEmbeds = model.embed(next);
    const fullMask = mask.map((m) => [...m, 1]);
    const step = model.forwardWithCache(stepEmbeds, fullMask, prefix.cache);
    const full = model.forward({ inputIds: ids.map((row, r) => [...row, next[r][0]]), attentionMask: fullMask, logitsFor: 'last' });
    const fullLast = tf.reshape(full.logits, [rows, -1]);
    expect(maxAbsDiff(step.lastLogits, fullLast)).toBeLessThan(1e-4);
    for (const c of [...prefix.cache, ...step.cache]) tf.dispose([c.keysT, c.values]);
    tf.dispose([prefix.lastLogits, step.lastLogits, prefixEmbeds, stepEmbeds, full.logits, full.lastHidden, fullLast]);
  });

  it('rejects bad input with errors naming the problem', () => {
    expect(() => model.forward({})).toThrow(BadInputError);
    expect(() => model.forward({ inputIds: [[1, 2], [3]] })).toThrow(/row 1 has 1 tokens/);
    expect(() => model.forward({ inputIds: [[1, 99999]] })).toThrow(/token id 99999 .*outside the vocabulary/);
    expect(() => model.forward({ inputIds: [[1, 2]], attentionMask: [[1]] })).toThrow(/attentionMask must be \[1\]\[2\]/);
    const wrong = tf.zeros([1, 2, 5]) as tf.Tensor3D;
    expect(() => model.forward({ inputsEmbeds: wrong })).toThrow(/inputsEmbeds must be \[batch, time, 64\]/);
    wrong.dispose();
  });

  it('leaves no tensors behind after forward, grad and errors', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});

describe('lifecycle', () => {
  it('dispose frees every weight tensor and later use fails clearly', async () => {
    const config = tinyConfig({ tieWordEmbeddings: false, attentionBias: true, attentionOutputBias: true });
    const start = tf.memory().numTensors;
    const m = await createChatModel({
      config, weights: memoryWeightSource(randomWeights(config, 5)), tokenizer: model.tokenizer,
      applyChatTemplate: () => '', digest: 'test',
    });
    // 2 layers × (qkv + qkv bias + out + out bias + gate + up + down; norms folded in)
    // + final norm + mean column + norm epsilon + lm head + embeddings
    expect(tf.memory().numTensors - start).toBe(2 * 7 + 5);
    m.dispose();
    expect(tf.memory().numTensors).toBe(start);
    expect(() => m.forward({ inputIds: [[1]] })).toThrow(/after dispose/);
  });
});

describe('activation checkpointing', () => {
  it('gives the same gradient as plain backprop, leaking nothing', () => {
    const ids = [[261, 117, 115, 101, 114, 10, 104, 105], [261, 97, 98, 99, 100, 101, 102, 103]];
    const embeds = model.embed(ids);
    const numBefore = tf.memory().numTensors;
    const gradOf = (checkpoint: boolean | undefined): tf.Tensor =>
      tf.tidy(() =>
        tf.grad((x: tf.Tensor) => {
          const out = model.forward({ inputsEmbeds: x as tf.Tensor3D, logitsFor: 'none', checkpoint });
          return tf.sum(tf.square(lastTokenHidden(out.lastHidden)));
        })(embeds),
      );
    const plain = gradOf(false);
    const checkpointed = gradOf(true);
    expect(maxAbsDiff(plain, checkpointed) / tf.tidy(() => tf.max(tf.abs(plain)).dataSync()[0])).toBeLessThan(1e-5);
    tf.dispose([plain, checkpointed]);
    expect(tf.memory().numTensors).toBe(numBefore);
    embeds.dispose();
    expect(() => model.forward({ inputIds: ids, checkpoint: true, allLayers: true })).toThrow(/checkpoint and allLayers/);
  });

  it('defaults to plain backprop on the native backend up to PLAIN_BACKPROP_MAX_TOKENS, else checkpoints', () => {
    expect(checkpointsByDefault('tensorflow', PLAIN_BACKPROP_MAX_TOKENS)).toBe(false);
    expect(checkpointsByDefault('tensorflow', PLAIN_BACKPROP_MAX_TOKENS + 1)).toBe(true);
    expect(checkpointsByDefault('wasm', 8)).toBe(true);
    expect(checkpointsByDefault('cpu', 8)).toBe(true);
  });
});
