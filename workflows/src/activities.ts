/**
 * Activities: thin adapters between Temporal and the stage contract. All real work (cache lookup, running
 * the stage, recording outputs) happens in the node executor the spine provides; here we only translate:
 *   ctx.progress  → Context.current().heartbeat(details)
 *   cancellation  → ctx.signal (aborted by the SDK when the server delivers a cancel on a heartbeat)
 *   BadInputError → ApplicationFailure.nonRetryable (type "BadInputError", original message)
 *   other errors  → rethrown as is: retried by the workflow's retry policy; the cache makes it idempotent.
 */
import os from 'node:os';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { ArtifactRef } from '@dro/artifacts';
import {
  BadInputError,
  NO_PLUGINS,
  type Dag,
  type DagNode,
  type PluginAllowlist,
  type ProgressEvent,
  type ShardPlan,
  type StageLogger,
  type StageLookup,
  loadDagPlugins,
  lookupNodeStage,
  resolveNodeStage,
} from '@dro/pipeline';
import { BAD_INPUT_ERROR_TYPE, type MergeShardsInput, type RunStageInput, type RunStageResult, type ShardPlanResult, type StageHeartbeat } from './shared.ts';
import { planDag } from './plan.ts';

/** What the activity asks of the spine: run ONE node with resolved inputs (cache lookup, run, record). */
export interface NodeExecutionRequest {
  runId: string;
  node: DagNode;
  inputs: Record<string, ArtifactRef>;
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
  log: StageLogger;
}
export type NodeExecution = { outputs: Record<string, ArtifactRef>; cacheHit: boolean; cacheKey: string };
export type NodeExecutor = ((req: NodeExecutionRequest) => Promise<NodeExecution>) & {
  /** A row-parallel node's cache hit, shards or "run it whole"; an executor without it runs every node whole. */
  planShards?(req: NodeExecutionRequest): Promise<ShardPlan>;
  /** The node's outputs from its shards' outputs (in shard order), recorded under the node's cache key. */
  mergeShards?(req: NodeExecutionRequest, shardOutputs: Array<Record<string, ArtifactRef>>): Promise<NodeExecution>;
  /** Release what the executor holds between nodes (loaded models); called once the worker has stopped. */
  close?(): void;
};

export interface ActivityDeps {
  stages: StageLookup;
  execute: NodeExecutor;
  /** Identity shown in status views; default host:pid. */
  workerIdentity?: string;
  /**
   * The stage plugins this worker may load from a DAG (`dro worker --allow-plugins`); default none. A
   * workflow's DAG names the module every worker imports, and whoever starts a workflow writes the DAG.
   */
  allowPlugins?: PluginAllowlist;
}

const workerIdentityDefault = `${os.hostname()}:${process.pid}`;

