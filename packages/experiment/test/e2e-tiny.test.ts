/**
 * The whole DRO experiment end to end on a tiny random model (real GGUF file, real store, real stages):
 * the DAG runs, the report is written, a second run is all cache hits with identical outputs, and
 * `dro stage` runs exactly a stage and its ancestors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeTinyGgufModel } from '../../llm/src/testing/tiny-gguf.ts';
import { createProgressReporter, validateDag } from '@dro/pipeline';
import { dagFor, defaultConfig, droStageRegistry, formatObjectives, formatSummary, prepareExperiment, runExperimentLocally, validateConfig, type ExperimentConfig } from '../src/index.ts';

const repoData = path.resolve(import.meta.dirname, '..', '..', '..', 'data');

/** A few pairs of the project's training queries and a few held-out ones, as small JSONL files. */
function writeTinyData(dir: string): { train: string; heldout: string } {
  const lines = (file: string) => fs.readFileSync(path.join(repoData, 'queries', file), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const train = lines('train.jsonl');
  const heldout = lines('heldout.jsonl');
  const pick = (rows: Array<{ label: string }>, n: number) => [
    ...rows.filter((r) => r.label === 'harmful').slice(0, n),
    ...rows.filter((r) => r.label === 'harmless').slice(0, n),
  ];
  const write = (name: string, rows: unknown[]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return file;
  };
  return { train: write('train.jsonl', pick(train, 6)), heldout: write('heldout.jsonl', pick(heldout, 3)) };
}

function tinyConfig(dir: string): ExperimentConfig {
  const model = writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32');
  const data = writeTinyData(dir);
  const d = defaultConfig();
  return validateConfig(
    {
      name: 'tiny-e2e',
      preset: 'quick',
      models: [{ id: 'tiny', path: model }],
      queries: { train: data.train, eval: [data.heldout] },
      prompts: { default: d.prompts.default, short: d.prompts.short },
      basicPrompt: 'default',
      labelSource: 'sampling',
      baselines: { promptTuning: true, ablations: ['no-norm'] },
      overrides: {
        'data-prep': { limitPerLabel: null },
        sampling: { samples: 2, minNewTokens: 1, maxNewTokens: { harmful: 4, harmless: 4 } },
        directions: { boundary: { maxEpochs: 30, folds: 3 } },
        'dro-train': { epochs: 1, batchSize: 4, microBatchSize: 4, maxQueries: 8 },
        'prompt-tuning': { epochs: 1, batchSize: 4, microBatchSize: 4, maxQueries: 4, maxResponseTokens: 4 },
        'reference-answers': { maxNewTokens: 4, maxQueries: 3 },
        evaluate: { capabilityQueries: 3 },
      },
      store: path.join(dir, 'store'),
    },
    path.join(dir, 'config.json'),
    dir,
  );
}

describe('DRO experiment end to end (tiny model)', () => {
  it('the paper and quick DAGs validate against the stage registry', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-exp-'));
    const config = tinyConfig(dir);
    for (const [preset, labelSource] of [['quick', 'logprob'], ['paper', 'sampling']] as const) {
      const prepared = await prepareExperiment({ ...config, preset, labelSource, baselines: { promptTuning: false, ablations: [] } });
      expect(prepared.dag.nodes.some((n) => n.stage === (labelSource === 'logprob' ? 'refusal-logprob' : 'sampling'))).toBe(true);
      const plan = validateDag(prepared.dag, droStageRegistry());
      expect(plan.order.length).toBe(prepared.dag.nodes.length);
      expect(plan.order.at(-1)).toBe('report');
    }
  });

  it('runs the whole DAG, then a second run is all cache hits with the same outputs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-exp-'));
    const config = tinyConfig(dir);
    const prepared = await prepareExperiment(config);
    const quiet = { concurrency: 2, progress: createProgressReporter({ mode: 'silent' }) };
    const first = await runExperimentLocally(prepared, quiet);
    const failed = first.record.nodes.filter((n) => n.status !== 'succeeded');
    expect(failed.map((n) => `${n.id}: ${n.error?.message}`)).toEqual([]);
    expect(first.record.status).toBe('succeeded');
    expect(first.reportPath).not.toBeNull();
    const html = fs.readFileSync(first.reportPath!, 'utf8');
    expect(html).toContain('<svg');
    // Conditions: none, the basic prompt, and trained from it: DRO, one ablation and the prompt-tuning baseline.
    expect(new Set(first.summary.map((r) => r.condition))).toEqual(new Set(['none', 'default', 'dro:default', 'dro-no-norm:default', 'prompt-tuning:default']));
    for (const row of first.summary) {
      expect(row.harmfulQueries).toBe(3);
      expect(row.harmlessQueries).toBe(3);
    }
    // Each DRO run reports its training objective; each trained prompt is compared with its text prompt.
    expect(first.objectives.map((o) => o.run).sort()).toEqual(['dro-no-norm:default', 'dro:default']);
    expect(first.comparisons.map((c) => `${c.condition} vs ${c.against}`).sort()).toEqual(['dro-no-norm:default vs default', 'dro:default vs default', 'prompt-tuning:default vs default']);
    // The quick preset's verdicts: the project's phrases, every sample judged; the summary says so.
    for (const row of first.summary) expect(row.judge).toBe('string match (project phrases); every sample of 2 judged');
    expect(formatSummary(first.summary)).toContain('verdicts: string match (project phrases); every sample of 2 judged');
    for (const c of first.comparisons) expect(c.labels.map((l) => l.queries)).toEqual([3, 3]);

    const again = await prepareExperiment(config);
    expect(again.dag).toEqual(prepared.dag);
    const second = await runExperimentLocally(again, quiet);
    expect(second.record.nodes.every((n) => n.cacheHit === true)).toBe(true);
    const outputs = (r: typeof first) => Object.fromEntries(r.record.nodes.map((n) => [n.id, n.outputs]));
    expect(outputs(second)).toEqual(outputs(first));
    expect(second.reportPath).toBe(first.reportPath);
  });

  it('flags a prompt that did not reach its training objective, in the report and the summary', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-exp-'));
    const base = tinyConfig(dir);
    // A step size far too small to move the soft prompt: training is made to fail.
    const config: ExperimentConfig = {
      ...base,
      baselines: { promptTuning: false, ablations: [] },
      overrides: { ...base.overrides, 'dro-train': { ...base.overrides['dro-train'], lr: 1e-9, lrUnit: 'absolute' } },
    };
    const outcome = await runExperimentLocally(await prepareExperiment(config), { concurrency: 2, progress: createProgressReporter({ mode: 'silent' }) });
    expect(outcome.record.status).toBe('succeeded');
    expect(outcome.objectives).toHaveLength(1);
    expect(outcome.objectives[0]!.objective.met).toBe(false);
    expect(formatObjectives(outcome.objectives)).toMatch(/^dro:default@tiny: training objective NOT MET/);
    const html = fs.readFileSync(outcome.reportPath!, 'utf8');
    expect(html).toContain('DRO did not reach its training objective');
    expect(html).toMatch(/dro:default ⚠ objective not met/);
  });

  it('dagFor selects a stage and exactly its ancestors', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-exp-'));
    const prepared = await prepareExperiment(tinyConfig(dir));
    const sub = dagFor(prepared.dag, 'directions');
    expect(sub.nodes.map((n) => n.stage).sort()).toEqual(['data-prep', 'directions', 'extract', 'sampling']);
    expect(() => dagFor(prepared.dag, 'no-such-stage')).toThrow(/no stage or node "no-such-stage"/);
  });
});
