/** Parameters of the extract stage, their validation (errors name the field) and presets. */
import { BadInputError } from '@dro/artifacts';

export interface ExtractParams {
  /** Rows per forward pass (left-padded; rows are grouped by length inside a chunk to waste less). */
  batchSize: number;
  /** Rows per checkpointed chunk (see ChunkCheckpoints in @dro/pipeline). */
  chunkSize: number;
  /** Also store every layer's hidden state at the last position (hidden-states-all-layers/v1). */
  allLayers: boolean;
  /** Only rows of these query sets; empty = all. */
  sets: string[];
}

export const paperExtractParams: ExtractParams = { batchSize: 8, chunkSize: 64, allLayers: false, sets: [] };
export const quickExtractParams: ExtractParams = { ...paperExtractParams };

const KEYS = Object.keys(paperExtractParams);

function fail(field: string, expected: string, got: unknown): never {
  throw new BadInputError(`extract params: ${field}: expected ${expected}, got ${JSON.stringify(got)}`);
}

export function parseExtractParams(raw: unknown): ExtractParams {
  if (raw === undefined || raw === null) return { ...paperExtractParams };
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('(params)', 'an object', raw);
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!KEYS.includes(key)) fail(key, `one of the known fields (${KEYS.join(', ')})`, key);
  const positive = (key: 'batchSize' | 'chunkSize') => {
    const v = r[key] ?? paperExtractParams[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(key, 'a positive integer', v);
    return v as number;
  };
  const allLayers = r.allLayers ?? false;
  if (typeof allLayers !== 'boolean') fail('allLayers', 'true or false', allLayers);
  const sets = r.sets ?? [];
  if (!Array.isArray(sets) || sets.some((s) => typeof s !== 'string' || s === '')) fail('sets', 'an array of set names', sets);
  return { batchSize: positive('batchSize'), chunkSize: positive('chunkSize'), allLayers: allLayers as boolean, sets: sets as string[] };
}
