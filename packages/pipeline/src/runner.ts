/**
 * The local DAG runner: validates the DAG, then runs nodes in topological order, up to `concurrency` at
 * once (and at most `modelConcurrency` model stages, which each hold a model in memory). Each node goes
 * through executeNode (cache lookup → run → record), with retries and backoff for transient errors.
 *
 * Failure is fail-fast: after a node fails, nothing new starts; nodes already running finish. Abort
 * (SIGINT) is the same, and stages see it through ctx.signal. Because every artifact write is atomic and a
 * node is cached only after its outputs are committed, stopping at any point leaves nothing partial, and
 * rerunning the DAG resumes: finished nodes are cache hits.
 *
 * The run record is saved at the start, after every node and at the end. A save that fails mid-run is
 * reported and the run goes on; if the final save fails, the run index entry is still set to the run's
 * terminal status (saveRunEnding) and runDag throws RunRecordSaveError saying so — a run never ends
 * leaving "running" behind while its process is alive to say otherwise.
 */
import os from 'node:os';
import type { ArtifactRef, IndexedArtifactStore } from '@dro/artifacts';
import { BadInputError, codeVersion } from '@dro/artifacts';
import type { Dag, DagNode, StageLogger } from './stage.ts';
import { resolveInputs, validateDag } from './dag.ts';
import { executeNode } from './execute-node.ts';
import { DEFAULT_RETRY_POLICY, backoffDelayMs, isRetryable, sleep, type RetryPolicy } from './retry.ts';
import { RunRecordSaveError, newRunId, saveRunEnding, saveRunRecord, type NodeRecord, type RunRecord } from './run-record.ts';
import { createProgressReporter, type RunProgressReporter } from './progress.ts';
import type { StageLookup } from './registry.ts';
import { loadDagPlugins } from './stage-plugins.ts';

export interface RunDagOptions {
  store: IndexedArtifactStore;
  stages: StageLookup;
  /** Nodes running at once (default: CPU count, at most 4). */
  concurrency?: number;
  /** Model stages running at once (default 1: each holds a model in memory). */
  modelConcurrency?: number;
  retry?: Partial<RetryPolicy>;
  signal?: AbortSignal;
  /** Default: bars on a TTY, JSON lines otherwise, on stderr. */
  progress?: RunProgressReporter;
  runId?: string;
  /** Node ids to run even when cached. */
  force?: readonly string[];
}

