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
import type { Dag, DagNode, ProgressEvent, StageLogger } from './stage.ts';
import { resolveInputs, validateDag } from './dag.ts';
import { executeNode, type ExecuteNodeRequest, type NodeExecution } from './execute-node.ts';
import { shardDispatchOrder } from './shard-order.ts';
import { mergeShards, planShards, type Shard } from './shards.ts';
import { DEFAULT_RETRY_POLICY, backoffDelayMs, isRetryable, sleep, type RetryPolicy } from './retry.ts';
import { RunRecordSaveError, newRunId, saveRunEnding, saveRunRecord, type NodeRecord, type RunRecord } from './run-record.ts';
import { createProgressReporter, type RunProgressReporter } from './progress.ts';
import type { StageLookup } from './registry.ts';
import { loadDagPlugins } from './stage-plugins.ts';
import { ModelCache } from './model-cache.ts';

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
  /**
   * Loaded models shared by the run's model nodes and shards (see model-cache.ts). Default: a cache of one
   * model for this run, cleared (its model disposed) when the run ends; one passed in is left as it is.
   */
  models?: ModelCache;
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
  const models = options.models ?? new ModelCache();
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

  // Slots bound what runs at once: a node, or one shard of a sharded node, holds one (and a model slot
  // when its stage needs the model) while it runs; waiting for its shards, a sharded node holds none.
  const slots = new Slots(concurrency);
  const modelSlots = new Slots(modelConcurrency);
  const running = new Map<string, Promise<void>>();
  let failed = false;
  const stopped = () => failed || signal.aborted;
  /** Nodes whose task was started (it may still wait for a slot, or have ended without running). */
  const launched = new Set<string>();
  const isReady = (n: NodeRecord) =>
    n.status === 'pending' && !launched.has(n.id) && [...plan.dependsOn.get(n.id)!].every((dep) => nodeRecord.get(dep)!.status === 'succeeded');

  let loopError: { error: unknown } | null = null;
  try {
    while (true) {
      if (!stopped()) {
        for (const n of record.nodes) {
          if (!isReady(n)) continue;
          launched.add(n.id);
          const task = runNode(n, nodeById.get(n.id)!).then(async () => {
            running.delete(n.id);
            if (n.status === 'failed') failed = true;
            if (n.status === 'pending') return; // never started: the run stopped first
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
  if (!options.models) models.clear();
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

  /** `work` holding a slot (and a model slot for a model stage); null when the run stopped while it waited. */
  async function inSlot<T>(needs: 'cpu' | 'model', work: () => Promise<T>): Promise<{ value: T } | null> {
    await slots.acquire();
    if (needs === 'model') await modelSlots.acquire().catch((e: unknown) => { slots.release(); throw e; });
    try {
      return stopped() ? null : { value: await work() };
    } finally {
      if (needs === 'model') modelSlots.release();
      slots.release();
    }
  }

  /** `attempt` with retries and backoff for transient errors; `label` names the node or shard retried. */
  async function withRetries<T>(n: NodeRecord, label: string, attempt: (number: number) => Promise<T>): Promise<T> {
    for (let number = 1; ; number++) {
      try {
        n.attempts = Math.max(n.attempts, number);
        return await attempt(number);
      } catch (error) {
        if (!isRetryable(error, signal) || number >= retry.maxAttempts) throw error;
        const delayMs = backoffDelayMs(retry, number + 1);
        reporter.nodeRetrying(label, { attempt: number + 1, delayMs, error: error instanceof Error ? error.message : String(error) });
        await sleep(delayMs, signal).catch(() => {
          throw error; // aborted while waiting: the node ends "cancelled"
        });
      }
    }
  }

  async function runNode(n: NodeRecord, node: DagNode): Promise<void> {
    const stage = plan.stageOf.get(n.id)!;
    const nodeStarted = performance.now();
    const log: StageLogger = {
      info: (message, fields) => reporter.log(n.id, 'info', message, fields),
      warn: (message, fields) => reporter.log(n.id, 'warn', message, fields),
    };
    const start = () => {
      if (n.status !== 'pending') return;
      n.status = 'running';
      n.startedAt = new Date().toISOString();
      reporter.nodeStarted(n.id, stage.name);
    };
    const request = {
      store,
      stage,
      node,
      inputs: resolveInputs(node, (id) => nodeRecord.get(id)?.outputs),
      signal,
      log,
      progress: (event: ProgressEvent) => reporter.nodeProgress(n.id, event),
      force: options.force?.includes(n.id) ?? false,
      models,
    };
    const whole = () => inSlot(stage.needs, () => (start(), withRetries(n, n.id, () => executeNode(request))));
    try {
      let result: { value: NodeExecution } | null;
      if (stage.rowParallel && node.shardSize !== undefined) {
        const planned = await inSlot('cpu', () => (start(), withRetries(n, n.id, () => planShards(request))));
        if (planned === null) result = null;
        else if (planned.value.kind === 'cached') result = { value: planned.value.execution };
        else if (planned.value.kind === 'whole') result = await whole();
        else result = await runShards(n, request, planned.value.shards);
      } else {
        result = await whole();
      }
      if (result === null) {
        if (n.status === 'pending') return; // never started
        if (signal.aborted) throw abortError(signal);
        // A sharded node whose remaining shards did not start because another node failed (fail-fast).
        n.status = 'skipped';
        n.error = { name: 'Error', message: 'stopped when another node failed; its finished shards are cached' };
      } else {
        n.status = 'succeeded';
        n.outputs = result.value.outputs;
        n.cacheHit = result.value.cacheHit;
        n.cacheKey = result.value.cacheKey;
        // Local convention: a cache hit started the stage one time fewer than it was looked up.
        if (result.value.cacheHit && !n.shards) n.attempts -= 1;
      }
    } catch (error) {
      n.status = signal.aborted ? 'cancelled' : 'failed';
      n.error = { name: error instanceof Error ? error.name : 'Error', message: error instanceof Error ? error.message : String(error) };
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

  /** Every shard under the slots (each retried alone), then the merge; the first shard failure fails the node. */
  async function runShards(n: NodeRecord, request: ExecuteNodeRequest, shards: Shard[]): Promise<{ value: NodeExecution } | null> {
    const stage = plan.stageOf.get(n.id)!;
    const progress = (n.shards = { total: shards.length, done: 0, cacheHits: 0 });
    const report = () => {
      reporter.nodeProgress(n.id, { done: progress.done, total: progress.total, message: 'shards' });
      // `dro status` reads shard progress from the saved record.
      save().catch(() => undefined);
    };
    report();
    let shardFailure: { error: unknown } | null = null;
    // Slots are first come first served: shards queue for them costliest first (shard-order.ts), and the
    // results go back in shard order for the merge.
    const results: Array<NodeExecution | null> = new Array(shards.length).fill(null);
    await Promise.all(
      shardDispatchOrder(shards.map((s) => s.cost)).map(async (k) => {
        const shard = shards[k]!;
        const ran = await inSlot(stage.needs, async () => {
          if (shardFailure) return null;
          try {
            return await withRetries(n, shard.node.id, () => executeNode({ ...request, node: shard.node, inputs: shard.inputs, progress: undefined }));
          } catch (error) {
            shardFailure ??= { error };
            return null;
          }
        });
        const execution = ran?.value ?? null;
        if (execution) {
          progress.done++;
          if (execution.cacheHit) progress.cacheHits++;
          report();
        }
        results[k] = execution;
      }),
    );
    if (shardFailure) throw (shardFailure as { error: unknown }).error;
    if (results.some((r) => r === null)) return null;
    return inSlot('cpu', () => withRetries(n, n.id, () => mergeShards(request, results.map((r) => r!.outputs))));
  }
}

/** A counting semaphore, first come first served. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(size: number) {
    this.free = size;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('the run was cancelled', 'AbortError');
}
