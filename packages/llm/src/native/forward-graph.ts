/**
 * The decoder forward (any number of new positions, optionally continuing a KV cache) as one TensorFlow
 * graph, and its gradient w.r.t. the input embeddings as a second one, for the native 'tensorflow' backend.
 *
 * Why: eagerly, every tfjs op goes through TensorFlow's eager runtime at 15-35 µs of dispatch apiece; a
 * SmolLM2 decoding step is ~1,000 ops, so a third of it was dispatch, and prefill's elementwise tails ran
 * one after the other. As a graph the same ops run inside one TF_SessionRun: TensorFlow's executor
 * dispatches each kernel in a few µs, runs independent ones (gate and up projections, key and value cache
 * appends) concurrently on its inter-op threads, and its optimizer (grappler, oneDNN rewrites) sees the
 * whole computation. The graph is written by the same block functions the eager path runs
 * (model/decoder-block.ts, here over graph-ops.ts), so eager and graph calls compute the same ops, share
 * one cache layout and interoperate on one cache (tested). Under tf.grad, differentiableHidden() wraps the
 * forward in a tf.customGrad whose gradient is the backward graph (derived from the recorded forward by
 * model/decoder-grad.ts), fed the activations the forward saved (weights are frozen: no weight gradients).
 *
 * The graph holds no weights: they are fed from the model's tfjs tensors on every call (shared, not
 * copied), so the model is in memory once. Shapes are dynamic (rows, new positions, cache length), so one
 * graph serves prefill, decoding, scoring and training; TensorFlow runs only the part a call's fetches need.
 */
import { tf } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import { decoderBlock, finalNorm, BLOCK_PARAMS, type BlockParams } from '../model/decoder-block.ts';
import { recordingOps, Tape } from '../model/decoder-grad.ts';
import type { DecoderWeights, LayerCache, StepContext } from '../model/llama.ts';
import { candidateBlock, type TokenCandidates } from '../generate/token-candidates.ts';
import { GraphBuilder, DT_FLOAT, DT_INT32 } from './graph-def.ts';
import { graphOps } from './graph-ops.ts';
import { GraphSession } from './graph-session.ts';

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

interface Feed {
  name: string;
  tensor: tf.Tensor;
}

/** What a call fetches (TensorFlow computes only what these need). */
export interface ForwardFetches {
  /** Logits of the last position [b, V]. */
  lastLogits?: boolean;
  /** The last position's this-many largest logits per row, with their ids and each row's logit sum. */
  candidates?: number;
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
  candidates?: TokenCandidates;
  allLogits?: tf.Tensor3D;
  hidden?: tf.Tensor3D;
  cache?: LayerCache[];
  saved?: tf.Tensor[];
  layers?: tf.Tensor3D[];
}

export class ForwardGraph {
  private constructor(
    private readonly session: GraphSession,
    private readonly weightFeeds: Feed[],
    private readonly outputs: { lastLogits: string; candidates: string[]; blockedCandidates: string[] | null; allLogits: string; hidden: string; cache: string[]; saved: string[]; layers: string[]; inputGrad: string },
    private readonly config: ModelConfig,
  ) {}

