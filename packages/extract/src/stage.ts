/**
 * The extract stage: for each rendered input, the final hidden state after the final norm at the last
 * input position (the position where the model starts its answer) — [d] per row, as FixedSizeList<Float32>.
 * With allLayers, also every layer's state at that position (HF hidden_states layout: embeddings, block
 * outputs 1..L−1, final normed state), layer-major in one [(L+1)·d] vector.
 *
 * Rows are processed in checkpointed chunks (resumable, see ChunkCheckpoints in @dro/pipeline); inside a chunk rows are
 * grouped by token length into left-padded batches, then put back in input order.
 *
 * Inputs:  rendered (rendered-inputs/v1)
 * Outputs: hiddenStates (hidden-states/v1, or hidden-states-all-layers/v1 with allLayers)
 */
import type { Table } from 'apache-arrow';
import {
  type ArtifactRef,
  BadInputError,
  concatTables,
  hiddenStatesAllLayersSchema,
  hiddenStatesSchema,
  hiddenStatesTable,
  readRenderedInputs,
} from '@dro/artifacts';
import { type ChatModel, loadModel, padBatch, tf } from '@dro/llm';
import { ChunkCheckpoints, type Stage, type StageContext } from '@dro/pipeline';
import { parseExtractParams, type ExtractParams } from './params.ts';

export interface ExtractedStates {
  /** [rows, d] row-major. */
  hidden: Float32Array;
  /** [rows, (L+1)·d] row-major, with allLayers. */
  layers: Float32Array | null;
  numLayers: number;
  dim: number;
}

/** Last-position hidden states of token sequences, batched by length; results in input order. */
export function extractHiddenStates(model: ChatModel, sequences: readonly (readonly number[])[], batchSize: number, allLayers: boolean): ExtractedStates {
  const dim = model.config.hiddenSize;
  const numLayers = allLayers ? model.config.numLayers + 1 : 0;
  const hidden = new Float32Array(sequences.length * dim);
  const layers = allLayers ? new Float32Array(sequences.length * numLayers * dim) : null;
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[a].length - sequences[b].length || a - b);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const { ids, mask } = padBatch(rows.map((r) => sequences[r]), model.padId);
    const t = ids[0].length;
    const out = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'none', allLayers });
    try {
      // Left padding: position t−1 is every row's last real token.
      const last = tf.tidy(() => tf.slice(out.lastHidden, [0, t - 1, 0], [rows.length, 1, dim]).dataSync() as Float32Array); // [b, 1, d]
      rows.forEach((row, b) => hidden.set(last.subarray(b * dim, (b + 1) * dim), row * dim));
      if (layers && out.layers) {
        out.layers.forEach((layer, l) => {
          const values = tf.tidy(() => tf.slice(layer, [0, t - 1, 0], [rows.length, 1, dim]).dataSync() as Float32Array);
          rows.forEach((row, b) => layers.set(values.subarray(b * dim, (b + 1) * dim), (row * numLayers + l) * dim));
        });
      }
    } finally {
      tf.dispose([out.logits, out.lastHidden, ...(out.layers ?? [])]);
    }
  }
  return { hidden, layers, numLayers, dim };
}

async function runExtract(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: ExtractParams): Promise<Record<string, ArtifactRef>> {
  if (!ctx.modelPath) throw new BadInputError('extract needs a model: none configured');
  const rows = await readRenderedInputs(ctx.store, inputs.rendered, { sets: params.sets });
  const schema = params.allLayers ? hiddenStatesAllLayersSchema : hiddenStatesSchema;
  const manifest = {
    producer: { stage: extractStage.name, version: extractStage.version },
    params,
    inputs: { rendered: inputs.rendered.digest },
    modelDigest: ctx.modelDigest,
  };
  const checkpoints = new ChunkCheckpoints(ctx.store, { ...manifest, chunkSize: params.chunkSize });
  const chunks = Math.ceil(rows.length / params.chunkSize);
  const tables: Table[] = [];
  let model: ChatModel | null = null;
  try {
    for (let chunk = 0; chunk < chunks; chunk++) {
      ctx.signal.throwIfAborted();
      const chunkRows = rows.slice(chunk * params.chunkSize, (chunk + 1) * params.chunkSize);
      let ref = await checkpoints.find(chunk);
      if (ref !== null) ctx.log.info('chunk resumed from checkpoint', { chunk });
      else {
        model ??= await loadModel(ctx.modelPath);
        const states = extractHiddenStates(model, chunkRows.map((r) => r.tokenIds), params.batchSize, params.allLayers);
        const layers = states.layers && { values: states.layers, numLayers: states.numLayers };
        const table = hiddenStatesTable(chunkRows.map((r) => ({ ...r, tokens: r.tokenIds.length })), states.hidden, states.dim, layers);
        ref = await ctx.store.putTable(schema.name, table, { ...manifest, params: { ...params, chunk } });
        await checkpoints.remember(chunk, ref);
      }
      tables.push(await ctx.store.getTable(ref));
      ctx.progress({ done: Math.min(rows.length, (chunk + 1) * params.chunkSize), total: rows.length, message: 'hidden states' });
    }
  } finally {
    model?.dispose();
  }
  const all = concatTables(tables);
  return { hiddenStates: await ctx.store.putTable(schema.name, all, manifest) };
}

export const extractStage: Stage<ExtractParams> = {
  name: 'extract',
  version: '1',
  needs: 'model',
  inputs: ['rendered'],
  outputs: ['hiddenStates'],
  // With allLayers the output is hidden-states-all-layers/v1, which reads as hidden-states/v1.
  outputSchemas: { hiddenStates: hiddenStatesSchema.name },
  parseParams: parseExtractParams,
  run: runExtract,
};
