/**
 * The stage contract: one contract, two engines (the local DAG runner and Temporal activities).
 *
 * A stage is a named, versioned function from input artifacts + params to output artifacts. Stages meet
 * only through artifacts, so an engineer can swap one stage without touching the others. The contract
 * carries what every stage would otherwise repeat: its inputs and outputs are declared with their schemas
 * (the executor checks both sides), `needs: 'model'` is enforced before it runs, and its context opens the
 * model and builds its outputs' manifests. A stage's run then reads: parse params (parseParams) → read
 * inputs (the typed readers of @dro/artifacts) → compute → write outputs (with ctx.manifest()).
 */
import type { ArtifactRef, ArtifactStore, ManifestInput } from '@dro/artifacts';
import type { ChatModel } from '@dro/llm';

/** Resource class: routes a stage to a task queue ("dro-cpu" or "dro-model") and a worker. */
export type StageNeeds = 'cpu' | 'model';

/** Progress of one stage, reported as often as is cheap; engines throttle it. */
export interface ProgressEvent {
  /** Units done so far and the total, when known (e.g. rows, batches, epochs). */
  done: number;
  total?: number;
  /** Short human phrase: "sampling", "epoch 3/40". */
  message?: string;
}

export interface StageLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** What a running stage sees of the engine. */
export interface StageContext {
  store: ArtifactStore;
  progress(event: ProgressEvent): void;
  /** Aborted on SIGINT (local) or activity cancellation (Temporal). Check it between batches. */
  signal: AbortSignal;
  log: StageLogger;
  /** Digest of the model file when needs = "model" (the executor guarantees one), else null. */
  modelDigest: string | null;
  /** Path of the model file/directory when needs = "model" (the executor guarantees one), else null. */
  modelPath: string | null;
  /**
   * The node's model, loaded on the first call and shared by later ones (load it only when there is work
   * for it: a stage resuming from checkpoints may need none). The engine disposes it when run() returns or
   * throws; the stage must not. A BadInputError for a stage without a model.
   */
  openModel(): Promise<ChatModel>;
  /**
   * The manifest of an output: this stage and version, the run's params, every input's digest, the model
   * digest and — once openModel() has loaded the model — its tfjs backend. `changes` replaces fields: the
   * params as the stage resolved them (e.g. defaults read from data files), a `summary`.
   */
  manifest(changes?: Partial<ManifestInput>): ManifestInput;
}

/**
 * A pipeline stage. `Params` must be JSON-serialisable: it is hashed canonically into the cache key and
 * recorded in every output's manifest.
 */
export interface Stage<Params = unknown> {
  name: string;
  /** Bump when the stage's semantics change: it invalidates every cached output of the stage. */
  version: string;
  needs: StageNeeds;
  /** Names of the input artifacts the stage reads (keys of `inputs` in run). */
  inputs: readonly string[];
  /**
   * Input name prefixes that take any number (zero or more) of inputs, each named `<prefix>:<key>` — for
   * stages that gather one artifact per condition (evaluation metrics into the report), or take an
   * optional one (a soft prompt). Not listed in `inputs`, which stay required.
   */
  variadicInputs?: readonly string[];
  /**
   * The declared schema of each input, by input name or variadic prefix ("softPrompt" for every
   * "softPrompt:<key>"). The executor checks every input ref against it before the stage runs (the same
   * schema, or one that reads as it: see schemaReadableAs), and validateDag checks the producing node's
   * declared output schema against it. Inputs not listed here are not checked.
   */
  inputSchemas?: Readonly<Record<string, string>>;
  /** Names of the output artifacts the stage writes (keys of the returned record). */
  outputs: readonly string[];
  /**
   * The declared schema of each output its consumers read, by output name ("hidden-states/v1"). The
   * executor checks every returned ref against it (the same schema, or a table schema with every declared
   * column: see schemaReadableAs), and a stage plugin must declare the same schema as the stage it
   * replaces. Outputs not listed here are not checked.
   */
  outputSchemas?: Readonly<Record<string, string>>;
  /** Validate params and fill defaults; throw BadInputError naming the field on bad params. */
  parseParams?(raw: unknown): Params;
  /**
   * Declared by a stage that maps independently over the rows of one input: a DAG node with a
   * `shardSize` then runs as shards of that many rows plus a merge (see shards.ts), each shard its own
   * cache entry and unit of work, the merged outputs byte-identical to an unsharded run's.
   */
  rowParallel?: RowParallel<Params>;
  run(ctx: StageContext, inputs: Record<string, ArtifactRef>, params: Params): Promise<Record<string, ArtifactRef>>;
}

