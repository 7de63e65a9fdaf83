/**
 * Client side of a Temporal run: start a DAG (or a multi-model experiment), wait for it (wait.ts: through
 * server restarts and missing workers, always to an end), query its status. Status = the workflow's own
 * view (per-node state, outputs, errors, via a query) merged with what only the server knows: each running
 * node's attempt and last heartbeat (the stage's progress).
 */
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { openStore } from '@dro/artifacts';
import { newRunId, type Dag } from '@dro/pipeline';
import { connectClient, resolveTarget, targetOf, type TemporalTarget } from './connect.ts';
import { saveTemporalRunRecord } from './run-record.ts';
import { waitForWorkflow, type WaitOptions } from './wait.ts';
import type {
  DagRunStatus,
  DagWorkflowInput,
  DagWorkflowResult,
  ExperimentInput,
  ExperimentResult,
  ExperimentStatus,
  StageHeartbeat,
} from './shared.ts';
import { WORKFLOW_TASK_QUEUE } from './shared.ts';

export { connectClient, type TemporalTarget };

/** A status query needs a worker to answer it; without one it would wait for the RPC's own (long) deadline. */
const QUERY_DEADLINE_MS = 10_000;

export type StartDagOptions = Omit<DagWorkflowInput, 'dag' | 'runId'> & { runId?: string };

/** Starts dagWorkflow; the run id is the workflow id. */
export async function startDagRun(client: Client, dag: Dag, opts: StartDagOptions = {}): Promise<WorkflowHandle> {
  const runId = opts.runId ?? newRunId();
  return client.workflow.start('dagWorkflow', {
    taskQueue: WORKFLOW_TASK_QUEUE,
    workflowId: runId,
    args: [{ ...opts, dag, runId } satisfies DagWorkflowInput],
    memo: { dagName: dag.name },
  });
}

/** Starts experimentWorkflow: one child dagWorkflow per model. */
export async function startExperimentRun(client: Client, input: ExperimentInput): Promise<WorkflowHandle> {
  const runId = input.runId ?? newRunId();
  return client.workflow.start('experimentWorkflow', {
    taskQueue: WORKFLOW_TASK_QUEUE,
    workflowId: runId,
    args: [{ ...input, runId }],
  });
}

/**
 * The run's status: the workflow's query merged with pending activities' attempts and heartbeats.
 * When no worker answers the query within QUERY_DEADLINE_MS (none running, none polling), falls back to
 * the server's view of the run state and says so.
 */
export async function queryDagStatus(client: Client, runId: string): Promise<DagRunStatus> {
  const handle = client.workflow.getHandle(runId);
  const description = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.describe());
  if (description.type === 'experimentWorkflow') return queryExperimentAsDag(client, runId);
  if (description.status.name === 'COMPLETED') {
    // The result holds every node's final status: no worker needs to be up to answer a query.
    const result = (await handle.result()) as DagWorkflowResult;
    const dagName = (description.memo?.dagName as string | undefined) ?? '?';
    const done = result.nodes.filter((n) => n.state === 'succeeded').length;
    return { runId, dag: dagName, state: 'succeeded', nodes: result.nodes, done, total: result.nodes.length };
  }
  let status: DagRunStatus;
  try {
    status = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query<DagRunStatus>('dagStatus'));
  } catch (err) {
    const state = ({ COMPLETED: 'succeeded', FAILED: 'failed', CANCELLED: 'cancelled', RUNNING: 'running' } as const)[
      description.status.name as 'COMPLETED'
    ];
    const dag = (description.memo?.dagName as string | undefined) ?? '?';
    const why = `no worker answered the status query within ${QUERY_DEADLINE_MS / 1000} s — is a worker polling ${WORKFLOW_TASK_QUEUE}? (${(err as Error).message})`;
    return { runId, dag, state: state ?? 'failed', nodes: [], done: 0, total: 0, error: why };
  }
  for (const pending of description.raw.pendingActivities ?? []) {
    const node = status.nodes.find((n) => n.id === pending.activityId);
    if (!node) continue;
    node.attempt = pending.attempt ?? 1;
    // PendingActivityState: 1 scheduled, 2 started, 3 cancel requested.
    const state = ({ 1: 'scheduled', 2: 'started', 3: 'cancel-requested' } as const)[Number(pending.state) as 1 | 2 | 3];
    if (state) node.activityState = state;
    const payload = pending.heartbeatDetails?.payloads?.[0];
    if (payload) node.progress = defaultPayloadConverter.fromPayload<StageHeartbeat>(payload);
  }
  return status;
}

