/**
 * The paper preset's protocol end to end on the tiny model (real GGUF, real store, real stages), shrunk only
 * in sizes: paper-layout eval sets (a harmful-only and a harmless-only .txt file, each its own eval set),
 * one soft prompt per safety prompt, the paper judge mode with the judged selection, the published
 * prompt-tuning baseline (unprompted failures as negatives) and ablation weights.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { columnValues } from '@dro/artifacts';
import { createProgressReporter } from '@dro/pipeline';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { defaultConfig, formatSummary, prepareExperiment, runExperimentLocally, validateConfig } from '../src/index.ts';

const repoData = path.resolve(import.meta.dirname, '..', '..', '..', 'data');

function writeData(dir: string) {
  const rows = (file: string) => fs.readFileSync(path.join(repoData, 'queries', file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string; query: string });
  const train = rows('train.jsonl');
  const heldout = rows('heldout.jsonl');
  const pick = (label: string, n: number, from = train) => from.filter((r) => r.label === label).slice(0, n);
  const file = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
  return {
    train: file('train.jsonl', [...pick('harmful', 6), ...pick('harmless', 6)].map((r) => JSON.stringify(r)).join('\n') + '\n'),
    // The paper's layout: one query per line, no label column; the label comes from the config.
    harmful: file('advbench.txt', pick('harmful', 3, heldout).map((r) => r.query).join('\n') + '\n'),
    harmless: file('testset.txt', pick('harmless', 3, heldout).map((r) => r.query).join('\n') + '\n'),
  };
}

describe('the paper protocol end to end (tiny model)', () => {
  it('runs paper-layout eval sets, a soft prompt per safety prompt, the paper judge and the published baseline', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-paper-'));
    const data = writeData(dir);
    const d = defaultConfig();
    const config = validateConfig(
      {
        name: 'tiny-paper',
        preset: 'paper',
        models: [{ id: 'tiny', path: writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32') }],
        queries: { train: data.train, eval: [{ file: data.harmful, label: 'harmful' }, { file: data.harmless, label: 'harmless' }] },
        prompts: { default: d.prompts.default, short: d.prompts.short },
        baselines: { promptTuning: true, ablations: [] },
        overrides: {
          sampling: { samples: 3, judgeTopLongest: 2, minNewTokens: 1, maxNewTokens: { harmful: 4, harmless: 4 } },
          directions: { boundary: { maxEpochs: 30, folds: 3 } },
          'dro-train': { epochs: 1, batchSize: 4, microBatchSize: 4, maxQueries: 8 },
          'prompt-tuning': { epochs: 1, batchSize: 8, microBatchSize: 4, maxQueries: 4, maxResponseTokens: 4 },
          'reference-answers': { maxNewTokens: 4, maxQueries: 3 },
          evaluate: { capabilityQueries: 3 },
        },
        store: path.join(dir, 'store'),
      },
      path.join(dir, 'config.json'),
      dir,
    );
    const prepared = await prepareExperiment(config);
    // Capability references come from the harmless set only: no reference node for the harmful-only set.
    expect(prepared.dag.nodes.filter((n) => n.stage === 'reference-answers').map((n) => n.id)).toEqual(['references-1@tiny']);
    const outcome = await runExperimentLocally(prepared, { concurrency: 2, progress: createProgressReporter({ mode: 'silent' }) });
    expect(outcome.record.nodes.filter((n) => n.status !== 'succeeded').map((n) => `${n.id}: ${n.error?.message}`)).toEqual([]);

    // One soft prompt per safety prompt, each a condition beside its text prompt, compared with it per set.
    const trained = ['dro:default', 'dro:short', 'prompt-tuning:default', 'prompt-tuning:short'];
    expect(new Set(outcome.summary.map((r) => r.condition))).toEqual(new Set(['none', 'default', 'short', ...trained]));
    expect(outcome.objectives.map((o) => o.run).sort()).toEqual(['dro:default', 'dro:short']);
    expect(outcome.comparisons.map((c) => `${c.set}: ${c.condition} vs ${c.against}`).sort()).toEqual(
      ['advbench', 'testset'].flatMap((set) => trained.map((t) => `${set}: ${t} vs ${t.split(':')[1]}`)).sort(),
    );
    for (const c of outcome.comparisons) expect(c.labels.map((l) => [l.label, l.queries])).toEqual([[c.set === 'advbench' ? 'harmful' : 'harmless', 3]]);

    // Each set has one label; capability exists only where there are harmless queries.
    for (const row of outcome.summary) {
      expect(row.set === 'advbench' ? [row.harmfulQueries, row.harmlessQueries] : [row.harmlessQueries, row.harmfulQueries]).toEqual([3, 0]);
      expect(row.capability === null).toBe(row.set === 'advbench');
      // The paper judge mode and the judged selection produced every number.
      expect(row.judge).toBe('string match (paper phrases); 2 longest of 3 samples judged');
      expect([row.judgedPerQuery, row.samplesPerQuery]).toEqual([2, 3]);
    }
    const printed = formatSummary(outcome.summary);
    expect(printed).toContain('verdicts: string match (paper phrases); 2 longest of 3 samples judged');
    expect(printed).toMatch(/harmful mean compl\. \[95% CI\]/);
    const html = fs.readFileSync(outcome.reportPath!, 'utf8');
    expect(html).toContain('Verdicts: string match (paper phrases); 2 longest of 3 samples judged.');

    // Training-set verdicts: judged samples of every prompt variant, "none" included (the baseline's negatives).
    const sampleTrain = outcome.record.nodes.find((n) => n.id === 'sample-train@tiny')!;
    const samples = await prepared.store.getTable(sampleTrain.outputs!.samples!);
    expect(new Set(columnValues<string>(samples, 'prompt_id', 's'))).toEqual(new Set(['none', 'default', 'short']));
    expect(columnValues<boolean | null>(samples, 'complied', 's').filter((v) => v === null)).toHaveLength(samples.numRows / 3);
    const pt = outcome.record.nodes.find((n) => n.id === 'prompt-tuning:default@tiny')!;
    const ptManifest = await prepared.store.manifest(pt.outputs!.softPrompt!.digest);
    expect(ptManifest.params).toMatchObject({ eosTargets: 'every', lossAveraging: 'per-token', unpromptedNegatives: true, lr: 1e-3, epochs: 1 });
  });
});
