/**
 * Autoregressive generation with a KV cache: prefill each prompt once, replicate its cache for the n
 * samples, then decode all rows together one token per step. The only host round trip per step is what
 * sampling needs: with top-k (or greedy), each row's few largest logits from the device
 * (token-candidates.ts), falling back to a row's full logits where those cannot be proven enough; without
 * top-k, the [rows, V] logits. Text is decoded per step only when stop strings or streaming need it.
 */
import { BadInputError } from '@dro/artifacts';
import { tf } from '../backend.ts';
import type { ChatModel } from '../model/chat-model.ts';
import type { LayerCache } from '../model/llama.ts';
import { padBatch } from '../model/mask.ts';
import { argmax, drawCandidate, sampleToken, suppressStopTokens, type SamplingParams } from './logits-processors.ts';
import { candidateCount, candidatePathCounts, eagerTopCandidates, topKFromCandidates, type TokenCandidates } from './token-candidates.ts';
import { mixSeed, mulberry32, type Rng } from './rng.ts';

export interface TokenEvent {
  prompt: number;
  sample: number;
  tokenId: number;
  /**
   * Text this token added to the sample's output. A trailing incomplete UTF-8 character is held back
   * until it completes (or the sample ends), so the deltas of a sample concatenate to its final text.
   */
  textDelta: string;
  /** The sample's last event (its stop token, stop string or the length limit). */
  done: boolean;
}

export interface GenerateOptions {
  /** Prompts as token ids (any lengths; left-padded internally). Exactly one of inputIds / inputsEmbeds. */
  inputIds?: number[][];
  /** Prompts as input embeddings [P, t, d] (e.g. with a soft prompt spliced in), left-padded. */
  inputsEmbeds?: tf.Tensor3D;
  /** With inputsEmbeds: [P][t], 1 = real position, 0 = padding. Default all ones. */
  attentionMask?: number[][];
  /** Samples per prompt. Default 1. */
  samples?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minNewTokens?: number;
  maxNewTokens?: number;
  /** Default: the model's eos ids. */
  stopTokenIds?: number[];
  stopStrings?: string[];
  seed?: number;
  /**
   * One seed per prompt (overrides `seed`). Prompt p's samples then draw exactly what a one-prompt call
   * with `seed: seeds[p]` draws, so callers can batch prompts and keep per-prompt seeds (the paper's
   * seed = query index).
   */
  seeds?: number[];
  /** Argmax decoding (ignores temperature/top-k/top-p/seed). */
  greedy?: boolean;
  onToken?: (event: TokenEvent) => void;
  signal?: AbortSignal;
}

export type FinishReason = 'stop_token' | 'stop_string' | 'length';

export interface GeneratedSequence {
  /** Generated ids, without the stop token. */
  tokenIds: number[];
  /** Decoded text without special tokens, cut before a stop string. */
  text: string;
  finishReason: FinishReason;
}

export interface GenerateResult {
  /** [prompt][sample]. */
  sequences: GeneratedSequence[][];
}

interface RowState {
  prompt: number;
  sample: number;
  rng: Rng;
  tokens: number[];
  text: string;
  /** Text already streamed through onToken. */
  streamed: string;
  done: FinishReason | null;
}

