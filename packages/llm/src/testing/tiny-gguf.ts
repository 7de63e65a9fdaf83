/**
 * Tiny test models as GGUF files (through the fixture writer in weights/gguf-writer.ts): metadata as
 * llama.cpp's converter writes it, matrices as F32 / F16 / Q8_0 (norms always F32), q/k rows permuted
 * into llama.cpp's rotary order for "llama".
 */
import fs from 'node:fs';
import { float32ToF16Bits } from '@dro/artifacts';
import type { ModelConfig } from '../config.ts';
import { gguf, writeGguf, type GgufTypedValue } from '../weights/gguf-writer.ts';
import { randomWeights, tinyConfig, tinyTokens, TINY_CHAT_TEMPLATE, type HostTensor, type TinyGgufType } from './tiny-model.ts';

const ALIGNMENT = 32;
const TYPE_ID: Record<TinyGgufType, number> = { F32: 0, F16: 1, Q8_0: 8 };
/** HF q/k rows → llama.cpp's interleaved rotary order (inverse of the reader's unpermute). */
function permuteRotaryRows(values: Float32Array, rows: number, cols: number, numHeads: number): Float32Array {
  const headDim = rows / numHeads;
  const half = headDim / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < numHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let i = 0; i < 2; i++) {
        const hfRow = (h * headDim + i * half + j) * cols;
        out.set(values.subarray(hfRow, hfRow + cols), (h * headDim + 2 * j + i) * cols);
      }
    }
  }
  return out;
}

/** Q8_0: blocks of 32 values → f16 scale (max|x| / 127) + 32 int8. */
function quantizeQ8_0(values: Float32Array): Buffer {
  const blocks = values.length / 32;
  const out = Buffer.alloc(blocks * 34);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]));
    const d = amax / 127;
    const id = d === 0 ? 0 : 1 / d;
    out.writeUInt16LE(float32ToF16Bits(Float32Array.of(d))[0], b * 34);
    for (let i = 0; i < 32; i++) out.writeInt8(Math.round(values[b * 32 + i] * id), b * 34 + 2 + i);
  }
  return out;
}

const LAYER_PARTS: Record<string, string> = {
  'input_layernorm': 'attn_norm', 'post_attention_layernorm': 'ffn_norm',
  'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
};

function ggufName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  if (!m || !LAYER_PARTS[m[2]]) throw new Error(`no GGUF name for ${hf}`);
  return `blk.${m[1]}.${LAYER_PARTS[m[2]]}.${m[3]}`;
}

/**
 * Write a GGUF file for `config` with random weights (same weights as writeTinyHfModel for the same seed)
 * and return its path. Matrices use `type`; 1-D tensors stay F32 like llama.cpp's converter.
 */
export function writeTinyGgufModel(file: string, type: TinyGgufType = 'F32', config: ModelConfig = tinyConfig(), seed = 1, weights?: Map<string, HostTensor>): string {
  const arch = config.architecture === 'qwen2' ? 'qwen2' : 'llama';
  const tensors = weights ?? randomWeights(config, seed);
  const tokens = tinyTokens();
  const firstSpecial = tokens.length - 3;
  const meta: [string, GgufTypedValue][] = [
    ['general.architecture', gguf.str(arch)],
    ['general.name', gguf.str('tiny-random')],
    [`${arch}.context_length`, gguf.u32(config.maxPositionEmbeddings)],
    [`${arch}.embedding_length`, gguf.u32(config.hiddenSize)],
    [`${arch}.block_count`, gguf.u32(config.numLayers)],
    [`${arch}.feed_forward_length`, gguf.u32(config.intermediateSize)],
    [`${arch}.attention.head_count`, gguf.u32(config.numHeads)],
    [`${arch}.attention.head_count_kv`, gguf.u32(config.numKvHeads)],
    [`${arch}.attention.key_length`, gguf.u32(config.headDim)],
    [`${arch}.attention.value_length`, gguf.u32(config.headDim)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(config.rmsNormEps)],
    [`${arch}.rope.freq_base`, gguf.f32(config.ropeTheta)],
    [`${arch}.vocab_size`, gguf.u32(config.vocabSize)],
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str('default')],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.token_type', gguf.i32s(tokens.map((_, i) => (i >= firstSpecial ? 3 : 1)))],
    ['tokenizer.ggml.merges', gguf.strings(['Ġ t', 'h e', 'i n', 'Ġt he'])],
    ['tokenizer.ggml.bos_token_id', gguf.u32(config.bosTokenId ?? firstSpecial + 1)],
    ['tokenizer.ggml.eos_token_id', gguf.u32(config.eosTokenId ?? firstSpecial + 2)],
    ['tokenizer.ggml.padding_token_id', gguf.u32(config.padTokenId ?? firstSpecial)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(false)],
    ['tokenizer.chat_template', gguf.str(TINY_CHAT_TEMPLATE)],
  ];
  const entries = [...tensors].map(([hf, t]) => {
    let data = t.data;
    const rows = t.shape[0];
    const cols = t.shape.length === 2 ? t.shape[1] : 1;
    // llama.cpp permutes q/k rows for its interleaved rope on "llama" GGUFs; qwen2 GGUFs keep HF order.
    if (arch === 'llama' && /q_proj/.test(hf)) data = permuteRotaryRows(data, rows, cols, config.numHeads);
    if (arch === 'llama' && /k_proj/.test(hf)) data = permuteRotaryRows(data, rows, cols, config.numKvHeads);
    const tensorType: TinyGgufType = t.shape.length === 1 ? 'F32' : type;
    const bytes = tensorType === 'F32' ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : tensorType === 'F16' ? Buffer.from(float32ToF16Bits(data).buffer) : quantizeQ8_0(data);
    return { name: ggufName(hf), dims: [...t.shape].reverse(), type: TYPE_ID[tensorType], data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  });
  fs.writeFileSync(file, writeGguf({ metadata: Object.fromEntries(meta), tensors: entries, alignment: ALIGNMENT }));
  return file;
}
