/**
 * ChatModel: the API pipeline stages use — a loaded Llama-family model with its tokenizer and chat
 * template, forward over ids or input embeddings (differentiable w.r.t. the embeddings), and generation.
 */
import { BadInputError } from '@dro/artifacts';
import { tf, initBackend, isNativeBackend, type BackendName } from '../backend.ts';
import type { ModelConfig } from '../config.ts';
import type { WeightSource } from '../weights/source.ts';
import type { ChatMessage, ChatTemplate } from '../template/chat-template.ts';
import { generate, type GenerateOptions, type GenerateResult } from '../generate/generate.ts';
import { ForwardGraph, forwardGraphAvailable, forwardGraphUsable, recordingGradients } from '../native/forward-graph.ts';
import { eagerTopCandidates, type TokenCandidates } from '../generate/token-candidates.ts';
import { GraphSessionError } from '../native/graph-session.ts';
import { forwardEstimate, generateEstimate, MemoryBudget } from './memory-budget.ts';
import {
  disposeStepContext,
  disposeWeights,
  embedTokens,
  lmLogits,
  ropeFrequencies,
  runDecoder,
  stepContext,
  uploadWeights,
  type DecoderWeights,
  type LayerCache,
} from './llama.ts';

export type { ChatMessage };

/** The tokenizer surface the model needs (the weights engineer's Tokenizer satisfies it). */
export interface ModelTokenizer {
  /** splitSpecialTokens: the text is user content, whose special-token strings are ordinary text. */
  encode(text: string, options?: { addSpecialTokens?: boolean; splitSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
}

export type ChatTemplateFn = (messages: ChatMessage[], options: { addGenerationPrompt: boolean }) => string;

/** Which positions get logits: every position (default), only the last one, or none (hidden states only). */
export type LogitsFor = 'all' | 'last' | 'none';

/**
 * Tokens (batch × time) up to which tf.grad through forward() uses plain backprop by default on the native
 * backend (the graph forward saves each block's activations, ≈ 0.8 GB per 1,024 tokens for SmolLM2-135M at
 * t = 128, and its backward graph runs on them: ~1.5× faster than recomputing each block).
 * Larger inputs are checkpointed.
 */
export const PLAIN_BACKPROP_MAX_TOKENS = 1024;

/** The default of ForwardInput.checkpoint for `tokens` (batch × time) inputs: plain backprop where memory allows. */
export function checkpointsByDefault(backend: BackendName, tokens: number): boolean {
  return !isNativeBackend(backend) || tokens > PLAIN_BACKPROP_MAX_TOKENS;
}

export interface ForwardInput {
  /** Token ids [b][t] (rectangular; left-pad with padBatch). Exactly one of inputIds / inputsEmbeds. */
  inputIds?: number[][];
  /** Input embeddings [b, t, d]; gradients flow back to this tensor. Not disposed by forward. */
  inputsEmbeds?: tf.Tensor3D;
  /** [b][t], 1 = real token, 0 = left padding. Default all ones. */
  attentionMask?: number[][];
  /** Also return every layer's hidden state (HF hidden_states layout). */
  allLayers?: boolean;
  logitsFor?: LogitsFor;
  /**
   * Activation checkpointing for tf.grad through the model: each block keeps only its input and is
   * recomputed during backprop, so training memory drops from every intermediate of every block to one
   * block's plus [b, t, d] per block, for a second forward pass (SmolLM2 8×128 on the native backend:
   * 2.2 instead of 2.7 GB peak RSS with the graph backward (7.3 GB with the eager tape), 0.6× the speed).
   * Default (undefined): plain backprop on the native
   * backend up to PLAIN_BACKPROP_MAX_TOKENS (b·t) tokens, checkpointing beyond that and always on wasm /
   * cpu (their heaps are small); off with allLayers. Costs nothing outside tf.grad.
   */
  checkpoint?: boolean;
}

export interface ForwardOutput {
  /** [b, t, V] ('all'), [b, 1, V] ('last') or [b, 0, V] ('none'). */
  logits: tf.Tensor3D;
  /** After the final norm: [b, t, d] (HF hidden_states[-1]). */
  lastHidden: tf.Tensor3D;
  /** With allLayers: L + 1 tensors [b, t, d]: embeddings, outputs of blocks 1..L-1, then the final normed state. */
  layers?: tf.Tensor3D[];
}

/** What forwardWithCache returns (see there). */
export interface CachedForward {
  lastLogits: tf.Tensor2D;
  cache: LayerCache[];
  candidates?: TokenCandidates;
}

export interface ModelParts {
  config: ModelConfig;
  weights: WeightSource;
  tokenizer: ModelTokenizer;
  applyChatTemplate: ChatTemplateFn;
  digest: string;
  backend: BackendName;
  /** The model's chat template (for system-content spans), when it has one. */
  chatTemplate?: ChatTemplate | null;
}

export class ChatModel {
  readonly config: ModelConfig;
  readonly tokenizer: ModelTokenizer;
  readonly digest: string;
  readonly backend: BackendName;
  private readonly templateFn: ChatTemplateFn;
  private readonly template: ChatTemplate | null;
  private weights: DecoderWeights | null;
  private readonly invFreq: Float32Array;
  /** The forward as a TensorFlow graph (native backend), built on first use. */
  private graph: ForwardGraph | null = null;
  /** Set once TensorFlow has refused the graph: the model then runs eagerly. */
  private graphRefused = false;
  /** Memory left for requests on this backend once the weights are resident (see memory-budget.ts). */
  readonly memoryBudget: MemoryBudget;

  constructor(parts: ModelParts) {
    this.config = parts.config;
    this.tokenizer = parts.tokenizer;
    this.digest = parts.digest;
    this.backend = parts.backend;
    this.templateFn = parts.applyChatTemplate;
    this.template = parts.chatTemplate ?? null;
    this.memoryBudget = new MemoryBudget(parts.backend, weightBytes(parts.weights));
    this.weights = uploadWeights(parts.config, parts.weights);
    this.invFreq = ropeFrequencies(parts.config);
  }

  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt: boolean } = { addGenerationPrompt: true }): string {
    return this.templateFn(messages, options);
  }

