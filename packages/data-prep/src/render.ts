/**
 * Rendering one query under one prompt variant into the model's chat format.
 *
 * - A safety prompt is the system message. For a chat template without a system role (it raises on a
 *   system message, or drops its text — e.g. Mistral- and Gemma-style templates), the safety prompt is
 *   prepended to the user message: "<prompt>\n\n<query>" — the placement the DRO paper uses for models
 *   without system prompts.
 * - The "none" variant sends the user message alone, so the template does what it does without a system
 *   message. For SmolLM2 that inserts its default identity prompt ("You are a helpful AI assistant named
 *   SmolLM, trained by Hugging Face"): that is how the model is normally run, and it is not a safety
 *   prompt, so "none" matches the paper's "no safety prompt" condition.
 * - Every rendering ends with the assistant-turn opener (add_generation_prompt), so the last input
 *   position is where the model starts its answer — the position whose hidden state DRO reads.
 */
import { BadInputError, NO_PROMPT_ID } from '@dro/artifacts';

export interface ChatMessageLike {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** What rendering needs from the runtime: the chat template and the tokenizer. */
export interface ChatRenderer {
  applyChatTemplate(messages: ChatMessageLike[], options: { addGenerationPrompt: boolean }): string;
  /**
   * Render and tokenise a chat. Control tokens must come from the template only: control-token strings
   * in the messages' content are plain text (the runtime's ChatTemplate.encodeWithText does this).
   */
  encodeChat(messages: ChatMessageLike[], options: { addGenerationPrompt: boolean }): { ids: number[]; text: string };
  /** splitSpecialTokens: user text, whose control-token strings are plain text. */
  encode(text: string, options?: { addSpecialTokens?: boolean; splitSpecialTokens?: boolean }): number[];
  /** Token span [start, end) of the system message's content in the rendered chat (throws if none is clean). */
  systemContentSpan?(messages: ChatMessageLike[], options: { addGenerationPrompt: boolean }): { start: number; end: number };
  /** Ids of the tokenizer's control (special) tokens. */
  controlTokenIds: ReadonlySet<number>;
  /** The model's context in positions; a rendered input must fit it. */
  contextLength: number;
}

export const SYSTEM_PROMPT_PLACEMENTS = ['auto', 'system', 'user-prefix'] as const;
export type SystemPromptPlacement = (typeof SYSTEM_PROMPT_PLACEMENTS)[number];

const SENTINEL = 'dro-system-role-probe-7f3a';

/** Whether the template renders a system message's text (and does not raise on it). */
export function supportsSystemRole(renderer: Pick<ChatRenderer, 'applyChatTemplate'>): boolean {
  try {
    const text = renderer.applyChatTemplate(
      [
        { role: 'system', content: SENTINEL },
        { role: 'user', content: 'hello' },
      ],
      { addGenerationPrompt: true },
    );
    return text.includes(SENTINEL);
  } catch {
    return false;
  }
}

export function resolvePlacement(renderer: ChatRenderer, placement: SystemPromptPlacement): 'system' | 'user-prefix' {
  if (placement !== 'auto') return placement;
  return supportsSystemRole(renderer) ? 'system' : 'user-prefix';
}

/** The chat messages of `query` under `promptText` (null for the "none" variant). */
export function chatMessages(promptText: string | null, query: string, placement: 'system' | 'user-prefix'): ChatMessageLike[] {
  if (promptText === null) return [{ role: 'user', content: query }];
  if (placement === 'system')
    return [
      { role: 'system', content: promptText },
      { role: 'user', content: query },
    ];
  return [{ role: 'user', content: `${promptText}\n\n${query}` }];
}

/** First index where `needle` occurs in `haystack` as a contiguous run, or -1. */
export function findSubsequence(haystack: readonly number[], needle: readonly number[]): number {
  if (needle.length === 0) return -1;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

export interface RenderedInput {
  rendered: string;
  tokenIds: number[];
  /** Where the prompt's own tokens sit in tokenIds, or null ("none", or not found verbatim). */
  promptTokenStart: number | null;
  promptTokenCount: number | null;
}

/**
 * Render one input. `inputId` names it in errors. Checks what every rendered input must satisfy: it has
 * exactly the control tokens the template writes for its turns (user text added none: a query cannot
 * forge a turn), its safety-prompt span holds no control id, and it fits the model's context.
 */
export function renderInput(
  renderer: ChatRenderer,
  promptId: string,
  promptText: string | null,
  query: string,
  placement: 'system' | 'user-prefix',
  inputId = `${promptId}`,
): RenderedInput {
  if ((promptId === NO_PROMPT_ID) !== (promptText === null)) throw new Error(`renderInput: prompt "${promptId}" needs text iff it is not "${NO_PROMPT_ID}"`);
  const messages = chatMessages(promptText, query, placement);
  let rendered: string;
  let tokenIds: number[];
  try {
    // Special tokens come from the template text itself, so no extra BOS is added here.
    ({ text: rendered, ids: tokenIds } = renderer.encodeChat(messages, { addGenerationPrompt: true }));
  } catch (err) {
    throw new BadInputError(`chat template failed on prompt "${promptId}" (${placement}): ${(err as Error).message}`);
  }
  if (tokenIds.length > renderer.contextLength) {
    throw new BadInputError(
      `input "${inputId}": the rendered chat has ${tokenIds.length} tokens, more than the model's context of ${renderer.contextLength} positions (shorten the query or prompt)`,
    );
  }
  checkTurns(renderer, messages, tokenIds, inputId);
  if (promptText === null) return { rendered, tokenIds, promptTokenStart: null, promptTokenCount: null };
  const span = promptSpan(renderer, promptText, query, placement, tokenIds);
  if (span !== null && tokenIds.slice(span.start, span.end).some((id) => renderer.controlTokenIds.has(id))) {
    throw new BadInputError(`input "${inputId}": the safety-prompt span [${span.start}, ${span.end}) holds a control token id`);
  }
  return { rendered, tokenIds, promptTokenStart: span?.start ?? null, promptTokenCount: span ? span.end - span.start : null };
}

/** The control ids the template alone writes for a chat of these roles (content "x"), per renderer. */
const skeletons = new WeakMap<ChatRenderer, Map<string, number[]>>();

function checkTurns(renderer: ChatRenderer, messages: ChatMessageLike[], tokenIds: number[], inputId: string): void {
  const controls = (ids: number[]) => ids.filter((id) => renderer.controlTokenIds.has(id));
  const byRoles = skeletons.get(renderer) ?? new Map<string, number[]>();
  skeletons.set(renderer, byRoles);
  const key = messages.map((m) => m.role).join(',');
  let expected = byRoles.get(key);
  if (expected === undefined) {
    expected = controls(renderer.encodeChat(messages.map((m) => ({ ...m, content: 'x' })), { addGenerationPrompt: true }).ids);
    byRoles.set(key, expected);
  }
  const actual = controls(tokenIds);
  if (actual.length !== expected.length || actual.some((id, i) => id !== expected[i])) {
    throw new BadInputError(
      `input "${inputId}": its tokens hold ${actual.length} control tokens where the chat template writes ${expected.length} for its turns ` +
        '(user text must not add control tokens)',
    );
  }
}

/**
 * Where the prompt's tokens sit: the template's exact system-content span when the runtime offers it,
 * else the first verbatim occurrence of the prompt tokenized alone. Null when neither is clean.
 */
function promptSpan(
  renderer: ChatRenderer,
  promptText: string,
  query: string,
  placement: 'system' | 'user-prefix',
  tokenIds: number[],
): { start: number; end: number } | null {
  const promptTokens = renderer.encode(promptText, { addSpecialTokens: false, splitSpecialTokens: true });
  if (placement === 'system' && renderer.systemContentSpan) {
    try {
      const span = renderer.systemContentSpan(chatMessages(promptText, query, placement), { addGenerationPrompt: true });
      if (span.end - span.start === promptTokens.length) return span;
    } catch {
      // No clean span (content tokens merge with the template's): fall back to the verbatim search.
    }
  }
  const start = findSubsequence(tokenIds, promptTokens);
  return start < 0 ? null : { start, end: start + promptTokens.length };
}
