/**
 * The Llama-family decoder (Llama / SmolLM2, Mistral, Qwen2) run eagerly in TensorFlow.js: weight upload
 * in the block's layout, each call's RoPE tables and attention bias, and the loop over blocks. The block's
 * math itself is decoder-block.ts (shared with the native graph, native/forward-graph.ts).
 *
 *   x = embed(ids)                                   [b, t, d]
 *   for each block:  x = x + attention(rmsNorm(x))   causal self-attention with RoPE and GQA
 *                    x = x + mlp(rmsNorm(x))         SiLU-gated MLP
 *   hidden = rmsNorm(x)                              "final hidden state" (HF hidden_states[-1])
 *   logits = hidden @ lmHead                         [b, t, V]
 *
 * Notation: b batch, t new positions, s all positions (cache + new), d hidden size, h query heads,
 * kvh key/value heads, g = h / kvh query heads per kv head, hd head dim, ff MLP width, V vocabulary.
 *
 * Layout choices. Every tfjs op costs a fixed 5-30 µs of dispatch on top of its work (the native backend
 * at the top of that range), so decoding one token is bound by the number of ops, and prefill/training by
 * the memory traffic of the elementwise ones; both are kept few:
 *  - every projection is stored transposed as [in, out] so x @ W needs no transpose flag (tfjs-wasm runs
 *    transposeB ~10x slower); q/k/v share one matmul; gate and up are two matmuls (no slicing copies);
 *  - each RMSNorm's weight is folded into the rows of the projection that follows it (x·w @ W = x @ diag(w)W),
 *    so a block's norms are weightless; only the final norm keeps its weight;
 *  - the residual stream is kept 2-D [b t, d] inside the decoder (no reshapes around every matmul);
 *  - RoPE is one pass over all q/k/v heads: x cos + reverse_halves(x) sin±, with tables that also carry the
 *    1/sqrt(hd) score scale on query heads and the identity (cos 1, sin 0) on value heads;
 *  - the key cache is kept transposed ([.., hd, s]) so scores = q @ kT; the attention bias is built per query
 *    row group on the host, so scores need no 5-D views.
 * With tied embeddings the only copy of the embedding matrix is lmHead [d, V]; embedding lookup gathers
 * its columns, so the model is held once.
 */
import { tf } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import type { WeightSource } from '../weights/source.ts';
import { inverseFrequencies, rotaryTables } from './rope.ts';
import { attentionBias, positionIds } from './mask.ts';
import { decoderBlock, finalNorm, type BlockParams, type StepInputs } from './decoder-block.ts';
import { eagerOps, frozenMatMul } from './eager-ops.ts';

/** One decoder block's weights, transposed to [in, out]; the input norms' weights are folded into qkv / gate / up. */
type BlockWeights = BlockParams<tf.Tensor>;

export interface DecoderWeights {
  blocks: BlockWeights[];
  finalNorm: tf.Tensor1D; // [d]
  /** [d, 1] filled with 1/d: mean over the hidden axis as a matmul (see rmsNormalizer). */
  meanColumn: tf.Tensor2D;
  /** RMSNorm epsilon as a held scalar (a JS number would be uploaded as a new tensor on every call). */
  normEps: tf.Scalar;
  lmHead: tf.Tensor2D; // [d, V]
  /** [V, d] when embeddings are not tied; null when tied (rows are gathered from lmHead's columns). */
  embedTokens: tf.Tensor2D | null;
}

/** Per-layer key/value cache. keysT [b, kvh, hd, s], values [b, kvh, s, hd]. */
export interface LayerCache {
  keysT: tf.Tensor4D;
  values: tf.Tensor4D;
}

/** Transpose an HF [rows, cols] matrix into [cols, rows], writing rows at a column offset of `out`. */
function transposeInto(src: Float32Array, rows: number, cols: number, out: Float32Array, outCols: number, colOffset: number): void {
  for (let r = 0; r < rows; r++) {
    const srcRow = r * cols;
    for (let c = 0; c < cols; c++) out[c * outCols + colOffset + r] = src[srcRow + c];
  }
}

