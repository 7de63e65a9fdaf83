/**
 * The model's own chat template (tokenizer_config.json `chat_template` or GGUF tokenizer.chat_template),
 * rendered with @huggingface/jinja the way transformers' apply_chat_template(tokenize=False) renders it,
 * plus the token span of the system message's content — the positions DRO replaces by its soft prompt.
 */
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { ModelFormatError } from '../weights/errors.ts';
import { parseSandboxed, renderSandboxed, TemplateBudgetError } from './template-sandbox.ts';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatTemplateOptions {
  /** Append the assistant header so the model answers next (transformers' add_generation_prompt). */
  addGenerationPrompt?: boolean;
}

export interface SystemContentSpan {
  /** Token ids of the whole rendered chat (no extra special tokens: the template writes them). */
  ids: number[];
  /** ids.slice(start, end) are exactly the tokens of the system message's content. */
  start: number;
  end: number;
  /** The rendered chat text. */
  text: string;
}

/** Stands in for the system content while locating it; private-use code points no template alters. */
const CONTENT_MARKER = '\u{E000}dro-system-content\u{E001}';

export class ChatTemplate {
  constructor(
    readonly source: string,
    private readonly tokenizer: Tokenizer,
    /** Where the template came from, for error messages. */
    readonly origin: string,
  ) {
    try {
      // Parsed when the model loads, to report a broken template early — in the sandbox, like rendering.
      parseSandboxed(source);
    } catch (err) {
      const problem = err instanceof TemplateBudgetError ? 'chat template exceeded its budget while parsing' : 'chat template does not parse';
      throw new ModelFormatError(origin, `${problem}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The template of a loaded tokenizer; throws if the model has none. */
  static of(tokenizer: Tokenizer): ChatTemplate {
    if (tokenizer.chatTemplate === null) {
      throw new ModelFormatError(tokenizer.source, 'the model has no chat template (tokenizer_config.json chat_template / GGUF tokenizer.chat_template)');
    }
    return new ChatTemplate(tokenizer.chatTemplate, tokenizer, tokenizer.source);
  }

  /** Render the chat as text, exactly as transformers' apply_chat_template(..., tokenize=False). */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    for (const [i, m] of messages.entries()) {
      if (!['system', 'user', 'assistant'].includes(m.role) || typeof m.content !== 'string') {
        throw new TypeError(`message ${i} must be { role: "system" | "user" | "assistant", content: string }`);
      }
    }
    const token = (id: number | null) => (id === null ? undefined : this.tokenizer.idToToken(id));
    const context = {
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: token(this.tokenizer.bosTokenId) ?? '',
      eos_token: token(this.tokenizer.eosTokenId) ?? '',
      pad_token: token(this.tokenizer.padTokenId) ?? '',
      // raise_exception is built into @huggingface/jinja.
    };
    try {
      // In a thread with a time and memory budget: the template is code from the model file.
      return renderSandboxed(this.source, context, messages.reduce((n, m) => n + m.content.length, 0));
    } catch (err) {
      const problem = err instanceof TemplateBudgetError ? 'chat template exceeded its budget' : 'chat template failed to render';
      throw new ModelFormatError(this.origin, `${problem}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Render and tokenize: the control tokens are the ones the template writes; special-token strings inside
   * the messages' content are ordinary text (see tokenizer/user-text.ts). For ordinary content this is
   * exactly apply_chat_template(tokenize=True).
   */
  encode(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encodeWithText(messages, options).ids;
  }

  /** encode() plus the rendered text (the real content, as applyChatTemplate renders it). */
  encodeWithText(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): { ids: number[]; text: string } {
    const guard = this.tokenizer.userText;
    const escaped = guard.escape(messages.map((m) => m.content));
    const rendered = this.applyChatTemplate(messages.map((m, i) => ({ ...m, content: escaped.texts[i] })), options);
    return { ids: this.encodeRendered(rendered, escaped.originals), text: guard.unescape(rendered, escaped.originals) };
  }

  private encodeRendered(text: string, originals: ReadonlyMap<string, string>): number[] {
    return this.tokenizer.userText.encodeEscaped(text, originals, (t) => this.tokenizer.encode(t, { addSpecialTokens: false }));
  }

  /**
   * Token span of the (single) system message's content in the rendered chat. The chat is rendered with
   * a marker in place of the content to find the text before and after it; the three pieces are
   * tokenized separately and must concatenate to the tokens of the whole chat — otherwise the content's
   * first/last tokens merge with the template's text, there is no clean span, and we throw. As in
   * encode(), special-token strings in any message's content are ordinary text.
   */
  systemContentSpan(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): SystemContentSpan {
    const systemIndexes = messages.flatMap((m, i) => (m.role === 'system' ? [i] : []));
    if (systemIndexes.length !== 1) throw new Error(`expected exactly one system message, got ${systemIndexes.length}`);
    const system = systemIndexes[0];
    if (messages[system].content.length === 0) throw new Error('the system message is empty: there is no span to locate');
    if (messages[system].content.includes(CONTENT_MARKER)) throw new Error('the system message contains the internal span marker');

    const guard = this.tokenizer.userText;
    const escaped = guard.escape(messages.map((m) => m.content));
    const escapedMessages = messages.map((m, i) => ({ ...m, content: escaped.texts[i] }));
    const content = escaped.texts[system];
    const text = this.applyChatTemplate(escapedMessages, options);
    const marked = this.applyChatTemplate(
      escapedMessages.map((m, i) => (i === system ? { ...m, content: CONTENT_MARKER } : m)),
      options,
    );
    const parts = marked.split(CONTENT_MARKER);
    if (parts.length !== 2) throw new Error(`the chat template writes the system content ${parts.length - 1} times; expected once`);
    const [before, after] = parts;
    if (before + content + after !== text) {
      throw new Error('the chat template transforms the system content (e.g. trims it); cannot locate its span');
    }
    const encode = (piece: string) => (piece === '' ? [] : this.encodeRendered(piece, escaped.originals));
    const beforeIds = encode(before);
    const contentIds = encode(content);
    const ids = encode(text);
    const pieced = [...beforeIds, ...contentIds, ...encode(after)];
    if (pieced.length !== ids.length || pieced.some((id, i) => id !== ids[i])) {
      throw new Error('the system content shares a token with the surrounding template text; it has no clean token span');
    }
    return { ids, start: beforeIds.length, end: beforeIds.length + contentIds.length, text: guard.unescape(text, escaped.originals) };
  }
}
