/**
 * Splicing a soft prompt (trained continuous embeddings) into chat inputs, for training (DRO, prompt
 * tuning), sampling and evaluation alike: each input keeps its own token embeddings except the span its
 * text prompt's tokens occupy (the system-message content), which is replaced by the soft prompt's rows.
 * Rows are left-padded (the runtime's convention), so every row's last position is its final real token.
 */
import { tf } from '../backend.ts';

/** One chat input rendered with the text prompt, and where that prompt's tokens sit in it. */
export interface PromptedInput {
  ids: number[];
  /** [spanStart, spanEnd): the text prompt's tokens inside `ids`. */
  spanStart: number;
  spanEnd: number;
}

/**
 * Input embeddings [B, T, d] with every row's span replaced by `soft` [n, d] (n may differ from the span
 * length), left-padded with zeros to the longest row, and the attention mask [B][T]. Gradients flow back
 * to `soft`; everything else is a constant. Pass the result to forward/generate as inputsEmbeds.
 */
export function spliceSoftPrompt(
  model: { embed(ids: number[][]): tf.Tensor3D },
  inputs: PromptedInput[],
  soft: tf.Tensor2D,
): { embeds: tf.Tensor3D; mask: number[][] } {
  const [n, d] = soft.shape;
  const lengths = inputs.map((x) => x.ids.length - (x.spanEnd - x.spanStart) + n);
  const maxLen = Math.max(...lengths);
  const embeds = tf.tidy(() => {
    const softRow = tf.expandDims(soft, 0) as tf.Tensor3D; // [1, n, d]
    const rows = inputs.map((x, i) => {
      const parts: tf.Tensor3D[] = [];
      const pad = maxLen - lengths[i]!;
      if (pad > 0) parts.push(tf.zeros([1, pad, d]));
      // Prefix and suffix embedded in one call (the span itself is never embedded).
      const outside = [...x.ids.slice(0, x.spanStart), ...x.ids.slice(x.spanEnd)];
      const embedded = model.embed([outside]); // [1, len - span, d]
      if (x.spanStart > 0) parts.push(tf.slice(embedded, [0, 0, 0], [1, x.spanStart, d]));
      parts.push(softRow);
      const suffixLen = x.ids.length - x.spanEnd;
      if (suffixLen > 0) parts.push(tf.slice(embedded, [0, x.spanStart, 0], [1, suffixLen, d]));
      return tf.concat(parts, 1);
    });
    return tf.concat(rows, 0) as tf.Tensor3D;
  });
  const mask = lengths.map((len) => [...new Array<number>(maxLen - len).fill(0), ...new Array<number>(len).fill(1)]);
  return { embeds, mask };
}
