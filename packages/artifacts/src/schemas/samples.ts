/**
 * What the sampling stages produce: samples/v2 (every sampled response with its verdicts) and
 * compliance-scores/v1 (one soft refusal-boundary label per input, from sampling or refusal-logprob).
 * How a sample's verdict is decided and counted lives in verdicts.ts.
 */
import type { Table } from 'apache-arrow';
import type { ArtifactRef, ArtifactStore } from '../types.ts';
import { checkedLabel, defineTableSchema, readStoredTable, tableForSchema, columnValues, type ColumnSpec } from '../schemas.ts';
import type { QueryLabel } from './queries.ts';
import type { RecordedVerdict } from './verdicts.ts';

/**
 * The columns that name a rendered input (a ScoredInput), first in every per-input table the model stages
 * write: samples, compliance scores, hidden states.
 */
export function inputKeyColumns(): ColumnSpec[] {
  return [
    { name: 'input_id', type: 'utf8' },
    { name: 'set', type: 'utf8' },
    { name: 'query_id', type: 'utf8' },
    { name: 'prompt_id', type: 'utf8' },
    { name: 'label', type: 'utf8' },
  ];
}

export const samplesSchema = defineTableSchema({
  name: 'samples/v2',
  columns: [
    ...inputKeyColumns(),
    { name: 'sample_index', type: 'int32' },
    { name: 'seed', type: 'int32' },
    { name: 'output', type: 'utf8' },
    { name: 'new_tokens', type: 'int32' },
    { name: 'refused', type: 'bool' },
    { name: 'matched_phrase', type: 'utf8', nullable: true },
    /** LLM judge verdict (true = unsafe/harmful answer); null when no LLM judge ran on this sample. */
    { name: 'llm_unsafe', type: 'bool', nullable: true },
    /**
     * The sample's final verdict (see schemas/verdicts.ts): true = counts as complied, false = counts as
     * refused; null = outside the judged selection (judgeTopLongest). Every consumer counts this column.
     */
    { name: 'complied', type: 'bool', nullable: true },
    /** What produced the verdicts (string-judge mode, LLM judge, selection); one value per table. */
    { name: 'judge', type: 'utf8' },
  ],
});

/** One sampled response with its verdicts (a samples/v2 row). */
export interface Sample extends RecordedVerdict {
  inputId: string;
  sampleIndex: number;
  seed: number;
  output: string;
  newTokens: number;
  /** The string judge found a refusal phrase (the verdict that counts is `complied`). */
  refused: boolean;
  matchedPhrase: string | null;
  llmUnsafe: boolean | null;
  /** What produced the verdicts. */
  judge: string;
}

export function samplesTable(samples: readonly Sample[]): Table {
  return tableForSchema(samplesSchema, {
    input_id: samples.map((s) => s.inputId),
    set: samples.map((s) => s.set),
    query_id: samples.map((s) => s.queryId),
    prompt_id: samples.map((s) => s.promptId),
    label: samples.map((s) => s.label),
    sample_index: samples.map((s) => s.sampleIndex),
    seed: samples.map((s) => s.seed),
    output: samples.map((s) => s.output),
    new_tokens: samples.map((s) => s.newTokens),
    refused: samples.map((s) => s.refused),
    matched_phrase: samples.map((s) => s.matchedPhrase),
    llm_unsafe: samples.map((s) => s.llmUnsafe),
    complied: samples.map((s) => s.complied),
    judge: samples.map((s) => s.judge),
  });
}

