/**
 * The decoder forward (any number of new positions, optionally continuing a KV cache) as one TensorFlow
 * graph, and its gradient w.r.t. the input embeddings as a second, hand-written one, for the native
 * 'tensorflow' backend.
 *
 * Why: eagerly, every tfjs op goes through TensorFlow's eager runtime at 15-35 µs of dispatch apiece; a
 * SmolLM2 decoding step is ~1,000 ops, so a third of it was dispatch, and prefill's elementwise tails ran
 * one after the other. As a graph the same ops run inside one TF_SessionRun: TensorFlow's executor
 * dispatches each kernel in a few µs, runs independent ones (gate and up projections, key and value cache
 * appends) concurrently on its inter-op threads, and its optimizer (grappler, oneDNN rewrites) sees the
 * whole computation. The math is exactly llama.ts's (same weight layout: folded norms, fused q|k|v, RoPE
 * tables carrying the score scale and identity value heads, transposed key cache), so eager and graph calls
 * interoperate on one cache and agree to float rounding (tested). Under tf.grad, differentiableHidden()
 * wraps the forward in a tf.customGrad whose gradient is the backward graph, fed the activations the
 * forward saved (weights are frozen: no weight gradients).
 *
 * The graph holds no weights: they are fed from the model's tfjs tensors on every call (shared, not
 * copied), so the model is in memory once. Shapes are dynamic (rows, new positions, cache length), so one
 * graph serves prefill, decoding, scoring and training; TensorFlow runs only the part a call's fetches need.
 */
import { tf } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import { GraphBuilder, DT_FLOAT, DT_INT32, type Attr } from '../native/graph-def.ts';
import { GraphSession } from '../native/graph-session.ts';
import type { DecoderWeights, LayerCache, StepContext } from './llama.ts';

/** Set to 0 to run the forward eagerly on the native backend too (A/B and debugging). */
export const FORWARD_GRAPH_ENV = 'DRO_FORWARD_GRAPH';

/** Whether the graph is available: native backend and not disabled. */
export function forwardGraphAvailable(): boolean {
  return tf.getBackend() === 'tensorflow' && process.env[FORWARD_GRAPH_ENV] !== '0';
}