/**
 * How a row-parallel stage splits. What makes shards exact: every output is one table with one row (or a
 * run of rows) per input row, in input order, computed from that row alone (per-row seeds, no cross-row
 * statistics); rows computed together (a chunk: one batched forward) are never split, so each shard
 * computes exactly the chunks the unsharded run computes.
 */
type Table = Awaited<ReturnType<ArtifactStore['getTable']>>;

export interface RowParallel<Params = unknown> {
  /** The input whose rows the stage maps over (a table artifact). */
  input: string;
  /** Rows the stage computes together; a shard holds a whole number of them. */
  chunkRows(params: Params): number;
  /**
   * Indices of the input table's rows the stage computes, in the order it computes them (its own filter
   * from params); default every row. Applied to a shard's rows it must select them all.
   */
  selectRows?(table: Table, params: Params): number[];
  /**
   * Relative cost of computing row `row` of the input table (default 1), e.g. its tokens: what shards are
   * ordered by, costliest first (shard-order.ts). A chunk costs its rows × its costliest row, since a
   * batched forward pads every row to the longest. An estimate: it orders work and never changes results.
   */
  rowCost?(table: Table, row: number, params: Params): number;
}

/** Bad-input errors are never retried; defined in @dro/artifacts (the store raises them too). */
export { BadInputError } from '@dro/artifacts';

/** The schema `stage` declares for input `inputName` (by its name, or its variadic prefix), if any. */
export function declaredInputSchema(stage: Pick<Stage, 'inputSchemas'>, inputName: string): string | undefined {
  const schemas = stage.inputSchemas ?? {};
  if (Object.hasOwn(schemas, inputName)) return schemas[inputName];
  const colon = inputName.indexOf(':');
  return colon > 0 && Object.hasOwn(schemas, inputName.slice(0, colon)) ? schemas[inputName.slice(0, colon)] : undefined;
}

/** Whether `inputName` is one of `stage`'s inputs: a declared name or `<variadic prefix>:<key>`. */
export function acceptsInput(stage: Pick<Stage, 'inputs' | 'variadicInputs'>, inputName: string): boolean {
  if (stage.inputs.includes(inputName)) return true;
  const colon = inputName.indexOf(':');
  return colon > 0 && colon < inputName.length - 1 && (stage.variadicInputs ?? []).includes(inputName.slice(0, colon));
}

/** The inputs named `<prefix>:<key>`, by key, in name order (so the order never depends on the engine). */
export function variadicInputs<T>(inputs: Record<string, T>, prefix: string): Array<{ key: string; value: T }> {
  return Object.keys(inputs)
    .filter((name) => name.startsWith(`${prefix}:`))
    .sort()
    .map((name) => ({ key: name.slice(prefix.length + 1), value: inputs[name]! }));
}

/** One node of a DAG: a stage instance, its params, and where each input comes from. */
export interface DagNode {
  /** Unique within the DAG, e.g. "extract" or "extract:smollm2". */
  id: string;
  stage: string;
  params: unknown;
  /**
   * Each input is either the output of another node ({ node, output }) or an artifact already in the
   * store ({ ref }).
   */
  inputs: Record<string, { node: string; output: string } | { ref: ArtifactRef }>;
  /** Model file for needs = "model" stages. */
  model?: { path: string; digest: string } | null;
  /**
   * For a row-parallel stage: run as shards of this many rows (rounded up to whole chunks) plus a merge.
   * Not part of the cache key: the merged outputs are the unsharded ones.
   */
  shardSize?: number;
  /**
   * The stage plugin that runs this node instead of the registered stage of the same name (from the
   * experiment config's "stages"). Every engine loads it from here, so it must resolve on every worker.
   */
  plugin?: StagePluginRef;
}

/** Where a stage plugin's module is: an absolute file path, or a package name resolved from `resolveFrom`. */
export interface StagePluginSource {
  module: string;
  /** For a package: the directory it resolves from (node_modules lookup upward, as Node does). */
  resolveFrom?: string;
}

/** A stage plugin and its identity, which is part of the cache key of every node it runs. */
export interface StagePluginRef extends StagePluginSource {
  /** "<package>@<version>" for a package; "sha256:<hex>" of the module file (and its local imports) for a path. */
  identity: string;
}

export interface Dag {
  name: string;
  nodes: DagNode[];
}