/** The rows of a samples table (`name` names it in errors), those of `promptId` only when given. */
export function samplesOf(table: Table, name: string, promptId: string | null = null): Sample[] {
  const col = <T>(c: string) => columnValues<T>(table, c, name);
  const [ids, sets, queryIds, prompts, labels] = [col<string>('input_id'), col<string>('set'), col<string>('query_id'), col<string>('prompt_id'), col<string>('label')];
  const [index, seeds, outputs, newTokens, refused] = [col<number>('sample_index'), col<number>('seed'), col<string>('output'), col<number>('new_tokens'), col<boolean>('refused')];
  const [matched, llmUnsafe, complied, judges] = [col<string | null>('matched_phrase'), col<boolean | null>('llm_unsafe'), col<boolean | null>('complied'), col<string>('judge')];
  const out: Sample[] = [];
  prompts.forEach((p, i) => {
    if (promptId !== null && p !== promptId) return;
    out.push({
      inputId: ids[i]!,
      set: sets[i]!,
      queryId: queryIds[i]!,
      promptId: p,
      label: checkedLabel(labels[i], `${name}: row ${i}`),
      sampleIndex: index[i]!,
      seed: seeds[i]!,
      output: outputs[i]!,
      newTokens: newTokens[i]!,
      refused: Boolean(refused[i]),
      matchedPhrase: matched[i] ?? null,
      llmUnsafe: llmUnsafe[i] ?? null,
      complied: complied[i] ?? null,
      judge: judges[i]!,
    });
  });
  return out;
}

/** The samples of a stored samples/v2 artifact (of `promptId` only, when given); `input` names it in errors. */
export async function readSamples(store: ArtifactStore, ref: ArtifactRef, promptId: string | null = null, input = 'samples'): Promise<Sample[]> {
  const { table, name } = await readStoredTable(store, ref, samplesSchema, input);
  return samplesOf(table, name, promptId);
}

/** Label sources of compliance-scores: sampled responses + judge, or one forward pass (refusal openers). */
export type ComplianceSource = 'sampled' | 'logprob';

export const complianceScoresSchema = defineTableSchema({
  name: 'compliance-scores/v1',
  columns: [
    ...inputKeyColumns(),
    /** Soft label of the refusal boundary in [0, 1]: fraction of samples not refused, or 1 − P(refusal opener). */
    { name: 'compliance', type: 'float64' },
    /** Samples judged (0 for the logprob source). */
    { name: 'n_samples', type: 'int32' },
    { name: 'source', type: 'utf8' },
    /** P(the answer opens with a refusal opener); null for the sampled source. */
    { name: 'refusal_prob', type: 'float64', nullable: true },
  ],
});

/** The input a score belongs to (a rendered input's identity). */
export interface ScoredInput {
  inputId: string;
  set: string;
  queryId: string;
  promptId: string;
  label: QueryLabel;
}

/** One input's refusal-boundary label. */
export interface ComplianceScore {
  /** In [0, 1]: share of judged samples that complied, or 1 − P(refusal opener). */
  compliance: number;
  /** Samples judged (0 for the logprob source). */
  samples: number;
  source: ComplianceSource;
  /** P(refusal opener) for the logprob source, else null. */
  refusalProb: number | null;
}

/** A compliance-scores/v1 table: one score per input, in the order of `inputs`. */
export function complianceScoresTable(inputs: readonly ScoredInput[], scores: readonly ComplianceScore[]): Table {
  return tableForSchema(complianceScoresSchema, {
    input_id: inputs.map((r) => r.inputId),
    set: inputs.map((r) => r.set),
    query_id: inputs.map((r) => r.queryId),
    prompt_id: inputs.map((r) => r.promptId),
    label: inputs.map((r) => r.label),
    compliance: scores.map((s) => s.compliance),
    n_samples: scores.map((s) => s.samples),
    source: scores.map((s) => s.source),
    refusal_prob: scores.map((s) => s.refusalProb),
  });
}

/** Compliance score by input id, from a stored compliance-scores/v1 artifact. */
export async function readComplianceScores(store: ArtifactStore, ref: ArtifactRef, input = 'scores'): Promise<{ name: string; byInput: Map<string, number> }> {
  const { name, column } = await readStoredTable(store, ref, complianceScoresSchema, input);
  const compliance = column<number>('compliance');
  return { name, byInput: new Map(column<string>('input_id').map((id, i) => [id, Number(compliance[i])])) };
}
