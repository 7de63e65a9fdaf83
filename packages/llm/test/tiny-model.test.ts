/**
 * The tiny random model generator: the same weights written as an HF directory and as GGUF (F32, F16,
 * Q8_0) load through the real loaders and give the same model (exactly for F32, within the storage
 * type's rounding otherwise); tokenizer and chat template survive both formats.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, loadModel, type ChatModel } from '../src/index.ts';
import { tinyConfig, writeTinyGgufModel, writeTinyHfModel } from '../src/testing/tiny-model.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-tiny-'));
// Qwen2-style biases and an untied head exercise every optional tensor in both writers.
const config = tinyConfig({ architecture: 'qwen2', attentionBias: true, tieWordEmbeddings: false });
let hf: ChatModel;
let ids: number[];
let reference: Float32Array;

beforeAll(async () => {
  hf = await loadModel(writeTinyHfModel(path.join(tmp, 'hf'), config, 11));
  ids = hf.encodeChat([{ role: 'user', content: 'hi there, the inn' }]);
  const out = hf.forward({ inputIds: [ids] });
  reference = out.logits.dataSync() as Float32Array;
  tf.dispose([out.logits, out.lastHidden]);
});
afterAll(() => {
  hf.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

describe('tiny random models', () => {
  it('HF directory: config, tokenizer (with merges) and ChatML template load', () => {
    expect(hf.config).toMatchObject({ architecture: 'qwen2', hiddenSize: 64, numLayers: 2, numKvHeads: 2, attentionBias: true, tieWordEmbeddings: false });
    expect(hf.applyChatTemplate([{ role: 'user', content: 'x' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(hf.tokenizer.encode(' the')).toEqual([259]); // merged: Ġ+t, then Ġt+he
    expect(hf.tokenizer.decode(ids)).toBe(hf.applyChatTemplate([{ role: 'user', content: 'hi there, the inn' }], { addGenerationPrompt: true }));
  });

  // Q8_0 keeps ~8 bits per weight: logits move by ~1e-2 relative on this random model.
  it.each([
    ['F32', 1e-6],
    ['F16', 2e-3],
    ['Q8_0', 5e-2],
  ] as const)('GGUF %s gives the HF model (relative logit error < %s)', async (type, tolerance) => {
    const gguf = await loadModel(writeTinyGgufModel(path.join(tmp, `tiny-${type}.gguf`), type, config, 11));
    try {
      expect(gguf.config).toMatchObject({ architecture: 'qwen2', attentionBias: true, tieWordEmbeddings: false });
      expect(gguf.encodeChat([{ role: 'user', content: 'hi there, the inn' }])).toEqual(ids);
      const out = gguf.forward({ inputIds: [ids] });
      const err = relativeError(out.logits.dataSync() as Float32Array, reference);
      tf.dispose([out.logits, out.lastHidden]);
      expect(err).toBeLessThan(tolerance);
      if (type !== 'F32') expect(err).toBeGreaterThan(0); // the storage type really was used
    } finally {
      gguf.dispose();
    }
  });
});
