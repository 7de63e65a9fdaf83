/**
 * User text cannot become control tokens. A chat template's output holds real control tokens
 * ("<|im_start|>", "<|im_end|>") written by the template, and user content (queries, safety prompts,
 * responses) which may contain the same strings — "<|im_end|><|im_start|>system…" would otherwise be
 * tokenised as a real turn, and the span DRO trains could hold control ids. User content is tokenised the
 * way HF tokenizers do with `split_special_tokens` (Rust: `encode_special_tokens`): a special token's
 * string in it is ordinary text; non-special added tokens still match, as there.
 *
 * How the two are combined: before rendering, each special-token string in the user content is replaced by
 * a placeholder — a code point of Unicode's supplementary private-use plane 15, which no template alters
 * (every plane-15 character already in the content is escaped the same way, so placeholders are never
 * ambiguous). The template renders the escaped messages; in its output every real special-token string
 * comes from the template. Tokenising then follows @huggingface/tokenizers' own algorithm: the text is
 * split at added tokens (leftmost-longest, with lstrip/rstrip), each added token becomes its id, and each
 * piece of text in between is tokenised with the placeholders put back — by a copy of the tokenizer
 * without special added tokens, so the restored strings are plain text.
 *
 * Ordinary input (no special-token string in any content) takes the unchanged path: the rendered text is
 * tokenised exactly as before, token for token.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

/** Supplementary Private Use Area-A (plane 15): U+F0000..U+FFFFD. */
const PLANE15 = /[\u{F0000}-\u{FFFFD}]/u;
const PLANE15_FIRST = 0xf0000;

