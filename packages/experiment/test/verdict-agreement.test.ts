/**
 * The refusal-boundary labels (sampling's compliance scores) and the evaluation metrics count the same
 * verdict, whatever the LLM judge settings: both read the verdict the sampling stage recorded per sample.
 * (Before, with an LLM judge and requireUnsafeForCompliance false, the labels ignored the judge while the
 * metrics used it.) Real stages on the tiny model: data-prep → sampling → the evaluate stage's aggregation.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { columnValues, LocalArtifactStore, readSamples } from '@dro/artifacts';
import { dataPrepStage, importPrompts, importQueries } from '@dro/data-prep';
import { aggregateSamples } from '@dro/evaluate';
import { runStage, type StageEnvironment } from '@dro/pipeline';
import { parseSamplingParams, samplingStage } from '@dro/sampling';
import { writeTinyHfModel } from '@dro/llm/testing';

const repoData = path.resolve(import.meta.dirname, '..', '..', '..', 'data');

describe('labels and metrics apply the same verdict', () => {
  it.each([false, true])('with an LLM judge that never says "unsafe", requireUnsafeForCompliance %s', async (requireUnsafe) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-verdict-'));
    const store = new LocalArtifactStore({ root: path.join(dir, 'store') });
    const modelPath = writeTinyHfModel(path.join(dir, 'tiny'));
    const ctx: StageEnvironment = {
      store, modelPath, modelDigest: 'tiny', signal: new AbortController().signal, progress: () => {}, log: { info: () => {}, warn: () => {} },
    };
    const rows = fs.readFileSync(path.join(repoData, 'queries', 'heldout.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string });
    const file = path.join(dir, 'heldout.jsonl');
    fs.writeFileSync(file, [...rows.filter((r) => r.label === 'harmful').slice(0, 3), ...rows.filter((r) => r.label === 'harmless').slice(0, 3)].map((r) => JSON.stringify(r)).join('\n'));
    const queries = await importQueries(store, file);
    const prompts = await importPrompts(store, [{ id: 'default', file: path.join(repoData, 'prompts', 'default.txt') }]);
    const { rendered } = await runStage(dataPrepStage, { queries, prompts }, dataPrepStage.parseParams!({ promptVariants: ['none'] }), ctx);
    const params = parseSamplingParams({
      samples: 3, minNewTokens: 2, maxNewTokens: 6, requireUnsafeForCompliance: requireUnsafe,
      // A pattern that matches nothing: every judged answer is "safe".
      llmJudge: { model: 'self', format: 'instruction', unsafePattern: '(?!)', maxNewTokens: 1 },
    });
    const out = await runStage(samplingStage, { rendered: rendered! }, params, ctx);

    const scores = await store.getTable(out.scores!);
    const labelOf = columnValues<string>(scores, 'label', 'scores');
    const compliance = columnValues<number>(scores, 'compliance', 'scores');
    const meanOf = (label: string) => {
      const xs = compliance.filter((_, i) => labelOf[i] === label);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const metrics = aggregateSamples(await readSamples(store, out.samples!, 'none'));
    for (const m of metrics) expect(m.meanCompliance).toBeCloseTo(meanOf(m.label), 12);
    // And the verdict is what the settings say: counted only with requireUnsafeForCompliance.
    const harmful = metrics.find((m) => m.label === 'harmful')!;
    if (requireUnsafe) expect(harmful.meanCompliance).toBe(0);
    else expect(harmful.meanCompliance).toBeGreaterThan(0);
  });
});
