/**
 * The Llama-family decoder block (Llama / SmolLM2, Mistral, Qwen2), written once over DecoderOps: the
 * eager tfjs path (llama.ts) and the TensorFlow graph (native/forward-graph.ts) both run these functions,
 * with their own ops, so they compute the same ops in the same order.
 *
 *   x = x + attention(rmsNorm(x))   causal self-attention with RoPE and GQA, optional q|k|v / o biases
 *   x = x + mlp(rmsNorm(x))         SiLU-gated MLP
 *
 * Weight layout (see llama.ts uploadWeights): projections stored as [in, out]; q|k|v fused; each block
 * norm's weight folded into the rows of the projection that follows it, so block norms are weightless;
 * RoPE tables carry the 1/sqrt(hd) score scale on query heads and the identity on value heads; the key
 * cache is kept transposed ([.., hd, s]) so scores = q @ kT.
 *
 * The backward (gradient w.r.t. the block input, weights frozen) is written here too, next to the forward
 * it differentiates, over the same ops: the graph runs it as its backward graph; eagerly tf.grad
 * differentiates the forward instead, and RMSNorm's custom gradient is rmsNormBackward. Deriving it
 * automatically would need a gradient registry for graph nodes (TensorFlow's C API has one, TF_AddGradients,
 * but tfjs-node's binding does not expose it), so it is derived by hand, once, and tested against tf.grad
 * on every backend (test/decoder-block.test.ts).
 */
import type { ModelConfig } from '../config.ts';
import type { DecoderOps } from './decoder-ops.ts';

/** One block's weights (tensors eagerly, placeholder names in the graph), in the layout above. */
export interface BlockParams<V> {
  qkv: V; // [d, (h + 2 kvh) hd]  q | k | v, rows scaled by input_layernorm.weight
  qkvBias: V | null; // [(h + 2 kvh) hd]  Qwen2
  attentionOut: V; // [h hd, d]
  attentionOutBias: V | null; // [d]
  gate: V; // [d, ff], rows scaled by post_attention_layernorm.weight
  up: V; // [d, ff], rows scaled likewise
  down: V; // [ff, d]
}

/** BlockParams' keys, in a fixed order (the graph's placeholder names). */
export const BLOCK_PARAMS = ['qkv', 'qkvBias', 'attentionOut', 'attentionOutBias', 'gate', 'up', 'down'] as const;

/** What every block of one call shares: RoPE tables and the attention bias (llama.ts stepContext). */
export interface StepInputs<V> {
  /** [b, t, h + 2 kvh, hd] over all q | k | v heads. */
  cos: V;
  sin: V;
  /** Additive attention bias [b, 1, g t, s]; null when nothing is masked (the add is skipped). */
  bias: V | null;
  /** Decoding steps (eager only): RoPE as per-head matrices [b, heads, hd, hd], one batched matmul. */
  rotation?: V;
}

/** One layer's key/value cache: keysT [b, kvh, hd, s], values [b, kvh, s, hd]. */
export interface KvCache<V> {
  keysT: V;
  values: V;
}

/**
 * Activations one block's backward reads: the two norms' outputs y and 1/rms r, grouped queries,
 * transposed keys, values, attention probabilities, and the MLP's gate and up products.
 */
export const SAVED_PER_BLOCK = ['y1', 'r1', 'queries', 'keysT', 'values', 'probs', 'y2', 'r2', 'gate', 'up'] as const;
export type SavedActivations<V> = Record<(typeof SAVED_PER_BLOCK)[number], V>;

export interface BlockOutput<V> {
  /** The residual stream after the block [b t, d]. */
  next: V;
  /** This layer's cache including the call's positions. */
  cache: KvCache<V>;
  /** For blockBackward; null when the ops hide RMSNorm's r (eager custom gradient). */
  saved: SavedActivations<V> | null;
}

