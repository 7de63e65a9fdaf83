/**
 * Parity on the real SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32 on both sides) against
 * transformers: chat template, token ids, top logits, last hidden state, padded batch, 32-token greedy
 * continuation and the input-embedding gradient. Needs the model from `npm run setup`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, loadModel, requireSmolLm2Gguf, type ChatModel } from '../src/index.ts';
import { checkForward, checkGradient, GRADIENT_MIN_COSINE, readGolden, RELATIVE_TOLERANCE } from './parity-helpers.ts';

describe('SmolLM2-135M-Instruct matches transformers', () => {
  const golden = readGolden('smollm2');
  let model: ChatModel;
  let tensorsBefore: number;

  beforeAll(async () => {
    model = await loadModel(requireSmolLm2Gguf());
    tensorsBefore = tf.memory().numTensors;
  });
  afterAll(() => model?.dispose());

  it('renders the chat template and tokenizes exactly', () => {
    for (const p of golden.prompts) {
      const text = model.applyChatTemplate(p.messages, { addGenerationPrompt: true });
      expect(text).toBe(p.template_text);
      expect(model.tokenizer.encode(text)).toEqual(p.ids);
    }
  });

  it('forward: top logits and last hidden state within 1e-3 relative, alone and left-padded in a batch', () => {
    for (const batched of [false, true]) {
      const errors = checkForward(model, golden, batched);
      console.info(`smollm2 ${batched ? 'batched' : 'single'}: logits rel err ${errors.logits.toExponential(2)}, hidden rel err ${errors.hidden.toExponential(2)}`);
      expect(errors.logits).toBeLessThan(RELATIVE_TOLERANCE);
      expect(errors.hidden).toBeLessThan(RELATIVE_TOLERANCE);
    }
  });

  it('32-token greedy continuations equal the reference text', async () => {
    // All prompts in one left-padded batch: exercises the KV cache under padding too.
    const result = await model.generate({ inputIds: golden.prompts.map((p) => p.ids), greedy: true, maxNewTokens: 32 });
    golden.prompts.forEach((p, i) => {
      const seq = result.sequences[i][0];
      const ids = seq.finishReason === 'stop_token' ? [...seq.tokenIds, model.config.eosTokenId] : seq.tokenIds;
      expect(ids).toEqual(p.greedy_ids);
      expect(seq.text).toBe(p.greedy_text);
    });
  });

  it('gradient w.r.t. input embeddings: cosine >= 0.999', () => {
    const { cosine, normRatio } = checkGradient(model, golden);
    console.info(`smollm2 gradient: cosine ${cosine.toFixed(7)}, norm ratio ${normRatio.toFixed(6)}`);
    expect(cosine).toBeGreaterThanOrEqual(GRADIENT_MIN_COSINE);
    expect(Math.abs(normRatio - 1)).toBeLessThan(1e-2);
  });

  it('leaves no tensors behind', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
