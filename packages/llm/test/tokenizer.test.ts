/**
 * Tokenizer rebuilt from the SmolLM2 GGUF vs the reference (transformers' tokenizer with SmolLM2's
 * Digits+ByteLevel pre-tokenizer; goldens from tools/reference/golden_tokenizer.py), and the HF-directory
 * path (tokenizer.json + tokenizer_config.json) on the same vocabulary.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatTemplate, type ChatMessage } from '../src/template/chat-template.ts';
import { tokenizerFilesFromGguf } from '../src/tokenizer/gguf-tokenizer.ts';
import { loadTokenizer, Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { requireSmolLm2Gguf } from '../src/weights/assets.ts';
import { GgufFile } from '../src/weights/gguf.ts';

interface EncodingGolden { text: string; ids: number[]; idsWithSpecialTokens: number[]; decoded: string; decodedSkipSpecial: string }
const golden = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'golden', 'tokenizer.json'), 'utf8')) as {
  vocabSize: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  encodings: EncodingGolden[];
  chats: { text: string; ids: number[] }[];
  projectData: { queries: string[]; queryIds: number[][]; prompts: string[]; promptIds: number[][]; chatIdsSha256: string; chatCount: number };
};

const file = requireSmolLm2Gguf();
const gguf = GgufFile.open(file);
const tokenizer = loadTokenizer(file, gguf);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-tokenizer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function checkAgainstGolden(tok: Tokenizer): void {
  for (const e of golden.encodings) {
    expect(tok.encode(e.text), JSON.stringify(e.text)).toEqual(e.ids);
    expect(tok.encode(e.text, { addSpecialTokens: true }), JSON.stringify(e.text)).toEqual(e.idsWithSpecialTokens);
    expect(tok.decode(e.ids), JSON.stringify(e.text)).toBe(e.decoded);
    expect(tok.decode(e.ids, { skipSpecialTokens: true }), JSON.stringify(e.text)).toBe(e.decodedSkipSpecial);
  }
  for (const chat of golden.chats) expect(tok.encode(chat.text)).toEqual(chat.ids);
}

describe('tokenizer from the SmolLM2 GGUF', () => {
  it('matches the reference token ids and decodes on varied text (unicode, emoji, code, whitespace, special tokens)', () => {
    expect(golden.encodings.length).toBeGreaterThanOrEqual(20);
    checkAgainstGolden(tokenizer);
  });

  it('matches the reference on every query and safety prompt of data/, alone and in every chat DRO renders', () => {
    const { queries, queryIds, prompts, promptIds, chatIdsSha256, chatCount } = golden.projectData;
    expect(queries.length).toBeGreaterThanOrEqual(300);
    queries.forEach((q, i) => expect(tokenizer.encode(q), q).toEqual(queryIds[i]));
    prompts.forEach((p, i) => expect(tokenizer.encode(p)).toEqual(promptIds[i]));
    const chat = ChatTemplate.of(tokenizer);
    const chatIds: number[][] = [];
    for (const prompt of [null, ...prompts]) {
      for (const query of queries) {
        const messages: ChatMessage[] = [...(prompt ? [{ role: 'system' as const, content: prompt }] : []), { role: 'user', content: query }];
        chatIds.push(chat.encode(messages, { addGenerationPrompt: true }));
      }
    }
    expect(chatIds).toHaveLength(chatCount);
    expect(crypto.createHash('sha256').update(JSON.stringify(chatIds)).digest('hex')).toBe(chatIdsSha256);
    // The soft-prompt span exists for every prompt and holds exactly the prompt's own tokens.
    prompts.forEach((prompt, i) => {
      const span = chat.systemContentSpan([{ role: 'system', content: prompt }, { role: 'user', content: queries[0] }], { addGenerationPrompt: true });
      expect(span.ids.slice(span.start, span.end)).toEqual(promptIds[i]);
    });
  });

  it('has the reference vocabulary size and special token ids', () => {
    expect(tokenizer.vocabSize).toBe(golden.vocabSize);
    expect(tokenizer.bosTokenId).toBe(golden.bosTokenId);
    expect(tokenizer.eosTokenId).toBe(golden.eosTokenId);
    expect(tokenizer.padTokenId).toBe(golden.padTokenId);
    expect(tokenizer.specialTokens).toContain('<|im_start|>');
    expect(tokenizer.specialTokens).toHaveLength(17); // every CONTROL token of the GGUF vocabulary
    expect(tokenizer.tokenToId('<|im_end|>')).toBe(2);
    expect(tokenizer.idToToken(1)).toBe('<|im_start|>');
    expect(tokenizer.tokenToId('Ġt')).toBeDefined();
  });

  it('splits digits one by one (SmolLM2 pre-tokenizer), which plain GPT-2 splitting would not', () => {
    // "x  1": GPT-2 splitting gives "x", "Ġ", "Ġ1"→["Ġ","1"]; SmolLM2 gives "x", "ĠĠ", "1".
    const ids = tokenizer.encode('x  1');
    expect(ids.map((id) => tokenizer.idToToken(id))).toEqual(['x', 'ĠĠ', '1']);
  });

  it('decode of nothing is the empty string; ids outside the vocabulary are an error', () => {
    expect(tokenizer.decode([])).toBe('');
    expect(() => tokenizer.decode([49152])).toThrow(/outside the vocabulary/);
    expect(() => tokenizer.decode([-1])).toThrow(/outside the vocabulary/);
  });

  it('loads the same tokenizer from an HF directory (tokenizer.json + tokenizer_config.json)', () => {
    const { tokenizerJson, tokenizerConfig } = tokenizerFilesFromGguf(gguf);
    const dir = path.join(tmp, 'hf');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
    const fromDir = loadTokenizer(dir);
    checkAgainstGolden(fromDir);
    expect(fromDir.chatTemplate).toBe(tokenizer.chatTemplate);
  });

  it('adds BOS when the GGUF says tokenizer.ggml.add_bos_token', () => {
    const files = tokenizerFilesFromGguf(gguf);
    expect(files.tokenizerConfig.add_bos_token).toBe(false);
    // Rebuild with add_bos on, through the same code path the GGUF metadata drives.
    const withBos = { get: (k: string) => (k === 'tokenizer.ggml.add_bos_token' ? true : gguf.get(k)), path: gguf.path } as GgufFile;
    const tok = new Tokenizer(tokenizerFilesFromGguf(withBos), 'add-bos');
    expect(tok.encode('Hello world', { addSpecialTokens: true })).toEqual([1, ...golden.encodings[0].ids]);
    expect(tok.encode('Hello world')).toEqual(golden.encodings[0].ids);
  });
});
