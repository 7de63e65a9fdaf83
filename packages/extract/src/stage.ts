/**
 * The extract stage: for each rendered input, the final hidden state after the final norm at the last
 * input position (the position where the model starts its answer) — [d] per row, as FixedSizeList<Float32>.
 * With allLayers, also every layer's state at that position (HF hidden_states layout: embeddings, block
 * outputs 1..L−1, final normed state), layer-major in one [(L+1)·d] vector.
 *
 * Rows are processed in checkpointed chunks (resumable, see runInChunks in @dro/pipeline); inside a chunk rows are
 * grouped by token length into left-padded batches, then put back in input order.
 *
 * Inputs:  rendered (rendered-inputs/v1)
 * Outputs: hiddenStates (hidden-states/v1, or hidden-states-all-layers/v1 with allLayers)
 */
import {
  type ArtifactRef,
  hiddenStatesAllLayersSchema,
  hiddenStatesSchema,
  hiddenStatesTable,
  readRenderedInputs,
  renderedInputsSchema,
  renderedRowIndices,
  renderedTokenCount,
} from '@dro/artifacts';
import { type ChatModel, padBatch, tf } from '@dro/llm';
import { runInChunks, type Stage, type StageContext } from '@dro/pipeline';
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
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { sets: params.sets });
  const schema = params.allLayers ? hiddenStatesAllLayersSchema : hiddenStatesSchema;
  const all = await runInChunks(ctx, rows, { chunkSize: params.chunkSize, schema: schema.name, message: 'hidden states' }, async (chunkRows) => {
    const states = extractHiddenStates(await ctx.openModel(), chunkRows.map((r) => r.tokenIds), params.batchSize, params.allLayers);
    const layers = states.layers && { values: states.layers, numLayers: states.numLayers };
    return hiddenStatesTable(chunkRows.map((r) => ({ ...r, tokens: r.tokenIds.length })), states.hidden, states.dim, layers);
  });
  return { hiddenStates: await ctx.store.putTable(schema.name, all, ctx.manifest()) };
}

export const extractStage: Stage<ExtractParams> = {
  name: 'extract',
  version: '1',
  needs: 'model',
  inputs: ['rendered'],
  inputSchemas: { rendered: renderedInputsSchema.name },
  outputs: ['hiddenStates'],
  // With allLayers the output is hidden-states-all-layers/v1, which reads as hidden-states/v1.
  outputSchemas: { hiddenStates: hiddenStatesSchema.name },
  parseParams: parseExtractParams,
  // A row's hidden state depends on its own tokens (and the chunk it is batched in).
  rowParallel: {
    input: 'rendered',
    chunkRows: (params) => params.chunkSize,
    selectRows: (table, params) => renderedRowIndices(table, { sets: params.sets }),
    rowCost: (table, row) => renderedTokenCount(table, row),
  },
  run: runExtract,
};
