/**
 * loadWeights on HF directories: config.json (transformers 4 and 5 styles) + safetensors written by the
 * Python safetensors package (F32, F16) and by @dro/artifacts (BF16), single-file and sharded with an index,
 * tied and untied embeddings, Qwen2 biases, Mistral sliding window.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { float32ToBf16Bits, writeSafetensors } from '@dro/artifacts';
import { configFromHf, expectedWeightShapes, type ModelConfig } from '../src/config.ts';
import { loadWeights } from '../src/weights/load.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BASE_CONFIG = {
  model_type: 'llama',
  vocab_size: 32,
  hidden_size: 8,
  intermediate_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 4,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 128,
  tie_word_embeddings: true,
  rope_parameters: { rope_theta: 50000.0, rope_type: 'default' },
  bos_token_id: 1,
  eos_token_id: [2, 3],
  pad_token_id: null,
  hidden_act: 'silu',
};

/**
 * Writes `names` into one safetensors file with Python's safetensors (numpy), float32 or float16 chosen by
 * name, from seeded values; returns the float32 values Python decodes back (the expected reads).
 */
function pythonSafetensors(file: string, tensors: Record<string, { shape: number[]; dtype: 'float32' | 'float16' }>): Record<string, number[]> {
  const script = `
import json, sys, numpy as np
from safetensors.numpy import save_file
spec = json.loads(sys.argv[2])
rng = np.random.default_rng(7)
out, expected = {}, {}
for name, t in sorted(spec.items()):
    out[name] = (rng.standard_normal(t["shape"]) * 0.3).astype(t["dtype"])
    expected[name] = [float(v) for v in out[name].astype(np.float32).ravel()]
save_file(out, sys.argv[1])
print(json.dumps(expected))
`;
  return JSON.parse(execFileSync('python3', ['-c', script, file, JSON.stringify(tensors)], { encoding: 'utf8' }));
}

function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s / 2147483648 - 0.5) * 0.6;
  }
  return out;
}

function bf16Decoded(values: Float32Array): number[] {
  return Array.from(float32ToBf16Bits(values), (bits) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0]);
}

function makeDir(name: string, config: object): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('loadWeights on HF directories', () => {
  it('sharded (index.json), tied embeddings, F32/F16 from Python and BF16 from @dro/artifacts', () => {
    const dir = makeDir('sharded', BASE_CONFIG);
    const config = configFromHf(BASE_CONFIG, 'config.json');
    const shapes = expectedWeightShapes(config);
    const names = [...shapes.keys()];
    const layer1 = names.filter((n) => n.startsWith('model.layers.1.'));
    const pyNames = names.filter((n) => !layer1.includes(n));
    const expected = pythonSafetensors(
      path.join(dir, 'model-00001-of-00002.safetensors'),
      Object.fromEntries(pyNames.map((n) => [n, { shape: shapes.get(n)!, dtype: n.includes('embed') ? 'float32' : 'float16' }])),
    );
    const bf16: Record<string, { dtype: 'BF16'; shape: number[]; data: Uint16Array }> = {};
    layer1.forEach((n, i) => {
      const values = seeded(shapes.get(n)!.reduce((a, b) => a * b, 1), i + 1);
      bf16[n] = { dtype: 'BF16', shape: shapes.get(n)!, data: float32ToBf16Bits(values) };
      expected[n] = bf16Decoded(values);
    });
    fs.writeFileSync(path.join(dir, 'model-00002-of-00002.safetensors'), writeSafetensors(bf16));
    const weightMap = Object.fromEntries(names.map((n) => [n, layer1.includes(n) ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors']));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));

    const loaded = loadWeights(dir);
    expect(loaded.format).toBe('safetensors');
    expect(loaded.config.ropeTheta).toBe(50000);
    expect(loaded.config.eosTokenIds).toEqual([2, 3]);
    expect(loaded.config.tieWordEmbeddings).toBe(true);
    expect(loaded.tensors.names().sort()).toEqual(names.sort());
    expect(loaded.tensors.has('lm_head.weight')).toBe(false);
    expect(loaded.tensors.info('model.layers.1.mlp.up_proj.weight')).toEqual({ shape: [16, 8], storedAs: 'BF16' });
    expect(loaded.tensors.info('model.layers.0.mlp.up_proj.weight').storedAs).toBe('F16');
    for (const n of names) expect(Array.from(loaded.tensors.read(n)), n).toEqual(expected[n]);
    expect(loaded.files.map((f) => path.basename(f)).sort()).toEqual(
      ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json'],
    );
    expect(loaded.digest).toMatch(/^[0-9a-f]{64}$/);
    // The digest covers the config: change it and the digest changes.
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...BASE_CONFIG, rms_norm_eps: 1e-5 }));
    expect(loadWeights(dir).digest).not.toBe(loaded.digest);
  });

  it('single model.safetensors, untied lm_head, Qwen2 q/k/v biases', () => {
    const qwen = { ...BASE_CONFIG, model_type: 'qwen2', tie_word_embeddings: false, use_sliding_window: false, sliding_window: 4096 };
    const dir = makeDir('qwen2', qwen);
    const config = configFromHf(qwen, 'config.json');
    expect(config).toMatchObject({ architecture: 'qwen2', attentionBias: true, attentionOutputBias: false, slidingWindow: null });
    const shapes = expectedWeightShapes(config);
    expect(shapes.get('model.layers.0.self_attn.k_proj.bias')).toEqual([4]);
    expect(shapes.get('lm_head.weight')).toEqual([32, 8]);
    const expected = pythonSafetensors(
      path.join(dir, 'model.safetensors'),
      Object.fromEntries([...shapes].map(([n, shape]) => [n, { shape, dtype: 'float32' }])),
    );
    const loaded = loadWeights(dir);
    expect(loaded.tensors.names()).toContain('lm_head.weight');
    for (const n of shapes.keys()) expect(Array.from(loaded.tensors.read(n)), n).toEqual(expected[n]);
  });

  it('parses transformers-4 style configs: rope_theta + llama3 rope_scaling, Mistral sliding window', () => {
    const llama3 = configFromHf(
      {
        ...BASE_CONFIG,
        rope_parameters: undefined,
        rope_theta: 500000,
        rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      },
      'config.json',
    );
    expect(llama3.ropeTheta).toBe(500000);
    expect(llama3.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    const mistral: ModelConfig = configFromHf({ ...BASE_CONFIG, model_type: 'mistral', head_dim: 0, sliding_window: 4096 }, 'config.json');
    expect(mistral).toMatchObject({ architecture: 'mistral', headDim: 4, slidingWindow: 4096, attentionBias: false });
    const linear = configFromHf({ ...BASE_CONFIG, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 10000 } }, 'c.json');
    expect(linear.ropeScaling).toEqual({ type: 'linear', factor: 2 });
    const llamaBias = configFromHf({ ...BASE_CONFIG, attention_bias: true }, 'c.json');
    expect(llamaBias).toMatchObject({ attentionBias: true, attentionOutputBias: true });
  });
});