/** Whether a tf.grad / tf.variableGrads is recording right now (ops called now need a gradient). */
export function recordingGradients(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

/** Whether a forward may run as a plain graph call now: available and no gradient recording. */
export function forwardGraphUsable(): boolean {
  return forwardGraphAvailable() && !recordingGradients();
}

const F32: Attr = { type: DT_FLOAT };
const I32: Attr = { type: DT_INT32 };
const bool = (b: boolean): Attr => ({ b });

/** Node-building helpers over a GraphBuilder, named like the TensorFlow ops they emit. */
function ops(g: GraphBuilder) {
  const binary = (op: string) => (a: string, b: string) => g.op(op, [a, b], { T: F32 });
  const unary = (op: string) => (a: string) => g.op(op, [a], { T: F32 });
  /**
   * a @ b for activations (attention scores and mixing, their gradients), a or b transposed (adjoint) on
   * request: BatchMatMulV2, which TensorFlow hands to oneDNN — ~2× faster than Eigen's BatchMatMulV3 on
   * sequence-sized products (0.9 vs 1.9 ms at 8×128), as fast on decoding steps (in a graph oneDNN's
   * per-call cost does not show), faster on many rows with long caches (48 rows, 100 cached positions:
   * 96 vs 142 ms per step).
   */
  const matMulT = (a: string, b: string, adjA: boolean, adjB: boolean) => g.op('BatchMatMulV2', [a, b], { T: F32, adj_x: bool(adjA), adj_y: bool(adjB) });
  return {
    matMulT,
    matMul: (a: string, b: string) => matMulT(a, b, false, false),
    /** Rows times one column (RMSNorm's mean): Eigen's kernel, a plain dot product per row. */
    matVec: (a: string, column: string) => g.op('BatchMatMulV3', [a, column], { Ta: F32, Tb: F32, Tout: F32, adj_x: bool(false), adj_y: bool(false) }),
    /** Rows times a weight matrix: TensorFlow's MatMul, which the graph optimizer hands to oneDNN. */
    project: (a: string, w: string) => g.op('MatMul', [a, w], { T: F32, transpose_a: bool(false), transpose_b: bool(false) }),
    /**
     * Rows times a weight matrix transposed (the backward of project): BatchMatMulV2 with adj_y, which
     * oneDNN runs as fast as an untransposed product (213 vs 219 GFLOP/s for [1024, 1536] x [576, 1536]ᵀ);
     * MatMul with transpose_b runs at 170.
     */
    projectT: (a: string, w: string) => matMulT(a, w, false, true),
    add: binary('AddV2'),
    sub: binary('Sub'),
    mul: binary('Mul'),
    sumLast: (a: string) => g.op('Sum', [a, g.constInt32([-1])], { T: F32, Tidx: I32, keep_dims: bool(true) }),
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
  /** What backward() needs (activations of every layer; only without a past cache). */
  saved?: boolean;
  /** The residual stream after blocks 1 .. L-1, [b, t, d] each (HF hidden_states between embeddings and final). */
  layers?: boolean;
}

export interface ForwardGraphOutput {
  lastLogits?: tf.Tensor2D;
  allLogits?: tf.Tensor3D;
  hidden?: tf.Tensor3D;
  cache?: LayerCache[];
  saved?: tf.Tensor[];
  layers?: tf.Tensor3D[];
}

/**
 * Activations one block's backward reads, by placeholder suffix: the two norms' outputs y and 1/rms r,
 * grouped queries, transposed keys, values, attention probabilities, and the MLP's gate and up products.
 */
const SAVED_PER_BLOCK = ['y1', 'r1', 'queries', 'keysT', 'values', 'probs', 'y2', 'r2', 'gate', 'up'] as const;
type SavedName = (typeof SAVED_PER_BLOCK)[number];

export class ForwardGraph {
  private constructor(
    private readonly session: GraphSession,
    private readonly weightFeeds: Feed[],
    private readonly outputs: { lastLogits: string; allLogits: string; hidden: string; cache: string[]; saved: string[]; layers: string[]; inputGrad: string },
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
    /** RMSNorm without weight: y = x r, r = 1/sqrt(mean(x^2) + eps) [n, 1]. */
    const rmsNorm = (x: string) => {
      const r = o.rsqrt(o.add(o.matVec(o.square(x), meanColumn), eps));
      return { y: o.mul(x, r), r };
    };

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
    const saved: Record<SavedName, string>[] = [];
    const layers: string[] = [];
    const weights: Partial<Record<(typeof BLOCK_TENSORS)[number], string>>[] = [];
    for (let i = 0; i < w.blocks.length; i++) {
      const block = w.blocks[i];
      const p: Partial<Record<(typeof BLOCK_TENSORS)[number], string>> = {};
      for (const key of BLOCK_TENSORS) {
        const t = block[key];
        if (t !== null) p[key] = weight(`block${i}_${key}`, t);
      }
      weights.push(p);
      // Attention: q|k|v rows, RoPE (x cos + swap_halves(x) sin), cache append, grouped-query attention.
      const norm1 = rmsNorm(x);
      let qkv = o.project(norm1.y, p.qkv!);
      if (p.qkvBias !== undefined) qkv = o.add(qkv, p.qkvBias);
      const qkv4 = o.reshape(qkv, shape); // [b, t, heads, hd]
      const rotated = o.transpose(o.add(o.mul(qkv4, cos), o.mul(o.roll(qkv4, hd / 2, 3), sin)), [0, 2, 1, 3]); // [b, heads, t, hd]
      const [q, k, v] = o.splitV(rotated, [h, kvh, kvh], 1);
      const keysT = o.concat([g.placeholder(`past${i}_keysT`, DT_FLOAT, [-1, kvh, hd, -1]), o.transpose(k, [0, 1, 3, 2])], 3); // [b, kvh, hd, s]
      const values = o.concat([g.placeholder(`past${i}_values`, DT_FLOAT, [-1, kvh, -1, hd]), v], 2); // [b, kvh, s, hd]
      const queries = o.reshape(q, groupedShape);
      const scores = o.matMul(queries, keysT); // [b, kvh, g t, s]
      const probs = o.softmax(o.add(scores, bias));
      const mixed = o.reshape(o.matMul(probs, values), headsShape); // [b, h, t, hd]
      let attended = o.project(o.reshape(o.transpose(mixed, [0, 2, 1, 3]), rowsShape), p.attentionOut!);
      if (p.attentionOutBias !== undefined) attended = o.add(attended, p.attentionOutBias);
      x = o.add(x, attended);
      // SiLU-gated MLP.
      const norm2 = rmsNorm(x);
      const gate = o.project(norm2.y, p.gate!);
      const up = o.project(norm2.y, p.up!);
      x = o.add(x, o.project(o.mul(o.mul(gate, o.sigmoid(gate)), up), p.down!));
      cache.push(keysT, values);
      if (i < w.blocks.length - 1) layers.push(o.reshape(x, hiddenShape));
      saved.push({ y1: norm1.y, r1: norm1.r, queries, keysT, values, probs, y2: norm2.y, r2: norm2.r, gate, up });
    }
    const finalNorm = weight('finalNorm', w.finalNorm);
    const normF = rmsNorm(x);
    const hiddenRows = o.mul(normF.y, finalNorm); // [b t, d]
    const hidden = o.reshape(hiddenRows, hiddenShape);
    const lmHead = weight('lmHead', w.lmHead);
    // The last position of every row: [b, d] (begin [0, -1, 0], axis 1 shrunk, axes 0 and 2 whole).
    const last = g.op('StridedSlice', [hidden, g.constInt32([0, -1, 0]), g.constInt32([0, 0, 0]), g.constInt32([1, 1, 1])], {
      T: F32, Index: I32, begin_mask: { i: 5 }, end_mask: { i: 5 }, ellipsis_mask: { i: 0 }, new_axis_mask: { i: 0 }, shrink_axis_mask: { i: 2 },
    });
    const lastLogits = o.project(last, lmHead);
    const allLogits = o.reshape(o.project(hiddenRows, lmHead), o.concat([bDim, tDim, constDims(vocab)], 0, I32));

    // Backward w.r.t. the input embeddings (weights frozen, no past cache), from the saved activations fed
    // back as placeholders: the forward's ops differentiated by hand, block by block in reverse.
    const savedInputs = saved.map((_, i) => Object.fromEntries(SAVED_PER_BLOCK.map((k) => [k, g.placeholder(`saved${i}_${k}`, DT_FLOAT, null)])) as Record<SavedName, string>);
    const savedFinal = { y: g.placeholder('savedF_y', DT_FLOAT, null), r: g.placeholder('savedF_r', DT_FLOAT, null) };
    /** RMSNorm backward: dx = r (dy - y mean(dy y)). */
    const rmsNormGrad = (y: string, r: string, dy: string) => o.mul(r, o.sub(dy, o.mul(y, o.matVec(o.mul(dy, y), meanColumn))));
    const one = g.constFloat(Float32Array.of(1), []);
    const qHeadsShape = o.concat([bDim, tDim, constDims(h), constDims(hd)], 0, I32); // [b, t, h, hd]
    let dx = rmsNormGrad(savedFinal.y, savedFinal.r, o.mul(o.reshape(g.placeholder('dHidden', DT_FLOAT, [-1, -1, d]), rowsShape), finalNorm));
    for (let i = saved.length - 1; i >= 0; i--) {
      const sv = savedInputs[i];
      const p = weights[i];
      // MLP: x2 = x1 + down(silu(gate) * up); silu'(z) = s (1 + z (1 - s)), s = sigmoid(z).
      const dAct = o.projectT(dx, p.down!);
      const s = o.sigmoid(sv.gate);
      const dGate = o.mul(o.mul(dAct, sv.up), o.mul(s, o.add(one, o.mul(sv.gate, o.sub(one, s)))));
      const dUp = o.mul(dAct, o.mul(sv.gate, s));
      const dY2 = o.add(o.projectT(dGate, p.gate!), o.projectT(dUp, p.up!));
      dx = o.add(dx, rmsNormGrad(sv.y2, sv.r2, dY2));
      // Attention: x1 = x0 + out(merge(softmax(q kT + bias) v)).
      const dMixed = o.reshape(o.transpose(o.reshape(o.projectT(dx, p.attentionOut!), qHeadsShape), [0, 2, 1, 3]), groupedShape); // [b, kvh, g t, hd]
      const dProbs = o.matMulT(dMixed, sv.values, false, true); // [b, kvh, g t, s]
      const dValues = o.matMulT(sv.probs, dMixed, true, false); // [b, kvh, s, hd]
      const dScores = o.mul(sv.probs, o.sub(dProbs, o.sumLast(o.mul(dProbs, sv.probs))));
      const dQueries = o.reshape(o.matMulT(dScores, sv.keysT, false, true), headsShape); // [b, h, t, hd]
      const dKeys = o.transpose(o.matMulT(sv.queries, dScores, true, false), [0, 1, 3, 2]); // [b, kvh, t, hd]
      const dRotated = o.transpose(o.concat([dQueries, dKeys, dValues], 1), [0, 2, 1, 3]); // [b, t, heads, hd]
      // RoPE is x cos + R x sin with R (swap halves) its own transpose: dx = dy cos + R (dy sin).
      const dQkv = o.add(o.mul(dRotated, cos), o.roll(o.mul(dRotated, sin), hd / 2, 3));
      const dY1 = o.projectT(o.reshape(dQkv, constDims(-1, heads * hd)), p.qkv!);
      dx = o.add(dx, rmsNormGrad(sv.y1, sv.r1, dY1));
    }
    const inputGrad = o.reshape(dx, hiddenShape);
    const outputs = {
      lastLogits, allLogits, hidden, cache, layers, inputGrad,
      saved: [...saved.flatMap((sv) => SAVED_PER_BLOCK.map((k) => sv[k])), normF.y, normF.r],
    };
    return new ForwardGraph(GraphSession.load(g), weightFeeds, outputs, config);
  }

  /**
   * Run new-position embeddings x [b, t, d] with the step context stepContext built for them, continuing
   * `past` (null: no earlier positions). Returns the requested fetches; the caller owns them.
   */
  run(x: tf.Tensor3D, ctx: StepContext, past: LayerCache[] | null, fetch: ForwardFetches): ForwardGraphOutput {
    const { numLayers, numKvHeads: kvh, headDim: hd } = this.config;
    if (past !== null && past.length !== numLayers) throw new Error(`ForwardGraph.run: ${past.length} cache entries for ${numLayers} layers`);
    if (fetch.saved === true && past !== null) throw new Error('ForwardGraph.run: saved activations are for calls without a past cache');
    const b = x.shape[0];
    const feeds: Feed[] = [...this.weightFeeds, { name: 'x', tensor: x }, { name: 'cos', tensor: ctx.cos }, { name: 'sin', tensor: ctx.sin }, { name: 'bias', tensor: ctx.bias }];
    const empty = past === null ? [tf.zeros([b, kvh, hd, 0]), tf.zeros([b, kvh, 0, hd])] : [];
    for (let i = 0; i < numLayers; i++) {
      feeds.push({ name: `past${i}_keysT`, tensor: past?.[i].keysT ?? empty[0] }, { name: `past${i}_values`, tensor: past?.[i].values ?? empty[1] });
    }
    const names: (keyof ForwardFetches)[] = (['lastLogits', 'allLogits', 'hidden', 'cache', 'saved', 'layers'] as const).filter((k) => fetch[k] === true);
    const fetches = names.flatMap((k) => (k === 'cache' || k === 'saved' || k === 'layers' ? this.outputs[k] : [this.outputs[k]]));
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
      } else if (k === 'saved' || k === 'layers') {
        (out as Record<string, tf.Tensor[]>)[k] = results.splice(0, this.outputs[k].length);
      } else {
        (out as Record<string, tf.Tensor>)[k] = results.shift()!;
      }
    }
    return out;
  }

  /**
   * Gradient w.r.t. the input embeddings [b, t, d] of a forward run with `saved: true` (no past), given
   * the gradient of its final hidden states dHidden [b, t, d] and the same step context.
   */
  backward(dHidden: tf.Tensor, saved: readonly tf.Tensor[], rope: { cos: tf.Tensor; sin: tf.Tensor }): tf.Tensor3D {
    if (saved.length !== this.outputs.saved.length) throw new Error(`ForwardGraph.backward: ${saved.length} saved tensors, expected ${this.outputs.saved.length}`);
    const feeds: Feed[] = [...this.weightFeeds, { name: 'dHidden', tensor: dHidden }, { name: 'cos', tensor: rope.cos }, { name: 'sin', tensor: rope.sin }];
    const names = [...Array.from({ length: this.config.numLayers }, (_, i) => SAVED_PER_BLOCK.map((k) => `saved${i}_${k}`)).flat(), 'savedF_y', 'savedF_r'];
    names.forEach((name, j) => feeds.push({ name, tensor: saved[j] }));
    return this.session.run(feeds, [this.outputs.inputGrad])[0] as tf.Tensor3D;
  }

  /**
   * Final hidden states [b, t, d] of input embeddings x, differentiable w.r.t. x for the recording
   * tf.grad: the forward graph saves every block's activations, backward() runs the hand-written gradient
   * graph on them (as much activation memory as plain backprop's minimum, a fraction of the eager tape's).
   */
  differentiableHidden(x: tf.Tensor3D, ctx: StepContext): tf.Tensor3D {
    const customFn = ((input: tf.Tensor3D, save: tf.GradSaveFunc) => {
      const out = this.run(input, ctx, null, { hidden: true, saved: true });
      save([ctx.cos, ctx.sin, ...out.saved!]);
      return {
        value: out.hidden!,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [cos, sin, ...activations] = saved;
          return this.backward(dy as tf.Tensor, activations, { cos, sin });
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0];
    return tf.customGrad(customFn)(x) as tf.Tensor3D;
  }

  dispose(): void {
    this.session.dispose();
  }
}
