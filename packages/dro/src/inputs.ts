/** Reading the training stages' inputs: rendered chat inputs with the basic prompt, and the directions. */
import {
  BadInputError,
  columnValues,
  renderedInputsSchema,
  type ArtifactRef,
  type ArtifactStore,
} from '@dro/artifacts';
import type { DroExample } from './train-dro.ts';
import { seededShuffle } from './shuffle.ts';

export interface TrainingInputs {
  examples: (DroExample & { set: string; query: string })[];
  /** The basic prompt's own token ids (tokenized alone): the soft prompt's initialisation. */
  promptIds: number[];
}

function checkSchema(ref: ArtifactRef, schema: string, input: string): void {
  if (ref.schema !== schema) throw new BadInputError(`input "${input}": expected a ${schema} artifact, got ${ref.schema}`);
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
  checkSchema(ref, renderedInputsSchema.name, 'rendered');
  const table = await store.getTable(ref);
  const name = `rendered inputs ${ref.digest.slice(0, 12)}`;
  const col = <T>(c: string) => columnValues<T>(table, c, name);
  const promptIds = col<string>('prompt_id');
  const sets = col<string>('set');
  const rows = promptIds.map((_, i) => i).filter((i) => promptIds[i] === opts.promptId && (opts.sets.length === 0 || opts.sets.includes(sets[i]!)));
  if (rows.length === 0) {
    const available = [...new Set(promptIds)].join(', ');
    throw new BadInputError(`${name}: no rows with prompt_id "${opts.promptId}"${opts.sets.length ? ` in sets ${opts.sets.join(', ')}` : ''} (prompt ids present: ${available})`);
  }
  const queryIds = col<string>('query_id');
  const labels = col<string>('label');
  const queries = col<string>('query');
  const tokenIds = col<{ toArray(): Int32Array } | null>('token_ids');
  const starts = col<number | null>('prompt_token_start');
  const counts = col<number | null>('prompt_token_count');

  let examples = rows.map((i) => {
    const where = `${name}: row ${i} (query "${queryIds[i]}")`;
    const label = labels[i];
    if (label !== 'harmful' && label !== 'harmless') throw new BadInputError(`${where}: label must be "harmful" or "harmless", got "${label}"`);
    const start = starts[i];
    const count = counts[i];
    if (start === null || count === null || start === undefined || count === undefined) {
      throw new BadInputError(
        `${where}: prompt_token_start/prompt_token_count are null — the chat template does not contain the prompt's own tokens verbatim, so there is no span for the soft prompt`,
      );
    }
    const ids = Array.from(tokenIds[i]!.toArray());
    if (start < 0 || count < 1 || start + count > ids.length) throw new BadInputError(`${where}: prompt span [${start}, ${start + count}) lies outside its ${ids.length} tokens`);
    return { queryId: queryIds[i]!, set: sets[i]!, query: queries[i]!, label: (label === 'harmless' ? 1 : 0) as 0 | 1, ids, spanStart: start, spanEnd: start + count };
  });
  const first = examples[0]!;
  const promptTokens = first.ids.slice(first.spanStart, first.spanEnd);
  for (const x of examples) {
    const span = x.ids.slice(x.spanStart, x.spanEnd);
    if (span.length !== promptTokens.length || span.some((id, j) => id !== promptTokens[j])) {
      throw new BadInputError(`${name}: query "${x.queryId}" has different prompt tokens than query "${first.queryId}" for prompt "${opts.promptId}"`);
    }
  }
  if (opts.maxQueries !== null && examples.length > opts.maxQueries) {
    // Half from each label (as far as they go), in a seeded order, then back in table order.
    const pick = (label: 0 | 1, n: number) => {
      const pool = examples.filter((x) => x.label === label);
      return seededShuffle(pool.length, opts.seed).slice(0, n).map((j) => pool[j]!);
    };
    const harmful = pick(0, Math.ceil(opts.maxQueries / 2));
    const harmless = pick(1, opts.maxQueries - harmful.length);
    const chosen = new Set([...harmful, ...harmless]);
    examples = examples.filter((x) => chosen.has(x));
  }
  return { examples, promptIds: promptTokens };
}

export { readDirections } from '@dro/artifacts';