/** Weightless RMSNorm of rows [n, d]: y = x r, r = 1/sqrt(mean(x²) + eps) [n, 1]. */
export function rmsNormForward<V>(o: DecoderOps<V>, x: V, eps: V): { y: V; r: V } {
  const r = o.rsqrt(o.add(o.meanRows(o.square(x)), eps));
  return { y: o.mul(x, r), r };
}

/** RMSNorm's gradient from its saved output y and 1/rms r: dx = r (dy - y mean(dy y)). */
export function rmsNormBackward<V>(o: DecoderOps<V>, y: V, r: V, dy: V): V {
  return o.mul(r, o.sub(dy, o.mul(y, o.meanRows(o.mul(dy, y)))));
}

/** x @ W (+ bias) for rows x [n, in] -> [n, out]. */
function linear<V>(o: DecoderOps<V>, x: V, weight: V, bias: V | null): V {
  const product = o.project(x, weight);
  return bias === null ? product : o.add(product, bias);
}

/**
 * Causal grouped-query self-attention over normed rows x [b t, d] -> [b t, d]. RoPE is one pass over the
 * fused q | k | v heads: x cos + swapHalves(x) sin, with sin carrying rotate_half's sign.
 */
function attention<V>(o: DecoderOps<V>, config: ModelConfig, w: BlockParams<V>, x: V, step: StepInputs<V>, past: KvCache<V> | null) {
  const { numHeads: h, numKvHeads: kvh } = config;
  const qkv = linear(o, x, w.qkv, w.qkvBias); // [b t, heads hd]
  let rotated: V; // [b, heads, t, hd]: RoPE on q and k, q scaled by 1/sqrt(hd)
  if (step.rotation !== undefined) {
    rotated = o.matMul(o.reshape(qkv, 'qkvHeadsOnePosition'), step.rotation);
  } else {
    const heads = o.reshape(qkv, 'qkvHeads');
    rotated = o.transpose(o.add(o.mul(heads, step.cos), o.mul(o.swapHalves(heads), step.sin)), [0, 2, 1, 3]);
  }
  const [q, k, v] = o.split(rotated, [h, kvh, kvh], 1); // [b, h | kvh | kvh, t, hd]
  const newKeysT = o.transpose(k, [0, 1, 3, 2]); // [b, kvh, hd, t]
  const keysT = past === null ? newKeysT : o.concat([past.keysT, newKeysT], 3); // [b, kvh, hd, s]
  const values = past === null ? v : o.concat([past.values, v], 2); // [b, kvh, s, hd]
  // Query head n uses kv head floor(n / g): the g query heads of a kv head are stacked along the time axis.
  const queries = o.reshape(q, 'grouped');
  const scores = o.matMul(queries, keysT); // [b, kvh, g t, s]
  const probs = o.softmax(step.bias === null ? scores : o.add(scores, step.bias)); // over s
  const mixed = o.matMul(probs, values); // [b, kvh, g t, hd]
  const merged = o.onePosition // [b t, h hd]
    ? o.reshape(mixed, 'mergedRows')
    : o.reshape(o.transpose(o.reshape(mixed, 'queryHeads'), [0, 2, 1, 3]), 'mergedRows');
  return { y: linear(o, merged, w.attentionOut, w.attentionOutBias), queries, keysT, values, probs };
}

/** SiLU-gated MLP over normed rows: down(silu(x Wgate) * (x Wup)). [b t, d] -> [b t, d]. */
function mlp<V>(o: DecoderOps<V>, w: BlockParams<V>, x: V) {
  const gate = o.project(x, w.gate);
  const up = o.project(x, w.up);
  return { y: o.project(o.mul(o.mul(gate, o.sigmoid(gate)), up), w.down), gate, up };
}

