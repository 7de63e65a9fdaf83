/**
 * Waiting for a run on Temporal until it ends, whatever happens meanwhile. Every wait ends, with the
 * run's real outcome or with an error that says what is wrong and how to follow the run:
 *
 * - The server goes away (a restart, the network): the client keeps asking for up to `serverTimeoutMs`,
 *   says so once, and carries on when the server is back — with persistent storage the run resumed there,
 *   and its outcome is what the server reports, not the error the client saw while it was gone.
 * - No worker polls a queue the run needs (the workflow queue always; a stage's queue while a node waits
 *   on it): the client says so plainly after `workerNoticeMs` and gives up after `workerTimeoutMs`; the
 *   run stays queued on the server.
 * - The workflow closes: succeeded with its result, or failed / cancelled / terminated / timed out, with
 *   the stage's own message.
 *
 * The wait polls the workflow's description (one cheap RPC per `pollMs`, each with a deadline) instead of
 * holding one long-poll open: a long-poll on a dead server fails only after the SDK's retries run out, and
 * then nothing in it says whether the run is still going.
 */
import { CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { isServerUnreachable } from './connect.ts';
import { WORKFLOW_TASK_QUEUE, type DagRunStatus } from './shared.ts';

export interface WaitOptions {
  address: string;
  namespace: string;
  /** How often the workflow's state is checked (default 1 s). */
  pollMs?: number;
  /** How often onStatus gets the run's status (default 5 s). */
  statusEveryMs?: number;
  /** How long the server may be unreachable before the client gives up (default 5 min). */
  serverTimeoutMs?: number;
  /** How long a needed queue may have no worker before the client says so (default 30 s). */
  workerNoticeMs?: number;
  /** How long a needed queue may have no worker before the client gives up (default 10 min). */
  workerTimeoutMs?: number;
  /** The run's status, for a progress display; absent = not polled. */
  status?(): Promise<DagRunStatus>;
  onStatus?(status: DagRunStatus): void;
  /** Plain-language notices: server lost / back, no worker on a queue. */
  onNotice?(message: string): void;
}

export const DEFAULT_SERVER_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_WORKER_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_WORKER_NOTICE_MS = 30_000;
/** Deadline of one describe / task-queue RPC: a server that does not answer in this time counts as gone. */
const RPC_DEADLINE_MS = 10_000;
/**
 * A poller counts as live when it polled this recently. A live worker re-polls as soon as a long-poll
 * returns, and the server holds a long-poll for at most about a minute, so 2 minutes is safely above it.
 */
const POLLER_FRESH_MS = 120_000;

/** temporal.api.enums.v1 values (the proto package is not a dependency of ours): TaskQueueKind NORMAL, TaskQueueType WORKFLOW / ACTIVITY. */
const TASK_QUEUE_KIND_NORMAL = 1;
type TaskQueueType = 1 | 2;
const TASK_QUEUE_TYPE_WORKFLOW: TaskQueueType = 1;
const TASK_QUEUE_TYPE_ACTIVITY: TaskQueueType = 2;

export type WorkflowOutcome = { state: 'succeeded'; result: unknown } | { state: 'failed' | 'cancelled'; error: Error };

/** The client stopped waiting before the run ended; the message says why and how to follow the run. */
export class TemporalWaitError extends Error {
  override name = 'TemporalWaitError';
  constructor(
    message: string,
    readonly reason: 'server-lost' | 'no-worker',
  ) {
    super(message);
  }
}

/** The run was cancelled (from the CLI's SIGINT, `temporal workflow cancel`, or a parent). */
export class RunCancelledError extends Error {
  override name = 'RunCancelledError';
}

/** The user-facing error of a closed, unsuccessful workflow: the stage's message, or what closed it. */
function closedOutcome(err: unknown): WorkflowOutcome {
  if (!(err instanceof WorkflowFailedError)) return { state: 'failed', error: err as Error };
  const cause = err.cause;
  if (cause instanceof CancelledFailure) return { state: 'cancelled', error: new RunCancelledError('the run was cancelled', { cause: err }) };
  if (cause instanceof TerminatedFailure) return { state: 'failed', error: new Error(`the run was terminated on the server${cause.message ? ` (${cause.message})` : ''}`, { cause: err }) };
  if (cause instanceof TimeoutFailure) return { state: 'failed', error: new Error('the run timed out on the server', { cause: err }) };
  return { state: 'failed', error: err };
}

const timestampMs = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number | null => {
  if (!ts?.seconds) return null;
  const s = ts.seconds as { toNumber?: () => number };
  return (typeof s.toNumber === 'function' ? s.toNumber() : Number(ts.seconds)) * 1000 + (ts.nanos ?? 0) / 1e6;
};

/** Wait until the workflow `workflowId` closes; see the file comment for what may happen meanwhile. */
export async function waitForWorkflow(client: Client, workflowId: string, opts: WaitOptions): Promise<WorkflowOutcome> {
  const pollMs = opts.pollMs ?? 1000;
  const serverTimeoutMs = opts.serverTimeoutMs ?? DEFAULT_SERVER_TIMEOUT_MS;
  const workerNoticeMs = opts.workerNoticeMs ?? DEFAULT_WORKER_NOTICE_MS;
  const workerTimeoutMs = opts.workerTimeoutMs ?? DEFAULT_WORKER_TIMEOUT_MS;
  const notice = opts.onNotice ?? (() => undefined);
  const handle = client.workflow.getHandle(workflowId);
  const follow = `\`dro status ${workflowId} --engine temporal --address ${opts.address}\``;
  const within = <T>(fn: () => Promise<T>) => client.withDeadline(Date.now() + RPC_DEADLINE_MS, fn);

  let lostSince: number | null = null;
  /** Per queue: since when it has had no live poller, and whether the user was told. */
  const idle = new Map<string, { since: number; told: boolean }>();
  let lastStatus: DagRunStatus | null = null;
  let lastStatusAt = -Infinity;

  const checkWorkers = async (queues: Array<{ name: string; type: TaskQueueType }>): Promise<void> => {
    const now = Date.now();
    // A queue no longer needed (its node started) starts a fresh count when it is needed again.
    for (const name of [...idle.keys()]) if (!queues.some((q) => q.name === name)) idle.delete(name);
    for (const q of queues) {
      const { pollers } = await within(() =>
        client.workflowService.describeTaskQueue({ namespace: opts.namespace, taskQueue: { name: q.name, kind: TASK_QUEUE_KIND_NORMAL }, taskQueueType: q.type }),
      );
      const live = (pollers ?? []).some((p) => {
        const at = timestampMs(p.lastAccessTime);
        return at !== null && now - at < POLLER_FRESH_MS;
      });
      const state = idle.get(q.name);
      if (live) {
        if (state?.told) notice(`a worker is polling task queue ${q.name} now`);
        idle.delete(q.name);
        continue;
      }
      if (!state) {
        idle.set(q.name, { since: now, told: false });
        continue;
      }
      const waited = now - state.since;
      if (!state.told && waited >= workerNoticeMs) {
        state.told = true;
        notice(
          `no worker is polling task queue ${q.name} at ${opts.address} (namespace ${opts.namespace}); nothing runs until one does — ` +
            `start one (\`dro worker --address ${opts.address}\`${q.name === WORKFLOW_TASK_QUEUE ? '' : ` serving ${q.name.replace(/^dro-/, '')}`}). ` +
            `Waiting up to ${Math.round(workerTimeoutMs / 1000)} s (--worker-timeout)`,
        );
      }
      if (waited >= workerTimeoutMs) {
        throw new TemporalWaitError(
          `no worker polled task queue ${q.name} at ${opts.address} (namespace ${opts.namespace}) for ${Math.round(waited / 1000)} s; ` +
            `the run ${workflowId} stays queued on the server: start a worker, then follow it with ${follow}`,
          'no-worker',
        );
      }
    }
  };

  for (;;) {
    try {
      const description = await within(() => handle.describe());
      if (lostSince !== null) {
        notice(`the Temporal server at ${opts.address} answers again after ${Math.round((Date.now() - lostSince) / 1000)} s; still waiting for run ${workflowId}`);
        lostSince = null;
      }
      if (description.status.name !== 'RUNNING') {
        try {
          return { state: 'succeeded', result: await within(() => handle.result()) };
        } catch (err) {
          if (isServerUnreachable(err)) throw err;
          return closedOutcome(err);
        }
      }
      if (opts.status && Date.now() - lastStatusAt >= (opts.statusEveryMs ?? 5000)) {
        lastStatusAt = Date.now();
        lastStatus = await opts.status();
        opts.onStatus?.(lastStatus);
      }
      // The workflow queue always; a stage queue while one of its nodes waits there to be picked up.
      const waitingOn = new Set((lastStatus?.nodes ?? []).filter((n) => n.state === 'running' && n.activityState === 'scheduled' && n.queue).map((n) => n.queue!));
      await checkWorkers([{ name: WORKFLOW_TASK_QUEUE, type: TASK_QUEUE_TYPE_WORKFLOW }, ...[...waitingOn].map((name) => ({ name, type: TASK_QUEUE_TYPE_ACTIVITY }))]);
    } catch (err) {
      if (!isServerUnreachable(err)) throw err;
      const now = Date.now();
      if (lostSince === null) {
        lostSince = now;
        notice(
          `lost the Temporal server at ${opts.address} (${(err as Error).message}); reconnecting for up to ${Math.round(serverTimeoutMs / 1000)} s ` +
            `(--server-timeout). With persistent storage the run continues once the server is back`,
        );
      } else if (now - lostSince >= serverTimeoutMs) {
        throw new TemporalWaitError(
          `the Temporal server at ${opts.address} has not answered for ${Math.round((now - lostSince) / 1000)} s; the run ${workflowId} may still ` +
            `be going there: when the server is back, follow it with ${follow}`,
          'server-lost',
        );
      }
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
