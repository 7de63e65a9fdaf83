/**
 * The params every node of the built-in DAGs gets, pinned: the quick preset's values were measured and
 * documented (README "Choosing the quick preset"), the paper preset's follow the published protocol, so
 * moving where preset values live must not change one of them. The snapshot was recorded before the
 * presets moved into packages/experiment/src/presets/ (the parsed params before stages read them with
 * @dro/pipeline's ParamReader); a change here is a change of an experiment's
 * protocol and needs its own reason (update with `npx vitest run -u` only then).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_ID } from '@dro/llm/weights';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { validateDag } from '@dro/pipeline';
import { checkExperiment, droStageRegistry, resolveConfig, type ExperimentConfig } from '../src/index.ts';

/** Objects with their keys sorted: the snapshot is about values, not about the order a preset spells them in. */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted((value as Record<string, unknown>)[k])]));
}

/**
 * node id → stage, params as the DAG gives them (preset + overrides) and as the stage parses them (what the
 * cache key hashes), for the config (its model file replaced by a tiny one: params do not depend on it).
 */
async function nodeParams(config: ExperimentConfig): Promise<Record<string, { stage: string; params: unknown; parsed: unknown }>> {
  const { dag } = await checkExperiment(config);
  const { paramsOf } = validateDag(dag, droStageRegistry());
  return Object.fromEntries(dag.nodes.map((n) => [n.id, { stage: n.stage, params: sorted(n.params), parsed: sorted(paramsOf.get(n.id)) }]));
}

describe('preset params of the built-in DAGs', () => {
  it('are what they were when the presets were measured', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-presets-'));
    const model = writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32');
    const tiny = (config: ExperimentConfig): ExperimentConfig => ({ ...config, models: [{ id: DEFAULT_MODEL_ID, path: model }] });
    const base = tiny(resolveConfig());
    const everything = { promptTuning: true, ablations: ['no-norm', 'no-refusal', 'no-harmfulness'] } as ExperimentConfig['baselines'];
    const dags = {
      // `dro run`: the embedded default (quick preset, logprob labels).
      quick: await nodeParams(base),
      // `dro run --preset paper`: the label source follows the preset.
      paper: await nodeParams(tiny(resolveConfig(undefined, 'paper'))),
      // Every baseline and ablation, sampled labels, both presets.
      quickAll: await nodeParams({ ...base, labelSource: 'sampling', baselines: everything }),
      paperAll: await nodeParams({ ...tiny(resolveConfig(undefined, 'paper')), baselines: everything }),
    };
    await expect(JSON.stringify(dags, null, 1) + '\n').toMatchFileSnapshot('./fixtures/preset-params.snapshot.json');
  });
});
