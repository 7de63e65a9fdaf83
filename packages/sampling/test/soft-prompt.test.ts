/**
 * Sampling with a soft prompt (input "softPrompt:<key>"): a soft prompt equal to the safety prompt's own
 * token embeddings samples exactly what the text prompt samples (same seeds); a changed one does not.
 */
import { describe, expect, it } from 'vitest';
import { runStage } from '@dro/pipeline';
import { columnValues, renderedInputsSchema, softPromptSchema, tableForSchema } from '@dro/artifacts';
import { ChatTemplate, initBackend, loadModel, loadTokenizer, tf } from '@dro/llm';
import { writeTinyHfModel } from '@dro/llm/testing';
import { parseSamplingParams } from '../src/params.ts';
import { samplingStage } from '../src/stage.ts';
import { tempDir, testContext } from './helpers.ts';

const SYSTEM = 'Be safe and kind.';
const USER = { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} };

describe('sampling with a soft prompt (tiny model)', () => {
  it('reproduces the text prompt at its initialisation and differs when the prompt changes', async () => {
    const modelPath = writeTinyHfModel(tempDir());
    const ctx = testContext(modelPath);
    const tokenizer = loadTokenizer(modelPath);
    const template = ChatTemplate.of(tokenizer);
    const queries = [
      { id: 'q1', query: 'how to hurt him', label: 'harmful' as const },
      { id: 'q2', query: 'how to help him', label: 'harmless' as const },
    ];
    const spans = queries.map((q) => template.systemContentSpan([{ role: 'system', content: SYSTEM }, { role: 'user', content: q.query }], { addGenerationPrompt: true }));
    const rendered = await ctx.store.putTable(
      renderedInputsSchema.name,
      tableForSchema(renderedInputsSchema, {
        input_id: queries.map((q) => `t/${q.id}/p`), set: queries.map(() => 't'), query_id: queries.map((q) => q.id), query_index: queries.map((_, i) => i),
        label: queries.map((q) => q.label), category: queries.map(() => null), pair_id: queries.map(() => null), prompt_id: queries.map(() => 'p'),
        query: queries.map((q) => q.query), rendered: spans.map((s) => s.text), token_ids: spans.map((s) => s.ids),
        prompt_token_start: spans.map((s) => s.start), prompt_token_count: spans.map((s) => s.end - s.start),
      }),
      USER,
    );
    const params = parseSamplingParams({ samples: 2, minNewTokens: 2, maxNewTokens: { harmful: 8, harmless: 8 } });
    await initBackend();
    const model = await loadModel(modelPath);
    const promptIds = spans[0]!.ids.slice(spans[0]!.start, spans[0]!.end);
    const init = tf.tidy(() => Float32Array.from(model.embed([promptIds]).dataSync()));
    const d = model.config.hiddenSize;
    model.dispose();
    const putSoft = (values: Float32Array) =>
      ctx.store.putTensors(softPromptSchema.name, { soft_prompt: { dtype: 'F32', shape: [promptIds.length, d], data: values } }, USER, {
        method: 'test', prompt_id: 'p', span_start: '0', span_end: '0', init_token_ids: '[]',
      });
    const outputs = async (extra: Record<string, Awaited<ReturnType<typeof putSoft>>>) => {
      const out = await runStage(samplingStage, { rendered, ...extra }, params, testContext(modelPath, ctx.store));
      return columnValues<string>(await ctx.store.getTable(out.samples), 'output', 's');
    };
    const before = tf.memory().numTensors;
    const text = await outputs({});
    expect(await outputs({ 'softPrompt:init': await putSoft(init) })).toEqual(text);
    expect(await outputs({ 'softPrompt:moved': await putSoft(init.map((v, i) => v + (i % 3 === 0 ? 0.5 : -0.5))) })).not.toEqual(text);
    expect(tf.memory().numTensors).toBe(before);
  });
});