  /** The chat template object (render, tokenize, system-content span); throws if the model has none. */
  get chatTemplate(): ChatTemplate {
    if (this.template === null) throw new Error('this model was built without a chat template');
    return this.template;
  }

  /**
   * Chat-templated prompt → token ids. Control tokens come from the template only: special-token strings
   * in the messages' content are ordinary text (see ChatTemplate.encode).
   */
  encodeChat(messages: ChatMessage[], options: { addGenerationPrompt: boolean } = { addGenerationPrompt: true }): number[] {
    if (this.template !== null) return this.template.encode(messages, options);
    return this.tokenizer.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /** The pad id used for left padding (pad, else eos, else 0: padded slots are masked anyway). */
  get padId(): number {
    return this.tokenizer.padTokenId ?? this.config.padTokenId ?? this.config.eosTokenId ?? 0;
  }

  /** Input embeddings [b, t, d] of rectangular ids. */
  embed(ids: number[][]): tf.Tensor3D {
    this.checkIds(ids, 'embed: inputIds');
    return embedTokens(this.config, this.live(), ids);
  }

  forward(input: ForwardInput): ForwardOutput {
    const w = this.live();
    const [rows, positions] = input.inputsEmbeds?.shape ?? [input.inputIds?.length ?? 0, input.inputIds?.[0]?.length ?? 0];
    this.checkContext('forward', positions);
    const logitPositions = { all: positions, last: 1, none: 0 }[input.logitsFor ?? 'all'];
    this.memoryBudget.check(`forward of ${rows} × ${positions} tokens`, forwardEstimate(this.config, rows, positions, logitPositions));
    const { x, ownsX, mask } = this.prepareInput(input);
    const collectLayers = input.allLayers ?? false;
    // Checkpointing costs nothing outside tf.grad (customGrad saves only when a tape records).
    const checkpoint = input.checkpoint ?? (!collectLayers && checkpointsByDefault(this.backend, x.shape[0] * x.shape[1]));
    // Native backend: the graph forward, or under tf.grad the graph forward with its backward graph
    // (plain backprop); the eager decoder for checkpointing, all layers under tf.grad, and the other backends.
    const mode = !forwardGraphAvailable() ? 'eager' : !recordingGradients() ? 'graph' : checkpoint || collectLayers ? 'eager' : 'graph-backprop';
    const graph = mode === 'eager' ? null : this.forwardGraph(); // null: eager after all
    const ctx = stepContext(this.config, this.invFreq, mask, x.shape[1]);
    try {
      return tf.tidy(() => {
        if (input.checkpoint === true && collectLayers) throw new BadInputError('forward: checkpoint and allLayers cannot be combined');
        const logitsFor = input.logitsFor ?? 'all';
        if (graph !== null && mode === 'graph') {
          const out = graph.run(x, ctx, null, { hidden: true, lastLogits: logitsFor === 'last', allLogits: logitsFor === 'all', layers: collectLayers });
          const [b] = x.shape;
          const logits = logitsFor === 'all' ? out.allLogits! : logitsFor === 'last' ? tf.reshape(out.lastLogits!, [b, 1, -1]) as tf.Tensor3D : tf.zeros([b, 0, this.config.vocabSize]) as tf.Tensor3D;
          const result: ForwardOutput = { logits, lastHidden: out.hidden! };
          if (collectLayers) result.layers = [tf.clone(x), ...out.layers!, tf.clone(out.hidden!)];
          return result as unknown as tf.TensorContainer;
        }
        if (graph !== null) {
          const hidden = graph.differentiableHidden(x, ctx);
          return { logits: this.logitsOf(hidden, logitsFor), lastHidden: hidden } as unknown as tf.TensorContainer;
        }
        const out = runDecoder(this.config, w, x, ctx, null, { collectLayers, checkpoint });
        const logits = this.logitsOf(out.hidden, logitsFor);
        const result: ForwardOutput = { logits, lastHidden: out.hidden };
        if (out.layers !== null) {
          // Distinct tensors so a caller may dispose layers and lastHidden independently.
          result.layers = out.layers.map((t) => tf.clone(t));
        }
        return result as unknown as tf.TensorContainer;
      }) as unknown as ForwardOutput;
    } finally {
      disposeStepContext(ctx);
      if (ownsX) x.dispose();
    }
  }

  /**
   * Forward that also returns the KV cache (for generation). Returns the logits of the last position only
   * ([b, V]) and the cache; with `candidates: K'`, also each row's K' largest last-position logits, their
   * ids and the row's logit sum (generate/token-candidates.ts). The caller disposes everything returned.
   */
  forwardWithCache(x: tf.Tensor3D, fullMask: number[][], past: LayerCache[] | null, options: { candidates?: number } = {}): CachedForward {
    const w = this.live();
    this.checkContext('forwardWithCache', fullMask[0]?.length ?? 0);
    const graph = forwardGraphUsable() ? this.forwardGraph() : null;
    const ctx = stepContext(this.config, this.invFreq, fullMask, x.shape[1], { rotationMatrices: graph === null });
    try {
      if (graph !== null) {
        const out = graph.run(x, ctx, past, { lastLogits: true, cache: true, candidates: options.candidates });
        return { lastLogits: out.lastLogits!, cache: out.cache!, candidates: out.candidates };
      }
      return tf.tidy(() => {
        const out = runDecoder(this.config, w, x, ctx, past, { keepCache: true });
        const [b, t, d] = out.hidden.shape;
        const last = tf.slice(out.hidden, [0, t - 1, 0], [b, 1, d]);
        const lastLogits = tf.reshape(lmLogits(w, last), [b, -1]) as tf.Tensor2D;
        const candidates = options.candidates !== undefined && options.candidates > 0 ? eagerTopCandidates(lastLogits, options.candidates) : undefined;
        return { lastLogits, cache: out.cache, candidates } as unknown as tf.TensorContainer;
      }) as unknown as CachedForward;
    } finally {
      disposeStepContext(ctx);
    }
  }

  /** Sample or greedily decode continuations (see generate/generate.ts). */
  generate(options: GenerateOptions): Promise<GenerateResult> {
    return generate(this, options);
  }

  dispose(): void {
    this.graph?.dispose();
    this.graph = null;
    if (this.weights !== null) disposeWeights(this.weights);
    this.weights = null;
  }

  get disposed(): boolean {
    return this.weights === null;
  }

  /**
   * Throws a BadInputError naming `request` and the memory budget when generating for `prompts` ×
   * `samples` rows of `promptLength` + `newTokens` positions cannot fit (what generate() checks; callers
   * that build large inputs first, e.g. soft-prompt embeddings, check before building them).
   */
  checkGenerateFits(request: string, prompts: number, samples: number, promptLength: number, newTokens: number): void {
    this.memoryBudget.check(request, generateEstimate(this.config, prompts, samples, promptLength, newTokens));
  }

  /**
   * Positions beyond the model's context (max_position_embeddings / GGUF context_length) are refused: the
   * model was not trained on them, and attention memory grows with their square.
   */
  checkContext(what: string, positions: number): void {
    const context = this.config.maxPositionEmbeddings;
    if (positions > context) {
      throw new BadInputError(`${what}: ${positions} positions exceed the model's context of ${context} positions`);
    }
  }

  private logitsOf(hidden: tf.Tensor3D, which: LogitsFor): tf.Tensor3D {
    const w = this.live();
    const [b, t, d] = hidden.shape;
    if (which === 'all') return lmLogits(w, hidden);
    if (which === 'last') return lmLogits(w, tf.slice(hidden, [0, t - 1, 0], [b, 1, d]));
    return tf.zeros([b, 0, this.config.vocabSize]);
  }

  private prepareInput(input: ForwardInput): { x: tf.Tensor3D; ownsX: boolean; mask: number[][] } {
    if ((input.inputIds === undefined) === (input.inputsEmbeds === undefined)) {
      throw new BadInputError('forward: pass exactly one of inputIds and inputsEmbeds');
    }
    let x: tf.Tensor3D;
    let ownsX = false;
    if (input.inputIds !== undefined) {
      x = this.embed(input.inputIds);
      ownsX = true;
    } else {
      x = input.inputsEmbeds as tf.Tensor3D;
      if (x.rank !== 3 || x.shape[2] !== this.config.hiddenSize) {
        throw new BadInputError(`forward: inputsEmbeds must be [batch, time, ${this.config.hiddenSize}], got [${x.shape.join(', ')}]`);
      }
      if (x.dtype !== 'float32') throw new BadInputError(`forward: inputsEmbeds must be float32, got ${x.dtype}`);
    }
    const [b, t] = x.shape;
    const mask = input.attentionMask ?? Array.from({ length: b }, () => new Array<number>(t).fill(1));
    if (mask.length !== b || mask.some((row) => row.length !== t)) {
      if (ownsX) x.dispose();
      throw new BadInputError(`forward: attentionMask must be [${b}][${t}] like the input`);
    }
    return { x, ownsX, mask };
  }

  private checkIds(ids: number[][], what: string): void {
    if (ids.length === 0 || ids[0].length === 0) throw new BadInputError(`${what}: empty batch or empty sequence`);
    const t = ids[0].length;
    for (let b = 0; b < ids.length; b++) {
      if (ids[b].length !== t) throw new BadInputError(`${what}: row ${b} has ${ids[b].length} tokens, row 0 has ${t} (pad with padBatch)`);
      for (const id of ids[b]) {
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
          throw new BadInputError(`${what}: token id ${id} in row ${b} is outside the vocabulary (0..${this.config.vocabSize - 1})`);
        }
      }
    }
  }

