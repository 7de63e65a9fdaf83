/**
 * ModelConfig: the architecture hyper-parameters the runtime needs, read from an HF config.json
 * (transformers 4 `rope_theta`/`rope_scaling` or transformers 5 `rope_parameters`) or from GGUF metadata.
 */
import type { GgufFile } from './weights/gguf.ts';
import { ModelFormatError } from './weights/errors.ts';

export type Architecture = 'llama' | 'mistral' | 'qwen2';
export const ARCHITECTURES: readonly Architecture[] = ['llama', 'mistral', 'qwen2'];

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** null = plain RoPE. */
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  /** lm_head shares embed_tokens' weights (the WeightSource then has no separate lm_head.weight). */
  tieWordEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2; Llama with attention_bias). */
  attentionBias: boolean;
  /** o_proj has a bias (Llama with attention_bias; not Qwen2). */
  attentionOutputBias: boolean;
  /** Mistral-style sliding-window attention width, or null for full attention. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** The first end-of-sequence id (see eosTokenIds for all of them). */
  eosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}

type Json = Record<string, unknown>;

/** Reads typed fields of one config object and names the file and field in every error. */
class FieldReader {
  constructor(
    private readonly obj: Json,
    private readonly file: string,
    private readonly prefix = '',
  ) {}

  private fail(field: string, expected: string, value: unknown): never {
    throw new ModelFormatError(this.file, `field "${this.prefix}${field}" must be ${expected}, got ${JSON.stringify(value)}`);
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined && this.obj[field] !== null;
  }

  positiveInt(field: string, fallback?: number): number {
    const v = this.obj[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) this.fail(field, 'a positive integer', this.obj[field]);
    return v as number;
  }

  positiveNumber(field: string, fallback?: number): number {
    const v = this.obj[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(field, 'a positive number', this.obj[field]);
    return v as number;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.obj[field] ?? fallback;
    if (typeof v !== 'boolean') this.fail(field, 'true or false', v);
    return v as boolean;
  }

  tokenIds(field: string): number[] {
    const v = this.obj[field];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((id) => Number.isInteger(id) && (id as number) >= 0)) this.fail(field, 'a token id or a list of them', v);
    return list as number[];
  }
}

function checkShapes(c: ModelConfig, file: string): ModelConfig {
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new ModelFormatError(file, `num heads ${c.numHeads} is not a multiple of num kv heads ${c.numKvHeads}`);
  }
  if (!Number.isInteger(c.headDim) || c.headDim <= 0) {
    throw new ModelFormatError(file, `head dim ${c.headDim} (hidden size / heads unless given) must be a positive integer`);
  }
  if (c.headDim % 2 !== 0) throw new ModelFormatError(file, `head dim ${c.headDim} must be even for rotary embeddings`);
  for (const id of [c.bosTokenId, c.padTokenId, ...c.eosTokenIds]) {
    if (id !== null && id >= c.vocabSize) throw new ModelFormatError(file, `special token id ${id} is outside the vocabulary (${c.vocabSize})`);
  }
  return c;
}

function ropeScalingFromHf(raw: unknown, file: string, field: string): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object') throw new ModelFormatError(file, `field "${field}" must be an object`);
  const obj = raw as Json;
  const r = new FieldReader(obj, file, `${field}.`);
  const type = obj.rope_type ?? obj.type ?? 'default';
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: r.positiveNumber('factor') };
    case 'llama3':
      return {
        type: 'llama3',
        factor: r.positiveNumber('factor'),
        lowFreqFactor: r.positiveNumber('low_freq_factor'),
        highFreqFactor: r.positiveNumber('high_freq_factor'),
        originalMaxPositionEmbeddings: r.positiveInt('original_max_position_embeddings'),
      };
    default:
      throw new ModelFormatError(file, `${field}.rope_type "${String(type)}" is not supported (default, linear, llama3)`);
  }
}

/** ModelConfig from the parsed config.json of an HF model directory (`file` names it in errors). */
export function configFromHf(json: unknown, file: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFormatError(file, 'expected a JSON object');
  const obj = json as Json;
  const modelType = obj.model_type;
  if (!ARCHITECTURES.includes(modelType as Architecture)) {
    throw new ModelFormatError(file, `unknown architecture: model_type ${JSON.stringify(modelType)} (supported: ${ARCHITECTURES.join(', ')})`);
  }
  const architecture = modelType as Architecture;
  const r = new FieldReader(obj, file);
  const hiddenAct = obj.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') throw new ModelFormatError(file, `field "hidden_act" must be "silu", got ${JSON.stringify(hiddenAct)}`);
  if (obj.mlp_bias === true) throw new ModelFormatError(file, 'field "mlp_bias": MLP biases are not supported');
  const hiddenSize = r.positiveInt('hidden_size');
  const numHeads = r.positiveInt('num_attention_heads');
  // transformers 5 nests rope settings under rope_parameters; transformers 4 has rope_theta + rope_scaling.
  const ropeParameters = (obj.rope_parameters ?? null) as Json | null;
  const ropeTheta = ropeParameters?.rope_theta ?? obj.rope_theta ?? 10000;
  if (typeof ropeTheta !== 'number' || !(ropeTheta > 0)) throw new ModelFormatError(file, `field "rope_theta" must be a positive number, got ${JSON.stringify(ropeTheta)}`);
  const ropeScaling = ropeParameters
    ? ropeScalingFromHf(ropeParameters, file, 'rope_parameters')
    : ropeScalingFromHf(obj.rope_scaling, file, 'rope_scaling');
  const explicitBias = r.bool('attention_bias', false);
  let slidingWindow: number | null = null;
  if (architecture === 'mistral' && r.has('sliding_window')) slidingWindow = r.positiveInt('sliding_window');
  if (architecture === 'qwen2' && obj.use_sliding_window === true) slidingWindow = r.positiveInt('sliding_window');
  const eosTokenIds = r.tokenIds('eos_token_id');
  return checkShapes(
    {
      architecture,
      vocabSize: r.positiveInt('vocab_size'),
      hiddenSize,
      intermediateSize: r.positiveInt('intermediate_size'),
      numLayers: r.positiveInt('num_hidden_layers'),
      numHeads,
      numKvHeads: r.positiveInt('num_key_value_heads', numHeads),
      // head_dim 0/null means "hidden_size / heads" (Mistral's config writes 0).
      headDim: obj.head_dim ? r.positiveInt('head_dim') : hiddenSize / numHeads,
      rmsNormEps: r.positiveNumber('rms_norm_eps', 1e-6),
      ropeTheta,
      ropeScaling,
      maxPositionEmbeddings: r.positiveInt('max_position_embeddings', 2048),
      tieWordEmbeddings: r.bool('tie_word_embeddings', false),
      attentionBias: architecture === 'qwen2' || explicitBias,
      attentionOutputBias: architecture !== 'qwen2' && explicitBias,
      slidingWindow,
      bosTokenId: r.tokenIds('bos_token_id')[0] ?? null,
      eosTokenId: eosTokenIds[0] ?? null,
      eosTokenIds,
      padTokenId: r.tokenIds('pad_token_id')[0] ?? null,
    },
    file,
  );
}

