/**
 * Client side of a Temporal run: start a DAG (or a multi-model experiment), wait for it, query its status.
 * Status = the workflow's own view (per-node state, outputs, errors, via a query) merged with what only
 * the server knows: each running node's attempt and last heartbeat (the stage's progress).
 */
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { LocalArtifactStore } from '@dro/artifacts';
import { newRunId, type Dag } from '@dro/pipeline';
import { saveTemporalRunRecord } from './run-record.ts';
import type {
  DagRunStatus,
  DagWorkflowInput,
  DagWorkflowResult,
  ExperimentInput,
  ExperimentResult,
  ExperimentStatus,
  StageHeartbeat,
} from './shared.ts';
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE, WORKFLOW_TASK_QUEUE } from './shared.ts';

export interface TemporalTarget {
  /** host:port of the Temporal frontend (default localhost:7233). */
  address?: string;
  namespace?: string;
}

export async function connectClient(target: TemporalTarget = {}): Promise<Client> {
  const connection = await Connection.connect({ address: target.address ?? DEFAULT_ADDRESS });
  return new Client({ connection, namespace: target.namespace ?? DEFAULT_NAMESPACE });
}

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
 * When no worker can answer the query (all down), falls back to the server's view of the run state.
 */
export async function queryDagStatus(client: Client, runId: string): Promise<DagRunStatus> {
  const handle = client.workflow.getHandle(runId);
  const description = await handle.describe();
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
    status = await handle.query<DagRunStatus>('dagStatus');
  } catch (err) {
    const state = ({ COMPLETED: 'succeeded', FAILED: 'failed', CANCELLED: 'cancelled', RUNNING: 'running' } as const)[
      description.status.name as 'COMPLETED'
    ];
    return { runId, dag: '?', state: state ?? 'failed', nodes: [], done: 0, total: 0, error: `status query failed: ${(err as Error).message}` };
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
  const experiment = await client.workflow.getHandle(runId).query<ExperimentStatus>('experimentStatus');
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

export interface RunDagOnTemporalOptions extends TemporalTarget, StartDagOptions {
  dag: Dag;
  /**
   * The store root the workers share, as seen from this machine. When given, the run is recorded there
   * (engine "temporal") at start and at the end, so `dro status` lists it and gc keeps its outputs.
   */
  storeRoot?: string;
  /** Called with the merged status every `pollMs` while the run is going (progress display). */
  onStatus?(status: DagRunStatus): void;
  pollMs?: number;
}

/** Starts a DAG run on Temporal and waits for it. Throws the workflow's failure (message kept). */
export async function runDagOnTemporal(opts: RunDagOnTemporalOptions): Promise<DagWorkflowResult> {
  const { dag, address, namespace, storeRoot, onStatus, pollMs, ...start } = opts;
  const client = await connectClient({ address, namespace });
  const store = storeRoot ? new LocalArtifactStore({ root: storeRoot }) : null;
  const runId = start.runId ?? newRunId();
  const startedAt = new Date();
  try {
    const handle = await client.workflow.start('dagWorkflow', {
      taskQueue: WORKFLOW_TASK_QUEUE,
      workflowId: runId,
      args: [{ ...start, dag, runId } satisfies DagWorkflowInput],
      memo: { dagName: dag.name, ...(storeRoot ? { storeRoot } : {}) },
    });
    if (store) await saveTemporalRunRecord(store, dag, { runId, state: 'running', nodes: [] }, { startedAt, endedAt: null });
    let timer: NodeJS.Timeout | undefined;
    if (onStatus) {
      const poll = async (): Promise<void> => {
        try {
          onStatus(await queryDagStatus(client, runId));
        } catch {
          // status is best effort while the run starts up
        }
        timer = setTimeout(() => void poll(), pollMs ?? 1000);
      };
      timer = setTimeout(() => void poll(), pollMs ?? 1000);
    }
    let outcome: { result: DagWorkflowResult } | { error: unknown };
    try {
      outcome = { result: (await handle.result()) as DagWorkflowResult };
    } catch (err) {
      outcome = { error: unwrapWorkflowError(err) };
    } finally {
      clearTimeout(timer);
    }
    if (store) {
      const final = await queryDagStatus(client, runId);
      await saveTemporalRunRecord(store, dag, final, { startedAt, endedAt: new Date() });
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.result;
  } finally {
    await client.connection.close();
  }
}

/** Status of a run by id (its workflow id), for `dro status RUN_ID --engine temporal`. */
export async function getTemporalRunStatus(opts: TemporalTarget & { runId: string }): Promise<DagRunStatus> {
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

export async function runExperimentOnTemporal(opts: TemporalTarget & ExperimentInput): Promise<ExperimentResult> {
  const { address, namespace, ...input } = opts;
  const client = await connectClient({ address, namespace });
  try {
    const handle = await startExperimentRun(client, input);
    return (await handle.result().catch((err: unknown) => Promise.reject(unwrapWorkflowError(err)))) as ExperimentResult;
  } finally {
    await client.connection.close();
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