  /** Build and load the graph for this model's shapes and weights (native backend only). */
  static create(config: ModelConfig, w: DecoderWeights): ForwardGraph {
    const { hiddenSize: d, numHeads: h, numKvHeads: kvh, headDim: hd } = config;
    const g = new GraphBuilder();
    const heads = h + 2 * kvh;
    const weightFeeds: Feed[] = [];
    const weight = (name: string, tensor: tf.Tensor): string => {
      weightFeeds.push({ name, tensor });
      return g.placeholder(name, DT_FLOAT, tensor.shape);
    };

    const input = g.placeholder('x', DT_FLOAT, [-1, -1, d]); // [b, t, d]
    const cos = g.placeholder('cos', DT_FLOAT, [-1, -1, heads, hd]); // [b, t, heads, hd]
    const sin = g.placeholder('sin', DT_FLOAT, [-1, -1, heads, hd]);
    const bias = g.placeholder('bias', DT_FLOAT, [-1, 1, -1, -1]); // [b, 1, g t, s]
    const base = graphOps(g, config, cos);
    // The forward is recorded, so that the backward is derived from it (decoder-grad.ts).
    const tape = new Tape<string>();
    const o = recordingOps(base, tape);

    let x = base.reshape(input, 'hidden', 'rows'); // residual rows [b t, d]
    const residualInput = x;
    tape.watch(residualInput);
    const cache: string[] = [];
    const layers: string[] = [];
    for (let i = 0; i < w.blocks.length; i++) {
      const block = w.blocks[i];
      const p = Object.fromEntries(BLOCK_PARAMS.map((key) => [key, block[key] === null ? null : weight(`block${i}_${key}`, block[key])])) as unknown as BlockParams<string>;
      // The cache is always a placeholder: an empty one ([.., 0] positions) when a call has no past.
      const past = { keysT: g.placeholder(`past${i}_keysT`, DT_FLOAT, [-1, kvh, hd, -1]), values: g.placeholder(`past${i}_values`, DT_FLOAT, [-1, kvh, -1, hd]) };
      const out = decoderBlock(o, config, p, x, { cos, sin, bias }, past);
      x = out.next;
      cache.push(out.cache.keysT, out.cache.values);
      if (i < w.blocks.length - 1) layers.push(base.reshape(x, 'rows', 'hidden'));
    }
    const hiddenRows = finalNorm(o, x, weight('finalNorm', w.finalNorm)); // [b t, d]
    const hidden = base.reshape(hiddenRows, 'rows', 'hidden');
    const lmHead = weight('lmHead', w.lmHead);
    const lastLogits = base.project(base.lastPosition(hidden), lmHead);
    const allLogits = base.logitsByPosition(base.project(hiddenRows, lmHead));
    // Both ways of finding the candidates (token-candidates.ts); run() fetches the blocked one when K' allows.
    const candidateCountInput = g.placeholder('candidateCount', DT_INT32, []);
    const top = base.topCandidates(lastLogits, candidateCountInput, 1);
    const candidates = [top.values, top.indices, top.rowSums];
    const block = candidateBlock(config.vocabSize);
    const blocked = block > 1 ? base.topCandidates(lastLogits, candidateCountInput, block) : null;
    const blockedCandidates = blocked === null ? null : [blocked.values, blocked.indices, blocked.rowSums];

    // Backward w.r.t. the input embeddings (weights frozen, no past cache). Every forward activation it
    // reads becomes a placeholder fed from the forward's `saved` fetch, so a backward call runs no forward op.
    const saved: string[] = [];
    const savedInputs = new Map<string, string>();
    const savedInput = (forwardValue: string): string => {
      let node = savedInputs.get(forwardValue);
      if (node === undefined) {
        node = g.placeholder(`saved${saved.length}`, DT_FLOAT, null);
        savedInputs.set(forwardValue, node);
        saved.push(forwardValue);
      }
      return node;
    };
    const dHidden = base.reshape(g.placeholder('dHidden', DT_FLOAT, [-1, -1, d]), 'hidden', 'rows');
    const inputGrad = base.reshape(tape.gradient(base, hiddenRows, dHidden, residualInput, savedInput), 'rows', 'hidden');
    const outputs = { lastLogits, candidates, blockedCandidates, allLogits, hidden, cache, layers, inputGrad, saved };
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
    const candidateCount = fetch.candidates !== undefined && fetch.candidates > 0 ? tf.scalar(fetch.candidates, 'int32') : null;
    if (candidateCount !== null) feeds.push({ name: 'candidateCount', tensor: candidateCount });
    const names: (keyof ForwardFetches)[] = (['lastLogits', 'candidates', 'allLogits', 'hidden', 'cache', 'saved', 'layers'] as const).filter((k) =>
      k === 'candidates' ? candidateCount !== null : fetch[k] === true,
    );
    const blocks = Math.ceil(this.config.vocabSize / candidateBlock(this.config.vocabSize));
    const candidateOutputs = this.outputs.blockedCandidates !== null && fetch.candidates! <= blocks ? this.outputs.blockedCandidates : this.outputs.candidates;
    const fetches = names.flatMap((k) => (k === 'candidates' ? candidateOutputs : k === 'cache' || k === 'saved' || k === 'layers' ? this.outputs[k] : [this.outputs[k]]));
    let results: tf.Tensor[];
    try {
      results = this.session.run(feeds, fetches);
    } finally {
      tf.dispose(empty);
      candidateCount?.dispose();
    }
    const out: ForwardGraphOutput = {};
    for (const k of names) {
      if (k === 'candidates') {
        const [values, indices, rowSums] = results.splice(0, 3) as tf.Tensor2D[];
        out.candidates = { values, indices, rowSums };
      } else if (k === 'cache') {
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
    saved.forEach((tensor, j) => feeds.push({ name: `saved${j}`, tensor }));
    return this.session.run(feeds, [this.outputs.inputGrad])[0] as tf.Tensor3D;
  }

  /**
   * Final hidden states [b, t, d] of input embeddings x, differentiable w.r.t. x for the recording
   * tf.grad: the forward graph saves every block's activations, backward() runs the derived gradient
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
