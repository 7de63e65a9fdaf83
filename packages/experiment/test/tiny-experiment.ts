/** A small experiment on a tiny random model (real GGUF file) and a few of the project's queries, for tests. */
import fs from 'node:fs';
import path from 'node:path';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { defaultConfig, validateConfig, type ExperimentConfig } from '../src/index.ts';

export type QueryRow = { query: string; label: string; id?: string; pair_id?: string };

const repoData = path.resolve(import.meta.dirname, '..', '..', '..', 'data');

export function projectQueries(file: 'train.jsonl' | 'heldout.jsonl'): QueryRow[] {
  return fs.readFileSync(path.join(repoData, 'queries', file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as QueryRow);
}

/** The first n harmful and the first n harmless rows. */
export function pickPairs(rows: QueryRow[], n: number): QueryRow[] {
  return [...rows.filter((r) => r.label === 'harmful').slice(0, n), ...rows.filter((r) => r.label === 'harmless').slice(0, n)];
}

export function writeJsonl(file: string, rows: unknown[]): string {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/** A few pairs of the project's training queries and a few held-out ones, as small JSONL files. */
export function writeTinyData(dir: string): { train: string; heldout: string } {
  return {
    train: writeJsonl(path.join(dir, 'train.jsonl'), pickPairs(projectQueries('train.jsonl'), 6)),
    heldout: writeJsonl(path.join(dir, 'heldout.jsonl'), pickPairs(projectQueries('heldout.jsonl'), 3)),
  };
}

/** The raw config object of the tiny experiment (before validation), for tests to vary. */
export function tinyConfigObject(dir: string): Record<string, unknown> {
  const model = writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32');
  const data = writeTinyData(dir);
  const d = defaultConfig();
  return {
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
  };
}

export function tinyConfig(dir: string, changes: Record<string, unknown> = {}): ExperimentConfig {
  return validateConfig({ ...tinyConfigObject(dir), ...changes }, path.join(dir, 'config.json'), dir);
}
