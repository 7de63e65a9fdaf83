/**
 * DRO workflows. Deterministic orchestration only: this file runs in Temporal's workflow sandbox and
 * imports activity TYPES, never activity code. Every stage runs as an activity; what crosses the
 * activity boundary is artifact refs (digests), never data.
 *
 * dagWorkflow        — one DAG (the same `Dag` the local runner takes), topologically, with a concurrency
 *                      limit; node → activity on dro-cpu or dro-model by the stage's `needs`.
 * experimentWorkflow — a multi-model experiment: one dagWorkflow child per model.
 */
import {
  ApplicationFailure,
  ActivityCancellationType,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ArtifactRef } from '@dro/artifacts';
import type { DagNode } from '@dro/pipeline';
import { shardDispatchOrder } from '@dro/pipeline/shard-order';
import type { DroActivities } from './activities.ts';
import {
  BAD_INPUT_ERROR_TYPE,
  DEFAULT_CONCURRENCY,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_RETRY,
  DEFAULT_START_TO_CLOSE_TIMEOUT_MS,
  TASK_QUEUES,
  WORKFLOW_TASK_QUEUE,
  type DagPlan,
  type DagRunStatus,
  type DagWorkflowInput,
  type DagWorkflowResult,
  type ExperimentInput,
  type ExperimentResult,
  type ExperimentStatus,
  type NodeStatus,
  type RunStageResult,
} from './shared.ts';

/** Bound on one attempt of a sharded node's plan or merge (a table read, sliced or concatenated, written). */
const SHARD_STEP_TIMEOUT_MS = 10 * 60_000;

/** Patch id (workflow versioning) of scheduling a node's shards costliest first instead of in shard order. */
const SHARDS_LARGEST_FIRST = 'shards-largest-first';

/** Per-node state, progress counts and errors of a dagWorkflow. */
export const dagStatusQuery = defineQuery<DagRunStatus>('dagStatus');
/** Per-model state of an experimentWorkflow. */
export const experimentStatusQuery = defineQuery<ExperimentStatus>('experimentStatus');

function activityOptions(input: DagWorkflowInput, taskQueue: string): ActivityOptions {
  const retry = { ...DEFAULT_RETRY, ...input.retry };
  return {
    taskQueue,
    startToCloseTimeout: input.startToCloseTimeoutMs ?? DEFAULT_START_TO_CLOSE_TIMEOUT_MS,
    heartbeatTimeout: input.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
    // Let a cancelled stage finish its cleanup (temp files) before the workflow reports "cancelled".
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      maximumAttempts: retry.maxAttempts,
      initialInterval: retry.initialDelayMs,
      maximumInterval: retry.maxDelayMs,
      backoffCoefficient: retry.backoffCoefficient,
      nonRetryableErrorTypes: [BAD_INPUT_ERROR_TYPE],
    },
  };
}

