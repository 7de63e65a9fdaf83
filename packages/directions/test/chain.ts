/**
 * The analysis chain of issue 4 as a DAG for the local runner, for the chain tests (the measurement on a
 * real model, tools/measure/analysis-chain.ts, runs the experiment's own DAG):
 *
 *   prep (data-prep) ─┬─ sampling ───────────┬─ directions          (refusal labels: sampled)
 *                     ├─ refusal-logprob ────┼─ directions-logprob  (refusal labels: logprob)
 *                     └─ extract ────────────┘
 *
 * Test-only: stage packages never import each other; this file imports all four.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ArtifactRef, LocalArtifactStore } from '@dro/artifacts';
import { dataPrepStage, importPrompts, importQueries } from '@dro/data-prep';
import { extractStage } from '@dro/extract';
import { type Dag, StageRegistry } from '@dro/pipeline';
import { refusalLogprobStage, samplingStage } from '@dro/sampling';
import { directionsStage } from '../src/index.ts';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');

export const chainStages = new StageRegistry([dataPrepStage, samplingStage, refusalLogprobStage, extractStage, directionsStage]);

/** sha256 of the model's weights file (the GGUF, or model.safetensors of an HF directory). */
export function modelFileDigest(modelPath: string): string {
  const file = statSync(modelPath).isDirectory() ? path.join(modelPath, 'model.safetensors') : modelPath;
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

export interface ChainOptions {
  modelPath: string;
  queryFile?: string;
  promptFiles?: string[];
  prep?: Record<string, unknown>;
  sampling?: Record<string, unknown>;
  logprob?: Record<string, unknown>;
  extract?: Record<string, unknown>;
  directions?: Record<string, unknown>;
}

export async function chainDag(store: LocalArtifactStore, options: ChainOptions): Promise<Dag> {
  const queries: ArtifactRef = await importQueries(store, options.queryFile ?? path.join(repoRoot, 'data/queries/train.jsonl'), { set: 'train' });
  const prompts = await importPrompts(
    store,
    options.promptFiles ?? ['default', 'short', 'medium'].map((p) => path.join(repoRoot, `data/prompts/${p}.txt`)),
  );
  const model = { path: options.modelPath, digest: modelFileDigest(options.modelPath) };
  const rendered = { node: 'prep', output: 'rendered' };
  return {
    name: 'analysis-chain',
    nodes: [
      { id: 'prep', stage: 'data-prep', params: options.prep ?? {}, inputs: { queries: { ref: queries }, prompts: { ref: prompts } }, model },
      { id: 'sampling', stage: 'sampling', params: options.sampling ?? {}, inputs: { rendered }, model },
      { id: 'refusal-logprob', stage: 'refusal-logprob', params: options.logprob ?? {}, inputs: { rendered }, model },
      { id: 'extract', stage: 'extract', params: options.extract ?? {}, inputs: { rendered }, model },
      {
        id: 'directions',
        stage: 'directions',
        params: options.directions ?? {},
        inputs: { hiddenStates: { node: 'extract', output: 'hiddenStates' }, scores: { node: 'sampling', output: 'scores' } },
      },
      {
        id: 'directions-logprob',
        stage: 'directions',
        params: options.directions ?? {},
        inputs: { hiddenStates: { node: 'extract', output: 'hiddenStates' }, scores: { node: 'refusal-logprob', output: 'scores' } },
      },
    ],
  };
}
