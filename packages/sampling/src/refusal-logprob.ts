/**
 * Refusal log-probability labels (beyond the paper): the model's probability of opening its answer with
 * a refusal, P(refuse) = Σ over refusal openers o of Π_j P(o_j | input, o_<j), from forward passes only —
 * no sampling, so it is cheap and noise-free. compliance = 1 − P(refuse), a soft label for the refusal
 * boundary in place of the sampled one.
 *
 * The openers are tokenized as the start of the answer and merged into a token trie; an opener that is
 * a token-prefix of another covers it (its probability already includes the longer one's), so the longer
 * one is dropped and no mass is counted twice. Per batch: one prefill with a KV cache, then one
 * single-token step per inner trie node, reusing the parent's cache.
 *
 * Stage inputs: rendered (rendered-inputs/v1). Output: scores (compliance-scores/v1, source "logprob").
 * Resumable: rows are scored in checkpointed chunks.
 */
import type { Table } from 'apache-arrow';
import { type ArtifactRef, BadInputError, complianceScoresSchema, complianceScoresTable, readRenderedInputs, renderedInputsSchema, renderedRowIndices, renderedTokenCount, type RenderedInput } from '@dro/artifacts';
import { type ChatModel, type ModelTokenizer, padBatch, tf } from '@dro/llm';
import { runInChunks, type Stage, type StageContext } from '@dro/pipeline';
import { REFUSAL_PHRASES_HASH, loadRefusalPhraseList } from './judge.ts';
import { parseRefusalLogprobParams, type RefusalLogprobParams } from './params.ts';

export interface OpenerTrieNode {
  token: number;
  /** An opener ends here: its mass covers every continuation, so the node has no children. */
  terminal: boolean;
  children: OpenerTrieNode[];
}

/** Token trie of the openers (root token −1). Openers covered by a shorter one are dropped. */
export function openerTrie(tokenizer: Pick<ModelTokenizer, 'encode'>, openers: readonly string[]): OpenerTrieNode {
  const root: OpenerTrieNode = { token: -1, terminal: false, children: [] };
  const sequences = openers.map((o) => tokenizer.encode(o, { addSpecialTokens: false })).sort((a, b) => a.length - b.length);
  for (const tokens of sequences) {
    if (tokens.length === 0) continue;
    let node = root;
    for (let j = 0; j < tokens.length && !node.terminal; j++) {
      let child = node.children.find((c) => c.token === tokens[j]);
      if (!child) {
        child = { token: tokens[j], terminal: false, children: [] };
        node.children.push(child);
      }
      if (j === tokens.length - 1) {
        child.terminal = true;
        child.children = [];
      }
      node = child;
    }
  }
  return root;
}

/** Let signal handlers and heartbeats run between trie steps. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface KvCache {
  keysT: tf.Tensor;
  values: tf.Tensor;
}

/**
 * log P(token | context) of the given tokens, per row: [rows] logits → [rows × tokens] host values. The
 * log-softmax and the gather run on the backend, so only rows × tokens numbers leave it; copying the whole
 * [rows, V] logits to JS and reducing there cost ~0.3 s per trie node with Qwen's 152 k vocabulary
 * (refusal-logprob took 153 s instead of ~50 s for 192 quick-preset inputs).
 */
function tokenLogProbs(logits: tf.Tensor2D, tokens: number[]): Float32Array {
  return tf.tidy(() => tf.gather(tf.logSoftmax(logits), tf.tensor1d(tokens, 'int32'), 1).dataSync() as Float32Array);
}