/**
 * Read HF [out_i, in] matrices, fuse them along `out` and upload as one [in, sum(out_i)] tensor. With
 * `rowScale` (a preceding RMSNorm's weight, [in]) row r of the result is multiplied by rowScale[r].
 */
function uploadFusedTransposed(weights: WeightSource, names: string[], rowScale: Float32Array | null = null): tf.Tensor2D {
  const shapes = names.map((n) => weights.info(n).shape);
  const inDim = shapes[0][1];
  const outTotal = shapes.reduce((sum, s) => sum + s[0], 0);
  const fused = new Float32Array(inDim * outTotal);
  let offset = 0;
  for (let i = 0; i < names.length; i++) {
    transposeInto(weights.read(names[i]), shapes[i][0], inDim, fused, outTotal, offset);
    offset += shapes[i][0];
  }
  if (rowScale !== null) {
    if (rowScale.length !== inDim) throw new RangeError(`norm weight has ${rowScale.length} entries, projection ${names[0]} expects ${inDim}`);
    for (let r = 0; r < inDim; r++) {
      const scale = rowScale[r];
      for (let c = r * outTotal, end = c + outTotal; c < end; c++) fused[c] *= scale;
    }
  }
  return tf.tensor2d(fused, [inDim, outTotal]);
}

function uploadVector(weights: WeightSource, names: string[]): tf.Tensor1D {
  const parts = names.map((n) => weights.read(n));
  const out = new Float32Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return tf.tensor1d(out);
}

/**
 * Upload every weight, one tensor at a time (the JS float copy of each is dropped before the next is read,
 * so the process never holds two float copies of the model).
 */
export function uploadWeights(config: ModelConfig, weights: WeightSource): DecoderWeights {
  const blocks: BlockWeights[] = [];
  const created: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    created.push(t);
    return t;
  };
  try {
    for (let i = 0; i < config.numLayers; i++) {
      const p = `model.layers.${i}`;
      const qkvNames = ['q_proj', 'k_proj', 'v_proj'].map((n) => `${p}.self_attn.${n}`);
      const attentionNorm = weights.read(`${p}.input_layernorm.weight`);
      const mlpNorm = weights.read(`${p}.post_attention_layernorm.weight`);
      blocks.push({
        qkv: keep(uploadFusedTransposed(weights, qkvNames.map((n) => `${n}.weight`), attentionNorm)),
        qkvBias: config.attentionBias ? keep(uploadVector(weights, qkvNames.map((n) => `${n}.bias`))) : null,
        attentionOut: keep(uploadFusedTransposed(weights, [`${p}.self_attn.o_proj.weight`])),
        attentionOutBias: config.attentionOutputBias ? keep(uploadVector(weights, [`${p}.self_attn.o_proj.bias`])) : null,
        gate: keep(uploadFusedTransposed(weights, [`${p}.mlp.gate_proj.weight`], mlpNorm)),
        up: keep(uploadFusedTransposed(weights, [`${p}.mlp.up_proj.weight`], mlpNorm)),
        down: keep(uploadFusedTransposed(weights, [`${p}.mlp.down_proj.weight`])),
      });
    }
    const finalNorm = keep(uploadVector(weights, ['model.norm.weight']));
    const meanColumn = keep(tf.fill([config.hiddenSize, 1], 1 / config.hiddenSize) as tf.Tensor2D);
    const normEps = keep(tf.scalar(config.rmsNormEps));
    const lmHeadName = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const lmHead = keep(uploadFusedTransposed(weights, [lmHeadName]));
    let embedTokens: tf.Tensor2D | null = null;
    if (!config.tieWordEmbeddings) {
      const info = weights.info('model.embed_tokens.weight');
      embedTokens = keep(tf.tensor2d(weights.read('model.embed_tokens.weight'), info.shape as [number, number]));
    }
    return { blocks, finalNorm, meanColumn, normEps, lmHead, embedTokens };
  } catch (err) {
    tf.dispose(created);
    throw err;
  }
}

