/**
 * SentencePiece-BPE GGUF tokenizers ("llama" model: Llama-2, TinyLlama): a tiny GGUF written by gguf-py
 * (the golden's own writer function, run with python3) and the merges and ids transformers derives from it
 * (tools/reference/golden_spm_tokenizer.py).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatTemplate } from '../src/template/chat-template.ts';
import { mergesFromScores, tokenizerFilesFromGguf } from '../src/tokenizer/gguf-tokenizer.ts';
import { loadTokenizer } from '../src/tokenizer/tokenizer.ts';
import { GgufFile } from '../src/weights/gguf.ts';

const goldenPath = path.join(import.meta.dirname, 'golden', 'tiny-spm.json');
const golden = JSON.parse(fs.readFileSync(goldenPath, 'utf8')) as {
  writeGgufPython: string;
  merges: [string, string][];
  encodings: { text: string; ids: number[]; idsWithSpecialTokens: number[]; decoded: string; decodedSkipSpecial: string }[];
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-spm-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = path.join(tmp, 'tiny-spm.gguf');
execFileSync('python3', ['-c', `${golden.writeGgufPython}\nimport json, sys\nwrite_gguf(json.load(open(sys.argv[1]))["spec"], sys.argv[2])`, goldenPath, file]);

describe('SentencePiece BPE tokenizer rebuilt from a GGUF', () => {
  it('derives the same merges, in the same order, as transformers', () => {
    const { tokenizerJson } = tokenizerFilesFromGguf(GgufFile.open(file));
    expect((tokenizerJson.model as { merges: unknown }).merges).toEqual(golden.merges);
  });

  it('encodes and decodes like transformers: byte fallback, control and user-defined tokens, BOS, spaces', () => {
    const tokenizer = loadTokenizer(file);
    expect(tokenizer.bosTokenId).toBe(1);
    expect(tokenizer.eosTokenId).toBe(2);
    for (const e of golden.encodings) {
      const label = JSON.stringify(e.text);
      expect(tokenizer.encode(e.text), label).toEqual(e.ids);
      expect(tokenizer.encode(e.text, { addSpecialTokens: true }), label).toEqual(e.idsWithSpecialTokens);
      expect(tokenizer.decode(e.ids), label).toBe(e.decoded);
      expect(tokenizer.decode(e.ids, { skipSpecialTokens: true }), label).toBe(e.decodedSkipSpecial);
    }
  });

  it('renders the GGUF chat template with the BOS/EOS token strings', () => {
    const chat = ChatTemplate.of(loadTokenizer(file));
    expect(chat.applyChatTemplate([{ role: 'user', content: 'the cat' }])).toBe('<s>[user] the cat</s>');
  });

  it('mergesFromScores: higher score first; ties → longer left piece, then longer right, then vocabulary order', () => {
    const tokens = ['a', 'b', 'c', 'ab', 'bc', 'abc', 'ca'];
    const scores = [0, 0, 0, -1, -1, -1, -2];
    // "ab"(-1) and "bc"(-1) tie with "abc"(-1): abc's split "ab|c" has the longer left piece and comes first,
    // then "a|bc"; then ab, bc in vocabulary order (equal lengths); "ca" has the lowest score.
    expect(mergesFromScores(tokens, scores)).toEqual([['ab', 'c'], ['a', 'bc'], ['a', 'b'], ['b', 'c'], ['c', 'a']]);
  });
});
