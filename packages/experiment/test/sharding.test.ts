/**
 * Row-parallel stages run as shards on the local runner (tiny random model, real store, real stages):
 * sharded and unsharded runs give the same digests for every node, and the run loads its model once; editing one training query recomputes
 * only the shards holding its rows, every other shard is a cache hit (counted in the run record).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelLoads } from '@dro/llm';
import { createProgressReporter, runDag, type Dag, type RunRecord } from '@dro/pipeline';
import { dagFor, droStageRegistry, prepareExperiment, type ExperimentConfig } from '../src/index.ts';
import { tinyConfig, writeJsonl, pickPairs, projectQueries } from './tiny-experiment.ts';

/** Chunks of 2 rows, so 36 training rows (12 queries × 3 prompt variants) make several shards. */
const overrides = {
  'data-prep': { limitPerLabel: null },
  sampling: { samples: 2, minNewTokens: 1, maxNewTokens: { harmful: 4, harmless: 4 }, chunkSize: 2 },
  'refusal-logprob': { chunkSize: 2, batchSize: 2 },
  extract: { chunkSize: 2, batchSize: 2 },
  'reference-answers': { maxNewTokens: 4, maxQueries: null, batch: 2 },
  'eval-forward': { chunk: 2 },
};

/** The row-parallel nodes that need no training (and their data-prep and reference-answers ancestors). */
function rowParallelDag(dag: Dag): Dag {
  const targets = dag.nodes.filter((n) => ['sampling', 'refusal-logprob', 'extract', 'reference-answers', 'eval-forward'].includes(n.stage) && !Object.keys(n.inputs).some((k) => k.startsWith('softPrompt:')));
  const keep = new Set(targets.flatMap((t) => dagFor(dag, t.id).nodes.map((n) => n.id)));
  return { name: dag.name, nodes: dag.nodes.filter((n) => keep.has(n.id)) };
}

function config(dir: string, changes: Partial<ExperimentConfig> = {}): ExperimentConfig {
  return tinyConfig(dir, { overrides, labelSource: 'sampling', baselines: { promptTuning: false, ablations: [] }, ...changes });
}

async function run(cfg: ExperimentConfig, storeRoot: string, withLogprob = false): Promise<RunRecord> {
  const prepared = await prepareExperiment(cfg, storeRoot);
  let dag = rowParallelDag(prepared.dag);
  if (withLogprob) {
    const logprob = await prepareExperiment({ ...cfg, labelSource: 'logprob' }, storeRoot);
    const extra = rowParallelDag(logprob.dag).nodes.filter((n) => !dag.nodes.some((m) => m.id === n.id));
    dag = { name: dag.name, nodes: [...dag.nodes, ...extra] };
  }
  const record = await runDag(dag, { store: prepared.store, stages: droStageRegistry(), concurrency: 2, modelConcurrency: 2, progress: createProgressReporter({ mode: 'silent' }) });
  expect(record.nodes.filter((n) => n.status !== 'succeeded').map((n) => `${n.id}: ${n.error?.message}`)).toEqual([]);
  return record;
}

const outputsOf = (record: RunRecord) => Object.fromEntries(record.nodes.map((n) => [n.id, n.outputs]));

describe('row-parallel stages in shards (local runner, tiny model)', () => {
  it('sharded and unsharded runs give identical digests for every node (sampling, refusal-logprob, extract, reference-answers, eval-forward)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-shard-'));
    try {
      const whole = await run(config(dir, { shardSize: null }), path.join(dir, 'store-whole'), true);
      expect(whole.nodes.every((n) => n.shards === undefined)).toBe(true);
      const loadsBefore = modelLoads();
      const sharded = await run(config(dir, { shardSize: 2 }), path.join(dir, 'store-sharded'), true);
      // Every model node and shard of the run uses the one tiny model: loaded once, kept between them.
      expect(modelLoads() - loadsBefore).toBe(1);
      const shardedStages = new Set(sharded.nodes.filter((n) => n.shards !== undefined).map((n) => n.stage));
      expect(shardedStages).toEqual(new Set(['sampling', 'refusal-logprob', 'extract', 'reference-answers', 'eval-forward']));
      for (const n of sharded.nodes.filter((m) => m.shards)) {
        expect(n.shards!.total, n.id).toBeGreaterThan(1);
        expect(n.shards!.done).toBe(n.shards!.total);
      }
      expect(outputsOf(sharded)).toEqual(outputsOf(whole));
      // The sharded run recorded each node under its own cache key too: an unsharded rerun is all hits.
      const again = await run(config(dir, { shardSize: null }), path.join(dir, 'store-sharded'), true);
      expect(again.nodes.every((n) => n.cacheHit === true)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('editing one training query recomputes only the shards holding its rows; every other shard is a cache hit', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-shard-edit-'));
    try {
      const cfg = config(dir, { shardSize: 8 });
      const first = await run(cfg, cfg.store!);
      const rows = pickPairs(projectQueries('train.jsonl'), 6);
      const edited = rows.map((r, i) => (i === 7 ? { ...r, query: `${r.query} Please answer briefly.` } : r));
      writeJsonl(cfg.queries.train, edited);
      const second = await run(cfg, cfg.store!);
      const prepared = await prepareExperiment(cfg, cfg.store!);
      const rendered = await prepared.store.getTable(second.nodes.find((n) => n.stage === 'data-prep' && n.id.startsWith('prep-train'))!.outputs.rendered!);
      // Training rows of the edited query: shard k holds rows [8k, 8k + 8) (every stage's rows are all 36).
      const texts = rendered.getChild('query')!.toArray() as string[];
      const touched = new Set(texts.map((t, i) => (t === edited[7]!.query ? Math.floor(i / 8) : -1)).filter((k) => k >= 0));
      expect(touched.size).toBeGreaterThan(0);
      expect(texts.length).toBe(36);
      for (const id of ['sample-train@tiny', 'extract@tiny']) {
        const before = first.nodes.find((n) => n.id === id)!;
        const after = second.nodes.find((n) => n.id === id)!;
        expect(before.shards).toMatchObject({ total: 5, done: 5, cacheHits: 0 });
        expect(after.cacheHit).toBe(false);
        expect(after.shards, id).toEqual({ total: 5, done: 5, cacheHits: 5 - touched.size });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
