/** Locating the basic prompt's span in rendered inputs, and left-padding id rows. */
import { BadInputError } from '@dro/artifacts';

// The splicing itself lives in the runtime, shared with sampling and evaluation.
export { spliceSoftPrompt, type PromptedInput } from '@dro/llm';

/** What splicing and nearest-token search need of the model: input embeddings of id batches. */
export interface Embedder {
  embed(ids: number[][]): import('@tensorflow/tfjs-core').Tensor3D;
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
