/**
 * The prompt-tuning baseline on the tiny model: judged responses become likelihood / unlikelihood
 * targets, full-batch training lowers the loss, and the outputs have the soft-prompt layout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStage } from '@dro/pipeline';
import * as tf from '@tensorflow/tfjs-core';
import { BadInputError, columnValues, samplesSchema, tableForSchema, type ArtifactRef } from '@dro/artifacts';
import { loadModel, type ChatModel } from '@dro/llm';
import { promptTuningStage, responseTargets } from '../src/prompt-tuning-stage.ts';
import { defaultPromptTuningParams } from '../src/params.ts';
import { termCoefficients } from '../src/prompt-tuning.ts';
import { loadTinyModel } from './helpers.ts';
import { HARMFUL, HARMLESS, putRendered, stageContext, tempStore } from './fixtures.ts';

const PROMPT = 'Be safe and kind.';
const USER = { producer: { stage: 'test-fixture', version: '1' }, params: {}, inputs: {} };

/**
 * Per query, under the basic prompt: a refusal and a compliance, judged as such, and a third response outside
 * the judged selection (verdict null) that must not be trained on; under "none": one compliance, judged.
 */
async function putSamples(store: ReturnType<typeof tempStore>, withNone = true): Promise<ArtifactRef> {
  const rows: Record<string, unknown>[] = [];
  [...HARMFUL.map((q) => ['harmful', q]), ...HARMLESS.map((q) => ['harmless', q])].forEach(([label], i) => {
    const queryId = `${label}-${String(i).padStart(2, '0')}`;
    const add = (promptId: string, output: string, s: number, refused: boolean, complied: boolean | null) =>
      rows.push({
        input_id: `train/${queryId}/${promptId}`, set: 'train', query_id: queryId, prompt_id: promptId, label, sample_index: s, seed: i,
        output, new_tokens: 4, refused, matched_phrase: refused ? 'I cannot' : null, llm_unsafe: null, complied, judge: 'fixture',
      });
    add('basic', 'I cannot help.', 0, true, false);
    add('basic', 'Sure, here it is.', 1, false, true);
    add('basic', 'Unjudged words.', 2, false, null);
    if (withNone) add('none', 'Sure, here it is, unprompted.', 0, false, true);
  });
  const columns = Object.fromEntries(samplesSchema.columns.map((c) => [c.name, rows.map((r) => r[c.name])]));
  return store.putTable(samplesSchema.name, tableForSchema(samplesSchema, columns as never), USER);
}

