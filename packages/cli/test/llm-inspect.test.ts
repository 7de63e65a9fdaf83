/** `dro llm inspect` end to end: the real SmolLM2 GGUF, an HF directory, and bad input (exit ≠ 0). */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '@dro/artifacts';
import { requireSmolLm2Gguf } from '@dro/llm/weights';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-inspect-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dro(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dro llm inspect', () => {
  it('summarises the SmolLM2 GGUF as text and as JSON', () => {
    const model = requireSmolLm2Gguf();
    const json = dro('llm', 'inspect', '--model', model, '--json');
    expect(json.code, json.stderr).toBe(0);
    const summary = JSON.parse(json.stdout);
    expect(summary).toMatchObject({
      format: 'gguf',
      architecture: 'llama',
      numLayers: 30,
      hiddenSize: 576,
      numHeads: 9,
      numKvHeads: 3,
      vocabSize: 49152,
      quantTypes: { Q4_1: 210, F32: 61, Q8_0: 1 },
      chatTemplate: true,
      tieWordEmbeddings: true,
    });
    // 49152·576 embeddings + 30 layers · (4 attention + 3 MLP matrices + 2 norms) + final norm.
    const perLayer = 576 * 576 * 2 + 192 * 576 * 2 + 3 * 576 * 1536 + 2 * 576;
    expect(summary.parameterCount).toBe(49152 * 576 + 30 * perLayer + 576);
    expect(summary.digest).toMatch(/^[0-9a-f]{64}$/);
    const text = dro('llm', 'inspect', '--model', model);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/architecture\s+llama/);
    expect(text.stdout).toMatch(/weight types\s+Q4_1×210, F32×61, Q8_0×1/);
    expect(text.stdout).toMatch(/parameters\s+134,515,008 \(134\.5M\)/);
  });

  it('summarises an HF directory (safetensors, BF16, with a chat template)', () => {
    const dir = path.join(tmp, 'hf');
    fs.mkdirSync(dir);
    const config = { model_type: 'qwen2', vocab_size: 16, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2 };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{{ messages[0].content }}' }));
    const shapes: Record<string, number[]> = {
      'model.embed_tokens.weight': [16, 8], 'model.norm.weight': [8], 'lm_head.weight': [16, 8],
      'model.layers.0.input_layernorm.weight': [8], 'model.layers.0.post_attention_layernorm.weight': [8],
      'model.layers.0.self_attn.q_proj.weight': [8, 8], 'model.layers.0.self_attn.q_proj.bias': [8],
      'model.layers.0.self_attn.k_proj.weight': [8, 8], 'model.layers.0.self_attn.k_proj.bias': [8],
      'model.layers.0.self_attn.v_proj.weight': [8, 8], 'model.layers.0.self_attn.v_proj.bias': [8],
      'model.layers.0.self_attn.o_proj.weight': [8, 8],
      'model.layers.0.mlp.gate_proj.weight': [12, 8], 'model.layers.0.mlp.up_proj.weight': [12, 8], 'model.layers.0.mlp.down_proj.weight': [8, 12],
    };
    const tensors = Object.fromEntries(
      Object.entries(shapes).map(([n, s]) => [n, { dtype: 'BF16' as const, shape: s, data: new Uint16Array(s.reduce((a, b) => a * b, 1)) }]),
    );
    fs.writeFileSync(path.join(dir, 'model.safetensors'), writeSafetensors(tensors));
    const r = dro('llm', 'inspect', '--model', dir, '--json');
    expect(r.code, r.stderr).toBe(0);
    const expectedParams = Object.values(shapes).reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      format: 'safetensors', architecture: 'qwen2', quantTypes: { BF16: 15 }, parameterCount: expectedParams, chatTemplate: true, tieWordEmbeddings: false,
    });
  });

  it('bad input: a clear message naming the file and exit code 1; a missing option exits 2', () => {
    const bogus = path.join(tmp, 'bogus.gguf');
    fs.writeFileSync(bogus, 'definitely not a model');
    const r = dro('llm', 'inspect', '--model', bogus);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bogus}: not a GGUF file`);
    const missing = dro('llm', 'inspect');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing required option --model');
  });
});
