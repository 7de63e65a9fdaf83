/**
 * hidden-states/v1 (extract → directions): the final hidden state after the final norm at the last input
 * position of every rendered input; hidden-states-all-layers/v1 adds every layer's state there, and reads
 * as hidden-states/v1.
 */
import type { Table } from 'apache-arrow';
import type { ArtifactRef, ArtifactStore } from '../types.ts';
import { checkedLabel, defineTableSchema, readStoredTable, tableForSchema, vectorValues } from '../schemas.ts';
import type { QueryLabel } from './queries.ts';
import { inputKeyColumns, type ScoredInput } from './samples.ts';

export const hiddenStatesSchema = defineTableSchema({
  name: 'hidden-states/v1',
  columns: [
    ...inputKeyColumns(),
    { name: 'n_tokens', type: 'int32' },
    /** [d] final hidden state after the final norm, at the last input position. */
    { name: 'hidden', type: 'vector', listSize: 'any' },
  ],
});

/** hidden-states/v1 plus every layer's residual stream at the last position (extract with allLayers). */
export const hiddenStatesAllLayersSchema = defineTableSchema({
  name: 'hidden-states-all-layers/v1',
  columns: [
    ...hiddenStatesSchema.columns,
    { name: 'num_layers', type: 'int32' },
    /** [num_layers × d] layer-major: the output of each decoder block (before the final norm). */
    { name: 'layers', type: 'vector', listSize: 'any' },
  ],
});

/** The input a hidden state belongs to, and its length in tokens. */
export interface HiddenStateRow extends ScoredInput {
  tokens: number;
}

/**
 * A hidden-states table: `hidden` [rows, dim] row-major; with `layers` ([rows, numLayers·dim] row-major) a
 * hidden-states-all-layers/v1 table.
 */
export function hiddenStatesTable(rows: readonly HiddenStateRow[], hidden: Float32Array, dim: number, layers: { values: Float32Array; numLayers: number } | null = null): Table {
  const columns = {
    input_id: rows.map((r) => r.inputId),
    set: rows.map((r) => r.set),
    query_id: rows.map((r) => r.queryId),
    prompt_id: rows.map((r) => r.promptId),
    label: rows.map((r) => r.label),
    n_tokens: rows.map((r) => r.tokens),
    hidden,
  };
  if (layers === null) return tableForSchema(hiddenStatesSchema, columns, { hidden: dim });
  return tableForSchema(
    hiddenStatesAllLayersSchema,
    { ...columns, num_layers: rows.map(() => layers.numLayers), layers: layers.values },
    { hidden: dim, layers: layers.numLayers * dim },
  );
}

/** The rows of a stored hidden-states/v1 artifact and their states ([rows, dim] row-major). */
export async function readHiddenStates(
  store: ArtifactStore,
  ref: ArtifactRef,
  input = 'hiddenStates',
): Promise<{ name: string; rows: (ScoredInput & { label: QueryLabel })[]; values: Float32Array; dim: number }> {
  const { table, name, column } = await readStoredTable(store, ref, hiddenStatesSchema, input);
  const [ids, sets, queryIds, prompts, labels] = [column<string>('input_id'), column<string>('set'), column<string>('query_id'), column<string>('prompt_id'), column<string>('label')];
  const rows = ids.map((id, i) => ({
    inputId: String(id),
    set: String(sets[i]),
    queryId: String(queryIds[i]),
    promptId: String(prompts[i]),
    label: checkedLabel(labels[i], `${name}: row ${i} ("${id}")`),
  }));
  const { values, dim } = vectorValues(table, 'hidden');
  return { name, rows, values, dim };
}
