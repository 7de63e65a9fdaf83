/**
 * The small set of operations the decoder's math (decoder-block.ts) is written against. Two
 * implementations: eager tfjs tensors (eager-ops.ts: every call runs now) and TensorFlow graph nodes
 * (native/graph-ops.ts: every call adds a node, run later as one session call). The block is written once
 * over this interface, so both paths compute the same ops in the same order and a new architecture
 * feature is one edit. Names follow tfjs (and TensorFlow), so each method is one kernel on both sides.
 *
 * Shapes are named, not spelled out: eagerly they are known numbers, in the graph they are built from the
 * fed tensors' dynamic shapes (one graph serves every batch size and length), so the block asks for a
 * layout by name and each implementation builds it its way.
 */

/**
 * Layouts the block reshapes between (b rows, t new positions, d hidden, h query heads, kvh key/value
 * heads, heads = h + 2 kvh, g = h / kvh, hd head dim).
 */
export type Layout =
  | 'rows' // [b t, d]: the residual stream
  | 'hidden' // [b, t, d]
  | 'qkvHeads' // [b, t, heads, hd]: fused q | k | v projection split into heads
  | 'qkvRows' // [b t, heads hd]
  | 'qkvHeadsOnePosition' // [b, heads, 1, hd]: a decoding step's heads, ready for per-head rotation matrices
  | 'queryHeads' // [b, h, t, hd]
  | 'queryHeadsByPosition' // [b, t, h, hd]
  | 'grouped' // [b, kvh, g t, hd]: the g query heads of each kv head stacked along time
  | 'mergedRows'; // [b t, h hd]: attention output rows before o_proj

export interface DecoderOps<V> {
  /** Rows times a frozen weight matrix: [n, in] @ [in, out]. */
  project(x: V, weight: V): V;
  /** Rows times a frozen weight matrix transposed (the backward of project): [n, out] @ [in, out]ᵀ. */
  projectT(x: V, weight: V): V;
  /** Batched activation product, optionally with either side transposed (adjoint). */
  matMul(a: V, b: V, transposeA?: boolean, transposeB?: boolean): V;
  /** Mean over the last axis of rows [n, d] -> [n, 1] (RMSNorm's mean). */
  meanRows(x: V): V;
  /** Sum over the last axis, kept as a size-1 axis. */
  sumLast(x: V): V;
  add(a: V, b: V): V;
  sub(a: V, b: V): V;
  mul(a: V, b: V): V;
  square(x: V): V;
  rsqrt(x: V): V;
  sigmoid(x: V): V;
  /** Softmax over the last axis. */
  softmax(x: V): V;
  /** x, laid out as `from`, reshaped to `to` (the source layout is named so the backward can reshape back). */
  reshape(x: V, from: Layout, to: Layout): V;
  transpose(x: V, perm: number[]): V;
  concat(values: V[], axis: number): V;
  /**
   * A layer's cache with this call's positions appended along `axis` (a concat). Its own op because its
   * gradient is taken only for calls without a past (ForwardGraph.run enforces it), where the append is
   * the identity on the new positions.
   */
  appendCache(past: V, fresh: V, axis: number): V;
  split(x: V, sizes: number[], axis: number): V[];
  /** Each head's two halves swapped along the last axis (RoPE's rotate_half without its sign). */
  swapHalves(x: V): V;
  /**
   * Weightless RMSNorm of rows: y = x r, r = 1/sqrt(mean(x²) + eps) [n, 1] (decoder-block.ts's
   * rmsNormForward). Eagerly it may be wrapped in a custom gradient, in which case r is not exposed.
   */
  rmsNorm(x: V): { y: V; r?: V };
  /** The MLP's gated activation silu(gate) * up (decoder-block.ts's swiGluForward). */
  swiGlu(gate: V, up: V): V;
  /** The scalar 1 (SiLU's derivative). */
  one(): V;
  /**
   * True when the call has exactly one new position (a decoding step, known only eagerly): the attention
   * output needs no transpose, since [b, h, 1, hd] is already [b, h hd] in memory.
   */
  readonly onePosition: boolean;
}
