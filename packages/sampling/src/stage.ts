/**
 * The sampling stage: n responses per rendered input (paper protocol: n = 25, temperature 1, top-p 0.9,
 * top-k 50, 10..300 new tokens, 200 for harmless queries, seed = query index). Of each input's samples the
 * judged selection (judgeTopLongest: the k longest, or all) is judged by the string-match judge in its mode
 * (and optionally an LLM judge), and each judged sample's final verdict is recorded (samples/v2
 * `complied`; the rule lives in verdicts.ts of @dro/artifacts). Per input, compliance = the share of judged
 * samples that complied: the refusal-boundary labels count exactly what the evaluation counts.
 *
 * Each input is generated alone with its own seed, so results do not depend on chunking or on the other
 * inputs. Inputs are processed in checkpointed chunks (resumable: see runInChunks in @dro/pipeline).
 *
 * Inputs:  rendered (rendered-inputs/v1)
 * Outputs: samples (samples/v1: every response with its verdicts), scores (compliance-scores/v1)
 *
 * The stage version carries a hash of both phrase lists under data/, so editing one invalidates cached
 * verdicts.
 */
import type { Table } from 'apache-arrow';
import {
  type ArtifactRef,
  BadInputError,
  complianceShare,
  complianceScoresTable,
  complianceScoresSchema,
  judgedSelection,
  readRenderedInputs,
  renderedLabel,
  renderedRowIndices,
  renderedTokenCount,
  renderedInputsSchema,
  softPromptSchema,
  readSoftPrompt,
  sampleComplies,
  samplesOf,
  samplesSchema,
  samplesTable,
  tallyQueries,
  type RenderedInput,
  type Sample,
  type SoftPrompt,
} from '@dro/artifacts';
import { type ChatModel, loadModel, spliceSoftPrompt, tf } from '@dro/llm';
import { runInChunks, type Stage, type StageContext, variadicInputs } from '@dro/pipeline';
import { JUDGE_PHRASES_HASH, refusalJudge } from './judge.ts';
import { LlmJudge } from './llm-judge.ts';
import { describeVerdict, parseSamplingParams, verdictRule, type SamplingParams } from './params.ts';


/** The LLM judge, if configured: the sampled model itself ("self"), or another model loaded here and disposed at the end. */
class JudgeModels {
  private judgeModel: ChatModel | null = null;

  constructor(
    private readonly ctx: StageContext,
    private readonly config: SamplingParams['llmJudge'],
  ) {}

  async judge(): Promise<LlmJudge | null> {
    if (this.config === null) return null;
    if (this.config.model === 'self') return new LlmJudge(await this.ctx.openModel(), this.config);
    this.judgeModel ??= await loadModel(this.config.model);
    return new LlmJudge(this.judgeModel, this.config);
  }

  dispose(): void {
    this.judgeModel?.dispose();
  }
}

/**
 * The optional soft prompt (one input "softPrompt:<key>", soft-prompt/v1): it replaces each row's
 * safety-prompt span through inputsEmbeds, so a trained DRO / prompt-tuning prompt is sampled and judged
 * exactly like a text prompt.
 */
async function optionalSoftPrompt(ctx: StageContext, inputs: Record<string, ArtifactRef>): Promise<SoftPrompt | null> {
  const soft = variadicInputs(inputs, 'softPrompt');
  if (soft.length === 0) return null;
  if (soft.length > 1) throw new BadInputError(`sampling: at most one softPrompt:* input, got ${soft.map((s) => s.key).join(', ')}`);
  return readSoftPrompt(ctx.store, soft[0]!.value, `softPrompt:${soft[0]!.key}`);
}

/** Generation input for a batch of rows: token ids, or embeddings with the soft prompt spliced in. */
function promptInput(model: ChatModel, rows: RenderedInput[], soft: SoftPrompt | null) {
  if (soft === null) return { inputIds: rows.map((r) => r.tokenIds) };
  for (const row of rows) {
    if (row.promptSpan === null) throw new BadInputError(`rendered: input "${row.inputId}" has no safety-prompt span for the soft prompt to replace`);
  }
  const softTensor = tf.tensor2d(soft.values, [soft.n, soft.d]);
  try {
    const prompted = rows.map((row) => ({ ids: row.tokenIds, spanStart: row.promptSpan!.start, spanEnd: row.promptSpan!.end }));
    const { embeds, mask } = spliceSoftPrompt(model, prompted, softTensor);
    return { inputsEmbeds: embeds, attentionMask: mask };
  } finally {
    softTensor.dispose();
  }
}

/**
 * Samples a chunk of inputs. Inputs with the same new-token cap are generated together (one batched
 * decode over inputs × samples); per-input seeds keep each input's samples what a one-input call with
 * seed = seedOffset + query_index draws.
 */