describe('prompt-tuning stage (tiny model)', () => {
  const store = tempStore();
  let dir: string;
  let model: ChatModel;
  let rendered: ArtifactRef;
  let samples: ArtifactRef;

  beforeAll(async () => {
    ({ dir } = await loadTinyModel());
    model = await loadModel(dir);
    rendered = await putRendered(store, model, { basic: PROMPT });
    samples = await putSamples(store);
  });
  afterAll(() => model?.dispose());

  it('lowers its loss with full-batch steps and writes the soft prompt, curve and nearest tokens', async () => {
    const { ctx } = stageContext(store, dir);
    const before = tf.memory().numTensors;
    // 24 responses in one batch of 24 (micro-batches of 6): 5 deterministic steps.
    const params = promptTuningStage.parseParams!({ promptId: 'basic', batchSize: 24, microBatchSize: 6, epochs: 5, lr: 0.01, nearestTokens: 2, unpromptedNegatives: false });
    const out = await runStage(promptTuningStage, { rendered, samples }, params, ctx);
    expect(tf.memory().numTensors).toBe(before);
    const tensors = await store.getTensors(out.softPrompt!);
    expect(tensors.soft_prompt!.shape).toEqual([model.tokenizer.encode(PROMPT, { addSpecialTokens: false }).length, model.config.hiddenSize]);
    const curve = await store.getTable(out.curve!);
    const terms = columnValues<string>(curve, 'term', 'curve');
    const values = columnValues<number>(curve, 'value', 'curve');
    const total = values.filter((_, i) => terms[i] === 'total');
    expect(total).toHaveLength(5);
    expect(total.at(-1)!).toBeLessThan(total[0]!);
    expect(new Set(terms)).toEqual(new Set(['total', 'likelihood', 'unlikelihood', 'grad_norm']));
  });

  it('trains on judged responses only, plus the unprompted model\'s failures as negatives', async () => {
    const { ctx } = stageContext(store, dir);
    const params = promptTuningStage.parseParams!({ promptId: 'basic', batchSize: 50, microBatchSize: 8, epochs: 1, nearestTokens: 1 });
    const out = await runStage(promptTuningStage, { rendered, samples }, params, ctx);
    // 12 queries × 2 judged basic-prompt responses, plus the 6 harmful queries' unprompted compliances
    // (failures); the harmless queries' unprompted compliances are not failures.
    expect((await store.manifest(out.softPrompt!.digest)).summary).toEqual({ responses: 24 + 6, desirable: 12, unpromptedNegatives: 6 });
    const without = await runStage(promptTuningStage, { rendered, samples }, { ...params, unpromptedNegatives: false }, ctx);
    expect((await store.manifest(without.softPrompt!.digest)).summary).toMatchObject({ responses: 24, unpromptedNegatives: 0 });
    const noNone = await putSamples(store, false);
    const err = await runStage(promptTuningStage, { rendered, samples: noNone }, params, ctx).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/unpromptedNegatives needs samples with prompt_id "none"/);
  });

  it('names the input when no responses match', async () => {
    const { ctx } = stageContext(store, dir);
    const other = await putRendered(store, model, { other: 'Something else entirely.' });
    const err = await runStage(promptTuningStage, { rendered: other, samples }, promptTuningStage.parseParams!({ promptId: 'other' }), ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as Error).message).toMatch(/no judged sampled responses for the 12 training queries with prompt_id "other"/);
    expect(() => promptTuningStage.parseParams!({ promptId: 'x', weights: { likelihood: 0, unlikelihood: 0 } })).toThrow(/weights/);
    expect(() => promptTuningStage.parseParams!({ promptId: 'x', eosTargets: 'all' })).toThrow(/eosTargets: expected one of "desirable", "every"/);
    expect(() => promptTuningStage.parseParams!({ promptId: 'x', unpromptedNegatives: 'yes' })).toThrow(/unpromptedNegatives: expected true or false/);
  });
});

describe('the published prompt-tuning baseline', () => {
  it('is the default (the paper preset): 5 epochs, batch 50, lr 1e-3, 100 tokens + EOS for every response, per-token, unprompted negatives', () => {
    expect(defaultPromptTuningParams).toMatchObject({
      epochs: 5, batchSize: 50, lr: 1e-3, lrUnit: 'absolute', maxResponseTokens: 100, eosTargets: 'every', lossAveraging: 'per-token', unpromptedNegatives: true,
    });
  });

  it('targets: up to maxResponseTokens tokens, then the end of turn for every response or only for desirable ones that fit', () => {
    const every = { maxResponseTokens: 3, eosTargets: 'every' as const };
    const desirable = { maxResponseTokens: 3, eosTargets: 'desirable' as const };
    expect(responseTargets([1, 2, 3, 4, 5], false, 9, every)).toEqual([1, 2, 3, 9]);
    expect(responseTargets([1, 2], false, 9, every)).toEqual([1, 2, 9]);
    expect(responseTargets([1, 2], true, 9, desirable)).toEqual([1, 2, 9]);
    expect(responseTargets([1, 2], false, 9, desirable)).toEqual([1, 2]);
    expect(responseTargets([1, 2, 3, 4], true, 9, desirable)).toEqual([1, 2, 3]);
    expect(responseTargets([1, 2], true, null, every)).toEqual([1, 2]);
  });

  it('per-token averaging divides by the batch\'s tokens of each kind; per-response by each response\'s length and count', () => {
    const x = (n: number, desirable: boolean) => ({ prompt: { ids: [1], spanStart: 0, spanEnd: 0 }, response: Array.from({ length: n }, () => 1), desirable });
    const batch = [x(2, true), x(6, true), x(4, false)];
    expect(termCoefficients(batch, 'per-token')).toEqual([1 / 8, 1 / 8, 1 / 4]);
    expect(termCoefficients(batch, 'per-response')).toEqual([1 / 4, 1 / 12, 1 / 4]);
  });
});
