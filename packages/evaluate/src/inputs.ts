/** Reading evaluation inputs: rendered eval queries, judged samples, directions, soft prompts, references. */
import {
  BadInputError,
  columnValues,
  REFERENCE_ANSWERS_SCHEMA,
  renderedInputsSchema,
  samplesSchema,
  SOFT_PROMPT_SCHEMA,
  toFloat32,
  type ArtifactRef,
  type ArtifactStore,
  type Directions,
  type LocalArtifactStore,
} from '@dro/artifacts';
import type { JudgedSample } from './metrics.ts';

export function checkSchema(ref: ArtifactRef | undefined, schema: string, input: string): ArtifactRef {
  if (!ref) throw new BadInputError(`missing input "${input}" (${schema})`);
  if (ref.schema !== schema) throw new BadInputError(`input "${input}": expected a ${schema} artifact, got ${ref.schema}`);
  return ref;
}

export interface EvalRow {
  set: string;
  queryId: string;
  label: 'harmful' | 'harmless';
  query: string;
  ids: number[];
  /** The text prompt's span, or null (the "none" variant has no prompt). */
  spanStart: number | null;
  spanEnd: number | null;
}

/** Rendered rows with prompt_id = promptId (in `sets` when given). */
export async function readEvalRows(store: ArtifactStore, ref: ArtifactRef, promptId: string, sets: string[]): Promise<EvalRow[]> {
  checkSchema(ref, renderedInputsSchema.name, 'rendered');
  const table = await store.getTable(ref);
  const name = `rendered inputs ${ref.digest.slice(0, 12)}`;
  const col = <T>(c: string) => columnValues<T>(table, c, name);
  const prompts = col<string>('prompt_id');
  const setCol = col<string>('set');
  const queryIds = col<string>('query_id');
  const labels = col<string>('label');
  const queries = col<string>('query');
  const tokens = col<{ toArray(): Int32Array }>('token_ids');
  const starts = col<number | null>('prompt_token_start');
  const counts = col<number | null>('prompt_token_count');
  const rows: EvalRow[] = [];
  prompts.forEach((p, i) => {
    if (p !== promptId || (sets.length > 0 && !sets.includes(setCol[i]!))) return;
    const label = labels[i];
    if (label !== 'harmful' && label !== 'harmless') throw new BadInputError(`${name}: row ${i}: label must be harmful or harmless, got "${label}"`);
    const start = starts[i] ?? null;
    const count = counts[i] ?? null;
    rows.push({
      set: setCol[i]!,
      queryId: queryIds[i]!,
      label,
      query: queries[i]!,
      ids: Array.from(tokens[i]!.toArray()),
      spanStart: start,
      spanEnd: start === null || count === null ? null : start + count,
    });
  });
  if (rows.length === 0) {
    throw new BadInputError(`${name}: no rows with prompt_id "${promptId}"${sets.length ? ` in sets ${sets.join(', ')}` : ''} (present: ${[...new Set(prompts)].join(', ')})`);
  }
  return rows;
}

/** A sample as the evaluation reads it: its recorded verdict, text and position. */
export interface EvalSample extends JudgedSample {
  output: string;
  sampleIndex: number;
  /** The string judge found a refusal phrase (shown with examples; the verdict is `complied`). */
  refused: boolean;
}

/** Samples of the given prompt id (null = all): the condition's samples, judged by the sampling stage. */
export async function readSamples(store: ArtifactStore, ref: ArtifactRef, promptId: string | null): Promise<EvalSample[]> {
  checkSchema(ref, samplesSchema.name, 'samples');
  const table = await store.getTable(ref);
  const name = `samples ${ref.digest.slice(0, 12)}`;
  const col = <T>(c: string) => columnValues<T>(table, c, name);
  const prompts = col<string>('prompt_id');
  const sets = col<string>('set');
  const queryIds = col<string>('query_id');
  const labels = col<string>('label');
  const refused = col<boolean>('refused');
  const complied = col<boolean | null>('complied');
  const judges = col<string>('judge');
  const outputs = col<string>('output');
  const index = col<number>('sample_index');
  const out: EvalSample[] = [];
  prompts.forEach((p, i) => {
    if (promptId !== null && p !== promptId) return;
    const label = labels[i];
    if (label !== 'harmful' && label !== 'harmless') throw new BadInputError(`${name}: row ${i}: label must be harmful or harmless, got "${label}"`);
    out.push({
      set: sets[i]!,
      queryId: queryIds[i]!,
      promptId: p,
      label,
      complied: complied[i] ?? null,
      judge: judges[i]!,
      refused: Boolean(refused[i]),
      output: outputs[i]!,
      sampleIndex: index[i]!,
    });
  });
  return out;
}

export { readDirections } from '@dro/artifacts';
export type DirectionArrays = Directions;

/** z = V_k (h − μ) for one hidden state h [d] → [k]; and the two boundary logits. */
export function project(dirs: DirectionArrays, h: Float32Array, offset = 0): { z: number[]; refusal: number; harmfulness: number } {
  const z = new Array<number>(dirs.k).fill(0);
  for (let j = 0; j < dirs.k; j++) {
    let s = 0;
    for (let i = 0; i < dirs.d; i++) s += (h[offset + i]! - dirs.mean[i]!) * dirs.components[j * dirs.d + i]!;
    z[j] = s;
  }
  const dot = (w: Float32Array) => z.reduce((s, v, j) => s + v * w[j]!, 0);
  return { z, refusal: dot(dirs.refusalW) + dirs.refusalB, harmfulness: dot(dirs.harmfulnessW) + dirs.harmfulnessB };
}

export interface SoftPrompt {
  /** [n, d] row-major. */
  values: Float32Array;
  n: number;
  d: number;
  metadata: Record<string, string>;
}

export async function readSoftPrompt(store: ArtifactStore, ref: ArtifactRef, input: string): Promise<SoftPrompt> {
  checkSchema(ref, SOFT_PROMPT_SCHEMA.name, input);
  // Metadata (method, prompt id) is read where the store offers it; the tensor alone is enough to run.
  const withMeta = (store as Partial<Pick<LocalArtifactStore, 'getTensorsWithMetadata'>>).getTensorsWithMetadata;
  const { tensors, metadata } = withMeta ? await withMeta.call(store, ref) : { tensors: await store.getTensors(ref), metadata: {} };
  const t = tensors.soft_prompt!;
  return { values: toFloat32(t), n: t.shape[0]!, d: t.shape[1]!, metadata };
}

export interface ReferenceAnswer {
  set: string;
  queryId: string;
  answerIds: number[];
}

export async function readReferences(store: ArtifactStore, ref: ArtifactRef, input = 'references'): Promise<ReferenceAnswer[]> {
  checkSchema(ref, REFERENCE_ANSWERS_SCHEMA.name, input);
  const table = await store.getTable(ref);
  const name = `reference answers ${ref.digest.slice(0, 12)}`;
  const sets = columnValues<string>(table, 'set', name);
  const ids = columnValues<string>(table, 'query_id', name);
  const answers = columnValues<{ toArray(): Int32Array }>(table, 'answer_token_ids', name);
  return ids.map((queryId, i) => ({ set: sets[i]!, queryId, answerIds: Array.from(answers[i]!.toArray()) }));
}
