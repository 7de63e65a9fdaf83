/**
 * Binds the spine's executeNode (cache lookup → run → record) to one worker's store and stage registry, in
 * the shape the activity adapter calls. A retried or re-delivered node whose outputs were already recorded
 * is a cache hit: re-execution is idempotent.
 */
import { executeNode, type CachingStore, type StageLookup } from '@dro/pipeline';
import type { NodeExecutor } from './activities.ts';

export function createNodeExecutor(deps: { store: CachingStore; stages: StageLookup }): NodeExecutor {
  return async (req) => {
    const { outputs, cacheHit, cacheKey } = await executeNode({
      store: deps.store,
      stages: deps.stages,
      node: req.node,
      inputs: req.inputs,
      signal: req.signal,
      progress: req.progress,
      log: req.log,
    });
    return { outputs, cacheHit, cacheKey };
  };
}