/** One decoder block over residual rows x [b t, d], continuing `past` when given. */
export function decoderBlock<V>(o: DecoderOps<V>, config: ModelConfig, w: BlockParams<V>, x: V, step: StepInputs<V>, past: KvCache<V> | null): BlockOutput<V> {
  const norm1 = o.rmsNorm(x);
  const attn = attention(o, config, w, norm1.y, step, past);
  const afterAttention = o.add(x, attn.y);
  const norm2 = o.rmsNorm(afterAttention);
  const m = mlp(o, w, norm2.y);
  const next = o.add(afterAttention, m.y);
  const saved = norm1.r !== undefined && norm2.r !== undefined
    ? { y1: norm1.y, r1: norm1.r, queries: attn.queries, keysT: attn.keysT, values: attn.values, probs: attn.probs, y2: norm2.y, r2: norm2.r, gate: m.gate, up: m.up }
    : null;
  return { next, cache: { keysT: attn.keysT, values: attn.values }, saved };
}

/** The final norm (the only one that keeps its weight): rows [b t, d] -> hidden rows [b t, d]. */
export function finalNorm<V>(o: DecoderOps<V>, x: V, weight: V): { hidden: V; y: V; r?: V } {
  const norm = o.rmsNorm(x);
  return { hidden: o.mul(norm.y, weight), ...norm };
}

/** The final norm's backward: gradient w.r.t. its input rows from that of the hidden rows. */
export function finalNormBackward<V>(o: DecoderOps<V>, y: V, r: V, weight: V, dHidden: V): V {
  return rmsNormBackward(o, y, r, o.mul(dHidden, weight));
}

/**
 * The gradient w.r.t. a block's input rows from that of its output rows dNext (weights frozen, no past
 * cache), given the activations its forward saved: the forward's ops differentiated in reverse.
 */
export function blockBackward<V>(o: DecoderOps<V>, w: BlockParams<V>, saved: SavedActivations<V>, dNext: V, rope: { cos: V; sin: V }): V {
  const sv = saved;
  const one = o.one();
  // MLP: x2 = x1 + down(silu(gate) * up); silu'(z) = s (1 + z (1 - s)), s = sigmoid(z).
  const dAct = o.projectT(dNext, w.down);
  const s = o.sigmoid(sv.gate);
  const dGate = o.mul(o.mul(dAct, sv.up), o.mul(s, o.add(one, o.mul(sv.gate, o.sub(one, s)))));
  const dUp = o.mul(dAct, o.mul(sv.gate, s));
  const dY2 = o.add(o.projectT(dGate, w.gate), o.projectT(dUp, w.up));
  const dx1 = o.add(dNext, rmsNormBackward(o, sv.y2, sv.r2, dY2));
  // Attention: x1 = x0 + out(merge(softmax(q kT + bias) v)).
  const dMixed = o.reshape(o.transpose(o.reshape(o.projectT(dx1, w.attentionOut), 'queryHeadsByPosition'), [0, 2, 1, 3]), 'grouped'); // [b, kvh, g t, hd]
  const dProbs = o.matMul(dMixed, sv.values, false, true); // [b, kvh, g t, s]
  const dValues = o.matMul(sv.probs, dMixed, true, false); // [b, kvh, s, hd]
  const dScores = o.mul(sv.probs, o.sub(dProbs, o.sumLast(o.mul(dProbs, sv.probs))));
  const dQueries = o.reshape(o.matMul(dScores, sv.keysT, false, true), 'queryHeads'); // [b, h, t, hd]
  const dKeys = o.transpose(o.matMul(sv.queries, dScores, true, false), [0, 1, 3, 2]); // [b, kvh, t, hd]
  const dRotated = o.transpose(o.concat([dQueries, dKeys, dValues], 1), [0, 2, 1, 3]); // [b, t, heads, hd]
  // RoPE is x cos + S x sin with S (swap halves) its own transpose: dx = dy cos + S (dy sin).
  const dQkv = o.add(o.mul(dRotated, rope.cos), o.swapHalves(o.mul(dRotated, rope.sin)));
  const dY1 = o.projectT(o.reshape(dQkv, 'qkvRows'), w.qkv);
  return o.add(dx1, rmsNormBackward(o, sv.y1, sv.r1, dY1));
}
