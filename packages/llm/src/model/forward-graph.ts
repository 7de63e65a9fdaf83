/**
 * The decoder forward (any number of new positions, optionally continuing a KV cache) as one TensorFlow
 * graph, for the native 'tensorflow' backend when no gradient is being recorded.
 *
 * Why: eagerly, every tfjs op goes through TensorFlow's eager runtime at 15-35 µs of dispatch apiece; a
 * SmolLM2 decoding step is ~1,000 ops, so a third of it was dispatch, and prefill's elementwise tails ran
 * one after the other. As a graph the same ops run inside one TF_SessionRun: TensorFlow's executor
 * dispatches each kernel in a few µs, runs independent ones (gate and up projections, key and value cache
 * appends) concurrently on its inter-op threads, and its optimizer (grappler, oneDNN rewrites) sees the
 * whole computation. The math is exactly llama.ts's (same weight layout: folded norms, fused q|k|v, RoPE
 * tables carrying the score scale and identity value heads, transposed key cache), so eager and graph calls
 * interoperate on one cache and agree to float rounding (tested). Training still runs eagerly: tf.grad
 * needs the tfjs tape.
 *
 * The graph holds no weights: they are fed from the model's tfjs tensors on every call (shared, not
 * copied), so the model is in memory once. Shapes are dynamic (rows, new positions, cache length), so one
 * graph serves prefill, decoding and scoring; TensorFlow runs only the part a call's fetches need.
 */
import { tf } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import { GraphBuilder, DT_FLOAT, DT_INT32, type Attr } from '../native/graph-def.ts';
import { GraphSession } from '../native/graph-session.ts';
import type { DecoderWeights, LayerCache, StepContext } from './llama.ts';

/** Set to 0 to run the forward eagerly on the native backend too (A/B and debugging). */
export const FORWARD_GRAPH_ENV = 'DRO_FORWARD_GRAPH';

/** Whether a forward may run as a graph now: native backend, not disabled, no tf.grad recording. */
export function forwardGraphUsable(): boolean {
  if (tf.getBackend() !== 'tensorflow' || process.env[FORWARD_GRAPH_ENV] === '0') return false;
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth === 0;
}

const F32: Attr = { type: DT_FLOAT };
const I32: Attr = { type: DT_INT32 };
const bool = (b: boolean): Attr => ({ b });

/** Node-building helpers over a GraphBuilder, named like the TensorFlow ops they emit. */
function ops(g: GraphBuilder) {
  const binary = (op: string) => (a: string, b: string) => g.op(op, [a, b], { T: F32 });
  const unary = (op: string) => (a: string) => g.op(op, [a], { T: F32 });
  return {
    /** Products of activations (attention); Eigen's batched kernel, no oneDNN call overhead for tiny ones. */
    matMul: (a: string, b: string) => g.op('BatchMatMulV3', [a, b], { Ta: F32, Tb: F32, Tout: F32, adj_x: bool(false), adj_y: bool(false) }),
    /** Rows times a weight matrix: TensorFlow's MatMul, which the graph optimizer hands to oneDNN. */
    project: (a: string, w: string) => g.op('MatMul', [a, w], { T: F32, transpose_a: bool(false), transpose_b: bool(false) }),
    add: binary('AddV2'),
    mul: binary('Mul'),
    square: unary('Square'),
    rsqrt: unary('Rsqrt'),
    sigmoid: unary('Sigmoid'),
    softmax: unary('Softmax'),
    reshape: (a: string, shape: string) => g.op('Reshape', [a, shape], { T: F32, Tshape: I32 }),
    transpose: (a: string, perm: number[]) => g.op('Transpose', [a, g.constInt32(perm)], { T: F32, Tperm: I32 }),
    roll: (a: string, shift: number, axis: number) => g.op('Roll', [a, g.constInt32([shift], true), g.constInt32([axis], true)], { T: F32, Tshift: I32, Taxis: I32 }),
    concat: (values: string[], axis: number, type: Attr = F32) => g.op('ConcatV2', [...values, g.constInt32([axis], true)], { T: type, N: { i: values.length }, Tidx: I32 }),
    splitV: (a: string, sizes: number[], axis: number): string[] => {
      const node = g.op('SplitV', [a, g.constInt32(sizes), g.constInt32([axis], true)], { T: F32, Tlen: I32, num_split: { i: sizes.length } });
      return sizes.map((_, k) => (k === 0 ? node : `${node}:${k}`));
    },
    /** Entries [begin, begin + size) of an int32 vector. */
    slice: (a: string, begin: number, size: number) => g.op('Slice', [a, g.constInt32([begin]), g.constInt32([size])], { T: I32, Index: I32 }),
  };
}

