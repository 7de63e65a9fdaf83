/**
 * Running one stage: what every engine does around a stage's run(), in one place — check what the stage
 * declares (a model when it needs one, every required input present, in the store and of its declared
 * schema), give it its context (the model opened once and disposed after, manifests built the same way for
 * every stage), and check what it returns (exactly its declared outputs, in the store, of their schemas).
 * executeNode (both engines) adds the cache around it; runStage is the same without a cache, for tests and
 * tools that call a stage directly.
 */
import { BadInputError, schemaReadableAs, type ArtifactRef, type ArtifactStore, type ManifestInput } from '@dro/artifacts';
import type { ChatModel } from '@dro/llm';
import type { ModelCache } from './model-cache.ts';
import { declaredInputSchema, type ProgressEvent, type Stage, type StageContext, type StageLogger } from './stage.ts';

/** What an engine supplies to run a stage: the store, the node's model, and where progress and logs go. */
export interface StageEnvironment {
  store: ArtifactStore;
  modelPath?: string | null;
  modelDigest?: string | null;
  progress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
  log?: StageLogger;
  /** The DAG node, for errors ("node "extract@qwen" (stage extract) …"). */
  node?: string;
  /**
   * The process's loaded models (a worker's, a local run's): the stage's model is leased from it and stays
   * loaded for the next node. Without one the model is loaded for this run and disposed after it.
   */
  models?: ModelCache;
}

const silentLog: StageLogger = { info() {}, warn() {} };

/** How errors name the stage: `node "<id>" (stage <name>)`, or `stage <name>` outside a DAG. */
export function stageLabel(stage: Pick<Stage, 'name'>, node?: string): string {
  return node === undefined ? `stage ${stage.name}` : `node "${node}" (stage ${stage.name})`;
}

/** A model-needing stage must get a model: the one check, with the one message, for every engine. */
export function checkModel(stage: Pick<Stage, 'name' | 'needs'>, modelPath: string | null | undefined, node?: string): void {
  if (stage.needs === 'model' && !modelPath) {
    throw new BadInputError(`${stageLabel(stage, node)} needs a model, and none is configured (the DAG node has no model path)`);
  }
}

/** Every required input present and in the store, and every input of its declared schema. */
export async function checkInputs(store: ArtifactStore, stage: Stage<unknown>, inputs: Record<string, ArtifactRef>, node?: string): Promise<void> {
  const where = stageLabel(stage, node);
  for (const name of stage.inputs) {
    if (!inputs[name]) throw new BadInputError(`${where} is missing input "${name}"`);
  }
  for (const [name, ref] of Object.entries(inputs)) {
    if (!(await store.has(ref.digest))) throw new BadInputError(`${where} input "${name}": artifact ${ref.digest} is not in store ${store.root}`);
    const declared = declaredInputSchema(stage, name);
    const problem = declared === undefined ? null : schemaReadableAs(ref.schema, declared);
    if (problem !== null) throw new BadInputError(`${where} input "${name}" is a ${ref.schema} artifact, expected ${declared}: ${problem}`);
  }
}

/**
 * A stage must return exactly its declared outputs, each committed to the store and readable as its
 * declared schema. Not retryable: a bug.
 */
export async function checkOutputs(store: ArtifactStore, stage: Stage<unknown>, outputs: Record<string, ArtifactRef>, node?: string): Promise<void> {
  const where = stageLabel(stage, node);
  if (typeof outputs !== 'object' || outputs === null) throw new BadInputError(`${where} returned ${String(outputs)}, expected output refs`);
  for (const name of Object.keys(outputs)) {
    if (!stage.outputs.includes(name)) throw new BadInputError(`${where} returned undeclared output "${name}" (declared: ${stage.outputs.join(', ')})`);
  }
  for (const name of stage.outputs) {
    const ref = outputs[name];
    if (!ref || typeof ref.digest !== 'string') throw new BadInputError(`${where} did not return its output "${name}"`);
    if (!(await store.has(ref.digest))) throw new BadInputError(`${where} output "${name}": artifact ${ref.digest} is not in the store`);
    const declared = stage.outputSchemas?.[name];
    const problem = declared === undefined ? null : schemaReadableAs(ref.schema, declared);
    if (problem !== null) throw new BadInputError(`${where} output "${name}" is a ${ref.schema} artifact, declared ${declared}: ${problem}`);
  }
}

/**
 * Run `stage` with already checked inputs and parsed params: build its context, run it, dispose the model
 * it opened, check its outputs. (executeNode and runStage both end here.)
 */
export async function runChecked(stage: Stage<unknown>, inputs: Record<string, ArtifactRef>, params: unknown, env: StageEnvironment): Promise<Record<string, ArtifactRef>> {
  const modelPath = env.modelPath ?? null;
  let model: Promise<ChatModel> | null = null;
  let release: (() => void) | null = null;
  let backend: string | null = null;
  const inputDigests = Object.fromEntries(Object.entries(inputs).map(([name, ref]) => [name, ref.digest]));
  const ctx: StageContext = {
    store: env.store,
    progress: env.progress ?? (() => {}),
    signal: env.signal ?? new AbortController().signal,
    log: env.log ?? silentLog,
    modelDigest: env.modelDigest ?? null,
    modelPath,
    openModel() {
      if (modelPath === null) return Promise.reject(new BadInputError(`${stageLabel(stage, env.node)} opened a model, but it has none (its needs is "${stage.needs}")`));
      // Loaded lazily: cpu-only processes (and stages that find every chunk checkpointed) never load tfjs.
      model ??= (async () => {
        let loaded: ChatModel;
        if (env.models) {
          const lease = await env.models.acquire(modelPath);
          release = lease.release;
          loaded = lease.model;
        } else {
          loaded = await (await import('@dro/llm')).loadModel(modelPath);
        }
        backend = loaded.backend;
        return loaded;
      })();
      return model;
    },
    manifest(changes: Partial<ManifestInput> = {}): ManifestInput {
      return { producer: { stage: stage.name, version: stage.version }, params, inputs: inputDigests, modelDigest: env.modelDigest ?? null, backend, ...changes };
    },
  };
  let outputs: Record<string, ArtifactRef>;
  try {
    outputs = await stage.run(ctx, inputs, params);
  } finally {
    // A model that failed to load has nothing to dispose; a leased one goes back to the cache.
    const opened = model === null ? null : await (model as Promise<ChatModel>).catch(() => null);
    if (release !== null) (release as () => void)();
    else opened?.dispose();
  }
  await checkOutputs(env.store, stage, outputs, env.node);
  return outputs;
}

/**
 * Run one stage outside a DAG, with every check executeNode makes and no cache: params parsed by the
 * stage, the model and the inputs checked, the stage run with its context, its outputs checked.
 */
export async function runStage<Params>(stage: Stage<Params>, inputs: Record<string, ArtifactRef>, rawParams: unknown, env: StageEnvironment): Promise<Record<string, ArtifactRef>> {
  const any = stage as unknown as Stage<unknown>;
  const params = stage.parseParams ? stage.parseParams(rawParams) : rawParams;
  checkModel(stage, env.modelPath, env.node);
  await checkInputs(env.store, any, inputs, env.node);
  return runChecked(any, inputs, params, env);
}
