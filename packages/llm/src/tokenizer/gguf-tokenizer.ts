/**
 * Rebuilds a Hugging Face tokenizer.json (+ the tokenizer_config fields we use) from the vocabulary that a
 * GGUF file embeds: tokenizer.ggml.{model, pre, tokens, token_type, merges} and the special token ids.
 *
 * Two tokenizer models:
 *  - byte-level BPE ("gpt2": SmolLM/SmolLM2, Llama-3, Qwen2, StarCoder…). Tokens are stored already
 *    spelled in the GPT-2 byte alphabet ("Ġthe"), so vocab and merges carry over as is; what the GGUF does
 *    not carry is the pre-tokenizer, which `tokenizer.ggml.pre` names. We map the names to the
 *    pre-tokenizers of the original tokenizer.json files (the same splits llama.cpp applies).
 *  - SentencePiece BPE ("llama": Llama-2, TinyLlama, Mistral v0.1) with "▁" spaces and byte fallback;
 *    merges are derived from the token scores.
 */
import type { GgufFile } from '../weights/gguf.ts';
import { ModelFormatError } from '../weights/errors.ts';

/** GGUF token types (llama.cpp's llama_token_type). */
const TOKEN_TYPE_UNKNOWN = 2;
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

/**
 * SentencePiece-BPE merges implied by a vocabulary with scores (GGUFs of Llama-2/TinyLlama carry no merge
 * list): every split of a token into two tokens of the vocabulary is a merge ranked by the whole token's
 * score, ties broken by longer left then longer right piece, then vocabulary order — the ordering
 * transformers' generate_merges uses when it converts the same GGUF. Lengths count code points.
 */
/**
 * Characters mergesFromScores may touch (every split of every token: Σ length² over the vocabulary). Real
 * SentencePiece vocabularies need ~10⁶ (Llama-2: 32k tokens of a few characters); a file with a token of
 * a million characters would need 10¹² and hang the loader.
 */
export const MERGE_DERIVATION_BUDGET = 200_000_000;

export function mergesFromScores(tokens: readonly string[], scores: readonly number[], file = 'tokenizer'): [string, string][] {
  let work = 0;
  for (const token of tokens) {
    work += token.length * token.length;
    if (work > MERGE_DERIVATION_BUDGET) {
      throw new ModelFormatError(
        file,
        `tokenizer.ggml.tokens: deriving merges from the scores would take over ${MERGE_DERIVATION_BUDGET} steps ` +
          `(a token of ${token.length} characters); not a SentencePiece vocabulary this reader accepts`,
      );
    }
  }
  // As in Python dicts built from the token list, a duplicated token keeps its first position but its
  // last id and score.
  const idOf = new Map<string, number>();
  const scoreOf = new Map<string, number>();
  tokens.forEach((t, i) => {
    idOf.set(t, i);
    scoreOf.set(t, scores[i]);
  });
  type Candidate = { left: string; right: string; score: number; leftLength: number; rightLength: number; order: number };
  const candidates: Candidate[] = [];
  for (const [token, score] of scoreOf) {
    const chars = [...token];
    const local: Omit<Candidate, 'score' | 'order'>[] = [];
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join('');
      const right = chars.slice(cut).join('');
      if (idOf.has(left) && idOf.has(right)) local.push({ left, right, leftLength: cut, rightLength: chars.length - cut });
    }
    local.sort((a, b) => idOf.get(a.left)! - idOf.get(b.left)! || idOf.get(a.right)! - idOf.get(b.right)!);
    for (const m of local) candidates.push({ ...m, score, order: candidates.length });
  }
  candidates.sort((a, b) => b.score - a.score || b.leftLength - a.leftLength || b.rightLength - a.rightLength || a.order - b.order);
  return candidates.map((c) => [c.left, c.right]);
}

