/**
 * Binds the spine's executeNode (cache lookup → run → record) to one worker's store and stage registry, in
 * the shape the activity adapter calls. A retried or re-delivered node whose outputs were already recorded
 * is a cache hit: re-execution is idempotent.
 */
import { ModelCache, executeNode, mergeShards, planShards, type CachingStore, type StageLookup } from '@dro/pipeline';
import type { NodeExecutor } from './activities.ts';

/**
 * `models`: the worker process's loaded models (default: a cache of one, see model-cache.ts of
 * @dro/pipeline), so the shards and nodes of one model that this worker runs load it once; the executor's
 * close() disposes them (the worker calls it when it stops).
 */
export function createNodeExecutor(deps: { store: CachingStore; stages: StageLookup; models?: ModelCache }): NodeExecutor {
  const models = deps.models ?? new ModelCache();
  const request = (req: Parameters<NodeExecutor>[0]) => ({ store: deps.store, stages: deps.stages, node: req.node, inputs: req.inputs, signal: req.signal, progress: req.progress, log: req.log });
  const execute: NodeExecutor = async (req) => {
    const { outputs, cacheHit, cacheKey } = await executeNode({
      store: deps.store,
      stages: deps.stages,
      node: req.node,
      inputs: req.inputs,
      signal: req.signal,
      progress: req.progress,
      log: req.log,
      models,
    });
    return { outputs, cacheHit, cacheKey };
  };
  execute.close = () => models.clear();
  // A row-parallel node's shards (see shards.ts of @dro/pipeline): planned and merged on this worker's store.
  execute.planShards = (req) => planShards(request(req));
  execute.mergeShards = (req, shardOutputs) => mergeShards(request(req), shardOutputs);
  return execute;
}
