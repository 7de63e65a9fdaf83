/** Parameters of the extract stage, their validation (errors name the field) and presets. */
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

export const paperExtractParams: ExtractParams = { batchSize: 8, chunkSize: 64, allLayers: false, sets: [] };
// Chunks of 32: the quick preset's 192 training inputs split into two equal shards of 96 (its shardSize).
export const quickExtractParams: ExtractParams = { ...paperExtractParams, chunkSize: 32 };

export function parseExtractParams(raw: unknown): ExtractParams {
  const r = ParamReader.of('extract', raw);
  const d = paperExtractParams;
  const params = {
    batchSize: r.int('batchSize', d.batchSize, 1),
    chunkSize: r.int('chunkSize', d.chunkSize, 1),
    allLayers: r.boolean('allLayers', d.allLayers),
    sets: r.strings('sets', d.sets, 'an array of set names'),
  };
  r.done();
  return params;
}
