/** Reading the rendered-inputs table that data-prep writes (only the columns these stages use). */
import { type ArtifactRef, BadInputError, columnValues } from '@dro/artifacts';
import type { StageContext } from '@dro/pipeline';

export interface RenderedRow {
  input_id: string;
  set: string;
  query_id: string;
  query_index: number;
  prompt_id: string;
  label: 'harmful' | 'harmless';
  query: string;
  token_ids: number[];
  /** Span of the safety prompt's own tokens in token_ids (null for "none"): where a soft prompt goes. */
  prompt_span?: { start: number; end: number } | null;
}

export async function readRenderedRows(ctx: StageContext, ref: ArtifactRef, sets: readonly string[]): Promise<RenderedRow[]> {
  const table = await ctx.store.getTable(ref);
  const name = `rendered inputs ${ref.digest.slice(0, 12)}`;
  const col = <T,>(c: string) => columnValues<T>(table, c, name);
  const ids = col<string>('input_id');
  const setCol = col<string>('set');
  const queryIds = col<string>('query_id');
  const indices = col<number>('query_index');
  const prompts = col<string>('prompt_id');
  const labels = col<string>('label');
  const queries = col<string>('query');
  const tokens = table.getChild('token_ids')!;
  const spanStarts = col<number | null>('prompt_token_start');
  const spanCounts = col<number | null>('prompt_token_count');
  const rows: RenderedRow[] = [];
  ids.forEach((id, i) => {
    if (sets.length > 0 && !sets.includes(setCol[i])) return;
    if (labels[i] !== 'harmful' && labels[i] !== 'harmless') throw new BadInputError(`${name}: row ${i} ("${id}"): label must be harmful or harmless, got "${labels[i]}"`);
    const tokenIds = Array.from((tokens.get(i) as { toArray(): Int32Array }).toArray());
    if (tokenIds.length === 0) throw new BadInputError(`${name}: row ${i} ("${id}") has no tokens`);
    rows.push({
      input_id: id,
      set: setCol[i],
      query_id: queryIds[i],
      query_index: indices[i],
      prompt_id: prompts[i],
      label: labels[i] as RenderedRow['label'],
      query: queries[i],
      token_ids: tokenIds,
      prompt_span: spanStarts[i] == null || spanCounts[i] == null ? null : { start: spanStarts[i]!, end: spanStarts[i]! + spanCounts[i]! },
    });
  });
  if (rows.length === 0) throw new BadInputError(`${name}: no rows${sets.length ? ` in sets ${sets.join(', ')}` : ''}`);
  return rows;
}