function checkOptions(o: GenerateOptions): Required<Pick<GenerateOptions, 'samples' | 'minNewTokens' | 'maxNewTokens' | 'seed'>> & SamplingParams {
  const samples = o.samples ?? 1;
  const maxNewTokens = o.maxNewTokens ?? 64;
  const minNewTokens = o.minNewTokens ?? 0;
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 0;
  const topP = o.topP ?? 1;
  const seed = o.seed ?? 0;
  const bad = (field: string, expected: string, value: unknown): never => {
    throw new BadInputError(`generate: ${field} must be ${expected}, got ${JSON.stringify(value)}`);
  };
  if (!Number.isInteger(samples) || samples < 1) bad('samples', 'an integer >= 1', samples);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) bad('maxNewTokens', 'an integer >= 1', maxNewTokens);
  if (!Number.isInteger(minNewTokens) || minNewTokens < 0 || minNewTokens > maxNewTokens) bad('minNewTokens', 'an integer in 0..maxNewTokens', minNewTokens);
  if (!o.greedy && !(temperature > 0)) bad('temperature', '> 0 (or set greedy)', temperature);
  if (!Number.isInteger(topK) || topK < 0) bad('topK', 'an integer >= 0 (0 = off)', topK);
  if (!(topP > 0 && topP <= 1)) bad('topP', 'in (0, 1]', topP);
  if (!Number.isInteger(seed)) bad('seed', 'an integer', seed);
  if (o.seeds !== undefined && !o.seeds.every((x) => Number.isInteger(x))) bad('seeds', 'an array of integers', o.seeds);
  return { samples, maxNewTokens, minNewTokens, temperature, topK, topP, seed };
}

/** Generate `samples` continuations for each prompt. */
export async function generate(model: ChatModel, options: GenerateOptions): Promise<GenerateResult> {
  const opts = checkOptions(options);
  const stopTokenIds = options.stopTokenIds ?? model.config.eosTokenIds;
  const stopStrings = (options.stopStrings ?? []).filter((s) => s.length > 0);

  // Prompt embeddings [P, t, d] and their left-padded mask.
  let promptEmbeds: tf.Tensor3D;
  let promptMask: number[][];
  if ((options.inputIds === undefined) === (options.inputsEmbeds === undefined)) {
    throw new BadInputError('generate: pass exactly one of inputIds and inputsEmbeds');
  }
  if (options.inputIds !== undefined) {
    if (options.inputIds.length === 0 || options.inputIds.some((p) => p.length === 0)) throw new BadInputError('generate: empty prompt');
  }
  const [promptCount, promptLength] = options.inputsEmbeds?.shape ?? [options.inputIds!.length, options.inputIds!.reduce((m, p) => Math.max(m, p.length), 0)];
  fitRequest(model, opts, promptCount, promptLength);
  if (options.inputIds !== undefined) {
    const padded = padBatch(options.inputIds, model.padId);
    promptEmbeds = model.embed(padded.ids);
    promptMask = padded.mask;
  } else {
    const x = options.inputsEmbeds as tf.Tensor3D;
    promptEmbeds = tf.clone(x);
    promptMask = options.attentionMask ?? Array.from({ length: x.shape[0] }, () => new Array<number>(x.shape[1]).fill(1));
  }
  const numPrompts = promptEmbeds.shape[0];
  if (options.seeds !== undefined && options.seeds.length !== numPrompts) {
    promptEmbeds.dispose();
    throw new BadInputError(`generate: seeds has ${options.seeds.length} entries for ${numPrompts} prompts`);
  }
  // A prompt's samples draw from mixSeed(seed, p, s); with per-prompt seeds, from mixSeed(seeds[p], 0, s).
  const rngFor = (p: number, s: number) =>
    mulberry32(options.seeds !== undefined ? mixSeed(options.seeds[p]!, 0, s) : mixSeed(opts.seed, p, s));

  const rows: RowState[] = [];
  for (let p = 0; p < numPrompts; p++) {
    for (let s = 0; s < opts.samples; s++) {
      rows.push({ prompt: p, sample: s, rng: rngFor(p, s), tokens: [], text: '', streamed: '', done: null });
    }
  }
  const rowOfPrompt = tf.tensor1d(rows.map((r) => r.prompt), 'int32');
  const mask = rows.map((r) => [...promptMask[r.prompt]]);

  // Candidates per row fetched from the device each step (0: every row sampled from its full logits).
  const fetchCount = candidateCount({ topK: opts.topK, greedy: options.greedy === true }, stopTokenIds, model.config.vocabSize);
  // Without stop strings or streaming, a row's text is needed only once, at the end.
  const textEachStep = stopStrings.length > 0 || options.onToken !== undefined;
  let cache: LayerCache[] | null = null;
  let logits: tf.Tensor2D | null = null;
  let candidates: TokenCandidates | undefined;
  try {
    // Prefill once per prompt, then replicate the cache and logits rows for the samples.
    const prefill = model.forwardWithCache(promptEmbeds, promptMask, null);
    promptEmbeds.dispose();
    if (opts.samples === 1) {
      cache = prefill.cache;
      logits = prefill.lastLogits;
    } else {
      const replicated = tf.tidy(() => ({
        cache: prefill.cache.map((c) => ({ keysT: tf.gather(c.keysT, rowOfPrompt), values: tf.gather(c.values, rowOfPrompt) })),
        logits: tf.gather(prefill.lastLogits, rowOfPrompt),
      }));
      disposeCache(prefill.cache);
      prefill.lastLogits.dispose();
      cache = replicated.cache as LayerCache[];
      logits = replicated.logits as tf.Tensor2D;
    }
    if (fetchCount > 0) candidates = eagerTopCandidates(logits, fetchCount);

    for (let step = 0; step < opts.maxNewTokens; step++) {
      options.signal?.throwIfAborted();
      const next = await chooseTokens(model, rows, logits, candidates, opts, options.greedy === true, stopTokenIds);
      next.forEach((token, i) => {
        const row = rows[i];
        if (row.done !== null) return;
        acceptToken(model, row, token, stopTokenIds, stopStrings, textEachStep);
        if (row.done === null && row.tokens.length === opts.maxNewTokens) row.done = 'length';
        stream(row, token, options.onToken);
      });
      if (rows.every((r) => r.done !== null) || step === opts.maxNewTokens - 1) break;
      for (const m of mask) m.push(1);
      const x = model.embed(next.map((t) => [t])); // [rows, 1, d]
      const stepOut = model.forwardWithCache(x, mask, cache, { candidates: fetchCount });
      x.dispose();
      disposeCache(cache);
      logits.dispose();
      disposeCandidates(candidates);
      cache = stepOut.cache;
      logits = stepOut.lastLogits;
      candidates = stepOut.candidates;
    }
  } finally {
    rowOfPrompt.dispose();
    if (cache !== null) disposeCache(cache);
    if (logits !== null) logits.dispose();
    disposeCandidates(candidates);
    if (!promptEmbeds.isDisposed) promptEmbeds.dispose();
  }
  if (!textEachStep) for (const row of rows) row.text = row.tokens.length === 0 ? '' : model.tokenizer.decode(row.tokens, { skipSpecialTokens: true });

  const sequences: GeneratedSequence[][] = Array.from({ length: numPrompts }, () => []);
  for (const row of rows) {
    sequences[row.prompt].push({ tokenIds: row.tokens, text: row.text, finishReason: row.done ?? 'length' });
  }
  return { sequences };
}

