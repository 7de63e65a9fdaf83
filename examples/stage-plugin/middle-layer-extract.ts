/**
 * A stage plugin that replaces `extract`: for each rendered input it stores the hidden state of a chosen
 * layer — by default the middle one — at the last input position, instead of the final normed state.
 * The rest of the DAG is unchanged: `directions` fits PCA and the refusal / harmfulness boundaries on
 * these states, so its report (held-out accuracy per boundary) says how readable refusal is at that
 * layer. Run it at several layers to see where the refusal direction becomes readable.
 *
 * It is the same contract as the built-in stages (a Stage as the default export), checked against
 * `extract` when the config loads it: name "extract", needs "model", inputs [rendered], outputs
 * [hiddenStates] with the schema `directions` reads, hidden-states/v1. The `hidden` column then holds
 * layer `layer`'s state; the layer actually used is in each output's manifest (summary.layer).
 *
 * Params: the built-in's (the preset passes them: batchSize, chunkSize, allLayers, sets) plus `layer`.
 * Layers are numbered as in Hugging Face's hidden_states: 0 = embeddings, i = output of block i,
 * L = the final normed state (what the built-in stores); "middle" = ⌊L/2⌋.
 */
import { BadInputError, hiddenStatesSchema, hiddenStatesTable, readRenderedInputs, renderedInputsSchema, type ArtifactRef } from '@dro/artifacts';
import { padBatch, tf, type ChatModel } from '@dro/llm';
import { ParamReader, type Stage, type StageContext } from '@dro/pipeline';

export interface MiddleLayerParams {
  layer: number | 'middle';
  /** Rows per forward pass (rows are grouped by token length, as in the built-in). */
  batchSize: number;
  /** Accepted for the preset's sake; this example does not checkpoint chunks. */
  chunkSize: number;
  /** Must be false: this stage stores one layer. */
  allLayers: false;
  /** Only rows of these query sets; empty = all. */
  sets: string[];
}

const DEFAULTS: MiddleLayerParams = { layer: 'middle', batchSize: 8, chunkSize: 64, allLayers: false, sets: [] };

function parseParams(raw: unknown): MiddleLayerParams {
  const r = ParamReader.of('middle-layer extract', raw);
  const layer = r.raw.layer === undefined ? DEFAULTS.layer : r.raw.layer;
  if (layer !== 'middle' && !(typeof layer === 'number' && Number.isInteger(layer) && layer >= 0)) r.fail('layer', 'a layer index ≥ 0 or "middle"', layer);
  r.mark('layer');
  const allLayers = r.boolean('allLayers', DEFAULTS.allLayers);
  if (allLayers) r.fail('allLayers', 'false (this stage stores one layer; use the built-in extract for all of them)', allLayers);
  const params: MiddleLayerParams = {
    layer: layer as MiddleLayerParams['layer'],
    batchSize: r.int('batchSize', DEFAULTS.batchSize, 1),
    chunkSize: r.int('chunkSize', DEFAULTS.chunkSize, 1),
    allLayers: false,
    sets: r.strings('sets', DEFAULTS.sets, 'an array of set names'),
  };
  r.done();
  return params;
}

/** The layer index `param` names for a model with `numLayers` blocks (HF hidden_states has numLayers + 1). */
export function resolveLayer(param: MiddleLayerParams['layer'], numLayers: number): number {
  const layer = param === 'middle' ? Math.floor(numLayers / 2) : param;
  if (layer > numLayers) throw new BadInputError(`middle-layer extract params: layer: the model has hidden states 0..${numLayers}, got ${layer}`);
  return layer;
}

/**
 * Layer `layer`'s hidden state at the last position of each sequence: [rows, d] row-major, in input order.
 * Between batches it yields to the event loop (so heartbeats and signals get through) and calls
 * `afterBatch(rowsDone)` (progress, cancellation).
 */
async function layerStates(model: ChatModel, sequences: number[][], layer: number, batchSize: number, afterBatch: (done: number) => void): Promise<Float32Array> {
  const d = model.config.hiddenSize;
  const out = new Float32Array(sequences.length * d);
  // Similar lengths together waste less padding; results go back to input order.
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[a]!.length - sequences[b]!.length || a - b);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const { ids, mask } = padBatch(rows.map((r) => sequences[r]!), model.padId);
    const t = ids[0]!.length;
    const result = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'none', allLayers: true });
    try {
      // Left padding: position t − 1 is every row's last real token. [b, 1, d]
      const last = tf.tidy(() => tf.slice(result.layers![layer]!, [0, t - 1, 0], [rows.length, 1, d]).dataSync() as Float32Array);
      rows.forEach((row, b) => out.set(last.subarray(b * d, (b + 1) * d), row * d));
    } finally {
      tf.dispose([result.logits, result.lastHidden, ...(result.layers ?? [])]);
    }
    await new Promise((resolve) => setImmediate(resolve));
    afterBatch(start + rows.length);
  }
  return out;
}

async function run(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: MiddleLayerParams): Promise<Record<string, ArtifactRef>> {
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { sets: params.sets });
  const sequences = rows.map((r) => r.tokenIds);
  const model = await ctx.openModel();
  const layer = resolveLayer(params.layer, model.config.numLayers);
  const message = `hidden states at layer ${layer}`;
  ctx.progress({ done: 0, total: sequences.length, message });
  const hidden = await layerStates(model, sequences, layer, params.batchSize, (done) => {
    ctx.signal.throwIfAborted();
    ctx.progress({ done, total: sequences.length, message });
  });
  const table = hiddenStatesTable(rows.map((r) => ({ ...r, tokens: r.tokenIds.length })), hidden, model.config.hiddenSize);
  const manifest = ctx.manifest({ summary: { layer, numLayers: model.config.numLayers } });
  return { hiddenStates: await ctx.store.putTable(hiddenStatesSchema.name, table, manifest) };
}

const middleLayerExtract: Stage<MiddleLayerParams> = {
  name: 'extract',
  version: '1',
  needs: 'model',
  inputs: ['rendered'],
  inputSchemas: { rendered: renderedInputsSchema.name },
  outputs: ['hiddenStates'],
  outputSchemas: { hiddenStates: hiddenStatesSchema.name },
  parseParams,
  run,
};

export default middleLayerExtract;
