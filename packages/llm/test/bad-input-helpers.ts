/** Shared by the hostile-model-file tests: a scratch dir, the error assertion and a tiny valid GGUF to break. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { GgmlType } from '../src/weights/dequant.ts';
import { ModelFormatError } from '../src/weights/errors.ts';
import { gguf, writeGguf, type GgufTensorToWrite, type GgufTypedValue } from '../src/weights/gguf-writer.ts';

/** A temp directory for one test file's cases (removed in afterAll) and a writer of numbered case files. */
export function scratchDir(prefix: string): { tmp: string; writeFile: (bytes: Uint8Array, ext?: string) => string; next: () => number } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  let counter = 0;
  const next = () => counter++;
  const writeFile = (bytes: Uint8Array, ext = '.gguf'): string => {
    const file = path.join(tmp, `case-${next()}${ext}`);
    fs.writeFileSync(file, bytes);
    return file;
  };
  return { tmp, writeFile, next };
}

/** Asserts `fn` throws a ModelFormatError whose message starts with `file` and matches `problem`. */
export function expectBadInput(fn: () => unknown, file: string, problem: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error, 'expected an error').toBeInstanceOf(ModelFormatError);
  expect(error).toBeInstanceOf(BadInputError);
  const message = (error as Error).message;
  expect(message.startsWith(file), message).toBe(true);
  expect(message).toMatch(problem);
}

// A tiny valid Llama GGUF: hidden 8, 2 heads (1 kv head) of 4, 1 layer, ffn 16, vocab 8, F32 weights.
export const HIDDEN = 8, FFN = 16, VOCAB = 8, KV = 4;
export function f32(n: number, fill = (i: number) => Math.sin(i + 1) * 0.1): Uint8Array {
  return new Uint8Array(Float32Array.from({ length: n }, (_, i) => fill(i)).buffer);
}
export function tinyTensors(): GgufTensorToWrite[] {
  const t = (name: string, dims: number[]): GgufTensorToWrite => ({ name, dims, type: GgmlType.F32, data: f32(dims.reduce((a, b) => a * b, 1)) });
  return [
    t('token_embd.weight', [HIDDEN, VOCAB]),
    t('output_norm.weight', [HIDDEN]),
    t('blk.0.attn_norm.weight', [HIDDEN]),
    t('blk.0.ffn_norm.weight', [HIDDEN]),
    t('blk.0.attn_q.weight', [HIDDEN, HIDDEN]),
    t('blk.0.attn_k.weight', [HIDDEN, KV]),
    t('blk.0.attn_v.weight', [HIDDEN, KV]),
    t('blk.0.attn_output.weight', [HIDDEN, HIDDEN]),
    t('blk.0.ffn_gate.weight', [HIDDEN, FFN]),
    t('blk.0.ffn_up.weight', [HIDDEN, FFN]),
    t('blk.0.ffn_down.weight', [FFN, HIDDEN]),
  ];
}
export function tinyMetadata(): Record<string, GgufTypedValue> {
  return {
    'general.architecture': gguf.str('llama'),
    'llama.block_count': gguf.u32(1),
    'llama.context_length': gguf.u32(64),
    'llama.embedding_length': gguf.u32(HIDDEN),
    'llama.feed_forward_length': gguf.u32(FFN),
    'llama.attention.head_count': gguf.u32(2),
    'llama.attention.head_count_kv': gguf.u32(1),
    'llama.attention.layer_norm_rms_epsilon': gguf.f32(1e-5),
    'llama.rope.freq_base': gguf.f32(10000),
    'tokenizer.ggml.model': gguf.str('gpt2'),
    'tokenizer.ggml.pre': gguf.str('smollm'),
    'tokenizer.ggml.tokens': gguf.strings(['<|endoftext|>', 'a', 'b', 'c', 'Ġ', 'Ġa', 'ab', 'abc']),
    'tokenizer.ggml.token_type': gguf.i32s([3, 1, 1, 1, 1, 1, 1, 1]),
    'tokenizer.ggml.merges': gguf.strings(['Ġ a', 'a b', 'ab c']),
    'tokenizer.ggml.eos_token_id': gguf.u32(0),
  };
}
export function tinyGguf(patch: { metadata?: Record<string, GgufTypedValue | undefined>; tensors?: (t: GgufTensorToWrite[]) => GgufTensorToWrite[] } = {}): Uint8Array {
  const metadata = { ...tinyMetadata(), ...patch.metadata };
  for (const [k, v] of Object.entries(metadata)) if (v === undefined) delete metadata[k];
  return writeGguf({ metadata: metadata as Record<string, GgufTypedValue>, tensors: (patch.tensors ?? ((t) => t))(tinyTensors()) });
}

/** Byte offset of the first occurrence of an ASCII string (to patch a field that follows it). */
export function offsetAfter(bytes: Uint8Array, text: string): number {
  const at = Buffer.from(bytes).indexOf(Buffer.from(text, 'utf8'));
  if (at < 0) throw new Error(`"${text}" not in fixture`);
  return at + Buffer.byteLength(text);
}
