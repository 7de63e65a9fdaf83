/**
 * DecoderOps as TensorFlow GraphDef nodes: each call adds a node and returns its output's name, so
 * decoder-block.ts's functions, run over these ops, write the decoder into a graph (forward-graph.ts).
 * Shapes are dynamic: layouts are built from the fed RoPE table's shape [b, t, heads, hd] by graph nodes,
 * so one graph serves every batch size, new-position count and cache length.
 */
import type { ModelConfig } from '../config.ts';
import type { DecoderOps, Layout } from '../model/decoder-ops.ts';
import { rmsNormForward, swiGluForward } from '../model/decoder-block.ts';
import { DT_FLOAT, DT_INT32, type Attr, type GraphBuilder } from './graph-def.ts';

const F32: Attr = { type: DT_FLOAT };
const I32: Attr = { type: DT_INT32 };
const bool = (b: boolean): Attr => ({ b });

/** Graph-only helpers the forward graph needs besides the block's ops. */
export interface GraphExtras {
  /** The last position of every row of hidden states [b, t, d] -> [b, d]. */
  lastPosition(hidden: string): string;
  /** Rows [b t, V] -> [b, t, V] (logits). */
  logitsByPosition(rows: string): string;
  /**
   * The `count` (int32 scalar node) largest entries of each row of [b, V] logits, largest first: values
   * [b, count] and their ids [b, count] (int32), and each row's sum [b, 1] (NaN or infinite exactly when the
   * row holds a NaN or infinity). block 1: one top-k over the row; block B > 1: over blocks of B logits
   * (needs count ≤ ceil(V / B)); see generate/token-candidates.ts, and eagerTopCandidates there.
   */
  topCandidates(logits: string, count: string, block: number): { values: string; indices: string; rowSums: string };
}

