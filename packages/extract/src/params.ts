/** Parameters of the extract stage, their defaults and their validation (errors name the field). */
import { ParamReader } from '@dro/pipeline';

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

/** What the stage does when given no params (a preset sets its own: experiment/src/presets/). */
export const defaultExtractParams: ExtractParams = { batchSize: 8, chunkSize: 64, allLayers: false, sets: [] };

export function parseExtractParams(raw: unknown): ExtractParams {
  const r = ParamReader.of('extract', raw);
  const d = defaultExtractParams;
  const params = {
    batchSize: r.int('batchSize', d.batchSize, 1),
    chunkSize: r.int('chunkSize', d.chunkSize, 1),
    allLayers: r.boolean('allLayers', d.allLayers),
    sets: r.strings('sets', d.sets, 'an array of set names'),
  };
  r.done();
  return params;
}