/** Byte-level BPE ("gpt2"): the vocabulary and merges carry over; the pre-tokenizer comes from its name. */
function byteLevelParts(gguf: GgufFile, tokens: string[]) {
  const preName = gguf.get('tokenizer.ggml.pre') ?? 'default';
  const preTokenizer = preTokenizerFor(String(preName));
  if (preTokenizer === undefined) {
    throw new ModelFormatError(gguf.path, `tokenizer.ggml.pre "${String(preName)}" is not a pre-tokenizer type we know`);
  }
  return {
    normalizer: null,
    preTokenizer,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { merges: stringArray(gguf, 'tokenizer.ggml.merges'), fuseUnk: false, byteFallback: false },
    tokens,
  };
}

/**
 * SentencePiece BPE ("llama": Llama-2, TinyLlama, Mistral v0.1): "▁" marks spaces, unknown characters
 * fall back to <0xNN> byte tokens, merges come from the scores. Same components as transformers builds.
 */
function sentencePieceParts(gguf: GgufFile, tokens: string[]) {
  const scores = gguf.get('tokenizer.ggml.scores');
  if (!Array.isArray(scores) || scores.length !== tokens.length || scores.some((v) => typeof v !== 'number')) {
    throw new ModelFormatError(gguf.path, `tokenizer.ggml.scores must be one number per token (${tokens.length})`);
  }
  const addSpacePrefix = gguf.get('tokenizer.ggml.add_space_prefix') !== false;
  const merges = gguf.get('tokenizer.ggml.merges');
  return {
    normalizer: null,
    preTokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: addSpacePrefix ? 'first' : 'never', split: false },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      merges: Array.isArray(merges) ? stringArray(gguf, 'tokenizer.ggml.merges') : mergesFromScores(tokens, scores as number[], gguf.path),
      fuseUnk: true,
      byteFallback: true,
    },
    tokens,
  };
}

export function tokenizerFilesFromGguf(gguf: GgufFile): HfTokenizerFiles {
  const modelName = gguf.get('tokenizer.ggml.model');
  if (modelName !== 'gpt2' && modelName !== 'llama') {
    throw new ModelFormatError(
      gguf.path,
      `tokenizer.ggml.model "${String(modelName)}" is not supported (byte-level BPE "gpt2" or SentencePiece BPE "llama"); use an HF directory with tokenizer.json instead`,
    );
  }
  const tokens = stringArray(gguf, 'tokenizer.ggml.tokens');
  const tokenTypes = gguf.get('tokenizer.ggml.token_type');
  if (tokenTypes !== undefined && (!Array.isArray(tokenTypes) || tokenTypes.length !== tokens.length)) {
    throw new ModelFormatError(gguf.path, `tokenizer.ggml.token_type must have one entry per token (${tokens.length})`);
  }
  const parts = modelName === 'gpt2' ? byteLevelParts(gguf, tokens) : sentencePieceParts(gguf, tokens);

  // A null-prototype object: tokens such as "__proto__" must become plain keys.
  const vocab: Record<string, number> = Object.create(null);
  tokens.forEach((token, id) => {
    vocab[token] = id;
  });
  const addedTokens: object[] = [];
  tokens.forEach((token, id) => {
    const type = Array.isArray(tokenTypes) ? tokenTypes[id] : undefined;
    // Control and unknown tokens are special (matched whole, skippable in decode); user-defined ones are
    // matched whole but decoded as text.
    if (type === TOKEN_TYPE_CONTROL || type === TOKEN_TYPE_UNKNOWN || type === TOKEN_TYPE_USER_DEFINED) {
      const special = type !== TOKEN_TYPE_USER_DEFINED;
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
    normalizer: parts.normalizer,
    pre_tokenizer: parts.preTokenizer,
    post_processor: addBos || addEos ? { type: 'TemplateProcessing', single, pair: single, special_tokens: specialTokens } : null,
    decoder: parts.decoder,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk === null ? null : tokens[unk],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: parts.model.fuseUnk,
      byte_fallback: parts.model.byteFallback,
      ignore_merges: false,
      vocab,
      merges: parts.model.merges,
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
