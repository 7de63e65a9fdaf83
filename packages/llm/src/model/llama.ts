/**
 * The Llama-family decoder (Llama / SmolLM2, Mistral, Qwen2) in TensorFlow.js, in one readable file.
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
 * Layout choices (measured on tfjs-wasm, where matMul with transposeB is ~10x slower than without):
 * every projection is stored transposed as [in, out] so x @ W needs no transpose flag; q/k/v and gate/up
 * are fused into one matmul each; the key cache is kept transposed ([.., hd, s]) so scores = q @ kT.
 * With tied embeddings the only copy of the embedding matrix is lmHead [d, V]; embedding lookup gathers
 * its columns, so the model is held once.
 */
import { tf } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import type { WeightSource } from '../weights/source.ts';
import { inverseFrequencies, rotaryTables } from './rope.ts';
import { attentionBias, positionIds } from './mask.ts';

/** One decoder block's weights, transposed to [in, out]. */
interface BlockWeights {
  attentionNorm: tf.Tensor1D; // [d]
  qkv: tf.Tensor2D; // [d, (h + 2 kvh) hd]  q | k | v
  qkvBias: tf.Tensor1D | null; // [(h + 2 kvh) hd]  Qwen2
  attentionOut: tf.Tensor2D; // [h hd, d]
  attentionOutBias: tf.Tensor1D | null; // [d]
  mlpNorm: tf.Tensor1D; // [d]
  gateUp: tf.Tensor2D; // [d, 2 ff]  gate | up
  down: tf.Tensor2D; // [ff, d]
}

export interface DecoderWeights {
  blocks: BlockWeights[];
  finalNorm: tf.Tensor1D; // [d]
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

/** Read HF [out_i, in] matrices, fuse them along `out` and upload as one [in, sum(out_i)] tensor. */
function uploadFusedTransposed(weights: WeightSource, names: string[]): tf.Tensor2D {
  const shapes = names.map((n) => weights.info(n).shape);
  const inDim = shapes[0][1];
  const outTotal = shapes.reduce((sum, s) => sum + s[0], 0);
  const fused = new Float32Array(inDim * outTotal);
  let offset = 0;
  for (let i = 0; i < names.length; i++) {
    transposeInto(weights.read(names[i]), shapes[i][0], inDim, fused, outTotal, offset);
    offset += shapes[i][0];
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
      blocks.push({
        attentionNorm: keep(uploadVector(weights, [`${p}.input_layernorm.weight`])),
        qkv: keep(uploadFusedTransposed(weights, qkvNames.map((n) => `${n}.weight`))),
        qkvBias: config.attentionBias ? keep(uploadVector(weights, qkvNames.map((n) => `${n}.bias`))) : null,
        attentionOut: keep(uploadFusedTransposed(weights, [`${p}.self_attn.o_proj.weight`])),
        attentionOutBias: config.attentionOutputBias ? keep(uploadVector(weights, [`${p}.self_attn.o_proj.bias`])) : null,
        mlpNorm: keep(uploadVector(weights, [`${p}.post_attention_layernorm.weight`])),
        gateUp: keep(uploadFusedTransposed(weights, [`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`])),
        down: keep(uploadFusedTransposed(weights, [`${p}.mlp.down_proj.weight`])),
      });
    }
    const finalNorm = keep(uploadVector(weights, ['model.norm.weight']));
    const lmHeadName = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const lmHead = keep(uploadFusedTransposed(weights, [lmHeadName]));
    let embedTokens: tf.Tensor2D | null = null;
    if (!config.tieWordEmbeddings) {
      const info = weights.info('model.embed_tokens.weight');
      embedTokens = keep(tf.tensor2d(weights.read('model.embed_tokens.weight'), info.shape as [number, number]));
    }
    return { blocks, finalNorm, lmHead, embedTokens };
  } catch (err) {
    tf.dispose(created);
    throw err;
  }
}

