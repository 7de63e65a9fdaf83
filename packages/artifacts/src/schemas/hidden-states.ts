/**
 * hidden-states/v1 (extract → directions): the final hidden state after the final norm at the last input
 * position of every rendered input; hidden-states-all-layers/v1 adds every layer's state there, and reads
 * as hidden-states/v1. eval-hidden-states/v1 (eval-forward → evaluate) is the held-out evaluation's model
 * pass under one condition: hidden-states/v1 plus the capability proxy's log-likelihood, and reads as
 * hidden-states/v1.
 */
import type { Table } from 'apache-arrow';
import type { ArtifactRef, ArtifactStore } from '../types.ts';
import { checkedLabel, defineTableSchema, readStoredTable, tableForSchema, vectorValues, type StoredTable } from '../schemas.ts';
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

/**
 * The evaluation's model pass under one condition: hidden-states/v1 (the state under the condition's
 * prompt or spliced soft prompt) plus, per row, the mean per-token log-likelihood (nats) of the row's
 * reference answer under the condition — null where the row has none (harmful rows, rows without an answer).
 */
export const evalHiddenStatesSchema = defineTableSchema({
  name: 'eval-hidden-states/v1',
  columns: [...hiddenStatesSchema.columns, { name: 'answer_log_likelihood', type: 'float64', nullable: true }],
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
  const columns = { ...rowColumns(rows), hidden };
  if (layers === null) return tableForSchema(hiddenStatesSchema, columns, { hidden: dim });
  return tableForSchema(
    hiddenStatesAllLayersSchema,
    { ...columns, num_layers: rows.map(() => layers.numLayers), layers: layers.values },
    { hidden: dim, layers: layers.numLayers * dim },
  );
}

/** The columns before `hidden`: which input each row is, and its length in tokens. */
function rowColumns(rows: readonly HiddenStateRow[]) {
  return {
    input_id: rows.map((r) => r.inputId),
    set: rows.map((r) => r.set),
    query_id: rows.map((r) => r.queryId),
    prompt_id: rows.map((r) => r.promptId),
    label: rows.map((r) => r.label),
    n_tokens: rows.map((r) => r.tokens),
  };
}

/** The rows of a stored hidden-states/v1 artifact and their states ([rows, dim] row-major). */
export async function readHiddenStates(
  store: ArtifactStore,
  ref: ArtifactRef,
  input = 'hiddenStates',
): Promise<{ name: string; rows: (ScoredInput & { label: QueryLabel })[]; values: Float32Array; dim: number }> {
  const { table, name, column } = await readStoredTable(store, ref, hiddenStatesSchema, input);
  const { values, dim } = vectorValues(table, 'hidden');
  return { name, rows: storedRows(name, column), values, dim };
}

/** The rows of a stored hidden-states table, each label checked. */
function storedRows(name: string, column: StoredTable['column']): (ScoredInput & { label: QueryLabel })[] {
  const [ids, sets, queryIds, prompts, labels] = [column<string>('input_id'), column<string>('set'), column<string>('query_id'), column<string>('prompt_id'), column<string>('label')];
  return ids.map((id, i) => ({
    inputId: String(id),
    set: String(sets[i]),
    queryId: String(queryIds[i]),
    promptId: String(prompts[i]),
    label: checkedLabel(labels[i], `${name}: row ${i} ("${id}")`),
  }));
}

/** An eval-hidden-states/v1 table: hiddenStatesTable's columns plus each row's answer log-likelihood (or null). */
export function evalHiddenStatesTable(rows: readonly HiddenStateRow[], hidden: Float32Array, dim: number, answerLogLikelihood: readonly (number | null)[]): Table {
  return tableForSchema(evalHiddenStatesSchema, { ...rowColumns(rows), hidden, answer_log_likelihood: [...answerLogLikelihood] }, { hidden: dim });
}

/** The rows of a stored eval-hidden-states/v1 artifact, their states ([rows, dim] row-major) and log-likelihoods. */
export async function readEvalHiddenStates(
  store: ArtifactStore,
  ref: ArtifactRef,
  input = 'hiddenStates',
): Promise<{ name: string; rows: (ScoredInput & { label: QueryLabel })[]; values: Float32Array; dim: number; answerLogLikelihood: (number | null)[] }> {
  const { table, name, column } = await readStoredTable(store, ref, evalHiddenStatesSchema, input);
  const { values, dim } = vectorValues(table, 'hidden');
  return { name, rows: storedRows(name, column), values, dim, answerLogLikelihood: column<number | null>('answer_log_likelihood').map((v) => v ?? null) };
}
