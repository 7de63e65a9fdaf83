/**
 * The whole DRO experiment end to end on a tiny random model (real GGUF file, real store, real stages):
 * the DAG runs, the report is written, a second run is all cache hits with identical outputs, and
 * `dro stage` runs exactly a stage and its ancestors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createProgressReporter, validateDag } from '@dro/pipeline';
import { dagFor, droStageRegistry, formatObjectives, formatSummary, prepareExperiment, runExperimentLocally, type ExperimentConfig } from '../src/index.ts';
import { tinyConfig } from './tiny-experiment.ts';

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