  /**
   * The model's graph forward (native backend; see forward-graph.ts), built on first use. If TensorFlow
   * cannot load the graph (e.g. a libtensorflow without one of its ops), the model warns once and runs
   * eagerly from then on: null.
   */
  private forwardGraph(): ForwardGraph | null {
    if (this.graphRefused) return null;
    try {
      this.graph ??= ForwardGraph.create(this.config, this.live());
      return this.graph;
    } catch (err) {
      if (!(err instanceof GraphSessionError)) throw err;
      this.graphRefused = true;
      process.emitWarning(`${err.message}; running the model eagerly instead (slower)`, { code: 'DRO_FORWARD_GRAPH' });
      return null;
    }
  }

  private live(): DecoderWeights {
    if (this.weights === null) throw new Error('ChatModel used after dispose()');
    return this.weights;
  }
}

/** Bytes of the model's weights as float32 (tied embeddings counted once). */
export function weightBytes(weights: WeightSource): number {
  return weights.names().reduce((sum, name) => sum + weights.info(name).shape.reduce((a, b) => a * b, 1) * 4, 0);
}

/** Build a model from parts already loaded (a WeightSource, tokenizer, template). */
export async function createChatModel(parts: Omit<ModelParts, 'backend'> & { backend?: string }): Promise<ChatModel> {
  const backend = await initBackend(parts.backend);
  return new ChatModel({ ...parts, backend });
}

/** Final hidden state of the last real token of each row: [b, d]. With left padding that is position t-1. */
export function lastTokenHidden(lastHidden: tf.Tensor3D): tf.Tensor2D {
  const [b, t, d] = lastHidden.shape;
  return tf.tidy(() => tf.reshape(tf.slice(lastHidden, [0, t - 1, 0], [b, 1, d]), [b, d]) as tf.Tensor2D);
}
