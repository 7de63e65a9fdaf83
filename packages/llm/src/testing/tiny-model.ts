/**
 * Tiny random Llama-family models for fast unit tests, in the same file formats as real ones:
 *  - an HF directory: config.json + model.safetensors + tokenizer.json + tokenizer_config.json (ChatML
 *    template), and
 *  - a GGUF v3 file (F32, F16 or Q8_0 matrices, llama.cpp tensor names and q/k row order, embedded
 *    byte-level BPE vocabulary and chat template),
 * plus an in-memory WeightSource. Weights come from a seeded RNG, so a (config, seed) pair is one model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type TensorData } from '@dro/artifacts';
import { expectedWeightShapes, type Architecture, type ModelConfig } from '../config.ts';
import type { WeightSource } from '../weights/source.ts';
import { mulberry32 } from '../generate/rng.ts';

export const TINY_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
/** A few merges so BPE merging is exercised (all bytes are single tokens too). */
const TINY_MERGES: [string, string][] = [['Ġ', 't'], ['h', 'e'], ['i', 'n'], ['Ġt', 'he']];
/** 256 byte tokens + merges + special tokens. */
export const TINY_VOCAB_SIZE = 256 + TINY_MERGES.length + TINY_SPECIAL_TOKENS.length;

export const TINY_CHAT_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}" +
  "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  const eos = 256 + TINY_MERGES.length + 2; // <|im_end|>
  return {
    architecture: 'llama' as Architecture,
    vocabSize: TINY_VOCAB_SIZE,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: true,
    attentionBias: false,
    attentionOutputBias: false,
    slidingWindow: null,
    bosTokenId: 256 + TINY_MERGES.length + 1,
    eosTokenId: eos,
    eosTokenIds: [eos],
    padTokenId: 256 + TINY_MERGES.length,
    ...overrides,
  };
}

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Random weights under HF names, HF [out, in] layout. Norm weights near 1, matrices N(0, 0.15²). */
export function randomWeights(config: ModelConfig, seed = 1): Map<string, HostTensor> {
  const rng = mulberry32(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of expectedWeightShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    const isNorm = name.endsWith('norm.weight');
    for (let i = 0; i < size; i++) data[i] = isNorm ? 1 + 0.1 * normal() : 0.15 * normal();
    out.set(name, { shape, data });
  }
  return out;
}

export function memoryWeightSource(tensors: Map<string, HostTensor>): WeightSource {
  const get = (name: string): HostTensor => {
    const t = tensors.get(name);
    if (t === undefined) throw new Error(`no weight "${name}"`);
    return t;
  };
  return {
    names: () => [...tensors.keys()],
    has: (name) => tensors.has(name),
    info: (name) => ({ shape: get(name).shape, storedAs: 'F32' }),
    read: (name) => Float32Array.from(get(name).data),
  };
}

/** GPT-2's reversible byte → printable unicode character map used by byte-level BPE. */
export function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return map;
}

/** Token strings by id: bytes (id = byte value), merged tokens, then special tokens. */
export function tinyTokens(): string[] {
  return [...byteToUnicode(), ...TINY_MERGES.map(([a, b]) => a + b), ...TINY_SPECIAL_TOKENS];
}

export function tinyTokenizerFiles(): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const tokens = tinyTokens();
  const firstSpecial = 256 + TINY_MERGES.length;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: TINY_SPECIAL_TOKENS.map((content, i) => ({
      id: firstSpecial + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: Object.fromEntries(tokens.slice(0, firstSpecial).map((t, id) => [t, id])),
      merges: TINY_MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    add_bos_token: false,
    bos_token: '<|im_start|>',
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 512,
    chat_template: TINY_CHAT_TEMPLATE,
    tokenizer_class: 'GPT2Tokenizer',
  };
  return { tokenizerJson, tokenizerConfig };
}

/** config.json of an HF directory for `c`, as transformers writes it. */
export function hfConfigJson(c: ModelConfig): Record<string, unknown> {
  const archClass = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[c.architecture];
  return {
    architectures: [archClass],
    model_type: c.architecture,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling === null ? null
      : c.ropeScaling.type === 'linear' ? { rope_type: 'linear', factor: c.ropeScaling.factor }
      : {
          rope_type: 'llama3', factor: c.ropeScaling.factor, low_freq_factor: c.ropeScaling.lowFreqFactor,
          high_freq_factor: c.ropeScaling.highFreqFactor, original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
        },
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.architecture === 'llama' ? c.attentionBias : undefined,
    sliding_window: c.slidingWindow,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    torch_dtype: 'float32',
  };
}

/** Write an HF model directory; returns its path. */
export function writeTinyHfModel(dir: string, config: ModelConfig = tinyConfig(), seed = 1): string {
  fs.mkdirSync(dir, { recursive: true });
  const weights = randomWeights(config, seed);
  const tensors: Record<string, TensorData> = {};
  for (const [name, t] of weights) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  fs.writeFileSync(path.join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(config), null, 2));
  const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2));
  return dir;
}

export type TinyGgufType = 'F32' | 'F16' | 'Q8_0';
export { writeTinyGgufModel } from './tiny-gguf.ts';