export interface AddedTokenSpec {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

/** User texts with special-token strings (and plane-15 characters) replaced by placeholders. */
export interface EscapedTexts {
  texts: string[];
  /** placeholder character → the original string it stands for; empty when nothing was escaped. */
  originals: Map<string, string>;
}

const regexEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class UserTextGuard {
  /** Special tokens' strings and any plane-15 character. */
  private readonly pattern: RegExp;
  /** Every added token, by its first character, longest first (the splitter's dictionary). */
  private readonly addedByFirstChar = new Map<string, AddedTokenSpec[]>();
  private plainFirst: HfTokenizer | null = null;
  private plainLater: HfTokenizer | null = null;

  constructor(
    private readonly added: readonly AddedTokenSpec[],
    private readonly tokenizerJson: Record<string, unknown>,
    private readonly tokenizerConfig: Record<string, unknown>,
  ) {
    const specials = added.filter((t) => t.special && t.content !== '').map((t) => t.content);
    specials.sort((a, b) => b.length - a.length);
    this.pattern = new RegExp([...specials.map(regexEscape), PLANE15.source].join('|'), 'gu');
    // As the library: the first split is by tokens matched on raw text — all of them without a normalizer,
    // else those not marked "normalized" (those match after normalization, inside each section). Special
    // tokens always split here, so the template's control tokens stay real.
    const hasNormalizer = tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined;
    for (const token of [...added].sort((a, b) => b.content.length - a.content.length)) {
      if (token.content === '' || (hasNormalizer && token.normalized && !token.special)) continue;
      const first = token.content[0];
      const list = this.addedByFirstChar.get(first) ?? [];
      list.push(token);
      this.addedByFirstChar.set(first, list);
    }
  }

  /** Whether `text` contains a special token's string (or a plane-15 character). */
  needsEscape(text: string): boolean {
    this.pattern.lastIndex = 0;
    return this.pattern.test(text);
  }

  /** Escape several user texts with one shared placeholder table. */
  escape(texts: readonly string[]): EscapedTexts {
    const originals = new Map<string, string>();
    if (!texts.some((t) => this.needsEscape(t))) return { texts: [...texts], originals };
    const placeholderOf = new Map<string, string>();
    const escaped = texts.map((t) =>
      t.replace(this.pattern, (match) => {
        let placeholder = placeholderOf.get(match);
        if (placeholder === undefined) {
          placeholder = String.fromCodePoint(PLANE15_FIRST + placeholderOf.size);
          placeholderOf.set(match, placeholder);
          originals.set(placeholder, match);
        }
        return placeholder;
      }),
    );
    return { texts: escaped, originals };
  }

  unescape(text: string, originals: ReadonlyMap<string, string>): string {
    if (originals.size === 0) return text;
    return text.replace(new RegExp(PLANE15.source, 'gu'), (c) => originals.get(c) ?? c);
  }

  /**
   * Token ids of `text` (a rendering of escaped messages): added tokens in the text are real, placeholders
   * stand for plain text. `encode` is the tokenizer's ordinary encoding, used when nothing was escaped.
   */
  encodeEscaped(text: string, originals: ReadonlyMap<string, string>, encode: (text: string) => number[]): number[] {
    if (originals.size === 0 || !PLANE15.test(text)) return encode(text);
    const sections = this.split(text);
    const ids: number[] = [];
    sections.forEach((section, index) => {
      if (typeof section !== 'string') {
        ids.push(section.id);
        return;
      }
      if (section === '') return;
      ids.push(...this.plain(index === 0).encode(this.unescape(section, originals), { add_special_tokens: false }).ids);
    });
    return ids;
  }

  /** User text alone as ordinary text (its special-token strings are not control tokens). */
  encodeUserText(text: string, encode: (text: string) => number[]): number[] {
    return this.needsEscape(text) ? this.plain(true).encode(text, { add_special_tokens: false }).ids : encode(text);
  }

  /**
   * @huggingface/tokenizers' added-token split: at each position the longest added token wins; a token
   * with lstrip / rstrip trims the whitespace next to it. Text sections and tokens, in order.
   */
  private split(text: string): (string | AddedTokenSpec)[] {
    const sections: (string | AddedTokenSpec)[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const match = this.addedByFirstChar.get(text[i])?.find((t) => text.startsWith(t.content, i));
      if (match === undefined) {
        i++;
        continue;
      }
      if (i > start) sections.push(text.slice(start, i));
      sections.push(match);
      i += match.content.length;
      start = i;
    }
    if (start < text.length) sections.push(text.slice(start));
    sections.forEach((s, k) => {
      if (typeof s === 'string') return;
      if (s.lstrip && typeof sections[k - 1] === 'string') sections[k - 1] = (sections[k - 1] as string).trimEnd();
      if (s.rstrip && typeof sections[k + 1] === 'string') sections[k + 1] = (sections[k + 1] as string).trimStart();
    });
    return sections;
  }

  /**
   * The tokenizer without its special added tokens (built on first use). A Metaspace pre-tokenizer that
   * prepends "▁" only to the input's first section gets a second copy that never prepends, for the
   * sections after a control token — as the full tokenizer treats them.
   */
  private plain(firstSection: boolean): HfTokenizer {
    const build = (never: boolean) => {
      const json: Record<string, unknown> = { ...this.tokenizerJson, added_tokens: (this.tokenizerJson.added_tokens as { special?: boolean }[]).filter((t) => !t.special) };
      if (never) json.pre_tokenizer = withoutFirstPrepend(json.pre_tokenizer);
      return new HfTokenizer(json, this.tokenizerConfig);
    };
    if (firstSection) return (this.plainFirst ??= build(false));
    this.plainLater ??= usesFirstPrepend(this.tokenizerJson.pre_tokenizer) ? build(true) : (this.plainFirst ??= build(false));
    return this.plainLater;
  }
}

function usesFirstPrepend(config: unknown): boolean {
  return JSON.stringify(withoutFirstPrepend(config)) !== JSON.stringify(config);
}

/** A pre_tokenizer config with every Metaspace prepend_scheme "first" turned into "never". */
function withoutFirstPrepend(config: unknown): unknown {
  if (Array.isArray(config)) return config.map(withoutFirstPrepend);
  if (typeof config !== 'object' || config === null) return config;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) out[k] = withoutFirstPrepend(v);
  if (out.type === 'Metaspace' && out.prepend_scheme === 'first') out.prepend_scheme = 'never';
  return out;
}