export function disposeWeights(w: DecoderWeights): void {
  for (const b of w.blocks) tf.dispose(Object.values(b).filter((t): t is tf.Tensor => t !== null));
  tf.dispose([w.finalNorm, w.lmHead]);
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

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight, over the last axis. */
function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const meanSquare = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight);
}

/**
 * a @ W for a frozen weight W, differentiable w.r.t. `a` only. tfjs's own matMul gradient computes
 * dy @ Wᵀ with transposeB, which the wasm backend runs on a naive path (~1 GFLOP/s against ~14 without
 * transpose flags); transposing W explicitly first (a cheap copy) keeps the backward on XNNPACK. Other
 * backends handle transposeB natively and use the plain matMul.
 */
function frozenMatMul(a: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, weight);
  const customFn = ((x: tf.Tensor2D) => ({
    value: tf.matMul(x, weight),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, tf.transpose(weight))),
  })) as unknown as Parameters<typeof tf.customGrad>[0];
  return tf.customGrad(customFn)(a) as tf.Tensor2D;
}

/** x @ W (+ bias) over the last axis of x: [..., in] -> [..., out]. */
function linear(x: tf.Tensor, weight: tf.Tensor2D, bias: tf.Tensor1D | null): tf.Tensor {
  const inDim = weight.shape[0];
  const lead = x.shape.slice(0, -1);
  const flat = tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
  const product = frozenMatMul(flat, weight);
  const y = bias === null ? product : tf.add(product, bias);
  return tf.reshape(y, [...lead, weight.shape[1]]);
}

