/**
 * Bad model files → a ModelFormatError (a BadInputError) that names the file and the problem; never a
 * crash, a hang or a huge allocation. One test per case, on real files written to a temp dir.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '@dro/artifacts';
import { loadTokenizer } from '../src/tokenizer/tokenizer.ts';
import { requireSmolLm2Gguf } from '../src/weights/assets.ts';
import { GgmlType } from '../src/weights/dequant.ts';
import { GgufFile } from '../src/weights/gguf.ts';
import { gguf } from '../src/weights/gguf-writer.ts';
import { loadWeights } from '../src/weights/load.ts';
import { expectBadInput, f32, offsetAfter, scratchDir, tinyGguf } from './bad-input-helpers.ts';

const { tmp, writeFile, next } = scratchDir('dro-bad-');

describe('the valid fixture loads (so every failure below is caused by its one defect)', () => {
  it('tiny GGUF → config, weights, tokenizer', () => {
    const file = writeFile(tinyGguf());
    const loaded = loadWeights(file);
    expect(loaded.config).toMatchObject({ hiddenSize: 8, numHeads: 2, numKvHeads: 1, headDim: 4, vocabSize: 8, tieWordEmbeddings: true });
    for (const name of loaded.tensors.names()) expect(loaded.tensors.read(name).length).toBeGreaterThan(0);
    // BPE applies the best-ranked merge first: "Ġ a" → "Ġa", after which "a b" no longer applies.
    expect(loadTokenizer(file).encode(' abc')).toEqual([5, 2, 3]);
    expect(loadTokenizer(file).encode('abc')).toEqual([7]);
  });
});

describe('corrupt GGUF', () => {
  it('bad magic', () => {
    const bytes = tinyGguf();
    bytes.set(Buffer.from('GGML'), 0);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /not a GGUF file/);
  });

  it('empty file', () => {
    const file = writeFile(new Uint8Array(0));
    expectBadInput(() => loadWeights(file), file, /not a GGUF file/);
  });

  it('unsupported version', () => {
    const bytes = tinyGguf();
    new DataView(bytes.buffer).setUint32(4, 1, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /GGUF version 1 is not supported/);
  });

  it('truncated inside the metadata', () => {
    const file = writeFile(tinyGguf().subarray(0, 700));
    expectBadInput(() => loadWeights(file), file, /file ends at byte 700 \(truncated\?\)/);
  });

  it('absurd kv_count / tensor_count are refused before allocating', () => {
    const kv = tinyGguf();
    new DataView(kv.buffer).setBigUint64(16, 1n << 40n, true);
    const kvFile = writeFile(kv);
    expectBadInput(() => loadWeights(kvFile), kvFile, /kv_count 1099511627776 cannot fit/);
    const tensors = tinyGguf();
    new DataView(tensors.buffer).setBigUint64(8, 1n << 50n, true);
    const tensorsFile = writeFile(tensors);
    expectBadInput(() => loadWeights(tensorsFile), tensorsFile, /tensor_count \d+ cannot fit/);
  });

  it('metadata string length past the end of the file', () => {
    const bytes = tinyGguf();
    // The value of general.architecture: u32 type, then u64 length; make the length huge.
    const at = offsetAfter(bytes, 'general.architecture') + 4;
    new DataView(bytes.buffer).setBigUint64(at, 1n << 40n, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /metadata "general.architecture" at byte \d+ needs 1099511627776 bytes but the file ends/);
  });

  it('array length past the end of the file', () => {
    const bytes = tinyGguf();
    const at = offsetAfter(bytes, 'tokenizer.ggml.tokens') + 4 + 4; // value type, element type, then u64 count
    new DataView(bytes.buffer).setBigUint64(at, 1n << 45n, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /"tokenizer.ggml.tokens": array of 35184372088832 elements cannot fit/);
  });

  it('unknown metadata value type', () => {
    const bytes = tinyGguf();
    new DataView(bytes.buffer).setUint32(offsetAfter(bytes, 'llama.block_count'), 77, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /metadata "llama.block_count" has unknown value type 77/);
  });

  it('tensor data past the end of the file (truncated real SmolLM2 file)', () => {
    const real = requireSmolLm2Gguf();
    const fd = fs.openSync(real, 'r');
    const head = Buffer.alloc(8 << 20);
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    const file = writeFile(head);
    expectBadInput(() => loadWeights(file), file, /tensor "\S+" data \[\d+, \d+\) lies past the end of the file \(8388608 bytes\)/);
  });

  it('tensor offset out of range', () => {
    const bytes = tinyGguf();
    // The last field of the last tensor info is its u64 offset.
    const at = offsetAfter(bytes, 'blk.0.ffn_down.weight') + 4 + 2 * 8 + 4;
    new DataView(bytes.buffer).setBigUint64(at, 1n << 30n, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /tensor "blk.0.ffn_down.weight" data \[\d+, \d+\) lies past the end/);
  });

  it('misaligned tensor offset', () => {
    const bytes = tinyGguf();
    const at = offsetAfter(bytes, 'blk.0.ffn_down.weight') + 4 + 2 * 8 + 4;
    const view = new DataView(bytes.buffer);
    view.setBigUint64(at, view.getBigUint64(at, true) + 4n, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /offset \d+ is not aligned to 32/);
  });

  it('unknown quant type id', () => {
    const bytes = tinyGguf();
    const at = offsetAfter(bytes, 'blk.0.ffn_down.weight') + 4 + 2 * 8;
    new DataView(bytes.buffer).setUint32(at, 99, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /tensor "blk.0.ffn_down.weight" has unknown ggml type id 99/);
  });

  it('a known quant type we cannot dequantize (Q2_K) fails when that tensor is read', () => {
    const bytes = tinyGguf({
      tensors: (ts) => ts.map((t) => (t.name === 'blk.0.ffn_down.weight' ? { ...t, dims: [256, 8], type: GgmlType.Q2_K, data: new Uint8Array(84 * 8) } : t)),
      metadata: { 'llama.feed_forward_length': gguf.u32(256) },
    });
    const file = writeFile(bytes);
    // Shapes of gate/up now disagree too; give the reader a file where only the type is the problem.
    const g = GgufFile.open(file);
    expectBadInput(() => g.readTensorFloat32('blk.0.ffn_down.weight'), file, /type Q2_K, which this reader cannot dequantize/);
  });

  it('too many dimensions', () => {
    const bytes = tinyGguf();
    new DataView(bytes.buffer).setUint32(offsetAfter(bytes, 'output_norm.weight'), 9, true);
    const file = writeFile(bytes);
    expectBadInput(() => loadWeights(file), file, /tensor "output_norm.weight" has 9 dimensions/);
  });

  it('weight shapes that disagree with the config', () => {
    const file = writeFile(tinyGguf({ metadata: { 'llama.feed_forward_length': gguf.u32(32) } }));
    expectBadInput(() => loadWeights(file), file, /weight "model.layers.0.mlp.gate_proj.weight" has shape \[16, 8\] but the config implies \[32, 8\]/);
  });

  it('a missing weight', () => {
    const file = writeFile(tinyGguf({ tensors: (ts) => ts.filter((t) => t.name !== 'blk.0.attn_v.weight') }));
    expectBadInput(() => loadWeights(file), file, /missing weight "model.layers.0.self_attn.v_proj.weight"/);
  });

  it('NaN weights are detected when read', () => {
    const file = writeFile(
      tinyGguf({ tensors: (ts) => ts.map((t) => (t.name === 'blk.0.attn_q.weight' ? { ...t, data: f32(64, (i) => (i === 13 ? NaN : 0.1)) } : t)) }),
    );
    const loaded = loadWeights(file);
    expectBadInput(() => loaded.tensors.read('model.layers.0.self_attn.q_proj.weight'), file, /weight "model.layers.0.self_attn.q_proj.weight" contains NaN/);
  });

  it('unknown architecture', () => {
    const file = writeFile(tinyGguf({ metadata: { 'general.architecture': gguf.str('gpt2') } }));
    expectBadInput(() => loadWeights(file), file, /unknown architecture: general.architecture "gpt2"/);
  });

  it('missing required metadata', () => {
    const file = writeFile(tinyGguf({ metadata: { 'llama.embedding_length': undefined } }));
    expectBadInput(() => loadWeights(file), file, /field "llama.embedding_length" must be a positive integer/);
  });

  it('a tokenizer model we cannot rebuild, or an unknown pre-tokenizer', () => {
    const t5 = writeFile(tinyGguf({ metadata: { 'tokenizer.ggml.model': gguf.str('t5') } }));
    expectBadInput(() => loadTokenizer(t5), t5, /tokenizer.ggml.model "t5" is not supported/);
    const spm = writeFile(tinyGguf({ metadata: { 'tokenizer.ggml.model': gguf.str('llama') } }));
    expectBadInput(() => loadTokenizer(spm), spm, /tokenizer.ggml.scores must be one number per token \(8\)/);
    const pre = writeFile(tinyGguf({ metadata: { 'tokenizer.ggml.pre': gguf.str('mystery') } }));
    expectBadInput(() => loadTokenizer(pre), pre, /tokenizer.ggml.pre "mystery" is not a pre-tokenizer type we know/);
    const noTokens = writeFile(tinyGguf({ metadata: { 'tokenizer.ggml.tokens': undefined } }));
    expectBadInput(() => loadTokenizer(noTokens), noTokens, /tokenizer.ggml.tokens is missing/);
  });

  it('GGUF v2 (same layout as v3) is accepted', () => {
    const bytes = tinyGguf();
    new DataView(bytes.buffer).setUint32(4, 2, true);
    expect(loadWeights(writeFile(bytes)).config.numLayers).toBe(1);
  });

  it('a .safetensors file instead of its directory', () => {
    const file = writeFile(new Uint8Array(16), '.safetensors');
    expectBadInput(() => loadWeights(file), file, /pass the HF model directory/);
  });

  it('a missing file', () => {
    const file = path.join(tmp, 'nope.gguf');
    expectBadInput(() => loadWeights(file), file, /model not found/);
  });
});

describe('corrupt HF directories', () => {
  const CONFIG = {
    model_type: 'llama', vocab_size: 8, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1,
    num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true,
  };
  const SHAPES: Record<string, number[]> = {
    'model.embed_tokens.weight': [8, 8], 'model.norm.weight': [8],
    'model.layers.0.input_layernorm.weight': [8], 'model.layers.0.post_attention_layernorm.weight': [8],
    'model.layers.0.self_attn.q_proj.weight': [8, 8], 'model.layers.0.self_attn.k_proj.weight': [4, 8],
    'model.layers.0.self_attn.v_proj.weight': [4, 8], 'model.layers.0.self_attn.o_proj.weight': [8, 8],
    'model.layers.0.mlp.gate_proj.weight': [16, 8], 'model.layers.0.mlp.up_proj.weight': [16, 8],
    'model.layers.0.mlp.down_proj.weight': [8, 16],
  };
  function hfDir(config: unknown, weights?: Uint8Array): string {
    const dir = path.join(tmp, `hf-${next()}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
    const tensors = Object.fromEntries(
      Object.entries(SHAPES).map(([n, shape]) => [n, { dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5) }]),
    );
    fs.writeFileSync(path.join(dir, 'model.safetensors'), weights ?? writeSafetensors(tensors));
    return dir;
  }
  const st = (dir: string) => path.join(dir, 'model.safetensors');

  it('the valid directory loads', () => {
    expect(loadWeights(hfDir(CONFIG)).tensors.read('model.norm.weight')).toEqual(new Float32Array(8).fill(0.5));
  });

  it('config.json that is not JSON', () => {
    const dir = hfDir('{ "model_type": ');
    expectBadInput(() => loadWeights(dir), path.join(dir, 'config.json'), /not valid JSON/);
  });

  it('unknown architecture', () => {
    const dir = hfDir({ ...CONFIG, model_type: 'gpt_neox' });
    expectBadInput(() => loadWeights(dir), path.join(dir, 'config.json'), /unknown architecture: model_type "gpt_neox"/);
  });

  it('missing or invalid config fields', () => {
    const missing = hfDir({ ...CONFIG, hidden_size: undefined });
    expectBadInput(() => loadWeights(missing), path.join(missing, 'config.json'), /field "hidden_size" must be a positive integer, got undefined/);
    const heads = hfDir({ ...CONFIG, num_key_value_heads: 3 });
    expectBadInput(() => loadWeights(heads), path.join(heads, 'config.json'), /not a multiple of num kv heads 3/);
  });

  it('safetensors header length past the end of the file', () => {
    const bytes = new Uint8Array(writeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
    new DataView(bytes.buffer).setBigUint64(0, 1n << 20n, true);
    const dir = hfDir(CONFIG, bytes);
    expectBadInput(() => loadWeights(dir), st(dir), /header length 1048576 runs past the end/);
  });

  it('safetensors header that is not JSON', () => {
    const bytes = new Uint8Array(writeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
    bytes[8] = 0x7b; bytes[9] = 0x7b; // "{{"
    const dir = hfDir(CONFIG, bytes);
    expectBadInput(() => loadWeights(dir), st(dir), /header is not valid UTF-8 JSON/);
  });

  it('safetensors tensor offsets out of range / unknown dtype', () => {
    const header = (entry: object) => {
      const json = Buffer.from(JSON.stringify({ 'model.norm.weight': entry }));
      const out = Buffer.alloc(8 + json.length + 32);
      out.writeBigUInt64LE(BigInt(json.length));
      json.copy(out, 8);
      return new Uint8Array(out);
    };
    const offsets = hfDir(CONFIG, header({ dtype: 'F32', shape: [8], data_offsets: [0, 4096] }));
    // Data past the end of the file is truncation, reported with the sizes (hostile-files.test.ts).
    expectBadInput(() => loadWeights(offsets), st(offsets), /the file is truncated: its header's tensors need \d+ bytes, the file has \d+ \(\d+ missing\)/);
    const dtype = hfDir(CONFIG, header({ dtype: 'Q4', shape: [8], data_offsets: [0, 32] }));
    expectBadInput(() => loadWeights(dtype), st(dtype), /unknown dtype "Q4"/);
  });

  it('weights whose shape disagrees with the config', () => {
    const dir = hfDir({ ...CONFIG, intermediate_size: 32 });
    expectBadInput(() => loadWeights(dir), dir, /weight "model.layers.0.mlp.gate_proj.weight" has shape \[16, 8\] but the config implies \[32, 8\]/);
  });

  it('NaN weights', () => {
    const tensors = Object.fromEntries(
      Object.entries(SHAPES).map(([n, shape]) => [n, { dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(n.includes('up_proj') ? NaN : 0.5) }]),
    );
    const dir = hfDir(CONFIG, writeSafetensors(tensors));
    expectBadInput(() => loadWeights(dir).tensors.read('model.layers.0.mlp.up_proj.weight'), st(dir), /contains NaN at element 0/);
  });

  it('integer weights', () => {
    const tensors = Object.fromEntries(
      Object.entries(SHAPES).map(([n, shape]) => [n, n === 'model.norm.weight' ? { dtype: 'I32' as const, shape, data: new Int32Array(8) } : { dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]),
    );
    const dir = hfDir(CONFIG, writeSafetensors(tensors));
    expectBadInput(() => loadWeights(dir).tensors.read('model.norm.weight'), st(dir), /dtype I32; weights must be F32, F16 or BF16/);
  });

  it('tokenizer.json that does not parse, or is not a tokenizer', () => {
    const dir = hfDir(CONFIG);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", ');
    expectBadInput(() => loadTokenizer(dir), path.join(dir, 'tokenizer.json'), /not valid JSON/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"added_tokens": []}');
    expectBadInput(() => loadTokenizer(dir), path.join(dir, 'tokenizer.json'), /missing field "model"/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"added_tokens": [], "model": {"type": "Mystery"}}');
    expectBadInput(() => loadTokenizer(dir), path.join(dir, 'tokenizer.json'), /invalid tokenizer/);
  });

  it('a directory without a tokenizer', () => {
    const dir = hfDir(CONFIG);
    expectBadInput(() => loadTokenizer(dir), dir, /no tokenizer.json/);
  });
});
