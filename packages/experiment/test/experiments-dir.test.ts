/**
 * The committed experiment configs under experiments/ load (known model ids resolve to the cache, relative
 * paths to the repository's data) and build DAGs the stage registry accepts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateDag } from '@dro/pipeline';
import { buildExperimentDag, droStageRegistry, evalSetFile, resolveConfig } from '../src/index.ts';

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