export function disposeWeights(w: DecoderWeights): void {
  for (const b of w.blocks) tf.dispose(Object.values(b).filter((t): t is tf.Tensor => t !== null));
  tf.dispose([w.finalNorm, w.meanColumn, w.normEps, w.lmHead]);
  if (w.embedTokens !== null) w.embedTokens.dispose();
}

/** Token embeddings [b, t, d] for rectangular ids [b][t]. */
export function embedTokens(config: ModelConfig, w: DecoderWeights, ids: number[][]): tf.Tensor3D {
  const b = ids.length;
  const t = ids[0].length;
  const flat = tf.tensor1d(ids.flat(), 'int32');
  return tf.tidy(() => {
    const rows = w.embedTokens !== null
      ? tf.gather(w.embedTokens, flat, 0) // [b t, d]
      : tf.transpose(tf.gather(w.lmHead, flat, 1)); // [d, b t] -> [b t, d]
    flat.dispose();
    return tf.reshape(rows, [b, t, config.hiddenSize]);
  });
}

/** Everything one decoder call shares across layers: rotary tables and the attention bias. */
export interface StepContext {
  /** RoPE tables over all q | k | v heads [b, t, h + 2 kvh, hd] (see rotaryHeadTables). */
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** Additive attention bias [b, 1, g t, s]: row j t + i is query position i (for each of the g query heads). */
  bias: tf.Tensor4D;
  /** No position is masked (no padding, and a single query position sees the whole cache): the add is skipped. */
  biasIsZero?: boolean;
  /**
   * Decoding (one new position, few rows): the same RoPE as per-head matrices [b, h + 2 kvh, hd, hd], so
   * rotating, scaling and moving heads ahead of time take one batched matmul instead of eight ops.
   */
  rotation?: tf.Tensor4D;
}

/** Rows up to which a one-position step uses rotation matrices (b · heads · hd² floats, read by every layer). */
const ROTATION_MATRIX_MAX_ROWS = 8;

/**
 * Per-(row, head) matrices R with x R = x cos + swapHalves(x) sin for one position: column i holds cos[i]
 * at row i and sin[i] at row (i + hd/2) mod hd. Tables [rows, heads, hd] in, [rows, heads, hd, hd] out.
 */
function rotationMatrices(cos: Float32Array, sin: Float32Array, rowsTimesHeads: number, hd: number): Float32Array {
  const half = hd / 2;
  const out = new Float32Array(rowsTimesHeads * hd * hd);
  for (let m = 0; m < rowsTimesHeads; m++) {
    const base = m * hd * hd;
    for (let i = 0; i < hd; i++) {
      out[base + i * hd + i] = cos[m * hd + i];
      out[base + ((i + half) % hd) * hd + i] = sin[m * hd + i];
    }
  }
  return out;
}

/**
 * RoPE as one elementwise pass over the fused q | k | v heads: y = x cos + swapHalves(x) sin, where
 * swapHalves(x) = [x2, x1] and sin carries rotate_half's sign ([-sin, +sin] over the two halves), so
 * y = x cos + rotate_half(x) sin as in HF. Query heads' tables are also scaled by 1/sqrt(hd) (the score
 * scale, applied once here); value heads get cos 1, sin 0 (untouched). Tables: [rows, heads, hd] flattened.
 */
function rotaryHeadTables(config: ModelConfig, positions: Int32Array, invFreq: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const { numHeads: h, numKvHeads: kvh, headDim: hd } = config;
  const heads = h + 2 * kvh;
  const half = hd / 2;
  const base = rotaryTables(positions, invFreq); // [rows, hd]
  const cos = new Float32Array(positions.length * heads * hd);
  const sin = new Float32Array(positions.length * heads * hd);
  const queryScale = 1 / Math.sqrt(hd);
  for (let r = 0; r < positions.length; r++) {
    for (let head = 0; head < heads; head++) {
      const out = (r * heads + head) * hd;
      if (head >= h + kvh) {
        cos.fill(1, out, out + hd); // value head: identity
        continue;
      }
      const scale = head < h ? queryScale : 1;
      for (let i = 0; i < hd; i++) {
        cos[out + i] = base.cos[r * hd + i] * scale;
        sin[out + i] = (i < half ? -1 : 1) * base.sin[r * hd + i] * scale;
      }
    }
  }
  return { cos, sin };
}