/** GGUF general.architecture → ours. Mistral GGUFs are written as "llama". */
const GGUF_ARCHITECTURES: Record<string, Architecture> = { llama: 'llama', qwen2: 'qwen2' };

/** ModelConfig from GGUF metadata (keys `<arch>.*`, `tokenizer.ggml.*`) and the tensor list. */
export function configFromGguf(gguf: GgufFile): ModelConfig {
  const file = gguf.path;
  const arch = gguf.get('general.architecture');
  const architecture = typeof arch === 'string' ? GGUF_ARCHITECTURES[arch] : undefined;
  if (architecture === undefined) {
    throw new ModelFormatError(file, `unknown architecture: general.architecture ${JSON.stringify(arch)} (supported: ${Object.keys(GGUF_ARCHITECTURES).join(', ')})`);
  }
  const meta: Json = {};
  for (const [key, value] of gguf.metadata) {
    if (key.startsWith(`${arch}.`)) meta[key.slice(String(arch).length + 1)] = value;
  }
  const r = new FieldReader(meta, file, `${arch}.`);
  const hiddenSize = r.positiveInt('embedding_length');
  const numHeads = r.positiveInt('attention.head_count');
  const tokens = gguf.get('tokenizer.ggml.tokens');
  const embedding = gguf.tensor('token_embd.weight');
  const vocabSize = r.positiveInt('vocab_size', Array.isArray(tokens) ? tokens.length : embedding?.dims[1]);
  const scalingType = meta['rope.scaling.type'];
  let ropeScaling: RopeScaling | null = null;
  if (scalingType === 'linear') ropeScaling = { type: 'linear', factor: r.positiveNumber('rope.scaling.factor') };
  else if (scalingType !== undefined && scalingType !== 'none') {
    throw new ModelFormatError(file, `${arch}.rope.scaling.type "${String(scalingType)}" is not supported`);
  }
  if (gguf.tensor('rope_freqs.weight')) {
    throw new ModelFormatError(file, 'rope_freqs.weight (llama3-style rope scaling baked into GGUF) is not supported; use the HF checkpoint');
  }
  const t = new FieldReader(Object.fromEntries(gguf.metadata), file);
  const id = (key: string): number | null => (t.has(key) ? t.tokenIds(key)[0] ?? null : null);
  const eos = id('tokenizer.ggml.eos_token_id');
  return checkShapes(
    {
      architecture,
      vocabSize,
      hiddenSize,
      intermediateSize: r.positiveInt('feed_forward_length'),
      numLayers: r.positiveInt('block_count'),
      numHeads,
      numKvHeads: r.positiveInt('attention.head_count_kv', numHeads),
      headDim: r.positiveInt('attention.key_length', hiddenSize / numHeads),
      rmsNormEps: r.positiveNumber('attention.layer_norm_rms_epsilon', 1e-5),
      ropeTheta: r.positiveNumber('rope.freq_base', 10000),
      ropeScaling,
      maxPositionEmbeddings: r.positiveInt('context_length', 2048),
      tieWordEmbeddings: gguf.tensor('output.weight') === undefined,
      attentionBias: gguf.tensor('blk.0.attn_q.bias') !== undefined,
      attentionOutputBias: gguf.tensor('blk.0.attn_output.bias') !== undefined,
      slidingWindow: null,
      bosTokenId: id('tokenizer.ggml.bos_token_id'),
      eosTokenId: eos,
      eosTokenIds: eos === null ? [] : [eos],
      padTokenId: id('tokenizer.ggml.padding_token_id'),
    },
    file,
  );
}

/** The HF-layout shape every weight of the model must have, keyed by HF tensor name. */
export function expectedWeightShapes(c: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  shapes.set('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  shapes.set('model.norm.weight', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [c.hiddenSize]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [q, c.hiddenSize]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kv, c.hiddenSize]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kv, c.hiddenSize]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [c.hiddenSize, q]);
    if (c.attentionBias) {
      shapes.set(`${p}.self_attn.q_proj.bias`, [q]);
      shapes.set(`${p}.self_attn.k_proj.bias`, [kv]);
      shapes.set(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    if (c.attentionOutputBias) shapes.set(`${p}.self_attn.o_proj.bias`, [c.hiddenSize]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    shapes.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    shapes.set(`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]);
  }
  return shapes;
}