/** Placeholder names of block i's weights, in BlockWeights order. */
const BLOCK_TENSORS = ['qkv', 'qkvBias', 'attentionOut', 'attentionOutBias', 'gate', 'up', 'down'] as const;

interface Feed {
  name: string;
  tensor: tf.Tensor;
}

/** What a call fetches (TensorFlow computes only what these need). */
export interface ForwardFetches {
  /** Logits of the last position [b, V]. */
  lastLogits?: boolean;
  /** Logits of every position [b, t, V]. */
  allLogits?: boolean;
  /** Final hidden states [b, t, d] (after the final norm). */
  hidden?: boolean;
  /** Every layer's cache including this call's positions. */
  cache?: boolean;
}

export interface ForwardGraphOutput {
  lastLogits?: tf.Tensor2D;
  allLogits?: tf.Tensor3D;
  hidden?: tf.Tensor3D;
  cache?: LayerCache[];
}

export class ForwardGraph {
  private constructor(
    private readonly session: GraphSession,
    private readonly weightFeeds: Feed[],
    private readonly outputs: { lastLogits: string; allLogits: string; hidden: string; cache: string[] },
    private readonly config: ModelConfig,
  ) {}

  /** Build and load the graph for this model's shapes and weights (native backend only). */
  static create(config: ModelConfig, w: DecoderWeights): ForwardGraph {
    const { hiddenSize: d, numHeads: h, numKvHeads: kvh, headDim: hd, vocabSize: vocab } = config;
    const g = new GraphBuilder();
    const o = ops(g);
    const heads = h + 2 * kvh;
    const groups = h / kvh;
    const weightFeeds: Feed[] = [];
    const weight = (name: string, tensor: tf.Tensor): string => {
      weightFeeds.push({ name, tensor });
      return g.placeholder(name, DT_FLOAT, tensor.shape);
    };

    const meanColumn = g.constFloat(new Float32Array(d).fill(1 / d), [d, 1]);
    const eps = g.constFloat(Float32Array.of(config.rmsNormEps), []);
    const normalize = (x: string) => o.mul(x, o.rsqrt(o.add(o.matMul(o.square(x), meanColumn), eps)));

    const input = g.placeholder('x', DT_FLOAT, [-1, -1, d]); // [b, t, d]
    const cos = g.placeholder('cos', DT_FLOAT, [-1, -1, heads, hd]); // [b, t, heads, hd]
    const sin = g.placeholder('sin', DT_FLOAT, [-1, -1, heads, hd]);
    const bias = g.placeholder('bias', DT_FLOAT, [-1, 1, -1, -1]); // [b, 1, g t, s]
    // Dynamic shapes, built once from cos's shape [b, t, heads, hd].
    const shape = g.op('Shape', [cos], { T: F32, out_type: I32 });
    const [bDim, tDim] = [o.slice(shape, 0, 1), o.slice(shape, 1, 1)];
    const constDims = (...dims: number[]) => g.constInt32(dims);
    const groupedShape = o.concat([bDim, constDims(kvh), g.op('Mul', [tDim, constDims(groups)], { T: I32 }), constDims(hd)], 0, I32); // [b, kvh, g t, hd]
    const headsShape = o.concat([bDim, constDims(h), tDim, constDims(hd)], 0, I32); // [b, h, t, hd]
    const hiddenShape = o.concat([bDim, tDim, constDims(d)], 0, I32); // [b, t, d]
    const rowsShape = constDims(-1, d);

    let x = o.reshape(input, rowsShape); // residual rows [b t, d]
    const cache: string[] = [];
    for (let i = 0; i < w.blocks.length; i++) {
      const block = w.blocks[i];
      const p: Partial<Record<(typeof BLOCK_TENSORS)[number], string>> = {};
      for (const key of BLOCK_TENSORS) {
        const t = block[key];
        if (t !== null) p[key] = weight(`block${i}_${key}`, t);
      }
      // Attention: q|k|v rows, RoPE (x cos + swap_halves(x) sin), cache append, grouped-query attention.
      let qkv = o.project(normalize(x), p.qkv!);
      if (p.qkvBias !== undefined) qkv = o.add(qkv, p.qkvBias);
      const qkv4 = o.reshape(qkv, shape); // [b, t, heads, hd]
      const rotated = o.transpose(o.add(o.mul(qkv4, cos), o.mul(o.roll(qkv4, hd / 2, 3), sin)), [0, 2, 1, 3]); // [b, heads, t, hd]
      const [q, k, v] = o.splitV(rotated, [h, kvh, kvh], 1);
      const keysT = o.concat([g.placeholder(`past${i}_keysT`, DT_FLOAT, [-1, kvh, hd, -1]), o.transpose(k, [0, 1, 3, 2])], 3); // [b, kvh, hd, s]
      const values = o.concat([g.placeholder(`past${i}_values`, DT_FLOAT, [-1, kvh, -1, hd]), v], 2); // [b, kvh, s, hd]
      const scores = o.matMul(o.reshape(q, groupedShape), keysT); // [b, kvh, g t, s]
      const mixed = o.reshape(o.matMul(o.softmax(o.add(scores, bias)), values), headsShape); // [b, h, t, hd]
      let attended = o.project(o.reshape(o.transpose(mixed, [0, 2, 1, 3]), rowsShape), p.attentionOut!);
      if (p.attentionOutBias !== undefined) attended = o.add(attended, p.attentionOutBias);
      x = o.add(x, attended);
      // SiLU-gated MLP.
      const normed = normalize(x);
      const gate = o.project(normed, p.gate!);
      x = o.add(x, o.project(o.mul(o.mul(gate, o.sigmoid(gate)), o.project(normed, p.up!)), p.down!));
      cache.push(keysT, values);
    }
    const hiddenRows = o.mul(normalize(x), weight('finalNorm', w.finalNorm)); // [b t, d]
    const hidden = o.reshape(hiddenRows, hiddenShape);
    const lmHead = weight('lmHead', w.lmHead);
    // The last position of every row: [b, d] (begin [0, -1, 0], axis 1 shrunk, axes 0 and 2 whole).
    const last = g.op('StridedSlice', [hidden, g.constInt32([0, -1, 0]), g.constInt32([0, 0, 0]), g.constInt32([1, 1, 1])], {
      T: F32, Index: I32, begin_mask: { i: 5 }, end_mask: { i: 5 }, ellipsis_mask: { i: 0 }, new_axis_mask: { i: 0 }, shrink_axis_mask: { i: 2 },
    });
    const lastLogits = o.project(last, lmHead);
    const allLogits = o.reshape(o.project(hiddenRows, lmHead), o.concat([bDim, tDim, constDims(vocab)], 0, I32));
    return new ForwardGraph(GraphSession.load(g), weightFeeds, { lastLogits, allLogits, hidden, cache }, config);
  }

