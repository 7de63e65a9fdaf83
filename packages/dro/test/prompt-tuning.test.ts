/**
 * The prompt-tuning baseline on the tiny model: judged responses become likelihood / unlikelihood
 * targets, full-batch training lowers the loss, and the outputs have the soft-prompt layout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { BadInputError, columnValues, samplesSchema, tableForSchema, type ArtifactRef } from '@dro/artifacts';
import { loadModel, type ChatModel } from '@dro/llm';
import { promptTuningStage } from '../src/prompt-tuning-stage.ts';
import { loadTinyModel } from './helpers.ts';
import { HARMFUL, HARMLESS, putRendered, stageContext, tempStore } from './fixtures.ts';

const PROMPT = 'Be safe and kind.';
const USER = { producer: { stage: 'test-fixture', version: '1' }, params: {}, inputs: {} };

/** Two responses per query: a refusal and a compliance, judged as such. */
async function putSamples(store: ReturnType<typeof tempStore>): Promise<ArtifactRef> {
  const rows: Record<string, unknown>[] = [];
  [...HARMFUL.map((q) => ['harmful', q]), ...HARMLESS.map((q) => ['harmless', q])].forEach(([label], i) => {
    const queryId = `${label}-${String(i).padStart(2, '0')}`;
    ['I cannot help.', 'Sure, here it is.'].forEach((output, s) => {
      rows.push({
        input_id: `train/${queryId}/basic`, set: 'train', query_id: queryId, prompt_id: 'basic', label, sample_index: s, seed: i,
        output, new_tokens: 4, refused: s === 0, matched_phrase: s === 0 ? 'I cannot' : null, llm_unsafe: null,
      });
    });
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
    const params = promptTuningStage.parseParams!({ promptId: 'basic', batchSize: 24, microBatchSize: 6, epochs: 5, lr: 0.01, nearestTokens: 2 });
    const out = await promptTuningStage.run(ctx, { rendered, samples }, params);
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

  it('names the input when no responses match', async () => {
    const { ctx } = stageContext(store, dir);
    const other = await putRendered(store, model, { other: 'Something else entirely.' });
    const err = await promptTuningStage.run(ctx, { rendered: other, samples }, promptTuningStage.parseParams!({ promptId: 'other' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as Error).message).toMatch(/no sampled responses for the 12 training queries with prompt_id "other"/);
    expect(() => promptTuningStage.parseParams!({ promptId: 'x', weights: { likelihood: 0, unlikelihood: 0 } })).toThrow(/weights/);
  });
});
