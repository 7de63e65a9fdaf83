/**
 * Binds the spine's node execution to one worker's store and stage registry, in the shape the activity
 * adapter calls (NodeExecutor).
 */
import type { ArtifactStore } from '@dro/artifacts';
import { BadInputError, type StageContext } from '@dro/pipeline';
import type { NodeExecutor } from './activities.ts';
import { lookupStage, type StageLookup } from './plan.ts';

export function createNodeExecutor(deps: { store: ArtifactStore; stages: StageLookup }): NodeExecutor {
  return async (req) => {
    const stage = lookupStage(deps.stages, req.node.stage);
    if (!stage) throw new BadInputError(`node "${req.node.id}" uses unknown stage "${req.node.stage}"`);
    const params = stage.parseParams ? stage.parseParams(req.node.params) : req.node.params;
    const ctx: StageContext = {
      store: deps.store,
      progress: req.progress,
      signal: req.signal,
      log: req.log,
      modelDigest: req.node.model?.digest ?? null,
      modelPath: req.node.model?.path ?? null,
    };
    const outputs = await stage.run(ctx, req.inputs, params);
    return { outputs, cacheHit: false };
  };
}
