/**
 * Parity on tiny random Llama (llama3 rope scaling, untied head), Mistral (sliding window 8, shorter
 * than the prompts) and Qwen2 (q/k/v biases, linear rope scaling) checkpoints saved by transformers,
 * against goldens from tools/reference/golden_model.py.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, loadModel, type ChatModel } from '../src/index.ts';
import { checkForward, checkGradient, FIXTURES, GRADIENT_MIN_COSINE, readGolden, RELATIVE_TOLERANCE } from './parity-helpers.ts';

describe.each(['tiny-llama', 'tiny-mistral', 'tiny-qwen2'])('%s matches transformers', (name) => {
  const golden = readGolden(name);
  let model: ChatModel;
  let tensorsBefore: number;

  beforeAll(async () => {
    model = await loadModel(path.join(FIXTURES, name));
    tensorsBefore = tf.memory().numTensors;
  });
  afterAll(() => model.dispose());

  it('has the architecture the fixture claims', () => {
    expect(model.config.architecture).toBe(name.replace('tiny-', ''));
  });

  it('renders the chat template and tokenizes exactly', () => {
    for (const p of golden.prompts) {
      const text = model.applyChatTemplate(p.messages, { addGenerationPrompt: true });
      expect(text).toBe(p.template_text);
      expect(model.tokenizer.encode(text)).toEqual(p.ids);
    }
  });

  it('forward: top logits and last hidden state within 1e-3 relative, one prompt at a time', () => {
    const errors = checkForward(model, golden, false);
    console.info(`${name} single: logits rel err ${errors.logits.toExponential(2)}, hidden rel err ${errors.hidden.toExponential(2)}`);
    expect(errors.logits).toBeLessThan(RELATIVE_TOLERANCE);
    expect(errors.hidden).toBeLessThan(RELATIVE_TOLERANCE);
  });

  it('forward: the same under left padding in one batch', () => {
    const errors = checkForward(model, golden, true);
    console.info(`${name} batched: logits rel err ${errors.logits.toExponential(2)}, hidden rel err ${errors.hidden.toExponential(2)}`);
    expect(errors.logits).toBeLessThan(RELATIVE_TOLERANCE);
    expect(errors.hidden).toBeLessThan(RELATIVE_TOLERANCE);
  });

  it('greedy continuation equals the reference token for token', async () => {
    for (const p of golden.prompts) {
      const result = await model.generate({ inputIds: [p.ids], greedy: true, maxNewTokens: 32 });
      const seq = result.sequences[0][0];
      const ids = seq.finishReason === 'stop_token' ? [...seq.tokenIds, model.config.eosTokenId] : seq.tokenIds;
      expect(ids).toEqual(p.greedy_ids);
      expect(seq.text).toBe(p.greedy_text);
    }
  });

  it('gradient w.r.t. input embeddings (checkpointed): cosine >= 0.999', () => {
    const { cosine, normRatio } = checkGradient(model, golden, true);
    console.info(`${name} gradient: cosine ${cosine.toFixed(7)}, norm ratio ${normRatio.toFixed(6)}`);
    expect(cosine).toBeGreaterThanOrEqual(GRADIENT_MIN_COSINE);
    expect(Math.abs(normRatio - 1)).toBeLessThan(1e-2);
  });

  it('gradient with plain backprop (checkpoint: false): cosine >= 0.999', () => {
    const { cosine, normRatio } = checkGradient(model, golden, false);
    expect(cosine).toBeGreaterThanOrEqual(GRADIENT_MIN_COSINE);
    expect(Math.abs(normRatio - 1)).toBeLessThan(1e-2);
  });

  it('leaves no tensors behind', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
