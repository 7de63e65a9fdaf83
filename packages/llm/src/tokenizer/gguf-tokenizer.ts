/**
 * Rebuilds a Hugging Face tokenizer.json (+ the tokenizer_config fields we use) from the vocabulary that a
 * GGUF file embeds: tokenizer.ggml.{model, pre, tokens, token_type, merges} and the special token ids.
 *
 * Only byte-level BPE ("gpt2" model: SmolLM/SmolLM2, Llama-3, Qwen2, StarCoder…) is supported. Its tokens
 * are stored already spelled in the GPT-2 byte alphabet ("Ġthe"), so vocab and merges carry over as is;
 * what the GGUF does not carry is the pre-tokenizer, which `tokenizer.ggml.pre` names. We map the names
 * to the pre-tokenizers of the original tokenizer.json files (the same splits llama.cpp applies).
 */
import type { GgufFile } from '../weights/gguf.ts';
import { ModelFormatError } from '../weights/errors.ts';

/** GGUF token types (llama.cpp's llama_token_type). */
const TOKEN_TYPE_CONTROL = 3;
const TOKEN_TYPE_USER_DEFINED = 4;

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const splitThenBytes = (pattern: string) => ({
  type: 'Sequence',
  pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, byteLevel(false)],
});

/** tokenizer.ggml.pre → the pre_tokenizer of the model's original tokenizer.json. */
function preTokenizerFor(pre: string): object | undefined {
  switch (pre) {
    case 'default':
    case 'gpt2':
    case 'gpt-2':
      return byteLevel(true);
    // Every digit its own piece, then GPT-2 splitting (llama.cpp: "\p{N}" then the GPT-2 regex).
    case 'smollm':
    case 'starcoder':
    case 'refact':
    case 'codeshell':
    case 'command-r':
    case 'exaone':
    case 'minerva-7b':
      return { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] };
    case 'llama3':
    case 'llama-v3':
    case 'llama-bpe':
    case 'smaug-bpe':
    case 'dbrx':
    case 'falcon3':
      return splitThenBytes(LLAMA3_SPLIT);
    case 'qwen2':
    case 'deepseek-r1-qwen':
      return splitThenBytes(QWEN2_SPLIT);
    default:
      return undefined;
  }
}

export interface HfTokenizerFiles {
  /** The tokenizer.json object. */
  tokenizerJson: Record<string, unknown>;
  /** The tokenizer_config.json fields we use (special tokens, bos handling, chat template). */
  tokenizerConfig: Record<string, unknown>;
}

function stringArray(gguf: GgufFile, key: string): string[] {
  const value = gguf.get(key);
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new ModelFormatError(gguf.path, `metadata ${key} is missing or not an array of strings`);
  }
  return value as string[];
}

function optionalId(gguf: GgufFile, key: string, vocabSize: number): number | null {
  const value = gguf.get(key);
  if (value === undefined) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= vocabSize) {
    throw new ModelFormatError(gguf.path, `metadata ${key} = ${String(value)} is not a token id below ${vocabSize}`);
  }
  return value;
}

export function tokenizerFilesFromGguf(gguf: GgufFile): HfTokenizerFiles {
  const model = gguf.get('tokenizer.ggml.model');
  if (model !== 'gpt2') {
    throw new ModelFormatError(
      gguf.path,
      `tokenizer.ggml.model "${String(model)}" is not supported (only byte-level BPE "gpt2"); use an HF directory with tokenizer.json instead`,
    );
  }
  const preName = gguf.get('tokenizer.ggml.pre') ?? 'default';
  const preTokenizer = preTokenizerFor(String(preName));
  if (preTokenizer === undefined) {
    throw new ModelFormatError(gguf.path, `tokenizer.ggml.pre "${String(preName)}" is not a pre-tokenizer type we know`);
  }
  const tokens = stringArray(gguf, 'tokenizer.ggml.tokens');
  const merges = stringArray(gguf, 'tokenizer.ggml.merges');
  const tokenTypes = gguf.get('tokenizer.ggml.token_type');
  if (tokenTypes !== undefined && (!Array.isArray(tokenTypes) || tokenTypes.length !== tokens.length)) {
    throw new ModelFormatError(gguf.path, `tokenizer.ggml.token_type must have one entry per token (${tokens.length})`);
  }

  const vocab: Record<string, number> = {};
  tokens.forEach((token, id) => {
    vocab[token] = id;
  });
  const addedTokens: object[] = [];
  tokens.forEach((token, id) => {
    const type = Array.isArray(tokenTypes) ? tokenTypes[id] : undefined;
    if (type === TOKEN_TYPE_CONTROL || type === TOKEN_TYPE_USER_DEFINED) {
      const special = type === TOKEN_TYPE_CONTROL;
      addedTokens.push({ id, content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
    }
  });

  const bos = optionalId(gguf, 'tokenizer.ggml.bos_token_id', tokens.length);
  const eos = optionalId(gguf, 'tokenizer.ggml.eos_token_id', tokens.length);
  const pad = optionalId(gguf, 'tokenizer.ggml.padding_token_id', tokens.length);
  const unk = optionalId(gguf, 'tokenizer.ggml.unknown_token_id', tokens.length);
  const addBos = gguf.get('tokenizer.ggml.add_bos_token') === true && bos !== null;
  const addEos = gguf.get('tokenizer.ggml.add_eos_token') === true && eos !== null;

  const single: object[] = [];
  const specialTokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  if (addBos) {
    single.push({ SpecialToken: { id: tokens[bos], type_id: 0 } });
    specialTokens[tokens[bos]] = { id: tokens[bos], ids: [bos], tokens: [tokens[bos]] };
  }
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (addEos) {
    single.push({ SpecialToken: { id: tokens[eos], type_id: 0 } });
    specialTokens[tokens[eos]] = { id: tokens[eos], ids: [eos], tokens: [tokens[eos]] };
  }

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor:
      addBos || addEos
        ? { type: 'TemplateProcessing', single, pair: single, special_tokens: specialTokens }
        : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk === null ? null : tokens[unk],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const chatTemplate = gguf.get('tokenizer.chat_template');
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: bos === null ? null : tokens[bos],
    eos_token: eos === null ? null : tokens[eos],
    pad_token: pad === null ? null : tokens[pad],
    unk_token: unk === null ? null : tokens[unk],
    clean_up_tokenization_spaces: false,
    chat_template: typeof chatTemplate === 'string' ? chatTemplate : null,
  };
  return { tokenizerJson, tokenizerConfig };
}
