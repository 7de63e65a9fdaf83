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
 * The backward is derived from these same functions: decoder-grad.ts records the ops they call and
 * emits each op's gradient (weights frozen; the gradient is w.r.t. the input embeddings), so the native
 * backward graph needs no second copy of the math. Two composite ops carry a gradient written out here,
 * because differentiating them op by op costs more passes or memory: RMSNorm (rmsNormBackward, also
 * the eager custom gradient) and the SiLU-gated activation (swiGluBackward).
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

export interface BlockOutput<V> {
  /** The residual stream after the block [b t, d]. */
  next: V;
  /** This layer's cache including the call's positions. */
  cache: KvCache<V>;
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

/** The SiLU-gated activation: silu(gate) * up = gate sigmoid(gate) up. */
export function swiGluForward<V>(o: DecoderOps<V>, gate: V, up: V): V {
  return o.mul(o.mul(gate, o.sigmoid(gate)), up);
}

/**
 * swiGluForward's gradient from its inputs (not its intermediates, so only gate and up are kept for the
 * backward): silu'(z) = s (1 + z (1 - s)), s = sigmoid(z).
 */
export function swiGluBackward<V>(o: DecoderOps<V>, gate: V, up: V, dy: V): { dGate: V; dUp: V } {
  const one = o.one();
  const s = o.sigmoid(gate);
  return { dGate: o.mul(o.mul(dy, up), o.mul(s, o.add(one, o.mul(gate, o.sub(one, s))))), dUp: o.mul(dy, o.mul(gate, s)) };
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
    rotated = o.matMul(o.reshape(qkv, 'qkvRows', 'qkvHeadsOnePosition'), step.rotation);
  } else {
    const heads = o.reshape(qkv, 'qkvRows', 'qkvHeads');
    rotated = o.transpose(o.add(o.mul(heads, step.cos), o.mul(o.swapHalves(heads), step.sin)), [0, 2, 1, 3]);
  }
  const [q, k, v] = o.split(rotated, [h, kvh, kvh], 1); // [b, h | kvh | kvh, t, hd]
  const newKeysT = o.transpose(k, [0, 1, 3, 2]); // [b, kvh, hd, t]
  const keysT = past === null ? newKeysT : o.appendCache(past.keysT, newKeysT, 3); // [b, kvh, hd, s]
  const values = past === null ? v : o.appendCache(past.values, v, 2); // [b, kvh, s, hd]
  // Query head n uses kv head floor(n / g): the g query heads of a kv head are stacked along the time axis.
  const queries = o.reshape(q, 'queryHeads', 'grouped');
  const scores = o.matMul(queries, keysT); // [b, kvh, g t, s]
  const probs = o.softmax(step.bias === null ? scores : o.add(scores, step.bias)); // over s
  const mixed = o.matMul(probs, values); // [b, kvh, g t, hd]
  const merged = o.onePosition // [b t, h hd]
    ? o.reshape(mixed, 'grouped', 'mergedRows')
    : o.reshape(o.transpose(o.reshape(mixed, 'grouped', 'queryHeads'), [0, 2, 1, 3]), 'queryHeadsByPosition', 'mergedRows');
  return { y: linear(o, merged, w.attentionOut, w.attentionOutBias), keysT, values };
}

/** SiLU-gated MLP over normed rows: down(silu(x Wgate) * (x Wup)). [b t, d] -> [b t, d]. */
function mlp<V>(o: DecoderOps<V>, w: BlockParams<V>, x: V): V {
  return o.project(o.swiGlu(o.project(x, w.gate), o.project(x, w.up)), w.down);
}

/** One decoder block over residual rows x [b t, d], continuing `past` when given. */
export function decoderBlock<V>(o: DecoderOps<V>, config: ModelConfig, w: BlockParams<V>, x: V, step: StepInputs<V>, past: KvCache<V> | null): BlockOutput<V> {
  const norm1 = o.rmsNorm(x);
  const attn = attention(o, config, w, norm1.y, step, past);
  const afterAttention = o.add(x, attn.y);
  const norm2 = o.rmsNorm(afterAttention);
  const next = o.add(afterAttention, mlp(o, w, norm2.y));
  return { next, cache: { keysT: attn.keysT, values: attn.values } };
}

/** The final norm (the only one that keeps its weight): rows [b t, d] -> hidden rows [b t, d]. */
export function finalNorm<V>(o: DecoderOps<V>, x: V, weight: V): V {
  return o.mul(o.rmsNorm(x).y, weight);
}
