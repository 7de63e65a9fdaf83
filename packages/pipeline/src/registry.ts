/** The stage registry: stage name → Stage. Each engine (local runner, Temporal worker) holds one. */
import { BadInputError } from '@dro/artifacts';
import type { Stage } from './stage.ts';

/** Anything that finds a stage by name: a StageRegistry, a Map, or a function. */
export type StageLookup = { get(name: string): Stage<unknown> | undefined } | ((name: string) => Stage<unknown> | undefined);

export function lookupStage(stages: StageLookup, name: string): Stage<unknown> | undefined {
  return typeof stages === 'function' ? stages(name) : stages.get(name);
}

export class StageRegistry {
  private readonly stages = new Map<string, Stage<unknown>>();

  constructor(stages: Iterable<Stage<unknown>> = []) {
    for (const stage of stages) this.register(stage);
  }

  register<P>(stage: Stage<P>): this {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(stage.name)) {
      throw new BadInputError(`stage name "${stage.name}" must be lowercase words joined by "-"`);
    }
    const existing = this.stages.get(stage.name);
    if (existing && existing !== (stage as Stage<unknown>)) throw new BadInputError(`stage "${stage.name}" is registered twice`);
    this.stages.set(stage.name, stage as Stage<unknown>);
    return this;
  }

  get(name: string): Stage<unknown> | undefined {
    return this.stages.get(name);
  }

  /** The stage `name`, or a BadInputError listing the known ones. */
  require(name: string): Stage<unknown> {
    const stage = this.stages.get(name);
    if (!stage) throw new BadInputError(`unknown stage "${name}" (registered: ${[...this.stages.keys()].sort().join(', ') || 'none'})`);
    return stage;
  }

  list(): Stage<unknown>[] {
    return [...this.stages.values()];
  }
}
