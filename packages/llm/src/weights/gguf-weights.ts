/**
 * A GGUF file as a WeightSource: llama.cpp tensor names mapped to HF names, dequantized to float32, and
 * the attention q/k rows put back in HF order.
 *
 * Why the reorder: HF Llama applies RoPE to the two halves of each head (rotate_half), llama.cpp to
 * adjacent pairs. convert_hf_to_gguf.py therefore permutes the rows of q_proj (with n_head) and k_proj
 * (with n_kv_head) for the "llama" architecture:
 *
 *   gguf = hf.reshape(n_head, 2, head_dim / 2, in).swapaxes(1, 2).reshape(out, in)
 *
 * i.e. GGUF row  h·head_dim + 2j + i  holds HF row  h·head_dim + i·head_dim/2 + j  (i ∈ {0,1},
 * j < head_dim/2). We invert it, so the model can use HF's rotate_half RoPE. Qwen2 GGUFs are not permuted
 * (llama.cpp uses NEOX-style rotary for them).
 */
import { expectedWeightShapes, type ModelConfig } from '../config.ts';
import type { GgufFile } from './gguf.ts';
import { ModelFormatError } from './errors.ts';
import { assertFinite, checkConfigAgainstTensors, checkWeightShapes, type WeightInfo, type WeightSource } from './source.ts';

const LAYER_PARTS: Record<string, string> = {
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
};

const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

/** llama.cpp tensor name → HF name, or undefined for tensors the HF model does not have. */
export function hfNameOfGgufTensor(name: string): string | undefined {
  if (GLOBAL_NAMES[name]) return GLOBAL_NAMES[name];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const part = LAYER_PARTS[m[2]];
  return part === undefined ? undefined : `model.layers.${m[1]}.${part}.${m[3]}`;
}

/**
 * Undo convert_hf_to_gguf's rotary permutation of q/k rows. `values` is row-major [rows, cols]
 * (cols = 1 for a bias); rows = numHeads · headDim.
 */
export function unpermuteRotaryRows(values: Float32Array, rows: number, cols: number, numHeads: number): Float32Array {
  const headDim = rows / numHeads;
  const half = headDim / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < numHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let i = 0; i < 2; i++) {
        const src = (h * headDim + 2 * j + i) * cols;
        const dst = (h * headDim + i * half + j) * cols;
        out.set(values.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

export function ggufWeightSource(gguf: GgufFile, config: ModelConfig): WeightSource {
  const ggufNameOf = new Map<string, string>();
  for (const t of gguf.tensors) {
    const hf = hfNameOfGgufTensor(t.name);
    if (hf !== undefined) ggufNameOf.set(hf, t.name);
  }
  const infoOf = (name: string): WeightInfo | undefined => {
    const tensorName = ggufNameOf.get(name);
    const t = tensorName === undefined ? undefined : gguf.tensor(tensorName);
    return t && { shape: [...t.dims].reverse(), storedAs: t.typeName };
  };
  const arch = String(gguf.get('general.architecture'));
  const fields = { numLayers: `${arch}.block_count`, vocabSize: 'vocabulary size', hiddenSize: `${arch}.embedding_length` };
  checkConfigAgainstTensors(config, ggufNameOf.keys(), (name) => infoOf(name)?.shape, gguf.path, fields);
  checkWeightShapes(config, (name) => infoOf(name)?.shape, gguf.path);
  const names = [...expectedWeightShapes(config).keys()];
  const needed = new Set(names);
  const permuted = config.architecture !== 'qwen2';

  return {
    names: () => [...names],
    has: (name) => needed.has(name),
    info(name) {
      const info = infoOf(name);
      if (info === undefined) throw new ModelFormatError(gguf.path, `no weight named "${name}"`);
      return info;
    },
    read(name) {
      const tensorName = ggufNameOf.get(name);
      if (tensorName === undefined || !needed.has(name)) throw new ModelFormatError(gguf.path, `no weight named "${name}"`);
      let values = gguf.readTensorFloat32(tensorName);
      assertFinite(values, name, gguf.path);
      const rotary = /\.self_attn\.(q|k)_proj\.(weight|bias)$/.exec(name);
      if (permuted && rotary) {
        const heads = rotary[1] === 'q' ? config.numHeads : config.numKvHeads;
        const shape = infoOf(name)!.shape;
        values = unpermuteRotaryRows(values, shape[0], shape[1] ?? 1, heads);
      }
      return values;
    },
  };
}
