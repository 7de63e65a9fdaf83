/**
 * Parity on the real Qwen2.5-Coder-0.5B-Instruct (GGUF with Q5_0/Q8_0/Q6_K/Q4_K/F32 tensors, untied output
 * projection, a default system turn in its chat template) against transformers loading the same GGUF in
 * float32: the same suite as SmolLM2's. Needs the model from `node tools/setup/setup.mjs`.
 */
import { QWEN_ID, requireKnownModel } from '../src/index.ts';
import { describeGoldenParity } from './parity-helpers.ts';

describeGoldenParity('Qwen2.5-Coder-0.5B-Instruct', 'qwen2.5-coder-0.5b', () => requireKnownModel(QWEN_ID));