/**
 * The request's bounds, checked before anything is allocated. Context: a prompt must leave room for at
 * least one new token; new tokens end at the model's context (finish reason "length", with a warning).
 * Memory: the request's KV cache, logits and prefill must fit the model's memory budget.
 */
function fitRequest(model: ChatModel, opts: { samples: number; maxNewTokens: number; minNewTokens: number }, prompts: number, promptLength: number): void {
  const context = model.config.maxPositionEmbeddings;
  if (promptLength >= context) {
    throw new BadInputError(`generate: the prompt has ${promptLength} tokens; the model's context of ${context} positions leaves no room to generate`);
  }
  if (promptLength + opts.maxNewTokens > context) {
    const room = context - promptLength;
    process.emitWarning(
      `generate: a ${promptLength}-token prompt leaves room for ${room} of the ${opts.maxNewTokens} new tokens asked for (context ${context}); generation stops there`,
      { code: 'DRO_CONTEXT_LIMIT' },
    );
    opts.maxNewTokens = room;
    opts.minNewTokens = Math.min(opts.minNewTokens, room);
  }
  model.checkGenerateFits(
    `generate: ${prompts} prompt(s) × ${opts.samples} sample(s) × ${promptLength + opts.maxNewTokens} positions`,
    prompts,
    opts.samples,
    promptLength,
    opts.maxNewTokens,
  );
}

