import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DirectionsReport, LocalArtifactStore, columnValues } from '@dro/artifacts';
import { createProgressReporter, runDag } from '@dro/pipeline';
import { writeTinyHfModel } from '@dro/llm/testing';
import { chainDag, chainStages } from './chain.ts';

const tempDir = (prefix: string) => mkdtempSync(path.join(os.tmpdir(), prefix));

describe('analysis chain on the tiny model (local runner)', () => {
  it('runs data-prep → sampling / refusal-logprob / extract → directions, then is all cache hits', async () => {
    const store = new LocalArtifactStore({ root: tempDir('dro-chain-store-') });
    const modelPath = writeTinyHfModel(tempDir('dro-chain-model-'));
    const dag = await chainDag(store, {
      modelPath,
      prep: { limitPerLabel: 4 },
      sampling: { samples: 2, minNewTokens: 1, maxNewTokens: 6 },
      extract: { batchSize: 4 },
    });
    const progress = createProgressReporter({ mode: 'silent' });
    const run = await runDag(dag, { store, stages: chainStages, progress, concurrency: 1 });
    expect(run.nodes.filter((n) => n.error).map((n) => `${n.id}: ${JSON.stringify(n.error)}`)).toEqual([]);
    expect(run.status).toBe('succeeded');
    const node = (id: string) => run.nodes.find((n) => n.id === id)!;

    const rendered = await store.getTable(node('prep').outputs.rendered);
    expect(rendered.numRows).toBe(8 * 4);
    const samples = await store.getTable(node('sampling').outputs.samples);
    expect(samples.numRows).toBe(32 * 2);
    const hidden = await store.getTable(node('extract').outputs.hiddenStates);
    expect(columnValues(hidden, 'input_id', 'h')).toEqual(columnValues(rendered, 'input_id', 'r'));

    for (const id of ['directions', 'directions-logprob']) {
      const report = await store.getJson<DirectionsReport>(node(id).outputs.report);
      expect(report.rows).toBe(32);
      expect(report.dim).toBe(64);
      expect(report.explainedVarianceRatio).toHaveLength(4);
      expect(report.refusal.folds).toHaveLength(10);
      expect(report.counts.map((c) => c.prompt_id)).toEqual(expect.arrayContaining(['none', 'default', 'short', 'medium']));
    }
    const logprobScores = await store.getTable(node('refusal-logprob').outputs.scores);
    expect(columnValues(logprobScores, 'source', 's').every((s) => s === 'logprob')).toBe(true);

    const again = await runDag(dag, { store, stages: chainStages, progress, concurrency: 1 });
    expect(again.nodes.every((n) => n.cacheHit === true)).toBe(true);
    expect(again.nodes.map((n) => n.outputs)).toEqual(run.nodes.map((n) => n.outputs));
  });
});
