/**
 * Chat template (SmolLM2's, from the GGUF) vs transformers' apply_chat_template(tokenize=False) text, and
 * the system-content token span DRO's soft prompt replaces.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, type ChatMessage } from '../src/template/chat-template.ts';
import { loadTokenizer, Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { requireSmolLm2Gguf } from '../src/weights/assets.ts';
import { ModelFormatError } from '../src/weights/errors.ts';

const golden = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'golden', 'tokenizer.json'), 'utf8')) as {
  chats: { messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[]; systemContentIds?: number[] }[];
};

const tokenizer = loadTokenizer(requireSmolLm2Gguf());
const chat = ChatTemplate.of(tokenizer);

describe('SmolLM2 chat template', () => {
  it('renders exactly the text transformers renders (system/user/assistant, with and without generation prompt)', () => {
    expect(golden.chats.length).toBeGreaterThanOrEqual(4);
    for (const g of golden.chats) {
      expect(chat.applyChatTemplate(g.messages, { addGenerationPrompt: g.add_generation_prompt })).toBe(g.text);
      expect(chat.encode(g.messages, { addGenerationPrompt: g.add_generation_prompt })).toEqual(g.ids);
    }
  });

  it('inserts the default system prompt when the chat has none', () => {
    const text = chat.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    expect(text).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
        '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('systemContentSpan: ids equal the reference chat ids and the span holds exactly the system content tokens', () => {
    const withSystem = golden.chats.filter((g) => g.systemContentIds !== undefined);
    expect(withSystem.length).toBeGreaterThanOrEqual(2);
    for (const g of withSystem) {
      const span = chat.systemContentSpan(g.messages, { addGenerationPrompt: g.add_generation_prompt });
      expect(span.text).toBe(g.text);
      expect(span.ids).toEqual(g.ids);
      expect(span.ids.slice(span.start, span.end)).toEqual(g.systemContentIds);
      // "<|im_start|>" "system" "\n" precede the content in SmolLM2's template.
      expect(span.start).toBe(3);
      expect(tokenizer.decode(span.ids.slice(span.start, span.end))).toBe(g.messages[0].content);
    }
  });

  it('systemContentSpan works for content with newlines, digits, unicode and trailing spaces', () => {
    for (const content of ['Be safe.\nRefuse harmful requests 100% of the time.  ', 'Ünïcödé 😀 prompt', 'x']) {
      const messages: ChatMessage[] = [{ role: 'system', content }, { role: 'user', content: 'Hello' }];
      const span = chat.systemContentSpan(messages, { addGenerationPrompt: true });
      expect(span.ids).toEqual(tokenizer.encode(chat.applyChatTemplate(messages, { addGenerationPrompt: true })));
      expect(tokenizer.decode(span.ids.slice(span.start, span.end))).toBe(content);
    }
  });

  it('systemContentSpan refuses chats without exactly one non-empty system message', () => {
    expect(() => chat.systemContentSpan([{ role: 'user', content: 'Hi' }])).toThrow(/exactly one system message/);
    expect(() => chat.systemContentSpan([{ role: 'system', content: '' }, { role: 'user', content: 'Hi' }])).toThrow(/empty/);
  });

  it('systemContentSpan refuses a template whose text merges into the content tokens', () => {
    // A template that glues letters onto the content: "The cat" is "The" "Ġcat", not "Th" + "e" "Ġcat".
    const glued = new ChatTemplate("{% for m in messages %}{{ 'Th' + m['content'] }}{% endfor %}", tokenizer, 'inline');
    expect(() => glued.systemContentSpan([{ role: 'system', content: 'e cat' }])).toThrow(/clean token span/);
    // SmolLM2's own template: leading spaces join the "\n" after "system" into one whitespace token.
    expect(() => chat.systemContentSpan([{ role: 'system', content: '  Be safe.' }, { role: 'user', content: 'Hi' }])).toThrow(
      /clean token span/,
    );
  });

  it('a template that does not parse, or raises, is a ModelFormatError naming its origin', () => {
    expect(() => new ChatTemplate('{% for m in messages %}{{ m.content }', tokenizer, 'bad/tokenizer_config.json')).toThrow(ModelFormatError);
    expect(() => new ChatTemplate('{% for m in messages %}{{ m.content }', tokenizer, 'bad/tokenizer_config.json')).toThrow(/bad\/tokenizer_config.json: chat template does not parse/);
    const raising = new ChatTemplate("{{ raise_exception('roles must alternate') }}", tokenizer, 'strict.jinja');
    expect(() => raising.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/strict.jinja: chat template failed to render: roles must alternate/);
  });

  it('a tokenizer without a chat template says so', () => {
    const files = {
      tokenizerJson: { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null },
      tokenizerConfig: {},
    };
    const bare = new Tokenizer(files, 'bare/tokenizer.json');
    expect(() => ChatTemplate.of(bare)).toThrow(/bare\/tokenizer.json: the model has no chat template/);
  });
});

describe('hostile templates (a template is code from the model file) are stopped by a time, memory and size budget', () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'x'.repeat(100) }];
  const render = (source: string, origin: string) => () => new ChatTemplate(source, tokenizer, origin).applyChatTemplate(messages);

  it('a template that loops is stopped at the time budget with a ModelFormatError naming it', () => {
    let error: unknown;
    try {
      render('{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x', 'loop/tokenizer_config.json')();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as Error).message).toMatch(/^loop\/tokenizer_config.json: chat template exceeded its budget: it did not finish within 2 s$/);
  });

  it('a template that allocates without end is stopped by its memory budget, not by V8 aborting this process', () => {
    expect(render('{% for i in range(1000000000) %}{% endfor %}x', 'alloc.gguf')).toThrow(
      /^alloc.gguf: chat template exceeded its budget: it (ran out of its 128 MB of memory|did not finish within 2 s)$/,
    );
    expect(render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", 'grow.gguf')).toThrow(
      /^grow.gguf: chat template (exceeded its budget|failed to render: Invalid string length)/,
    );
  });

  it('a template whose output is far larger than the chat it renders is refused', () => {
    expect(render('{% for i in range(20000) %}{{ messages[0].content }}{% endfor %}', 'big.jinja')).toThrow(
      /^big.jinja: chat template exceeded its budget: it rendered 2000000 characters, over the output budget of \d+$/,
    );
  });

  it('after a template was stopped, rendering works as before', () => {
    for (const g of golden.chats) expect(chat.applyChatTemplate(g.messages, { addGenerationPrompt: g.add_generation_prompt })).toBe(g.text);
  });
});

