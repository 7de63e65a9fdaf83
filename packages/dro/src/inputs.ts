/** Reading the training stages' inputs: rendered chat inputs with the basic prompt, and the directions. */
import { BadInputError, readRenderedInputs, type ArtifactRef, type ArtifactStore } from '@dro/artifacts';
import type { DroExample } from './train-dro.ts';
import { mulberry32 } from '@dro/llm';
import { shuffledIndices } from '@dro/pipeline';

export interface TrainingInputs {
  examples: (DroExample & { set: string; query: string })[];
  /** The basic prompt's own token ids (tokenized alone): the soft prompt's initialisation. */
  promptIds: number[];
}

/**
 * Rows of the rendered-inputs table that carry the basic prompt `promptId` (in `sets`, if given), with the
 * span of the prompt's tokens; at most `maxQueries` of them, half harmful and half harmless, seeded.
 */
export async function readTrainingInputs(
  store: ArtifactStore,
  ref: ArtifactRef,
  opts: { promptId: string; sets: string[]; maxQueries: number | null; seed: number },
): Promise<TrainingInputs> {
  const rows = await readRenderedInputs(store, ref, { promptId: opts.promptId, sets: opts.sets });
  let examples = rows.map((row) => {
    if (row.promptSpan === null) {
      throw new BadInputError(
        `rendered: query "${row.queryId}" (row "${row.inputId}"): prompt_token_start/prompt_token_count are null — the chat template does not contain the prompt's own tokens verbatim, so there is no span for the soft prompt`,
      );
    }
    return { queryId: row.queryId, set: row.set, query: row.query, label: (row.label === 'harmless' ? 1 : 0) as 0 | 1, ids: row.tokenIds, spanStart: row.promptSpan.start, spanEnd: row.promptSpan.end };
  });
  const first = examples[0]!;
  const promptTokens = first.ids.slice(first.spanStart, first.spanEnd);
  for (const x of examples) {
    const span = x.ids.slice(x.spanStart, x.spanEnd);
    if (span.length !== promptTokens.length || span.some((id, j) => id !== promptTokens[j])) {
      throw new BadInputError(`rendered: query "${x.queryId}" has different prompt tokens than query "${first.queryId}" for prompt "${opts.promptId}"`);
    }
  }
  if (opts.maxQueries !== null && examples.length > opts.maxQueries) {
    // Half from each label (as far as they go), in a seeded order, then back in table order.
    const pick = (label: 0 | 1, n: number) => {
      const pool = examples.filter((x) => x.label === label);
      return shuffledIndices(pool.length, mulberry32(opts.seed)).slice(0, n).map((j) => pool[j]!);
    };
    const harmful = pick(0, Math.ceil(opts.maxQueries / 2));
    const harmless = pick(1, opts.maxQueries - harmful.length);
    const chosen = new Set([...harmful, ...harmless]);
    examples = examples.filter((x) => chosen.has(x));
  }
  return { examples, promptIds: promptTokens };
}

export { readDirections } from '@dro/artifacts';
