/**
 * `node bin/tsnode.mjs tools/bench/bench-chat-input.ts [GGUF...]` (default: the SmolLM2 GGUF)
 *
 * What the chat-input guarantees cost per rendered input, on every query × prompt variant of data/: the
 * chat template rendered in-process (what it was) vs in the sandboxed process (what it is now), the
 * tokenisation of the rendered chat, the user-text guard's scan on top of it, and how many of these
 * ordinary chats tokenise differently from the old whole-text encoding (must be 0). Medians of 3 rounds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { ChatTemplate, loadTokenizer, requireSmolLm2Gguf, type ChatMessage } from '@dro/llm';

const DATA = path.join(import.meta.dirname, '..', '..', 'data');
const ROUNDS = 3;

const queries = fs.readdirSync(path.join(DATA, 'queries')).filter((f) => f.endsWith('.jsonl')).sort()
  .flatMap((f) => fs.readFileSync(path.join(DATA, 'queries', f), 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => (JSON.parse(l) as { query: string }).query));
const prompts = fs.readdirSync(path.join(DATA, 'prompts')).filter((f) => f.endsWith('.txt')).sort()
  .map((f) => fs.readFileSync(path.join(DATA, 'prompts', f), 'utf8').trim());
const chats: ChatMessage[][] = [];
for (const prompt of [null, ...prompts]) {
  for (const query of queries) chats.push([...(prompt ? [{ role: 'system' as const, content: prompt }] : []), { role: 'user', content: query }]);
}

/** Median microseconds per item of `fn` over the chats. */
function perChat(fn: (chat: ChatMessage[], i: number) => void): number {
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t = performance.now();
    chats.forEach(fn);
    times.push(((performance.now() - t) / chats.length) * 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)];
}

const rows: string[][] = [];
for (const file of process.argv.length > 2 ? process.argv.slice(2) : [requireSmolLm2Gguf()]) {
  const tokenizer = loadTokenizer(file);
  const chat = ChatTemplate.of(tokenizer);
  const direct = new Template(tokenizer.chatTemplate!);
  const token = (id: number | null) => (id === null ? '' : tokenizer.idToToken(id) ?? '');
  const context = (messages: ChatMessage[]) => ({
    messages, add_generation_prompt: true, bos_token: token(tokenizer.bosTokenId), eos_token: token(tokenizer.eosTokenId), pad_token: token(tokenizer.padTokenId),
  });
  const start = performance.now();
  chat.applyChatTemplate(chats[0], { addGenerationPrompt: true });
  const startup = performance.now() - start;
  const texts = chats.map((c) => chat.applyChatTemplate(c, { addGenerationPrompt: true }));
  const changed = chats.filter((c, i) => JSON.stringify(chat.encode(c, { addGenerationPrompt: true })) !== JSON.stringify(tokenizer.encode(texts[i]))).length;
  const inProcess = perChat((c) => direct.render(context(c)));
  const sandboxed = perChat((c) => chat.applyChatTemplate(c, { addGenerationPrompt: true }));
  const tokenise = perChat((_, i) => tokenizer.encode(texts[i]));
  const guard = perChat((c) => tokenizer.userText.escape(c.map((m) => m.content)));
  rows.push([
    path.basename(file), String(chats.length), startup.toFixed(0), inProcess.toFixed(0), sandboxed.toFixed(0), tokenise.toFixed(0), guard.toFixed(1), String(changed),
  ]);
}

const header = ['model', 'chats', 'sandbox start ms', 'render in-process µs', 'render sandboxed µs', 'tokenise µs', 'user-text guard µs', 'ids changed'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
for (const row of [header, ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i])).join('  '));