/** P(answer opens with an opener) for each token sequence (rendered chat inputs). */
export async function refusalProbabilities(
  model: ChatModel,
  sequences: readonly (readonly number[])[],
  trie: OpenerTrieNode,
  batchSize: number,
  onBatch?: (done: number) => void,
  signal?: AbortSignal,
): Promise<Float64Array> {
  const result = new Float64Array(sequences.length);
  for (let start = 0; start < sequences.length; start += batchSize) {
    signal?.throwIfAborted();
    const batch = sequences.slice(start, start + batchSize);
    const rows = batch.length;
    const { ids, mask } = padBatch(batch, model.padId);
    const x = model.embed(ids); // [rows, t, d]
    const prefill = model.forwardWithCache(x, mask, null); // lastLogits [rows, V]
    x.dispose();
    const totals = new Float64Array(rows);

    const visit = async (node: OpenerTrieNode, cache: KvCache[], logitsTensor: tf.Tensor2D, nodeMask: number[][], logProb: Float64Array) => {
      const tokens = node.children.map((c) => c.token);
      const childLogProbs = tokenLogProbs(logitsTensor, tokens); // [rows, children]
      await yieldToEventLoop();
      for (const [j, child] of node.children.entries()) {
        const childLogProb = logProb.map((lp, r) => lp + childLogProbs[r * tokens.length + j]!);
        if (child.terminal) {
          childLogProb.forEach((lp, r) => (totals[r] += Math.exp(lp)));
          continue;
        }
        const childMask = nodeMask.map((m) => [...m, 1]);
        const step = model.embed(Array.from({ length: rows }, () => [child.token])); // [rows, 1, d]
        const out = model.forwardWithCache(step, childMask, cache as never);
        step.dispose();
        try {
          await visit(child, out.cache, out.lastLogits, childMask, childLogProb);
        } finally {
          tf.dispose([out.lastLogits, ...out.cache.flatMap((c) => [c.keysT, c.values])]);
        }
      }
    };
    try {
      await visit(trie, prefill.cache, prefill.lastLogits, mask, new Float64Array(rows));
    } finally {
      tf.dispose([prefill.lastLogits, ...prefill.cache.flatMap((c) => [c.keysT, c.values])]);
    }
    result.set(totals, start);
    onBatch?.(start + rows);
  }
  return result;
}

function scoresTable(rows: RenderedInput[], probabilities: Float64Array): Table {
  const scores = Array.from(probabilities, (p) => ({ compliance: Math.min(1, Math.max(0, 1 - p)), samples: 0, source: 'logprob' as const, refusalProb: p }));
  return complianceScoresTable(rows, scores);
}

/** Rows are scored in checkpointed chunks (resumable, see runInChunks in @dro/pipeline); the model loads only if needed. */
async function runRefusalLogprob(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: RefusalLogprobParams): Promise<Record<string, ArtifactRef>> {
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { sets: params.sets });
  const openers = params.openers.length > 0 ? params.openers : loadRefusalPhraseList().openers;
  if (openers.length === 0) throw new BadInputError('refusal-logprob params: openers: none given and data/refusal-phrases.json has no "openers"');
  // The openers used (the data file's when none are given) are what the scores depend on: the manifest records them.
  const resolved = { params: { ...params, openers } };
  const message = 'refusal log-probabilities';
  const all = await runInChunks(ctx, rows, { chunkSize: params.chunkSize, schema: complianceScoresSchema.name, message, manifest: resolved }, async (chunkRows, offset) => {
    const model = await ctx.openModel();
    const probabilities = await refusalProbabilities(
      model,
      chunkRows.map((r) => r.tokenIds),
      openerTrie(model.tokenizer, openers),
      params.batchSize,
      (done) => ctx.progress({ done: offset + done, total: rows.length, message }),
      ctx.signal,
    );
    return scoresTable(chunkRows, probabilities);
  });
  return { scores: await ctx.store.putTable(complianceScoresSchema.name, all, ctx.manifest(resolved)) };
}

export const refusalLogprobStage: Stage<RefusalLogprobParams> = {
  name: 'refusal-logprob',
  // The default openers come from data/refusal-phrases.json: its hash keeps the cache honest.
  version: `1.phrases-${REFUSAL_PHRASES_HASH}`,
  needs: 'model',
  inputs: ['rendered'],
  inputSchemas: { rendered: renderedInputsSchema.name },
  outputs: ['scores'],
  outputSchemas: { scores: complianceScoresSchema.name },
  parseParams: parseRefusalLogprobParams,
  // Forward passes only: a row's score depends on its own tokens (and the chunk it is batched in).
  rowParallel: {
    input: 'rendered',
    chunkRows: (params) => params.chunkSize,
    selectRows: (table, params) => renderedRowIndices(table, { sets: params.sets }),
    rowCost: (table, row) => renderedTokenCount(table, row),
  },
  run: runRefusalLogprob,
};