/**
 * A multi-model experiment seen as one DAG: every child's nodes (node ids are unique across models in
 * the experiment DAG), the run failed/cancelled if any child did, succeeded when all did.
 */
async function queryExperimentAsDag(client: Client, runId: string): Promise<DagRunStatus> {
  const experiment = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => client.workflow.getHandle(runId).query<ExperimentStatus>('experimentStatus'));
  const children = await Promise.all(
    experiment.models.map((m) => (m.state === 'pending' ? null : queryDagStatus(client, m.workflowId).catch(() => null))),
  );
  const nodes = children.flatMap((c) => c?.nodes ?? []);
  const states = experiment.models.map((m) => m.state);
  const state: DagRunStatus['state'] = states.includes('failed')
    ? 'failed'
    : states.includes('cancelled')
      ? 'cancelled'
      : states.every((s) => s === 'succeeded')
        ? 'succeeded'
        : 'running';
  const failed = experiment.models.find((m) => m.error !== undefined);
  return {
    runId,
    dag: `experiment (${experiment.models.map((m) => m.name).join(', ')})`,
    state,
    nodes,
    done: children.reduce((n, c) => n + (c?.done ?? 0), 0),
    total: children.reduce((n, c) => n + (c?.total ?? 0), 0),
    ...(failed ? { error: `model "${failed.name}": ${failed.error}` } : {}),
  };
}

/** How the client waits (see wait.ts): timeouts for a lost server and for missing workers, notices. */
export type WaitSettings = Pick<WaitOptions, 'serverTimeoutMs' | 'workerNoticeMs' | 'workerTimeoutMs' | 'onNotice'>;

export interface RunDagOnTemporalOptions extends TemporalTarget, StartDagOptions, WaitSettings {
  dag: Dag;
  /** An open client to use (and leave open); default: connect to address/namespace and close at the end. */
  client?: Client;
  /**
   * The store the workers share: a directory as seen from this machine, or an s3://bucket/prefix URI. When given, the run is recorded there
   * (engine "temporal") at start and at the end, so `dro status` lists it and gc keeps its outputs.
   */
  storeRoot?: string;
  /** Called with the merged status every `pollMs` while the run is going (progress display). */
  onStatus?(status: DagRunStatus): void;
  pollMs?: number;
}

/** The client to use and whether this call must close it. */
async function clientFor(opts: TemporalTarget & { client?: Client }): Promise<{ client: Client; owned: boolean }> {
  return opts.client ? { client: opts.client, owned: false } : { client: await connectClient(opts), owned: true };
}

/** Status for a progress display: never throws (the wait itself reports a lost server or missing workers). */
async function bestEffortStatus(client: Client, runId: string): Promise<DagRunStatus> {
  try {
    return await queryDagStatus(client, runId);
  } catch (err) {
    return { runId, dag: '?', state: 'running', nodes: [], done: 0, total: 0, error: `no status yet: ${(err as Error).message}` };
  }
}

/**
 * Starts a DAG run on Temporal and waits until it ends (wait.ts: through server restarts; gives up, with
 * a message saying how to follow the run, when the server stays away or no worker polls a needed queue).
 * Throws the workflow's failure (the stage's message kept). With a store root, the run's record there ends
 * in the run's real final state.
 */
