/**
 * The model's tokenizer: a thin, typed wrapper over @huggingface/tokenizers, loaded from an HF directory
 * (tokenizer.json + tokenizer_config.json) or rebuilt from a GGUF file's embedded vocabulary.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { GgufFile } from '../weights/gguf.ts';
import { ModelFormatError } from '../weights/errors.ts';
import { readSideFile } from '../weights/regular-file.ts';
import { tokenizerFilesFromGguf, type HfTokenizerFiles } from './gguf-tokenizer.ts';
import { UserTextGuard } from './user-text.ts';

export interface EncodeOptions {
  /** Add the tokenizer's own special tokens (e.g. BOS). Default false: chat templates write them. */
  addSpecialTokens?: boolean;
  /**
   * The text is user content: special tokens' strings in it are ordinary text, never control tokens (HF's
   * split_special_tokens). Default false: the text's special-token strings are the tokens.
   */
  splitSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Contents of every special added token (e.g. "<|im_start|>"). */
  readonly specialTokens: readonly string[];
  /** The raw chat template from the tokenizer config, or null. */
  readonly chatTemplate: string | null;
  /** Ids of the special added tokens (control tokens: "<|im_start|>", "<|endoftext|>", …). */
  readonly controlTokenIds: ReadonlySet<number>;
  /** Keeps user text from becoming control tokens (see user-text.ts). */
  readonly userText: UserTextGuard;
  private readonly hf: HfTokenizer;

  constructor(
    files: HfTokenizerFiles,
    /** Where the tokenizer came from, for error messages. */
    readonly source: string,
  ) {
    try {
      this.hf = new HfTokenizer(files.tokenizerJson, files.tokenizerConfig);
    } catch (err) {
      throw new ModelFormatError(source, `invalid tokenizer: ${(err as Error).message}`, { cause: err });
    }
    this.vocabSize = this.hf.get_vocab(true).size;
    const config = files.tokenizerConfig;
    this.bosTokenId = this.idOfConfigToken(config.bos_token);
    this.eosTokenId = this.idOfConfigToken(config.eos_token);
    this.padTokenId = this.idOfConfigToken(config.pad_token);
    const added = [...this.hf.get_added_tokens_decoder().values()];
    this.specialTokens = added.filter((t) => t.special).map((t) => t.content);
    this.controlTokenIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    this.userText = new UserTextGuard(added, files.tokenizerJson, files.tokenizerConfig);
    this.chatTemplate = chatTemplateOf(config.chat_template, source);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const encode = (t: string) => this.hf.encode(t, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
    if (!options.splitSpecialTokens) return encode(text);
    if (options.addSpecialTokens) throw new TypeError('encode: splitSpecialTokens is for user text, which gets no added special tokens');
    return this.userText.encodeUserText(text, encode);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    return this.hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  private idOfConfigToken(token: unknown): number | null {
    // tokenizer_config.json spells a special token as a string or as an AddedToken object { content }.
    const content = typeof token === 'string' ? token : (token as { content?: unknown } | null)?.content;
    if (typeof content !== 'string') return null;
    return this.hf.token_to_id(content) ?? null;
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates ("default" wins). */
function chatTemplateOf(value: unknown, source: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    if (chosen !== undefined && typeof chosen.template === 'string') return chosen.template;
  }
  throw new ModelFormatError(source, 'chat_template must be a string or a list of { name, template }');
}

function readJson(file: string): Record<string, unknown> {
  const text = readSideFile(file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ModelFormatError(file, 'expected a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** tokenizer.json (+ optional tokenizer_config.json) of an HF model directory. */
export function tokenizerFilesFromHfDir(dir: string): HfTokenizerFiles {
  const tokenizerPath = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(tokenizerPath)) throw new ModelFormatError(dir, 'no tokenizer.json in the model directory');
  const tokenizerJson = readJson(tokenizerPath);
  for (const field of ['model', 'added_tokens'] as const) {
    if (!(field in tokenizerJson)) throw new ModelFormatError(tokenizerPath, `missing field "${field}"`);
  }
  const configPath = path.join(dir, 'tokenizer_config.json');
  const tokenizerConfig = fs.existsSync(configPath) ? readJson(configPath) : {};
  // A separate chat_template.jinja (newer transformers) wins over an absent config entry.
  const jinjaPath = path.join(dir, 'chat_template.jinja');
  if (tokenizerConfig.chat_template === undefined && fs.existsSync(jinjaPath)) {
    tokenizerConfig.chat_template = readSideFile(jinjaPath);
  }
  return { tokenizerJson, tokenizerConfig };
}

/** Load the tokenizer of a model: a GGUF file, or an HF directory. */
export function loadTokenizer(modelPath: string, gguf?: GgufFile): Tokenizer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(modelPath);
  } catch (err) {
    throw new ModelFormatError(modelPath, `cannot read model: ${(err as Error).message}`, { cause: err });
  }
  if (stat.isDirectory()) {
    const files = tokenizerFilesFromHfDir(modelPath);
    return new Tokenizer(files, path.join(modelPath, 'tokenizer.json'));
  }
  return new Tokenizer(tokenizerFilesFromGguf(gguf ?? GgufFile.open(modelPath)), modelPath);
}
