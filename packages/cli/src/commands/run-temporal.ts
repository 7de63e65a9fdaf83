/**
 * `dro run --engine temporal`: the experiment DAG on a Temporal cluster. One model → one dagWorkflow over
 * the whole DAG. Several models → experimentWorkflow (one child workflow per model's sub-graph), then the
 * cross-model report as a one-node DAG whose inputs are the children's output refs (split and stitched by
 * @dro/experiment's model-dags.ts).
 *
 * Workers (`dro worker`) must serve the dro-cpu and dro-model queues and share this store root.
 *
 * The client always ends and says what happened: the run's real outcome (also after a server restart,
 * which the wait rides out), or — when the server stays away or no worker polls a queue the run needs —
 * that it stopped waiting, with the run id to follow the run by.
 */
import type { ArtifactRef } from '@dro/artifacts';
import type { ExperimentOutcome, PreparedExperiment } from '@dro/experiment';
import type { Client } from '@temporalio/client';
import type { DagRunStatus } from '@dro/workflows';

/** An open connection to the cluster, made before anything is imported (an unreachable address fails first). */
export interface TemporalSession {
  client: Client;
  close(): Promise<void>;
}

export async function connectTemporal(target: { address?: string; namespace?: string }): Promise<TemporalSession> {
  const { connectClient } = await import('@dro/workflows');
  const client = await connectClient(target);
  return { client, close: () => client.connection.close() };
}

export interface TemporalRunOptions {
  concurrency?: number;
  /** --server-timeout / --worker-timeout, in seconds. */
  serverTimeoutS?: number;
  workerTimeoutS?: number;
}

export interface TemporalOutcome extends Omit<ExperimentOutcome, 'record'> {
  /** succeeded | failed | cancelled, or "unfinished" when the client stopped waiting (the run goes on). */
  status: string;
  runId: string;
  error?: string;
}

/** One progress line: stages done and running, or why there is no status yet (no worker answered). */
function statusLine(s: DagRunStatus): string {
  if (s.total === 0 && s.error) return `[temporal] no status yet: ${s.error}`;
  const running = s.nodes.filter((n) => n.state === 'running').map((n) => (n.activityState === 'scheduled' ? `${n.id} (waiting for a ${n.queue} worker)` : n.id));
  return `[temporal] ${s.done}/${s.total} stages done${running.length ? `; running ${running.join(', ')}` : ''}`;
}

export async function runExperimentOnTemporal(prepared: PreparedExperiment, session: TemporalSession, options: TemporalRunOptions = {}): Promise<TemporalOutcome> {
  const wf = await import('@dro/workflows');
  const { collectOutcome, modelDag, reportDag } = await import('@dro/experiment');
  const { newRunId } = await import('@dro/pipeline');
  const storeRoot = prepared.store.root;
  const wait = {
    client: session.client,
    ...(options.serverTimeoutS !== undefined ? { serverTimeoutMs: options.serverTimeoutS * 1000 } : {}),
    ...(options.workerTimeoutS !== undefined ? { workerTimeoutMs: options.workerTimeoutS * 1000 } : {}),
    onNotice: (message: string) => process.stderr.write(`[temporal] ${message}\n`),
    onStatus: (s: DagRunStatus) => process.stderr.write(`${statusLine(s)}\n`),
    pollMs: 5000,
  };
  const models = Object.keys(prepared.modelNodes);
  // The run id is chosen here, so every outcome — including a client that stopped waiting — can name it.
  const runId = newRunId();
  let outputs: Record<string, Record<string, ArtifactRef>>;
  try {
    if (models.length === 1) {
      const r = await wf.runDagOnTemporal({ ...wait, runId, dag: prepared.dag, storeRoot, concurrency: options.concurrency });
      outputs = r.outputs;
    } else {
      const exp = await wf.runExperimentOnTemporal({
        ...wait,
        runId,
        models: models.map((m) => ({ name: m, dag: modelDag(prepared, m) })),
        // --concurrency bounds the nodes of the whole run: the models' workflows share it (run.ts rejects fewer than one each).
        child: options.concurrency ? { concurrency: Math.floor(options.concurrency / models.length) } : undefined,
      });
      outputs = Object.assign({}, ...Object.values(exp.models).map((r) => r.outputs));
      const report = await wf.runDagOnTemporal({ ...wait, runId: `${runId}-report`, dag: reportDag(prepared, outputs), storeRoot });
      Object.assign(outputs, report.outputs);
    }
  } catch (err) {
    const status = err instanceof wf.TemporalWaitError ? 'unfinished' : err instanceof wf.RunCancelledError ? 'cancelled' : 'failed';
    return { status, runId, summary: [], objectives: [], comparisons: [], reportPath: null, error: (err as Error).message };
  }
  const outcome = await collectOutcome(prepared.store, prepared.dag, (id) => outputs[id], prepared.reportNode);
  return { status: 'succeeded', runId, ...outcome };
}