export async function runDagOnTemporal(opts: RunDagOnTemporalOptions): Promise<DagWorkflowResult> {
  const { dag, address, namespace, storeRoot, onStatus, pollMs, client: given, serverTimeoutMs, workerNoticeMs, workerTimeoutMs, onNotice, ...start } = opts;
  const target = given ? targetOf(given) : resolveTarget({ address, namespace });
  const { client, owned } = await clientFor({ ...target, client: given });
  const store = storeRoot ? openStore(storeRoot) : null;
  const runId = start.runId ?? newRunId();
  const startedAt = new Date();
  try {
    await client.workflow.start('dagWorkflow', {
      taskQueue: WORKFLOW_TASK_QUEUE,
      workflowId: runId,
      args: [{ ...start, dag, runId } satisfies DagWorkflowInput],
      memo: { dagName: dag.name, ...(storeRoot ? { storeRoot } : {}) },
    });
    if (store) await saveTemporalRunRecord(store, dag, { runId, state: 'running', nodes: [] }, { startedAt, endedAt: null });
    const outcome = await waitForWorkflow(client, runId, {
      ...target,
      serverTimeoutMs,
      workerNoticeMs,
      workerTimeoutMs,
      onNotice,
      statusEveryMs: pollMs,
      status: () => bestEffortStatus(client, runId),
      onStatus,
    });
    if (store) {
      // A finished run's result holds every node's final state; a failed one's comes from the query (or,
      // with no worker to answer it, the failure alone) — the record always ends terminal.
      const final =
        outcome.state === 'succeeded'
          ? { runId, state: 'succeeded' as const, nodes: (outcome.result as DagWorkflowResult).nodes }
          : { ...(await bestEffortStatus(client, runId)), state: outcome.state };
      await saveTemporalRunRecord(store, dag, final, { startedAt, endedAt: new Date() });
    }
    if (outcome.state !== 'succeeded') throw unwrapWorkflowError(outcome.error);
    return outcome.result as DagWorkflowResult;
  } finally {
    if (owned) await client.connection.close();
  }
}

/** Status of a run by id (its workflow id), for `dro status RUN_ID --engine temporal`. */
export async function getTemporalRunStatus(opts: TemporalTarget & { runId: string }): Promise<DagRunStatus> {
  // connectClient names the address and what to check when the server cannot be reached.
  const client = await connectClient(opts);
  try {
    return await queryDagStatus(client, opts.runId);
  } finally {
    await client.connection.close();
  }
}

export async function cancelTemporalRun(opts: TemporalTarget & { runId: string }): Promise<void> {
  const client = await connectClient(opts);
  try {
    await client.workflow.getHandle(opts.runId).cancel();
  } finally {
    await client.connection.close();
  }
}

/** Starts a multi-model experiment and waits until it ends, like runDagOnTemporal. */
export async function runExperimentOnTemporal(
  opts: TemporalTarget & ExperimentInput & WaitSettings & { client?: Client; onStatus?(status: DagRunStatus): void; pollMs?: number },
): Promise<ExperimentResult> {
  const { address, namespace, client: given, serverTimeoutMs, workerNoticeMs, workerTimeoutMs, onNotice, onStatus, pollMs, ...input } = opts;
  const target = given ? targetOf(given) : resolveTarget({ address, namespace });
  const { client, owned } = await clientFor({ ...target, client: given });
  try {
    const handle = await startExperimentRun(client, input);
    const outcome = await waitForWorkflow(client, handle.workflowId, {
      ...target,
      serverTimeoutMs,
      workerNoticeMs,
      workerTimeoutMs,
      onNotice,
      statusEveryMs: pollMs,
      status: () => bestEffortStatus(client, handle.workflowId),
      onStatus,
    });
    if (outcome.state !== 'succeeded') throw unwrapWorkflowError(outcome.error);
    return outcome.result as ExperimentResult;
  } finally {
    if (owned) await client.connection.close();
  }
}

/**
 * A failed workflow surfaces as WorkflowFailedError("Workflow execution failed") whose cause carries the
 * real message; give users that message, keeping the Temporal error as cause.
 */
export class DagRunFailedError extends Error {
  override name = 'DagRunFailedError';
  constructor(
    message: string,
    /** "BadInputError" for input errors (never retried), else the stage's error type. */
    readonly type: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function unwrapWorkflowError(err: unknown): unknown {
  if (!(err instanceof WorkflowFailedError)) return err;
  const cause = err.cause as (Error & { type?: string }) | undefined;
  if (!cause) return err;
  return new DagRunFailedError(cause.message, cause.type, { cause: err });
}
