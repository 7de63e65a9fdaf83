/**
 * Parity on the real Qwen2.5-Coder-0.5B-Instruct (GGUF with Q5_0/Q8_0/Q6_K/Q4_K/F32 tensors, untied output
 * projection, a default system turn in its chat template) against transformers loading the same GGUF in
 * float32: the same suite as SmolLM2's. Needs the model from `node tools/setup/setup.mjs`.
 *
 * On the wasm backend its 630M float32 weights cannot fit the 4 GiB heap (2.2× with XNNPACK's packed
 * copies): there the test checks that loading is refused up front, naming the backend and the limit.
 */
import { describe, expect, it } from 'vitest';
import { initBackend, loadModel, QWEN_ID, requireKnownModel } from '../src/index.ts';
import { describeGoldenParity } from './parity-helpers.ts';

if ((await initBackend()) === 'wasm') {
  describe('Qwen2.5-Coder-0.5B-Instruct on the wasm backend', () => {
    it('is refused before loading: its weights exceed the wasm heap', async () => {
      await expect(loadModel(requireKnownModel(QWEN_ID))).rejects.toThrow(/wasm heap limit of 4 GiB/);
    });
  });
} else {
  describeGoldenParity('Qwen2.5-Coder-0.5B-Instruct', 'qwen2.5-coder-0.5b', () => requireKnownModel(QWEN_ID));
}
