/**
 * The DRO experiment end to end on the real SmolLM2-135M-Instruct GGUF (fetched by the setup step), shrunk
 * to a few queries so it fits the test suite: every stage runs on the real model, the report is written
 * and the soft prompt has the model's hidden size and the basic prompt's length.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireSmolLm2Gguf } from '@dro/llm';
import { createProgressReporter } from '@dro/pipeline';
import { defaultConfig, prepareExperiment, runExperimentLocally, validateConfig } from '../src/index.ts';

describe('DRO experiment end to end (SmolLM2-135M-Instruct)', () => {
  it('runs every stage on the real model and reports', async () => {
    const model = requireSmolLm2Gguf();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-smollm2-'));
    const d = defaultConfig();
    const config = validateConfig(
      {
        name: 'smollm2-e2e',
        preset: 'quick',
        models: [{ id: 'smollm2', path: model }],
        prompts: { default: d.prompts.default, short: d.prompts.short },
        overrides: {
          'data-prep:train': { limitPerLabel: 5 },
          'data-prep:eval': { limitPerLabel: 2 },
          'sampling:eval': { samples: 2, minNewTokens: 1, maxNewTokens: { harmful: 12, harmless: 12 } },
          directions: { boundary: { folds: 5 } },
          'dro-train': { epochs: 1, batchSize: 10, microBatchSize: 5 },
          'reference-answers': { maxNewTokens: 8, maxQueries: 2 },
          evaluate: { capabilityQueries: 2 },
        },
        store: path.join(dir, 'store'),
      },
      path.join(dir, 'config.json'),
      dir,
    );
    const prepared = await prepareExperiment(config);
    const outcome = await runExperimentLocally(prepared, { progress: createProgressReporter({ mode: 'silent' }) });
    const failed = outcome.record.nodes.filter((n) => n.status !== 'succeeded');
    expect(failed.map((n) => `${n.id}: ${n.error?.message}`)).toEqual([]);

    expect(new Set(outcome.summary.map((r) => r.condition))).toEqual(new Set(['none', 'default', 'dro:default']));
    for (const row of outcome.summary) {
      expect(row.harmfulQueries).toBe(2);
      expect(row.harmlessQueries).toBe(2);
    }
    expect(fs.readFileSync(outcome.reportPath!, 'utf8')).toContain('<svg');

    const dro = outcome.record.nodes.find((n) => n.id === 'dro:default@smollm2')!;
    const soft = await prepared.store.getTensorsWithMetadata(dro.outputs.softPrompt!);
    const shape = soft.tensors.soft_prompt!.shape;
    expect(shape[1]).toBe(576); // SmolLM2-135M hidden size
    expect(shape[0]).toBe(Number(soft.metadata.span_end) - Number(soft.metadata.span_start));
    expect(soft.metadata.prompt_id).toBe('default');
  }, 1_200_000);
});
