/**
 * Put user files into the artifact store, so a pipeline's cache key follows the files' content (not
 * their paths): a query file becomes a query-set/v1 table, prompt text files one prompt-set/v1 JSON.
 * Reading (and validating) is separate from writing, so a caller can check every file before it writes any.
 */
import path from 'node:path';
import {
  type ArtifactRef,
  type ArtifactStore,
  BadInputError,
  NO_PROMPT_ID,
  type PromptSet,
  promptSetSchema,
  querySetSchema,
  readUtf8File,
  tableForSchema,
} from '@dro/artifacts';
import { readQueryFile, type QueryRecord, type ReadQueriesOptions } from './query-files.ts';

export interface ImportQueriesOptions extends ReadQueriesOptions {
  /** Name of the query set ("train", "heldout"); default the file's base name. */
  set?: string;
}

const SET_NAME = /^[A-Za-z0-9._-]+$/;

/** A query file read and validated, not yet in the store. */
export interface QuerySetFile {
  file: string;
  set: string;
  /** The label given for the whole file, if any. */
  label: ReadQueriesOptions['label'] | null;
  records: QueryRecord[];
}

export function readQuerySet(file: string, options: ImportQueriesOptions = {}): QuerySetFile {
  const set = options.set ?? path.basename(file, path.extname(file));
  if (!SET_NAME.test(set)) throw new BadInputError(`query set name ${JSON.stringify(set)} (from ${file}) must be [A-Za-z0-9._-]+`);
  return { file, set, label: options.label ?? null, records: readQueryFile(file, options) };
}

export async function importQueries(store: ArtifactStore, file: string, options: ImportQueriesOptions = {}): Promise<ArtifactRef> {
  return putQuerySet(store, readQuerySet(file, options));
}

/** Write a query set read by readQuerySet as a query-set/v1 table. */
export async function putQuerySet(store: ArtifactStore, { file, set, label, records }: QuerySetFile): Promise<ArtifactRef> {
  const table = tableForSchema(querySetSchema, {
    set: records.map(() => set),
    query_id: records.map((r) => r.query_id),
    query: records.map((r) => r.query),
    label: records.map((r) => r.label),
    category: records.map((r) => r.category),
    pair_id: records.map((r) => r.pair_id),
  });
  // Params record what shaped the table besides the file bytes (the file itself is not an input artifact).
  return store.putTable(querySetSchema.name, table, {
    producer: { stage: 'import-queries', version: '1' },
    params: { file: path.basename(file), set, label },
    inputs: {},
  });
}

/** A prompt file and its id; the id defaults to the file's base name ("prompts/default.txt" → "default"). */
export type PromptFileSpec = string | { id: string; file: string };

export function readPromptFiles(files: readonly PromptFileSpec[]): PromptSet {
  const prompts = files.map((spec) => {
    const { id, file } = typeof spec === 'string' ? { id: path.basename(spec, path.extname(spec)), file: spec } : spec;
    const text = readUtf8File(file, 'safety prompt file');
    if (text.trim() === '') throw new BadInputError(`${file}: empty safety prompt`);
    if (id === NO_PROMPT_ID) throw new BadInputError(`${file}: prompt id "${NO_PROMPT_ID}" is reserved for the no-prompt variant; rename the file`);
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new BadInputError(`${file}: prompt id ${JSON.stringify(id)} must be [A-Za-z0-9._-]+`);
    return { id, text: text.trim(), file };
  });
  const seen = new Map<string, string>();
  for (const p of prompts) {
    const earlier = seen.get(p.id);
    if (earlier) throw new BadInputError(`${p.file}: prompt id "${p.id}" is also used by ${earlier}`);
    seen.set(p.id, p.file);
  }
  return { prompts: prompts.map(({ id, text }) => ({ id, text })) };
}

export async function importPrompts(store: ArtifactStore, files: readonly PromptFileSpec[]): Promise<ArtifactRef> {
  return putPromptSet(store, readPromptFiles(files));
}

/** Write a prompt set read by readPromptFiles as prompt-set/v1 JSON. */
export async function putPromptSet(store: ArtifactStore, promptSet: PromptSet): Promise<ArtifactRef> {
  return store.putJson(promptSetSchema.name, promptSet, {
    producer: { stage: 'import-prompts', version: '1' },
    params: { ids: promptSet.prompts.map((p) => p.id) },
    inputs: {},
  });
}
