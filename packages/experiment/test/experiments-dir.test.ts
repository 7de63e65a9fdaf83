/**
 * The committed experiment configs under experiments/ load (known model ids resolve to the cache, relative
 * paths to the repository's data) and build DAGs the stage registry accepts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateDag } from '@dro/pipeline';
import type { ArtifactRef } from '@dro/artifacts';
import { buildExperimentDag, droStageRegistry, evalSetFile, modelDag, reportDag, resolveConfig } from '../src/index.ts';

const dir = path.resolve(import.meta.dirname, '..', '..', '..', 'experiments');

describe('experiments/', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('holds the two-model experiment', () => {
    expect(files).toContain('two-models.json');
  });

  it.each(files)('%s validates and its DAG is valid', (file) => {
    const config = resolveConfig(path.join(dir, file));
    for (const m of config.models) expect(fs.existsSync(m.path), m.path).toBe(true);
    const fakeRef = (schema: string) => ({ digest: '0'.repeat(64), format: 'parquet' as const, schema });
    const inputs = {
      train: fakeRef('query-set/v1'),
      eval: config.queries.eval.map(() => fakeRef('query-set/v1')),
      sets: {
        train: { name: 'train', labels: ['harmful' as const, 'harmless' as const] },
        eval: config.queries.eval.map((e) => ({ name: path.basename(evalSetFile(e), path.extname(evalSetFile(e))), labels: ['harmful' as const, 'harmless' as const] })),
      },
      prompts: { ...fakeRef('prompt-set/v1'), format: 'json' as const },
      models: config.models.map((m) => ({ ...m, digest: '0'.repeat(64) })),
    };
    const { dag, modelNodes } = buildExperimentDag(config, inputs);
    expect(Object.keys(modelNodes)).toEqual(config.models.map((m) => m.id));
    expect(validateDag(dag, droStageRegistry()).order.at(-1)).toBe('report');
  });
});

describe('a multi-model experiment split per model and stitched (what the Temporal engine runs)', () => {
  const config = resolveConfig(path.join(dir, 'two-models.json'));
  const fakeRef = (schema: string, n = 0) => ({ digest: String(n).padStart(64, '0'), format: 'parquet' as const, schema });
  const experiment = buildExperimentDag(config, {
    train: fakeRef('query-set/v1'),
    eval: config.queries.eval.map(() => fakeRef('query-set/v1')),
    sets: {
      train: { name: 'train', labels: ['harmful', 'harmless'] },
      eval: config.queries.eval.map((e) => ({ name: path.basename(evalSetFile(e), path.extname(evalSetFile(e))), labels: ['harmful', 'harmless'] })),
    },
    prompts: { ...fakeRef('prompt-set/v1'), format: 'json' },
    models: config.models.map((m) => ({ ...m, digest: '0'.repeat(64) })),
  });

  it('each model DAG holds its own nodes; together with the report they are the whole DAG', () => {
    const parts = config.models.map((m) => modelDag(experiment, m.id));
    for (const part of parts) expect(() => validateDag(part, droStageRegistry())).not.toThrow();
    expect(parts.flatMap((p) => p.nodes.map((n) => n.id)).concat(experiment.reportNode).sort()).toEqual(experiment.dag.nodes.map((n) => n.id).sort());
  });

  it("the report DAG takes the refs the models' nodes produced, and names a missing one", () => {
    const report = experiment.dag.nodes.find((n) => n.id === experiment.reportNode)!;
    const outputs: Record<string, Record<string, ArtifactRef>> = {};
    let n = 1;
    for (const src of Object.values(report.inputs)) if ('node' in src) (outputs[src.node] ??= {})[src.output] = fakeRef('any/v1', n++);
    const stitched = reportDag(experiment, outputs);
    expect(stitched.nodes).toHaveLength(1);
    expect(Object.values(stitched.nodes[0]!.inputs).every((src) => 'ref' in src)).toBe(true);
    const [first] = Object.entries(report.inputs).filter(([, src]) => 'node' in src) as [string, { node: string; output: string }][];
    delete outputs[first![1].node]![first![1].output];
    expect(() => reportDag(experiment, outputs)).toThrow(`report input ${first![0]}: node ${first![1].node} produced no output "${first![1].output}"`);
  });
});
