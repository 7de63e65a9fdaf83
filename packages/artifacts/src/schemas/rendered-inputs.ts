/**
 * rendered-inputs/v1: every (query, prompt variant) rendered through the model's chat template, made by
 * data-prep and read by every stage that runs the model on the queries (sampling, refusal-logprob, extract,
 * dro-train, prompt-tuning, reference-answers, evaluate).
 *
 * Row identity: `input_id` = "<set>/<query_id>/<prompt_id>" is unique within a table and is the join key of
 * every per-input table downstream.
 */
import type { Table } from 'apache-arrow';
import type { ArtifactRef, ArtifactStore, ManifestInput } from '../types.ts';
import { BadInputError } from '../errors.ts';
import { checkedLabel, defineTableSchema, readStoredTable, tableForSchema } from '../schemas.ts';
import type { QueryLabel } from './queries.ts';

export const renderedInputsSchema = defineTableSchema({
  name: 'rendered-inputs/v1',
  columns: [
    { name: 'input_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    /** Position of the query in its set (0-based): the paper's sampling seed. */
    { name: 'query_index', type: 'int32' },
    { name: 'label', type: 'utf8' },
    { name: 'category', type: 'utf8', nullable: true },
    { name: 'pair_id', type: 'utf8', nullable: true },
    { name: 'prompt_id', type: 'utf8' },
    { name: 'query', type: 'utf8' },
    /** The chat-templated text, ending with the assistant-turn opener (generation prompt). */
    { name: 'rendered', type: 'utf8' },
    { name: 'token_ids', type: 'list<int32>' },
    /**
     * Where the safety prompt's own tokens (tokenized alone, no BOS) sit in token_ids: [start, start+count).
     * Null for "none" or when the template's tokenization does not contain them verbatim.
     */
    { name: 'prompt_token_start', type: 'int32', nullable: true },
    { name: 'prompt_token_count', type: 'int32', nullable: true },
  ],
});

/** One rendered input, as every stage reads it. */
export interface RenderedInput {
  inputId: string;
  set: string;
  queryId: string;
  /** Position of the query in its set: the sampling seed. */
  queryIndex: number;
  label: QueryLabel;
  category: string | null;
  pairId: string | null;
  promptId: string;
  query: string;
  rendered: string;
  tokenIds: number[];
  /** [start, end) of the safety prompt's own tokens in tokenIds: where a soft prompt goes; null for "none". */
  promptSpan: { start: number; end: number } | null;
}

/** Which rows a reader wants: only these query sets (empty or absent: all), only this prompt variant. */
export interface RenderedSelection {
  sets?: readonly string[];
  promptId?: string;
}

/** Row `row`'s token count (0 for a missing list): a row-parallel stage's cost estimate (RowParallel.rowCost). */
export function renderedTokenCount(table: Table, row: number): number {
  return (table.getChild('token_ids')?.get(row) as { length: number } | null | undefined)?.length ?? 0;
}

/** Row `row`'s query label, or null when absent or not harmful/harmless. */
export function renderedLabel(table: Table, row: number): QueryLabel | null {
  const label = table.getChild('label')?.get(row);
  return label === 'harmful' || label === 'harmless' ? label : null;
}

/**
 * Indices of the rows of a rendered-inputs table that `select` picks (and of `label` only, when given),
 * in table order — the selection readRenderedInputs applies, for a row-parallel stage's shards.
 */
export function renderedRowIndices(table: Table, select: RenderedSelection & { label?: QueryLabel } = {}): number[] {
  const sets = select.sets ?? [];
  const [setCol, prompts, labels] = [table.getChild('set'), table.getChild('prompt_id'), table.getChild('label')];
  const picked: number[] = [];
  for (let i = 0; i < table.numRows; i++) {
    if (sets.length > 0 && !sets.includes(setCol?.get(i) as string)) continue;
    if (select.promptId !== undefined && prompts?.get(i) !== select.promptId) continue;
    if (select.label !== undefined && labels?.get(i) !== select.label) continue;
    picked.push(i);
  }
  return picked;
}

/**
 * The rows of a rendered-inputs table that `select` picks, in table order. Every row is checked (its label,
 * its tokens, its prompt span inside them); no selected row is an error naming the selection and the
 * prompt ids present. `input` names the artifact in errors.
 */
export async function readRenderedInputs(store: ArtifactStore, ref: ArtifactRef, select: RenderedSelection = {}, input = 'rendered'): Promise<RenderedInput[]> {
  const { table, name, column } = await readStoredTable(store, ref, renderedInputsSchema, input);
  const sets = select.sets ?? [];
  const [ids, setCol, queryIds, indices, labels] = [column<string>('input_id'), column<string>('set'), column<string>('query_id'), column<number>('query_index'), column<string>('label')];
  const [categories, pairs, prompts, queries, rendered] = [column<string | null>('category'), column<string | null>('pair_id'), column<string>('prompt_id'), column<string>('query'), column<string>('rendered')];
  const [starts, counts] = [column<number | null>('prompt_token_start'), column<number | null>('prompt_token_count')];
  const tokens = table.getChild('token_ids')!;
  const rows: RenderedInput[] = [];
  ids.forEach((id, i) => {
    if (sets.length > 0 && !sets.includes(setCol[i]!)) return;
    if (select.promptId !== undefined && prompts[i] !== select.promptId) return;
    const where = `${name}: row ${i} ("${id}")`;
    const tokenIds = Array.from((tokens.get(i) as { toArray(): Int32Array }).toArray());
    if (tokenIds.length === 0) throw new BadInputError(`${where} has no tokens`);
    const start = starts[i] ?? null;
    const count = counts[i] ?? null;
    if (start !== null && count !== null && (start < 0 || count < 1 || start + count > tokenIds.length)) {
      throw new BadInputError(`${where}: prompt span [${start}, ${start + count}) lies outside its ${tokenIds.length} tokens`);
    }
    rows.push({
      inputId: id,
      set: setCol[i]!,
      queryId: queryIds[i]!,
      queryIndex: indices[i]!,
      label: checkedLabel(labels[i], where),
      category: categories[i] ?? null,
      pairId: pairs[i] ?? null,
      promptId: prompts[i]!,
      query: queries[i]!,
      rendered: rendered[i]!,
      tokenIds,
      promptSpan: start === null || count === null ? null : { start, end: start + count },
    });
  });
  if (rows.length === 0) {
    const which = `${select.promptId !== undefined ? ` with prompt_id "${select.promptId}"` : ''}${sets.length ? ` in sets ${sets.join(', ')}` : ''}`;
    throw new BadInputError(`${name}: no rows${which} (prompt ids present: ${[...new Set(prompts)].join(', ')})`);
  }
  return rows;
}

/** Write rendered inputs as a rendered-inputs/v1 table. */
export function writeRenderedInputs(store: ArtifactStore, rows: readonly RenderedInput[], manifest: ManifestInput): Promise<ArtifactRef> {
  const table = tableForSchema(renderedInputsSchema, {
    input_id: rows.map((r) => r.inputId),
    set: rows.map((r) => r.set),
    query_id: rows.map((r) => r.queryId),
    query_index: rows.map((r) => r.queryIndex),
    label: rows.map((r) => r.label),
    category: rows.map((r) => r.category),
    pair_id: rows.map((r) => r.pairId),
    prompt_id: rows.map((r) => r.promptId),
    query: rows.map((r) => r.query),
    rendered: rows.map((r) => r.rendered),
    token_ids: rows.map((r) => r.tokenIds),
    prompt_token_start: rows.map((r) => r.promptSpan?.start ?? null),
    prompt_token_count: rows.map((r) => (r.promptSpan ? r.promptSpan.end - r.promptSpan.start : null)),
  });
  return store.putTable(renderedInputsSchema.name, table, manifest);
}