/**
 * Rotary tables and attention bias for the last `newTokens` slots of rows with the given full mask.
 * `rotationMatrices: false` skips the decode-step rotation matrices (the decode graph uses the tables).
 */
export function stepContext(config: ModelConfig, invFreq: Float32Array, mask: number[][], newTokens: number, options: { rotationMatrices?: boolean } = {}): StepContext {
  const b = mask.length;
  const s = mask[0].length;
  const { numHeads: h, numKvHeads: kvh, headDim: hd } = config;
  const g = h / kvh;
  const { cos, sin } = rotaryHeadTables(config, positionIds(mask, newTokens), invFreq);
  const perRow = attentionBias(mask, newTokens, config.slidingWindow); // [b, t, s]
  const biasIsZero = perRow.every((v) => v === 0);
  const bias = new Float32Array(b * g * newTokens * s);
  const rowBlock = newTokens * s;
  for (let row = 0; row < b; row++) {
    const src = perRow.subarray(row * rowBlock, (row + 1) * rowBlock);
    for (let j = 0; j < g; j++) bias.set(src, (row * g + j) * rowBlock);
  }
  const heads = h + 2 * kvh;
  const ctx: StepContext = {
    cos: tf.tensor4d(cos, [b, newTokens, heads, hd]),
    sin: tf.tensor4d(sin, [b, newTokens, heads, hd]),
    bias: tf.tensor4d(bias, [b, 1, g * newTokens, s]),
    biasIsZero,
  };
  if (newTokens === 1 && b <= ROTATION_MATRIX_MAX_ROWS && options.rotationMatrices !== false) {
    ctx.rotation = tf.tensor4d(rotationMatrices(cos, sin, b * heads, hd), [b, heads, hd, hd]);
  }
  return ctx;
}

export function disposeStepContext(ctx: StepContext): void {
  tf.dispose([ctx.cos, ctx.sin, ctx.bias]);
  if (ctx.rotation !== undefined) ctx.rotation.dispose();
}

export interface DecoderOutput {
  /** After the final RMSNorm: [b, t, d]. */
  hidden: tf.Tensor3D;
  /** HF hidden_states when requested: [embeddings, block 1..L-1 outputs, final normed] (L + 1 tensors). */
  layers: tf.Tensor3D[] | null;
  /** The cache including this call's positions, one entry per block. */
  cache: LayerCache[];
}

/**
 * Run a tf.grad from inside a gradient function. tfjs's engine keeps one active tape: a tf.grad started
 * during backprop replaces it and nulls it when done, and the outer tf.grad then fails cleaning up its
 * own tape. Restoring the outer tape afterwards makes the nesting safe.
 */
function withNestedTape<T>(fn: () => T): T {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outerTape = state.activeTape;
  try {
    return fn();
  } finally {
    state.activeTape = outerTape;
  }
}

/** The block's step inputs from a step context (the bias add is skipped when nothing is masked). */
function stepInputs(ctx: StepContext): StepInputs<tf.Tensor> {
  return { cos: ctx.cos, sin: ctx.sin, bias: ctx.biasIsZero === true ? null : ctx.bias, rotation: ctx.rotation };
}

/** The eager ops of a call over residual rows of b rows × t positions. */
type EagerOps = ReturnType<typeof eagerOps>;

/**
 * A block with activation checkpointing: the forward keeps only the block's input; backprop recomputes the
 * block and differentiates it w.r.t. that input (weights are constants, i.e. frozen). The step context's
 * tensors are passed as inputs too, so the tape keeps them alive until backprop (the caller disposes its
 * own references right after the forward).
 */