  /**
   * Run new-position embeddings x [b, t, d] with the step context stepContext built for them, continuing
   * `past` (null: no earlier positions). Returns the requested fetches; the caller owns them.
   */
  run(x: tf.Tensor3D, ctx: StepContext, past: LayerCache[] | null, fetch: ForwardFetches): ForwardGraphOutput {
    const { numLayers, numKvHeads: kvh, headDim: hd } = this.config;
    if (past !== null && past.length !== numLayers) throw new Error(`ForwardGraph.run: ${past.length} cache entries for ${numLayers} layers`);
    const b = x.shape[0];
    const feeds: Feed[] = [...this.weightFeeds, { name: 'x', tensor: x }, { name: 'cos', tensor: ctx.cos }, { name: 'sin', tensor: ctx.sin }, { name: 'bias', tensor: ctx.bias }];
    const empty = past === null ? [tf.zeros([b, kvh, hd, 0]), tf.zeros([b, kvh, 0, hd])] : [];
    for (let i = 0; i < numLayers; i++) {
      feeds.push({ name: `past${i}_keysT`, tensor: past?.[i].keysT ?? empty[0] }, { name: `past${i}_values`, tensor: past?.[i].values ?? empty[1] });
    }
    const names: (keyof ForwardFetches)[] = (['lastLogits', 'allLogits', 'hidden', 'cache'] as const).filter((k) => fetch[k] === true);
    const fetches = names.flatMap((k) => (k === 'cache' ? this.outputs.cache : [this.outputs[k]]));
    let results: tf.Tensor[];
    try {
      results = this.session.run(feeds, fetches);
    } finally {
      tf.dispose(empty);
    }
    const out: ForwardGraphOutput = {};
    for (const k of names) {
      if (k === 'cache') {
        const flat = results.splice(0, 2 * numLayers);
        out.cache = Array.from({ length: numLayers }, (_, i) => ({ keysT: flat[2 * i] as tf.Tensor4D, values: flat[2 * i + 1] as tf.Tensor4D }));
      } else {
        (out as Record<string, tf.Tensor>)[k] = results.shift()!;
      }
    }
    return out;
  }

  dispose(): void {
    this.session.dispose();
  }
}