/** Runs one DAG to completion. Fails with the first node failure (after letting running nodes finish). */
export async function dagWorkflow(input: DagWorkflowInput): Promise<DagWorkflowResult> {
  const runId = input.runId ?? workflowInfo().workflowId;
  const { dag } = input;
  const concurrency = Math.max(1, input.concurrency ?? DEFAULT_CONCURRENCY);
  const nodes = new Map<string, NodeStatus>(
    dag.nodes.map((n) => [n.id, { id: n.id, stage: n.stage, queue: null, state: 'pending' }]),
  );
  const outputs: Record<string, Record<string, ArtifactRef>> = {};
  let runState: DagRunStatus['state'] = 'running';
  let runError: string | undefined;

  setHandler(dagStatusQuery, () => {
    const list = [...nodes.values()];
    return {
      runId,
      dag: dag.name,
      state: runState,
      nodes: list,
      done: list.filter((n) => n.state === 'succeeded').length,
      total: list.length,
      ...(runError !== undefined ? { error: runError } : {}),
    };
  });

  // Planning validates stage names, params and wiring on a worker (which holds the stage registry).
  const planner = proxyActivities<DroActivities>({
    ...activityOptions(input, WORKFLOW_TASK_QUEUE),
    startToCloseTimeout: 60_000,
    heartbeatTimeout: undefined,
    activityId: 'dro:plan',
  });
  let plan: DagPlan;
  try {
    plan = await planner.planDag(dag);
  } catch (err) {
    runState = isCancellation(err) ? 'cancelled' : 'failed';
    runError = failureMessage(err);
    throw isCancellation(err) ? err : surfaceFailure(null, err); // validation messages already name the DAG
  }
  // One proxy per node: the activity id is the node id, so status views can match pending activities
  // (attempt, last heartbeat) to nodes.
  const activitiesFor = (node: DagNode, activityId = node.id) =>
    proxyActivities<DroActivities>({ ...activityOptions(input, TASK_QUEUES[plan.needs[node.id]!]), activityId });
  // A sharded node's plan and merge: short cpu work without progress, so no heartbeat but a bounded attempt.
  const shardStepFor = (node: DagNode, step: 'plan' | 'merge') =>
    proxyActivities<DroActivities>({
      ...activityOptions(input, TASK_QUEUES.cpu),
      startToCloseTimeout: SHARD_STEP_TIMEOUT_MS,
      heartbeatTimeout: undefined,
      activityId: `${node.id}#${step}`,
    });
  // Each shard is its own activity on the node's queue, so shards spread over every worker polling it and
  // a failed shard is retried alone (its own retry policy); its activity id is its shard node id.
  const runSharded = async (node: DagNode, inputs: Record<string, ArtifactRef>, status: NodeStatus): Promise<RunStageResult> => {
    const planned = await shardStepFor(node, 'plan').planShardsActivity({ runId, node, inputs });
    if (planned.kind === 'cached') return planned.result;
    if (planned.kind === 'whole') return activitiesFor(node).runStageActivity({ runId, node, inputs });
    const progress = (status.shards = { total: planned.shards.length, done: 0, cacheHits: 0 });
    // Scheduled costliest first (shard-order.ts: a hint to the server, which picks the shard a free worker
    // gets). Runs started before this change scheduled in shard order, and replay them so.
    const order = patched(SHARDS_LARGEST_FIRST) ? shardDispatchOrder(planned.shards.map((s) => s.cost ?? 0)) : planned.shards.map((_, k) => k);
    const settled: PromiseSettledResult<RunStageResult>[] = new Array(planned.shards.length);
    await Promise.all(
      order.map(async (k) => {
        const shard = planned.shards[k]!;
        try {
          const result = await activitiesFor(node, shard.node.id).runStageActivity({ runId, node: shard.node, inputs: shard.inputs });
          progress.done++;
          if (result.cacheHit) progress.cacheHits++;
          settled[k] = { status: 'fulfilled', value: result };
        } catch (reason) {
          settled[k] = { status: 'rejected', reason };
        }
      }),
    );
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
    const shardOutputs = settled.map((s) => (s as PromiseFulfilledResult<RunStageResult>).value.outputs);
    return shardStepFor(node, 'merge').mergeShardsActivity({ runId, node, inputs, shardOutputs });
  };
  for (const n of dag.nodes) nodes.get(n.id)!.queue = TASK_QUEUES[plan.needs[n.id]!];

  const nodeById = new Map(dag.nodes.map((n) => [n.id, n]));
  const inFlight = new Set<Promise<void>>();
  let firstFailure: unknown = null;
  let cancellation: unknown = null;

  const isReady = (node: DagNode): boolean =>
    Object.values(node.inputs).every((src) => !('node' in src) || nodes.get(src.node)!.state === 'succeeded');

  const runNode = async (node: DagNode): Promise<void> => {
    const status = nodes.get(node.id)!;
    status.state = 'running';
    status.startedAt = new Date().toISOString();
    const inputs: Record<string, ArtifactRef> = {};
    for (const [name, src] of Object.entries(node.inputs)) {
      inputs[name] = 'ref' in src ? src.ref : outputs[src.node]![src.output]!;
    }
    try {
      const result = plan.sharded?.[node.id]
        ? await runSharded(node, inputs, status)
        : await activitiesFor(node).runStageActivity({ runId, node, inputs });
      outputs[node.id] = result.outputs;
      Object.assign(status, {
        state: 'succeeded',
        outputs: result.outputs,
        cacheHit: result.cacheHit,
        cacheKey: result.cacheKey,
        stageVersion: result.stageVersion,
        attempt: result.attempt,
        durationMs: result.durationMs,
        worker: result.worker,
      });
    } catch (err) {
      status.error = failureMessage(err);
      if (isCancellation(err)) {
        status.state = 'cancelled';
        cancellation ??= err;
      } else {
        status.state = 'failed';
        status.errorType = innermostType(err) ?? 'Error';
        firstFailure ??= surfaceFailure(`node "${node.id}" (stage ${node.stage}) failed`, err);
      }
    } finally {
      status.finishedAt = new Date().toISOString();
    }
  };

  for (;;) {
    if (firstFailure === null && cancellation === null) {
      for (const id of plan.order) {
        if (inFlight.size >= concurrency) break;
        const node = nodeById.get(id)!;
        if (nodes.get(id)!.state !== 'pending' || !isReady(node)) continue;
        const p: Promise<void> = runNode(node).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
    }
    if (inFlight.size === 0) break;
    await Promise.race(inFlight);
  }

  for (const status of nodes.values()) {
    if (status.state === 'pending') status.state = cancellation !== null ? 'cancelled' : 'skipped';
  }
  if (cancellation !== null) {
    runState = 'cancelled';
    throw cancellation;
  }
  if (firstFailure !== null) {
    runState = 'failed';
    runError = (firstFailure as Error).message;
    throw firstFailure;
  }
  runState = 'succeeded';
  return { runId, outputs, nodes: [...nodes.values()] };
}

/** Runs one dagWorkflow child per model, all at once; fails if any model's run fails. */
export async function experimentWorkflow(input: ExperimentInput): Promise<ExperimentResult> {
  const parentId = workflowInfo().workflowId;
  const runId = input.runId ?? parentId;
  const models: ExperimentStatus['models'] = input.models.map((m) => ({
    name: m.name,
    workflowId: `${parentId}.${m.name}`,
    state: 'pending',
  }));
  setHandler(experimentStatusQuery, () => ({ runId, models }));

  const results: Record<string, DagWorkflowResult> = {};
  const settled = await Promise.allSettled(
    input.models.map(async (m, i) => {
      const entry = models[i]!;
      const child = await startChild(dagWorkflow, {
        workflowId: entry.workflowId,
        taskQueue: WORKFLOW_TASK_QUEUE,
        args: [{ ...input.child, dag: m.dag, runId: `${runId}.${m.name}` }],
      });
      entry.state = 'running';
      try {
        results[m.name] = await child.result();
        entry.state = 'succeeded';
      } catch (err) {
        entry.state = isCancellation(err) ? 'cancelled' : 'failed';
        entry.error = failureMessage(err);
        throw err;
      }
    }),
  );
  const cancelled = settled.find((s) => s.status === 'rejected' && isCancellation(s.reason));
  if (cancelled) throw (cancelled as PromiseRejectedResult).reason;
  const failed = settled.map((s, i) => ({ s, name: input.models[i]!.name })).filter((x) => x.s.status === 'rejected');
  if (failed.length > 0) {
    const first = failed[0]!;
    throw surfaceFailure(`model "${first.name}" failed`, (first.s as PromiseRejectedResult).reason);
  }
  return { runId, models: results };
}

/** The innermost failure message (an activity's own error) — what a user needs to see. */
function failureMessage(err: unknown): string {
  let e: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  while (e instanceof Error) {
    if (e.message) message = e.message;
    e = (e as { cause?: unknown }).cause;
  }
  return message;
}

function innermostType(err: unknown): string | undefined {
  let e: unknown = err;
  let type: string | undefined;
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure && e.type) type = e.type;
    e = (e as { cause?: unknown }).cause;
  }
  return type;
}

/**
 * Re-raise a failure as a workflow-level ApplicationFailure that keeps the original message and error type
 * (BadInputError stays BadInputError) so clients can show it unchanged.
 */
function surfaceFailure(context: string | null, err: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    message: context === null ? failureMessage(err) : `${context}: ${failureMessage(err)}`,
    type: innermostType(err) ?? 'StageFailed',
    nonRetryable: true,
    cause: err instanceof Error ? err : undefined,
  });
}