function checkpointedBlock(config: ModelConfig, block: BlockWeights, o: EagerOps): (x: tf.Tensor2D, ctx: StepContext) => tf.Tensor2D {
  const run = (x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, bias: tf.Tensor): tf.Tensor2D => decoderBlock(o, config, block, x, { cos, sin, bias }, null).next as tf.Tensor2D;
  // customGrad's typing is variadic (inputs..., save).
  const customFn = ((x: tf.Tensor, cos: tf.Tensor4D, sin: tf.Tensor4D, bias: tf.Tensor4D, save: tf.GradSaveFunc) => {
    save([x, cos, sin, bias]);
    return {
      value: tf.tidy(() => run(x, cos, sin, bias)),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [savedX, savedCos, savedSin, savedBias] = saved;
          const dx = withNestedTape(() => tf.grad((z: tf.Tensor) => run(z, savedCos, savedSin, savedBias))(savedX, dy as tf.Tensor));
          return [dx, tf.zerosLike(savedCos), tf.zerosLike(savedSin), tf.zerosLike(savedBias)];
        }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0];
  const fn = tf.customGrad(customFn);
  return (x, ctx) => fn(x, ctx.cos, ctx.sin, ctx.bias) as tf.Tensor2D;
}

export interface RunOptions {
  /** Return every layer's output (HF hidden_states layout). */
  collectLayers?: boolean;
  /** Return the KV cache (generation). */
  keepCache?: boolean;
  /** Activation checkpointing for tf.grad through the model (no cache, no layers). */
  checkpoint?: boolean;
}

/**
 * Run every block over input embeddings x [b, t, d] (continuing `past` when given). Inside, the residual
 * stream is [b t, d] rows. Each block runs in its own tidy, so only its outputs outlive it: peak memory is
 * one block's intermediates, not the whole model's (tf.grad's tape keeps its own references to what
 * backprop needs). Callers own the outer tidy.
 */
export function runDecoder(config: ModelConfig, w: DecoderWeights, x: tf.Tensor3D, ctx: StepContext, past: LayerCache[] | null, options: RunOptions = {}): DecoderOutput {
  const [b, t, d] = x.shape;
  const collected: tf.Tensor2D[] = [];
  const cache: LayerCache[] = [];
  const o = eagerOps(config, w, b, t);
  const step = stepInputs(ctx);
  let residual = tf.reshape(x, [b * t, d]) as tf.Tensor2D;
  for (let i = 0; i < w.blocks.length; i++) {
    const block = w.blocks[i];
    let next: tf.Tensor2D;
    if (options.checkpoint) {
      next = checkpointedBlock(config, block, o)(residual, ctx);
    } else {
      const input = residual;
      const out = tf.tidy(() => {
        const { next: rows, cache: kv } = decoderBlock(o, config, block, input, step, past?.[i] ?? null);
        return { next: rows as tf.Tensor2D, keysT: kv.keysT as tf.Tensor4D, values: kv.values as tf.Tensor4D };
      });
      if (options.keepCache) cache.push({ keysT: out.keysT, values: out.values });
      else tf.dispose([out.keysT, out.values]);
      next = out.next;
    }
    const previous = residual;
    residual = next;
    if (options.collectLayers && i < w.blocks.length - 1) collected.push(residual);
    if (!collected.includes(previous)) previous.dispose();
  }
  const hidden = tf.reshape(finalNorm(o, residual, w.finalNorm), [b, t, d]) as tf.Tensor3D;
  if (!collected.includes(residual)) residual.dispose();
  let layers: tf.Tensor3D[] | null = null;
  if (options.collectLayers) {
    layers = [x, ...collected.map((rows) => tf.reshape(rows, [b, t, d]) as tf.Tensor3D), hidden];
    tf.dispose(collected);
  }
  return { hidden, layers, cache };
}

/** Logits [b, t, V] from final hidden states [b, t, d]. */
export function lmLogits(w: DecoderWeights, hidden: tf.Tensor3D): tf.Tensor3D {
  const [b, t, d] = hidden.shape;
  return tf.reshape(frozenMatMul(tf.reshape(hidden, [b * t, d]) as tf.Tensor2D, w.lmHead), [b, t, -1]) as tf.Tensor3D;
}

export function ropeFrequencies(config: ModelConfig): Float32Array {
  return inverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling);
}