/** Builds the activity implementations a worker registers. */
export function createActivities(deps: ActivityDeps) {
  const identity = deps.workerIdentity ?? workerIdentityDefault;
  const allow = deps.allowPlugins ?? NO_PLUGINS;
  // Every activity that gets a node loads its plugin here, against the allowlist, before the executor
  // (which loads it without one) sees the node: then the executor finds it loaded.
  const admit = async (node: DagNode): Promise<void> => {
    if (node.plugin !== undefined) await resolveNodeStage(deps.stages, node, { allow });
  };
  const stageResult = (input: RunStageInput, execution: NodeExecution, started: number): RunStageResult => ({
    ...execution,
    stageVersion: safeVersion(deps.stages, input.node),
    attempt: Context.current().info.attempt,
    durationMs: Date.now() - started,
    worker: identity,
  });
  return {
    /**
     * Validates a DAG against this worker's stage registry (loading the stage plugins its nodes name) and
     * returns each node's queue class + order.
     */
    async planDag(dag: Dag) {
      try {
        await loadDagPlugins(dag, deps.stages, { allow });
        return planDag(dag, deps.stages);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /**
     * A sharded node's first step: its cache hit, or its shards (their rows written to the store as
     * artifacts), or "run it whole" (too few rows for two shards, or an executor that cannot shard).
     */
    async planShardsActivity(input: RunStageInput): Promise<ShardPlanResult> {
      const started = Date.now();
      try {
        await admit(input.node);
        const plan = deps.execute.planShards ? await deps.execute.planShards(request(input)) : { kind: 'whole' as const };
        if (plan.kind === 'cached') return { kind: 'cached', result: stageResult(input, plan.execution, started) };
        if (plan.kind === 'whole') return plan;
        return { kind: 'sharded', shards: plan.shards };
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** A sharded node's last step: its shards' outputs merged into the node's outputs, recorded under its cache key. */
    async mergeShardsActivity(input: MergeShardsInput): Promise<RunStageResult> {
      const started = Date.now();
      try {
        if (!deps.execute.mergeShards) throw new Error(`worker ${identity} cannot merge shards (its executor has no mergeShards)`);
        await admit(input.node);
        return stageResult(input, await deps.execute.mergeShards(request(input), input.shardOutputs), started);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Runs one DAG node through the spine's executor; heartbeats carry its progress. */
    async runStageActivity(input: RunStageInput): Promise<RunStageResult> {
      const actx = Context.current();
      const started = Date.now();
      let last: StageHeartbeat = { nodeId: input.node.id, done: 0 };
      actx.heartbeat(last);
      // Stages may work for a while without reporting progress; a steady heartbeat keeps the worker
      // visibly alive and is how the server delivers cancellation. The SDK throttles what it sends.
      const keepAliveMs = Math.max(100, Math.min(5_000, (actx.info.heartbeatTimeoutMs ?? 60_000) / 4));
      const keepAlive = setInterval(() => actx.heartbeat(last), keepAliveMs);
      const log: StageLogger = {
        info: (message, fields) => actx.log.info(message, { nodeId: input.node.id, ...fields }),
        warn: (message, fields) => actx.log.warn(message, { nodeId: input.node.id, ...fields }),
      };
      if (actx.info.attempt > 1) {
        log.info('retrying node', { attempt: actx.info.attempt, lastHeartbeat: actx.info.heartbeatDetails });
      }
      try {
        await admit(input.node);
        const result = await deps.execute({
          runId: input.runId,
          node: input.node,
          inputs: input.inputs,
          signal: actx.cancellationSignal,
          log,
          progress: (event) => {
            last = { nodeId: input.node.id, done: event.done };
            if (event.total !== undefined) last.total = event.total;
            if (event.message !== undefined) last.message = event.message;
            actx.heartbeat(last);
          },
        });
        return {
          ...result,
          // The node's plugin was loaded by the executor (or the result was served by another executor).
          stageVersion: safeVersion(deps.stages, input.node),
          attempt: actx.info.attempt,
          durationMs: Date.now() - started,
          worker: identity,
        };
      } catch (err) {
        throw toActivityFailure(err);
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}

export type DroActivities = ReturnType<typeof createActivities>;

/** A short, heartbeat-free request (planning and merging report no progress). */
function request(input: RunStageInput): NodeExecutionRequest {
  const actx = Context.current();
  const log: StageLogger = {
    info: (message, fields) => actx.log.info(message, { nodeId: input.node.id, ...fields }),
    warn: (message, fields) => actx.log.warn(message, { nodeId: input.node.id, ...fields }),
  };
  return { runId: input.runId, node: input.node, inputs: input.inputs, signal: actx.cancellationSignal, log, progress: () => actx.heartbeat({ nodeId: input.node.id, done: 0 }) };
}

function safeVersion(stages: StageLookup, node: DagNode): string {
  try {
    return lookupNodeStage(stages, node)?.version ?? '?';
  } catch {
    return '?';
  }
}

/** Input errors never succeed on retry: mark them non-retryable and keep their message unchanged. */
export function toActivityFailure(err: unknown): unknown {
  // By class (subclasses such as SchemaError included) or by name, in case two copies of the class are loaded.
  if (err instanceof BadInputError || (err instanceof Error && err.name === BAD_INPUT_ERROR_TYPE)) {
    return ApplicationFailure.create({
      message: err.message,
      type: BAD_INPUT_ERROR_TYPE,
      nonRetryable: true,
      details: [{ errorClass: err.name }],
    });
  }
  return err;
}
