/**
 * Splicing a soft prompt into chat inputs: each rendered query keeps its own token embeddings except the
 * span the basic safety prompt's tokens occupy (the system-message content), which is replaced by the
 * soft prompt's rows. Rows are left-padded (the runtime's convention), so the last input position of
 * every row is its final real token.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BadInputError } from '@dro/artifacts';

/** One chat input with the basic prompt: its token ids and where the prompt's tokens sit. */
export interface PromptedInput {
  ids: number[];
  /** [spanStart, spanEnd): the basic prompt's tokens inside `ids`. */
  spanStart: number;
  spanEnd: number;
}

/** What the splicing needs of the model: input embeddings of rectangular id batches. */
export interface Embedder {
  embed(ids: number[][]): tf.Tensor3D;
}

/**
 * Input embeddings [B, T, d] with every row's span replaced by `soft` [n, d] (n may differ from the span
 * length), left-padded with zeros to the longest row, and the matching attention mask [B][T]. Gradients
 * flow back to `soft`; everything else is a constant.
 */
export function spliceSoftPrompt(model: Embedder, inputs: PromptedInput[], soft: tf.Tensor2D): { embeds: tf.Tensor3D; mask: number[][] } {
  const [n, d] = soft.shape;
  const lengths = inputs.map((x) => x.ids.length - (x.spanEnd - x.spanStart) + n);
  const maxLen = Math.max(...lengths);
  const embeds = tf.tidy(() => {
    const softRow = tf.expandDims(soft, 0); // [1, n, d]
    const rows = inputs.map((x, i) => {
      const parts: tf.Tensor3D[] = [];
      const pad = maxLen - lengths[i]!;
      if (pad > 0) parts.push(tf.zeros([1, pad, d]));
      // Prefix and suffix embedded in one call (the span itself is never embedded).
      const outside = [...x.ids.slice(0, x.spanStart), ...x.ids.slice(x.spanEnd)];
      const embedded = model.embed([outside]); // [1, len - span, d]
      if (x.spanStart > 0) parts.push(tf.slice(embedded, [0, 0, 0], [1, x.spanStart, d]));
      parts.push(softRow as tf.Tensor3D);
      const suffixLen = x.ids.length - x.spanEnd;
      if (suffixLen > 0) parts.push(tf.slice(embedded, [0, x.spanStart, 0], [1, suffixLen, d]));
      return tf.concat(parts, 1);
    });
    return tf.concat(rows, 0) as tf.Tensor3D;
  });
  const mask = lengths.map((len) => [...new Array<number>(maxLen - len).fill(0), ...new Array<number>(len).fill(1)]);
  return { embeds, mask };
}

/** Left-pad id rows to one length: ids [B][T] and mask [B][T]. */
export function leftPad(rows: number[][], padId: number): { ids: number[][]; mask: number[][] } {
  const maxLen = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...new Array<number>(maxLen - r.length).fill(padId), ...r]),
    mask: rows.map((r) => [...new Array<number>(maxLen - r.length).fill(0), ...new Array<number>(r.length).fill(1)]),
  };
}

/**
 * Where `promptIds` (the basic prompt tokenized on its own) sits in `ids`: the first occurrence as a
 * contiguous run. The paper's soft prompt occupies exactly that span; if the chat template tokenizes the
 * prompt differently in context, there is no such run and we say so rather than guess.
 */
export function findPromptSpan(ids: readonly number[], promptIds: readonly number[], where: string): { spanStart: number; spanEnd: number } {
  if (promptIds.length === 0) throw new BadInputError(`${where}: the basic prompt has no tokens`);
  outer: for (let s = 0; s + promptIds.length <= ids.length; s++) {
    for (let j = 0; j < promptIds.length; j++) if (ids[s + j] !== promptIds[j]) continue outer;
    return { spanStart: s, spanEnd: s + promptIds.length };
  }
  throw new BadInputError(
    `${where}: the basic prompt's tokens (${promptIds.length} ids, tokenized on their own) do not appear contiguously in the rendered input; ` +
      'the soft prompt must replace exactly that span',
  );
}
