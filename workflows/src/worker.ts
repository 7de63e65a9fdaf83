/**
 * A DRO worker process: one Temporal Worker per activity queue it serves (dro-cpu, dro-model) plus one on
 * the workflow queue (orchestration + DAG planning), all in one process sharing one connection.
 *
 * Model workers pick their tfjs backend once, at start, through the LLM runtime's initBackend; every
 * worker writes through the same artifact store root (a shared filesystem path across machines).
 * SIGTERM/SIGINT drain gracefully: polling stops, running activities get `shutdownGraceMs` to finish
 * (then they are cancelled and the workflow retries them elsewhere, where the cache makes it cheap).
 */
import { fileURLToPath } from 'node:url';
import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type LogLevel,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { openStore } from '@dro/artifacts';
import { createActivities, type NodeExecutor } from './activities.ts';
import { TemporalConnectError, unreachableMessage } from './connect.ts';
import { createNodeExecutor } from './executor.ts';
import type { PluginAllowlist, StageLookup } from '@dro/pipeline';
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE, TASK_QUEUES, WORKFLOW_TASK_QUEUE, type QueueName } from './shared.ts';

export interface StartWorkerOptions {
  queues: QueueName[];
  /** host:port of the Temporal frontend. */
  address?: string;
  namespace?: string;
  /** tfjs backend for model queues ("wasm", "cpu", "tensorflow", "tensorflow-gpu"); default: the LLM runtime's choice. */
  backend?: string;
  /** The LLM runtime's initBackend; called once for workers that serve the model queue. */
  initBackend?(name?: string): Promise<string> | string;
  /** The stage registry (a StageRegistry, a Map or a lookup function). */
  stages: StageLookup;
  /** The stage plugins a DAG may name on this worker (parsePluginAllowlist of @dro/pipeline); default none. */
  allowPlugins?: PluginAllowlist;
  /**
   * Runs one node. Default: the spine's executeNode over the store at `storeRoot` (every worker of a
   * cluster must point at the same store: a shared directory or an s3:// location).
   */
  execute?: NodeExecutor;
  /** Store for the default executor: a directory or an s3://bucket/prefix URI ($DRO_STORE or .dro/store when omitted). */
  storeRoot?: string;
  /** Serve the workflow queue too (default true). */
  serveWorkflows?: boolean;
  /** Activities of one queue running at once in this process (default cpu 2, model 1: one model in memory). */
  concurrency?: Partial<Record<QueueName, number>>;
  shutdownGraceMs?: number;
  /** Install SIGTERM/SIGINT handlers that drain (default true). */
  handleSignals?: boolean;
  identity?: string;
  /** Called with the bundling time so the CLI can show it. */
  onBundled?(ms: number): void;
}

export interface DroWorker {
  queues: string[];
  backend: string | null;
  /** Resolves when every Worker has stopped (after shutdown()). Rejects if one crashed. */
  done: Promise<void>;
  /** Stop polling, wait for running activities (up to the grace time), stop. */
  shutdown(): Promise<void>;
}

let bundlePromise: Promise<WorkflowBundleWithSourceMap> | null = null;

/** Webpack-bundles workflows.ts once per process; every Worker of the process reuses the bundle. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundlePromise ??= bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)),
    logger: quietBundlerLogger,
  });
  return bundlePromise;
}

const quietBundlerLogger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string, meta?: unknown) => console.warn(message, meta ?? ''),
  error: (message: string, meta?: unknown) => console.error(message, meta ?? ''),
  log: () => undefined,
};

let runtimeInstalled = false;

/**
 * Routes the SDK's own logs (worker state changes, activity starts) through a logger at `level`; call once
 * per process before startWorker (tests use WARN to keep output readable). Later calls are ignored.
 */
export function installQuietRuntime(level: LogLevel = 'WARN'): void {
  if (runtimeInstalled) return;
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      // Activity-only Workers (dro-cpu, dro-model) do not poll workflow tasks by design.
      if (entry.message.startsWith('No workflows registered') || entry.message.startsWith('No Nexus services')) return;
      const meta = entry.meta ? ` ${JSON.stringify(entry.meta, (_k, v: unknown) => (v instanceof Error ? v.message : v))}` : '';
      process.stderr.write(`${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}${meta}\n`);
    }),
  });
  runtimeInstalled = true;
}


export async function startWorker(opts: StartWorkerOptions): Promise<DroWorker> {
  if (opts.queues.length === 0 && opts.serveWorkflows === false) throw new Error('startWorker: nothing to serve (no queues, no workflows)');
  // The LLM runtime owns backend choice (@dro/llm initBackend, passed in by the CLI so this package does
  // not load tfjs); a model worker fixes it once per process, before any model stage runs.
  const backend = opts.queues.includes('model') && opts.initBackend ? await opts.initBackend(opts.backend) : null;
  const t0 = Date.now();
  const bundle = opts.serveWorkflows === false ? null : await workflowBundle();
  if (bundle) opts.onBundled?.(Date.now() - t0);
  const address = opts.address ?? DEFAULT_ADDRESS;
  const connection = await NativeConnection.connect({ address }).catch((err: unknown) => {
    throw new TemporalConnectError(unreachableMessage(address, opts.namespace ?? DEFAULT_NAMESPACE, err), { cause: err });
  });
  const execute = opts.execute ?? createNodeExecutor({ store: openStore(opts.storeRoot), stages: opts.stages });
  const activities = createActivities({ stages: opts.stages, execute, workerIdentity: opts.identity, allowPlugins: opts.allowPlugins });
  const common = {
    connection,
    namespace: opts.namespace ?? DEFAULT_NAMESPACE,
    shutdownGraceTime: opts.shutdownGraceMs ?? 30_000,
    ...(opts.identity ? { identity: opts.identity } : {}),
  };
  const workers: Worker[] = [];
  try {
    for (const queue of opts.queues) {
      workers.push(
        await Worker.create({
          ...common,
          taskQueue: TASK_QUEUES[queue],
          // A sharded node's plan and merge go to dro-cpu; every activity queue serves them alike.
          activities: { runStageActivity: activities.runStageActivity, planShardsActivity: activities.planShardsActivity, mergeShardsActivity: activities.mergeShardsActivity },
          maxConcurrentActivityTaskExecutions: opts.concurrency?.[queue] ?? (queue === 'model' ? 1 : 2),
        }),
      );
    }
    if (bundle) {
      workers.push(
        await Worker.create({
          ...common,
          taskQueue: WORKFLOW_TASK_QUEUE,
          workflowBundle: bundle,
          activities: { planDag: activities.planDag },
        }),
      );
    }
  } catch (err) {
    execute.close?.();
    await connection.close();
    throw err;
  }

  const done = Promise.all(workers.map((w) => w.run()))
    .then(
      () => connection.close(),
      async (err: unknown) => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await connection.close().catch(() => undefined);
        throw err;
      },
    )
    // Every activity has ended: the models the executor kept loaded between them are disposed.
    .finally(() => execute.close?.());
  const shutdown = async (): Promise<void> => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await done.catch(() => undefined);
  };
  if (opts.handleSignals !== false) {
    const onSignal = (): void => void shutdown();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    void done.finally(() => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }).catch(() => undefined);
  }
  return {
    queues: [...opts.queues.map((q) => TASK_QUEUES[q]), ...(bundle ? [WORKFLOW_TASK_QUEUE] : [])],
    backend,
    done,
    shutdown,
  };
}