/**
 * Each live row's next token (done rows get the pad id): from the device's candidates where they suffice
 * (token-candidates.ts), else from the row's full logits, downloaded once per step when some row needs them.
 */
async function chooseTokens(
  model: ChatModel,
  rows: readonly RowState[],
  logits: tf.Tensor2D,
  candidates: TokenCandidates | undefined,
  params: SamplingParams & { minNewTokens: number },
  greedy: boolean,
  stopTokenIds: readonly number[],
): Promise<number[]> {
  let host: Float32Array | null = null;
  const vocab = logits.shape[1];
  const fetched = candidates === undefined ? null : {
    values: (await candidates.values.data()) as Float32Array,
    indices: (await candidates.indices.data()) as Int32Array,
    rowSums: (await candidates.rowSums.data()) as Float32Array,
    count: candidates.values.shape[1],
  };
  const next: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (row.done !== null) {
      next.push(model.padId);
      continue;
    }
    const suppressed = row.tokens.length < params.minNewTokens ? stopTokenIds : [];
    const top = fetched === null ? null : topKFromCandidates(
      fetched.values.subarray(i * fetched.count, (i + 1) * fetched.count),
      fetched.indices.subarray(i * fetched.count, (i + 1) * fetched.count),
      fetched.rowSums[i],
      greedy ? 1 : params.topK,
      suppressed,
    );
    if (top !== null) {
      candidatePathCounts.device++;
      next.push(greedy ? top.ids[0] : drawCandidate(top.ids, top.logits, null, params, row.rng));
      continue;
    }
    candidatePathCounts.host++;
    host ??= (await logits.data()) as Float32Array; // [rows, V]
    const rowLogits = host.subarray(i * vocab, (i + 1) * vocab);
    suppressStopTokens(rowLogits, stopTokenIds, row.tokens.length, params.minNewTokens);
    next.push(greedy ? argmax(rowLogits) : sampleToken(rowLogits, params, row.rng));
  }
  return next;
}

/** Record a row's new token; its text too when `decodeText` (stop strings or streaming need it each step). */
function acceptToken(model: ChatModel, row: RowState, token: number, stopTokenIds: readonly number[], stopStrings: readonly string[], decodeText: boolean): void {
  if (stopTokenIds.includes(token)) {
    row.done = 'stop_token';
    return;
  }
  row.tokens.push(token);
  if (!decodeText) return;
  const decoded = model.tokenizer.decode(row.tokens, { skipSpecialTokens: true });
  let text = decoded;
  for (const stop of stopStrings) {
    const at = decoded.indexOf(stop);
    if (at >= 0 && at < text.length) {
      text = decoded.slice(0, at);
      row.done = 'stop_string';
    }
  }
  row.text = text;
}

/** Emit the text that became stable with this token (everything, once the row is done). */
function stream(row: RowState, token: number, onToken: GenerateOptions['onToken']): void {
  if (onToken === undefined) return;
  const stable = row.done !== null ? row.text : row.text.replace(/\uFFFD+$/, '');
  // A token can rewrite the end of the text (a completed multi-byte character); stream only extensions.
  if (!stable.startsWith(row.streamed)) return;
  const delta = stable.slice(row.streamed.length);
  row.streamed = stable;
  onToken({ prompt: row.prompt, sample: row.sample, tokenId: token, textDelta: delta, done: row.done !== null });
}

function disposeCache(cache: LayerCache[]): void {
  for (const c of cache) tf.dispose([c.keysT, c.values]);
}

function disposeCandidates(candidates: TokenCandidates | undefined): void {
  if (candidates !== undefined) tf.dispose([candidates.values, candidates.indices, candidates.rowSums]);
}