/** RoPE on x [b, t, heads, hd] with cos/sin [b, t, 1, hd]: x cos + rotate_half(x) sin. */
function applyRotary(x: tf.Tensor4D, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
  const [b, t, heads, hd] = x.shape;
  const half = hd / 2;
  const x1 = tf.slice(x, [0, 0, 0, 0], [b, t, heads, half]);
  const x2 = tf.slice(x, [0, 0, 0, half], [b, t, heads, half]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** Everything one decoder call shares across layers: rotary tables and the attention bias. */
export interface StepContext {
  cos: tf.Tensor4D; // [b, t, 1, hd]
  sin: tf.Tensor4D; // [b, t, 1, hd]
  bias: tf.Tensor; // [b, 1, 1, t, s]
}

/** Rotary tables and attention bias for the last `newTokens` slots of rows with the given full mask. */
export function stepContext(config: ModelConfig, invFreq: Float32Array, mask: number[][], newTokens: number): StepContext {
  const b = mask.length;
  const s = mask[0].length;
  const hd = config.headDim;
  const { cos, sin } = rotaryTables(positionIds(mask, newTokens), invFreq);
  return {
    cos: tf.tensor4d(cos, [b, newTokens, 1, hd]),
    sin: tf.tensor4d(sin, [b, newTokens, 1, hd]),
    bias: tf.tensor(attentionBias(mask, newTokens, config.slidingWindow), [b, 1, 1, newTokens, s]),
  };
}

export function disposeStepContext(ctx: StepContext): void {
  tf.dispose([ctx.cos, ctx.sin, ctx.bias]);
}

/** Causal grouped-query self-attention of one block. x [b, t, d] -> [b, t, d], plus the updated cache. */
function attention(config: ModelConfig, w: BlockWeights, x: tf.Tensor3D, ctx: StepContext, past: LayerCache | null): { y: tf.Tensor3D; cache: LayerCache } {
  const [b, t] = x.shape;
  const { numHeads: h, numKvHeads: kvh, headDim: hd } = config;
  const g = h / kvh;
  const qkv = tf.reshape(linear(x, w.qkv, w.qkvBias), [b, t, h + 2 * kvh, hd]); // [b, t, h + 2kvh, hd]
  const qk = applyRotary(tf.slice(qkv, [0, 0, 0, 0], [b, t, h + kvh, hd]) as tf.Tensor4D, ctx.cos, ctx.sin);
  const q = tf.mul(tf.slice(qk, [0, 0, 0, 0], [b, t, h, hd]), 1 / Math.sqrt(hd)); // scaled once here
  const k = tf.slice(qk, [0, 0, h, 0], [b, t, kvh, hd]);
  const v = tf.slice(qkv, [0, 0, h + kvh, 0], [b, t, kvh, hd]);
  // Query head n uses kv head floor(n / g): group the g query heads of each kv head along the time axis.
  const qGrouped = tf.transpose(tf.reshape(q, [b, t, kvh, g, hd]), [0, 2, 3, 1, 4]); // [b, kvh, g, t, hd]
  const newKeysT = tf.transpose(k, [0, 2, 3, 1]) as tf.Tensor4D; // [b, kvh, hd, t]
  const newValues = tf.transpose(v, [0, 2, 1, 3]) as tf.Tensor4D; // [b, kvh, t, hd]
  const keysT = past === null ? newKeysT : (tf.concat([past.keysT, newKeysT], 3) as tf.Tensor4D); // [b, kvh, hd, s]
  const values = past === null ? newValues : (tf.concat([past.values, newValues], 2) as tf.Tensor4D); // [b, kvh, s, hd]
  const s = keysT.shape[3];
  const scores = tf.matMul(
    tf.reshape(qGrouped, [b * kvh, g * t, hd]) as tf.Tensor3D,
    tf.reshape(keysT, [b * kvh, hd, s]) as tf.Tensor3D,
  ); // [b kvh, g t, s]
  const masked = tf.add(tf.reshape(scores, [b, kvh, g, t, s]), ctx.bias); // bias [b, 1, 1, t, s]
  const probs = tf.softmax(masked); // over s
  const mixed = tf.matMul(
    tf.reshape(probs, [b * kvh, g * t, s]) as tf.Tensor3D,
    tf.reshape(values, [b * kvh, s, hd]) as tf.Tensor3D,
  ); // [b kvh, g t, hd]
  const heads = tf.reshape(tf.transpose(tf.reshape(mixed, [b, kvh, g, t, hd]), [0, 3, 1, 2, 4]), [b, t, h * hd]); // [b, t, h hd]
  const y = linear(heads, w.attentionOut, w.attentionOutBias) as tf.Tensor3D; // [b, t, d]
  return { y, cache: { keysT, values } };
}

/** SiLU-gated MLP: down(silu(x Wgate) * (x Wup)). [b, t, d] -> [b, t, d]. */
function mlp(config: ModelConfig, w: BlockWeights, x: tf.Tensor3D): tf.Tensor3D {
  const [b, t] = x.shape;
  const ff = config.intermediateSize;
  const gateUp = linear(x, w.gateUp, null); // [b, t, 2 ff]
  const gate = tf.slice(gateUp, [0, 0, 0], [b, t, ff]);
  const up = tf.slice(gateUp, [0, 0, ff], [b, t, ff]);
  const activated = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up); // silu(gate) * up
  return linear(activated, w.down, null) as tf.Tensor3D;
}

export interface DecoderOutput {
  /** After the final RMSNorm: [b, t, d]. */
  hidden: tf.Tensor3D;
  /** HF hidden_states when requested: [embeddings, block 1..L-1 outputs, final normed] (L + 1 tensors). */
  layers: tf.Tensor3D[] | null;
  /** The cache including this call's positions, one entry per block. */
  cache: LayerCache[];
}

/** One decoder block: x [b, t, d] -> next residual stream [b, t, d], plus this block's cache entry. */
function decoderBlock(config: ModelConfig, block: BlockWeights, x: tf.Tensor3D, ctx: StepContext, past: LayerCache | null): { next: tf.Tensor3D; keysT: tf.Tensor4D; values: tf.Tensor4D } {
  const attn = attention(config, block, rmsNorm(x, block.attentionNorm, config.rmsNormEps) as tf.Tensor3D, ctx, past);
  const afterAttention = tf.add(x, attn.y);
  const next = tf.add(afterAttention, mlp(config, block, rmsNorm(afterAttention, block.mlpNorm, config.rmsNormEps) as tf.Tensor3D)) as tf.Tensor3D;
  return { next, keysT: attn.cache.keysT, values: attn.cache.values };
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

/**
 * A block with activation checkpointing: the forward keeps only the block's input; backprop recomputes the
 * block and differentiates it w.r.t. that input (weights are constants, i.e. frozen). The step context's
 * tensors are passed as inputs too, so the tape keeps them alive until backprop (the caller disposes its
 * own references right after the forward).
 */
function checkpointedBlock(config: ModelConfig, block: BlockWeights): (x: tf.Tensor3D, ctx: StepContext) => tf.Tensor3D {
  const run = (x: tf.Tensor, ctx: StepContext): tf.Tensor3D => decoderBlock(config, block, x as tf.Tensor3D, ctx, null).next;
  // customGrad's typing is variadic (inputs..., save).
  const customFn = ((x: tf.Tensor, cos: tf.Tensor4D, sin: tf.Tensor4D, bias: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, cos, sin, bias]);
    return {
      value: tf.tidy(() => run(x, { cos, sin, bias })),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [savedX, savedCos, savedSin, savedBias] = saved;
          const ctx: StepContext = { cos: savedCos as tf.Tensor4D, sin: savedSin as tf.Tensor4D, bias: savedBias };
          const dx = withNestedTape(() => tf.grad((z: tf.Tensor) => run(z, ctx))(savedX, dy as tf.Tensor));
          return [dx, tf.zerosLike(savedCos), tf.zerosLike(savedSin), tf.zerosLike(savedBias)];
        }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0];
  const fn = tf.customGrad(customFn);
  return (x, ctx) => fn(x, ctx.cos, ctx.sin, ctx.bias) as tf.Tensor3D;
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
 * Run every block over input embeddings x [b, t, d] (continuing `past` when given). Each block runs in its
 * own tidy, so only its outputs outlive it: peak memory is one block's intermediates, not the whole
 * model's (tf.grad's tape keeps its own references to what backprop needs). Callers own the outer tidy.
 */
export function runDecoder(config: ModelConfig, w: DecoderWeights, x: tf.Tensor3D, ctx: StepContext, past: LayerCache[] | null, options: RunOptions = {}): DecoderOutput {
  const layers: tf.Tensor3D[] | null = options.collectLayers ? [x] : null;
  const cache: LayerCache[] = [];
  let residual = x;
  for (let i = 0; i < w.blocks.length; i++) {
    const block = w.blocks[i];
    let next: tf.Tensor3D;
    if (options.checkpoint) {
      next = checkpointedBlock(config, block)(residual, ctx);
    } else {
      const out = tf.tidy(() => decoderBlock(config, block, residual, ctx, past?.[i] ?? null));
      if (options.keepCache) cache.push({ keysT: out.keysT, values: out.values });
      else tf.dispose([out.keysT, out.values]);
      next = out.next;
    }
    const previous = residual;
    residual = next;
    if (layers !== null && i < w.blocks.length - 1) layers.push(residual);
    if (previous !== x && layers === null) previous.dispose();
  }
  const hidden = rmsNorm(residual, w.finalNorm, config.rmsNormEps) as tf.Tensor3D;
  if (layers !== null) layers.push(hidden);
  else if (residual !== x) residual.dispose();
  return { hidden, layers, cache };
}

/** Logits [b, t, V] from final hidden states [b, t, d]. */
export function lmLogits(w: DecoderWeights, hidden: tf.Tensor3D): tf.Tensor3D {
  return linear(hidden, w.lmHead, null) as tf.Tensor3D;
}

export function ropeFrequencies(config: ModelConfig): Float32Array {
  return inverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling);
}