async function sampleChunk(ctx: StageContext, judges: JudgeModels, rows: RenderedInput[], params: SamplingParams, onInputDone: () => void, soft: SoftPrompt | null = null): Promise<Sample[]> {
  const judge = refusalJudge(params.judge);
  const rule = verdictRule(params);
  const described = describeVerdict(params);
  const model = await ctx.openModel();
  const llmJudge = await judges.judge();
  const bySample = new Map<RenderedInput, Sample[]>();
  for (const label of ['harmful', 'harmless'] as const) {
    const group = rows.filter((r) => r.label === label);
    if (group.length === 0) continue;
    ctx.signal.throwIfAborted();
    const seeds = group.map((row) => params.seedOffset + row.queryIndex);
    // Bounded before anything is built (the soft-prompt embeddings of the whole group included).
    const promptLength = group.reduce((m, r) => Math.max(m, r.tokenIds.length), 0) + (soft?.n ?? 0);
    const maxNewTokens = params.maxNewTokens[label];
    // generate() ends new tokens at the model's context.
    const newTokens = Math.max(0, Math.min(maxNewTokens, model.config.maxPositionEmbeddings - promptLength));
    model.checkGenerateFits(
      `sampling: ${group.length} ${label} input(s) × ${params.samples} sample(s) × ${promptLength + newTokens} positions ` +
        `(params chunkSize ${params.chunkSize}, samples ${params.samples}, maxNewTokens.${label} ${maxNewTokens})`,
      group.length,
      params.samples,
      promptLength,
      newTokens,
    );
    const prompt = promptInput(model, group, soft);
    let result;
    try {
      result = await model.generate({
        ...prompt,
        samples: params.samples,
        temperature: params.temperature,
        topP: params.topP,
        topK: params.topK,
        minNewTokens: params.minNewTokens,
        maxNewTokens,
        seeds,
        signal: ctx.signal,
      });
    } finally {
      prompt.inputsEmbeds?.dispose();
    }
    for (const [g, row] of group.entries()) {
      const sequences = result.sequences[g]!;
      const judged = judgedSelection(sequences.map((s) => s.text), params.judgeTopLongest);
      const picked = sequences.filter((_, i) => judged[i]);
      const llmVerdicts = llmJudge ? (await llmJudge.judge(picked.map((s) => ({ query: row.query, output: s.text })), ctx.signal)).unsafe : null;
      let next = 0;
      bySample.set(row, sequences.map((s, i) => {
        const verdict = judge.judge(s.text);
        const llmUnsafe = judged[i] && llmVerdicts ? llmVerdicts[next++]! : null;
        const evidence = { label: row.label, refused: verdict.refused, llmUnsafe, output: s.text };
        return {
          inputId: row.inputId,
          set: row.set,
          queryId: row.queryId,
          promptId: row.promptId,
          label: row.label,
          sampleIndex: i,
          seed: seeds[g]!,
          output: s.text,
          newTokens: s.tokenIds.length,
          refused: verdict.refused,
          matchedPhrase: verdict.matchedPhrase,
          llmUnsafe,
          complied: judged[i] ? sampleComplies(evidence, rule) : null,
          judge: described,
        };
      }));
      onInputDone();
    }
  }
  // Rows keep their input order in the output table.
  return rows.flatMap((row) => bySample.get(row) ?? []);
}

/** Per-input compliance from a samples table (the share of judged samples that complied), in the order of `rows`. */
export function complianceScores(rows: RenderedInput[], samples: Table): Table {
  const tallies = tallyQueries(samplesOf(samples, 'samples'), 'samples');
  const byInput = new Map(tallies.map((t) => [`${t.set}\u0000${t.queryId}\u0000${t.promptId}`, t]));
  const tallyOf = (r: RenderedInput) => {
    const t = byInput.get(`${r.set}\u0000${r.queryId}\u0000${r.promptId}`);
    if (!t) throw new BadInputError(`samples: no samples for input "${r.inputId}"`);
    return t;
  };
  return complianceScoresTable(rows, rows.map((r) => ({ compliance: complianceShare(tallyOf(r)), samples: tallyOf(r).judged, source: 'sampled', refusalProb: null })));
}

async function runSampling(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: SamplingParams): Promise<Record<string, ArtifactRef>> {
  const rows = await readRenderedInputs(ctx.store, inputs.rendered!, { sets: params.sets });
  const judges = new JudgeModels(ctx, params.llmJudge);
  let soft: SoftPrompt | null = null;
  let done = 0;
  const message = `sampling ${params.samples}×`;
  let all: Table;
  try {
    all = await runInChunks(ctx, rows, { chunkSize: params.chunkSize, schema: samplesSchema.name, message }, async (chunkRows, offset) => {
      soft ??= await optionalSoftPrompt(ctx, inputs);
      done = offset;
      const samples = await sampleChunk(ctx, judges, chunkRows, params, () => ctx.progress({ done: ++done, total: rows.length, message }), soft);
      return samplesTable(samples);
    });
  } finally {
    judges.dispose();
  }
  const scores = complianceScores(rows, all);
  return {
    samples: await ctx.store.putTable(samplesSchema.name, all, ctx.manifest()),
    scores: await ctx.store.putTable(complianceScoresSchema.name, scores, ctx.manifest()),
  };
}

export const samplingStage: Stage<SamplingParams> = {
  name: 'sampling',
  // 3: judge modes, the judged selection, the final verdict per sample (samples/v2).
  version: `3.phrases-${JUDGE_PHRASES_HASH}`,
  needs: 'model',
  inputs: ['rendered'],
  variadicInputs: ['softPrompt'],
  inputSchemas: { rendered: renderedInputsSchema.name, softPrompt: softPromptSchema.name },
  outputs: ['samples', 'scores'],
  outputSchemas: { samples: samplesSchema.name, scores: complianceScoresSchema.name },
  parseParams: (raw) => parseSamplingParams(raw),
  // Each input is sampled with its own seed (seedOffset + query_index) and judged alone; its samples and
  // its score depend on no other row.
  rowParallel: {
    input: 'rendered',
    chunkRows: (params) => params.chunkSize,
    selectRows: (table, params) => renderedRowIndices(table, { sets: params.sets }),
    // Prompt plus the most tokens its label may sample.
    rowCost: (table, row, params) => renderedTokenCount(table, row) + params.maxNewTokens[renderedLabel(table, row) ?? 'harmful'],
  },
  run: runSampling,
};