/** Ops over `g` for a model with `config`'s shapes; `ropeTable` is the cos placeholder [b, t, heads, hd]. */
export function graphOps(g: GraphBuilder, config: ModelConfig, ropeTable: string): DecoderOps<string> & GraphExtras {
  const { hiddenSize: d, numHeads: h, numKvHeads: kvh, headDim: hd, vocabSize: vocab } = config;
  const heads = h + 2 * kvh;
  const binary = (op: string) => (a: string, b: string) => g.op(op, [a, b], { T: F32 });
  const unary = (op: string) => (a: string) => g.op(op, [a], { T: F32 });
  /**
   * a @ b for activations (attention scores and mixing, their gradients), either side transposed on
   * request: BatchMatMulV2, which TensorFlow hands to oneDNN — ~2× faster than Eigen's BatchMatMulV3 on
   * sequence-sized products (0.9 vs 1.9 ms at 8×128), as fast on decoding steps (in a graph oneDNN's
   * per-call cost does not show), faster on many rows with long caches (48 rows, 100 cached positions:
   * 96 vs 142 ms per step).
   */
  const matMul = (a: string, b: string, adjA = false, adjB = false) => g.op('BatchMatMulV2', [a, b], { T: F32, adj_x: bool(adjA), adj_y: bool(adjB) });
  const constDims = (...dims: number[]) => g.constInt32(dims);
  const concatInt = (values: string[]) => g.op('ConcatV2', [...values, g.constInt32([0], true)], { T: I32, N: { i: values.length }, Tidx: I32 });
  /** Entries [begin, begin + size) of an int32 vector. */
  const slice = (a: string, begin: number, size: number) => g.op('Slice', [a, g.constInt32([begin]), g.constInt32([size])], { T: I32, Index: I32 });

  // Dynamic dims, built once from the RoPE table's shape [b, t, heads, hd]; layouts built on first use.
  const shape = g.op('Shape', [ropeTable], { T: F32, out_type: I32 });
  const [bDim, tDim] = [slice(shape, 0, 1), slice(shape, 1, 1)];
  const layoutBuilders: Record<Layout, () => string> = {
    rows: () => constDims(-1, d),
    hidden: () => concatInt([bDim, tDim, constDims(d)]),
    qkvHeads: () => shape,
    qkvRows: () => constDims(-1, heads * hd),
    qkvHeadsOnePosition: () => {
      throw new Error('graph ops: decoding-step rotation matrices are eager only (the graph uses the RoPE tables)');
    },
    queryHeads: () => concatInt([bDim, constDims(h), tDim, constDims(hd)]),
    queryHeadsByPosition: () => concatInt([bDim, tDim, constDims(h), constDims(hd)]),
    grouped: () => concatInt([bDim, constDims(kvh), g.op('Mul', [tDim, constDims(h / kvh)], { T: I32 }), constDims(hd)]),
    mergedRows: () => constDims(-1, h * hd),
  };
  const layouts = new Map<Layout, string>();
  const layout = (name: Layout): string => {
    let node = layouts.get(name);
    if (node === undefined) layouts.set(name, (node = layoutBuilders[name]()));
    return node;
  };
  const meanColumn = g.constFloat(new Float32Array(d).fill(1 / d), [d, 1]);
  const eps = g.constFloat(Float32Array.of(config.rmsNormEps), []);
  let one: string | null = null;

  const ops: DecoderOps<string> & GraphExtras = {
    /** Rows times a weight matrix: TensorFlow's MatMul, which the graph optimizer hands to oneDNN. */
    project: (a, w) => g.op('MatMul', [a, w], { T: F32, transpose_a: bool(false), transpose_b: bool(false) }),
    /**
     * Rows times a weight matrix transposed: BatchMatMulV2 with adj_y, which oneDNN runs as fast as an
     * untransposed product (213 vs 219 GFLOP/s for [1024, 1536] x [576, 1536]ᵀ); MatMul with transpose_b
     * runs at 170.
     */
    projectT: (a, w) => matMul(a, w, false, true),
    matMul,
    /** Rows times one column of 1/d: Eigen's BatchMatMulV3, a plain dot product per row. */
    meanRows: (a) => g.op('BatchMatMulV3', [a, meanColumn], { Ta: F32, Tb: F32, Tout: F32, adj_x: bool(false), adj_y: bool(false) }),
    sumLast: (a) => g.op('Sum', [a, g.constInt32([-1])], { T: F32, Tidx: I32, keep_dims: bool(true) }),
    add: binary('AddV2'),
    sub: binary('Sub'),
    mul: binary('Mul'),
    square: unary('Square'),
    rsqrt: unary('Rsqrt'),
    sigmoid: unary('Sigmoid'),
    softmax: unary('Softmax'),
    reshape: (a, _from, to) => g.op('Reshape', [a, layout(to)], { T: F32, Tshape: I32 }),
    transpose: (a, perm) => g.op('Transpose', [a, g.constInt32(perm)], { T: F32, Tperm: I32 }),
    concat: (values, axis) => g.op('ConcatV2', [...values, g.constInt32([axis], true)], { T: F32, N: { i: values.length }, Tidx: I32 }),
    appendCache: (past, fresh, axis) => ops.concat([past, fresh], axis),
    split: (a, sizes, axis) => {
      const node = g.op('SplitV', [a, g.constInt32(sizes), g.constInt32([axis], true)], { T: F32, Tlen: I32, num_split: { i: sizes.length } });
      return sizes.map((_, k) => (k === 0 ? node : `${node}:${k}`));
    },
    /** Heads [b, t, heads, hd] rolled by hd/2 along their last axis: one kernel, where eagerly it is reshape + reverse. */
    swapHalves: (a) => g.op('Roll', [a, g.constInt32([hd / 2], true), g.constInt32([3], true)], { T: F32, Tshift: I32, Taxis: I32 }),
    rmsNorm: (x) => rmsNormForward(ops, x, eps),
    swiGlu: (gate, up) => swiGluForward(ops, gate, up),
    one: () => (one ??= g.constFloat(Float32Array.of(1), [])),
    // Shapes are dynamic: a graph serves decoding steps and prefill alike, so the general merge is written.
    onePosition: false,
    lastPosition: (hidden) =>
      // begin [0, -1, 0], axis 1 shrunk, axes 0 and 2 whole.
      g.op('StridedSlice', [hidden, g.constInt32([0, -1, 0]), g.constInt32([0, 0, 0]), g.constInt32([1, 1, 1])], {
        T: F32, Index: I32, begin_mask: { i: 5 }, end_mask: { i: 5 }, ellipsis_mask: { i: 0 }, new_axis_mask: { i: 0 }, shrink_axis_mask: { i: 2 },
      }),
    logitsByPosition: (rows) => g.op('Reshape', [rows, concatInt([bDim, tDim, constDims(vocab)])], { T: F32, Tshape: I32 }),
    topCandidates: (logits, count, block) => {
      const rowSums = ops.sumLast(logits);
      if (block === 1) {
        const top = g.op('TopKV2', [logits, count], { T: F32, sorted: bool(true) });
        return { values: top, indices: `${top}:1`, rowSums };
      }
      const blocks = Math.ceil(vocab / block);
      const pad = blocks * block - vocab;
      const padded = pad === 0 ? logits : g.op('PadV2', [logits, g.constInt32([0, 0, 0, pad], false, [2, 2]), g.constFloat(Float32Array.of(-Infinity), [])], { T: F32, Tpaddings: I32 });
      const byBlock = g.op('Reshape', [padded, g.constInt32([-1, blocks, block])], { T: F32, Tshape: I32 });
      const blockMax = g.op('Max', [byBlock, g.constInt32([2])], { T: F32, Tidx: I32, keep_dims: bool(false) }); // [b, blocks]
      const bestBlocks = `${g.op('TopKV2', [blockMax, count], { T: F32, sorted: bool(true) })}:1`; // [b, K']
      const batchGather = (params: string, indices: string, T: Attr) =>
        g.op('GatherV2', [params, indices, g.constInt32([1], true)], { Tparams: T, Tindices: I32, Taxis: I32, batch_dims: { i: 1 } });
      const gathered = g.op('Reshape', [batchGather(byBlock, bestBlocks, F32), concatInt([slice(g.op('Shape', [logits], { T: F32, out_type: I32 }), 0, 1), constDims(-1)])], { T: F32, Tshape: I32 });
      const top = g.op('TopKV2', [gathered, count], { T: F32, sorted: bool(true) }); // positions in the gathered K'·B
      const blockSize = g.constInt32([block], true);
      const blockOf = batchGather(bestBlocks, g.op('FloorDiv', [`${top}:1`, blockSize], { T: I32 }), I32);
      const indices = g.op('AddV2', [g.op('Mul', [blockOf, blockSize], { T: I32 }), g.op('FloorMod', [`${top}:1`, blockSize], { T: I32 })], { T: I32 });
      return { values: top, indices, rowSums };
    },
  };
  return ops;
}
