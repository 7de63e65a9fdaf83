/**
 * What the evaluation reads besides the typed artifact readers of @dro/artifacts: a condition's rows as
 * prompted inputs, and the projection of hidden states onto the directions.
 */
import { BadInputError, type Directions, type RenderedInput } from '@dro/artifacts';
import type { PromptedInput } from '@dro/llm';

/** A rendered row as the model runs it under a condition: with a soft prompt, its span must exist. */
export function promptedInput(row: RenderedInput, soft: boolean): PromptedInput {
  if (!soft) return { ids: row.tokenIds, spanStart: 0, spanEnd: 0 };
  if (row.promptSpan === null) {
    throw new BadInputError(`rendered: query "${row.queryId}" has no prompt span, so a soft prompt cannot replace it`);
  }
  return { ids: row.tokenIds, spanStart: row.promptSpan.start, spanEnd: row.promptSpan.end };
}

/** z = V_k (h − μ) for one hidden state h [d] → [k]; and the two boundary logits. */
export function project(dirs: Directions, h: Float32Array, offset = 0): { z: number[]; refusal: number; harmfulness: number } {
  const z = new Array<number>(dirs.k).fill(0);
  for (let j = 0; j < dirs.k; j++) {
    let s = 0;
    for (let i = 0; i < dirs.d; i++) s += (h[offset + i]! - dirs.mean[i]!) * dirs.components[j * dirs.d + i]!;
    z[j] = s;
  }
  const dot = (w: Float32Array) => z.reduce((s, v, j) => s + v * w[j]!, 0);
  return { z, refusal: dot(dirs.refusalW) + dirs.refusalB, harmfulness: dot(dirs.harmfulnessW) + dirs.harmfulnessB };
}
