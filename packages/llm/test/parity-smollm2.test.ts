/**
 * Parity on the real SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32 on both sides) against
 * transformers: chat template, token ids, top logits, last hidden state, padded batch, 32-token greedy
 * continuation and the input-embedding gradient. Needs the model from `node tools/setup/setup.mjs`.
 */
import { requireSmolLm2Gguf } from '../src/index.ts';
import { describeGoldenParity } from './parity-helpers.ts';

describeGoldenParity('SmolLM2-135M-Instruct', 'smollm2', requireSmolLm2Gguf);