/** Options that cannot mean anything (0 or fractional concurrency, a forced node not in the DAG) are errors, not clamped or ignored. */
function checkRunOptions(dag: Dag, options: RunDagOptions): void {
  for (const key of ['concurrency', 'modelConcurrency'] as const) {
    const v = options[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new BadInputError(`runDag: ${key} must be a whole number ≥ 1, got ${v}`);
  }
  const ids = new Set(dag.nodes.map((n) => n.id));
  const unknown = (options.force ?? []).filter((id) => !ids.has(id));
  if (unknown.length > 0) {
    throw new BadInputError(`runDag: force names ${unknown.map((id) => `"${id}"`).join(', ')}, not nodes of DAG "${dag.name}" (nodes: ${[...ids].join(', ')})`);
  }
}

export async function runDag(dag: Dag, options: RunDagOptions): Promise<RunRecord> {
  await loadDagPlugins(dag, options.stages);
  const plan = validateDag(dag, options.stages);
  checkRunOptions(dag, options);
  const store = options.store;
  const retry: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const concurrency = options.concurrency ?? Math.min(4, os.availableParallelism());
  const modelConcurrency = options.modelConcurrency ?? 1;
  const signal = options.signal ?? new AbortController().signal;
  const reporter = options.progress ?? createProgressReporter();
  const nodeById = new Map(dag.nodes.map((node) => [node.id, node]));
  const started = performance.now();

  const record: RunRecord = {
    runId: options.runId ?? newRunId(),
    dagName: dag.name,
    engine: 'local',
    status: 'running',
    startedAt: new Date().toISOString(),
    endedAt: null,
    durationMs: null,
    code: codeVersion(),
    owner: { host: os.hostname(), pid: process.pid },
    dag,
    nodes: plan.order.map((id) => ({
      id,
      stage: plan.stageOf.get(id)!.name,
      stageVersion: plan.stageOf.get(id)!.version,
      status: 'pending',
      cacheHit: null,
      cacheKey: null,
      attempts: 0,
      startedAt: null,
      endedAt: null,
      durationMs: null,
      outputs: {},
      error: null,
    })),
  };
  const nodeRecord = new Map(record.nodes.map((n) => [n.id, n]));

  // Saves are queued so a slow earlier save can never overwrite a later snapshot in the run index; a
  // failed save does not poison the queue (the next one still runs).
  let saving: Promise<unknown> = Promise.resolve();
  let lastSaved: ArtifactRef | null = null;
  const save = () => {
    const snapshot = structuredClone(record);
    const next = saving.catch(() => undefined).then(async () => {
      lastSaved = await saveRunRecord(store, snapshot);
    });
    saving = next;
    return next;
  };

  reporter.runStarted({ runId: record.runId, dagName: dag.name, nodes: dag.nodes.length });
  await save();

  const running = new Map<string, Promise<void>>();
  let failed = false;
  const isReady = (n: NodeRecord) =>
    n.status === 'pending' && [...plan.dependsOn.get(n.id)!].every((dep) => nodeRecord.get(dep)!.status === 'succeeded');
  const runningModels = () => [...running.keys()].filter((id) => plan.stageOf.get(id)!.needs === 'model').length;

  let loopError: { error: unknown } | null = null;
  try {
    while (true) {
      if (!failed && !signal.aborted) {
        for (const n of record.nodes) {
          if (running.size >= concurrency) break;
          if (!isReady(n)) continue;
          if (plan.stageOf.get(n.id)!.needs === 'model' && runningModels() >= modelConcurrency) continue;
          const task = runNode(n, nodeById.get(n.id)!).then(async () => {
            running.delete(n.id);
            if (n.status === 'failed') failed = true;
            await save().catch((error: unknown) => {
              reporter.log(n.id, 'warn', `could not save the run record (the run goes on): ${error instanceof Error ? error.message : String(error)}`);
            });
          });
          running.set(n.id, task);
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
  } catch (error) {
    loopError = { error };
  }
  // Every way out of the loop ends here: the run gets a terminal status, saved or reported as unsaved.
  await Promise.allSettled(running.values());
  for (const n of record.nodes) {
    if (n.status === 'pending') n.status = signal.aborted ? 'cancelled' : 'skipped';
  }
  record.status = signal.aborted ? 'cancelled' : record.nodes.every((n) => n.status === 'succeeded') ? 'succeeded' : 'failed';
  record.endedAt = new Date().toISOString();
  record.durationMs = Math.round(performance.now() - started);
  reporter.runFinished({ runId: record.runId, status: record.status, durationMs: record.durationMs });
  reporter.close();
  try {
    await save();
  } catch (error) {
    throw new RunRecordSaveError(record, error, await saveRunEnding(store, record, lastSaved, error));
  }
  if (loopError) throw loopError.error;
  return record;

  async function runNode(n: NodeRecord, node: DagNode): Promise<void> {
    const stage = plan.stageOf.get(n.id)!;
    n.status = 'running';
    n.startedAt = new Date().toISOString();
    const nodeStarted = performance.now();
    reporter.nodeStarted(n.id, stage.name);
    const log: StageLogger = {
      info: (message, fields) => reporter.log(n.id, 'info', message, fields),
      warn: (message, fields) => reporter.log(n.id, 'warn', message, fields),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const inputs: Record<string, ArtifactRef> = resolveInputs(node, (id) => nodeRecord.get(id)?.outputs);
        const result = await executeNode({
          store,
          stage,
          node,
          inputs,
          signal,
          log,
          progress: (event) => reporter.nodeProgress(n.id, event),
          force: options.force?.includes(n.id) ?? false,
        });
        n.status = 'succeeded';
        n.outputs = result.outputs;
        n.cacheHit = result.cacheHit;
        n.cacheKey = result.cacheKey;
        n.attempts = result.cacheHit ? attempt - 1 : attempt;
        break;
      } catch (error) {
        n.attempts = attempt;
        const message = error instanceof Error ? error.message : String(error);
        if (isRetryable(error, signal) && attempt < retry.maxAttempts) {
          const delayMs = backoffDelayMs(retry, attempt + 1);
          reporter.nodeRetrying(n.id, { attempt: attempt + 1, delayMs, error: message });
          try {
            await sleep(delayMs, signal);
            continue;
          } catch {
            // aborted while waiting: fall through to "cancelled"
          }
        }
        n.status = signal.aborted ? 'cancelled' : 'failed';
        n.error = { name: error instanceof Error ? error.name : 'Error', message };
        break;
      }
    }
    n.endedAt = new Date().toISOString();
    n.durationMs = Math.round(performance.now() - nodeStarted);
    reporter.nodeFinished(n.id, {
      status: n.status,
      cacheHit: n.cacheHit,
      attempts: n.attempts,
      durationMs: n.durationMs,
      ...(n.error ? { error: n.error.message } : {}),
    });
  }
}
