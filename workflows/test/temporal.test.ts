/**
 * The DAG workflow against a REAL Temporal server (dev server or test server binary), with a real worker
 * in this process and the real artifact store on disk. One server and one workflow bundle for the file.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, workflowBundle, type DroWorker } from '../src/worker.ts';
import { connectClient, queryDagStatus, runDagOnTemporal, DagRunFailedError, startDagRun, startExperimentRun } from '../src/client.ts';
import { createNodeExecutor } from '../src/executor.ts';
import { formatTemporalStatus } from '../src/status-format.ts';
import type { DagRunStatus, DagWorkflowResult, ExperimentResult } from '../src/shared.ts';
import { testStages, totalSchema } from './fixtures/stages.ts';
import { squaresDag } from './fixtures/dags.ts';
import { auditStore, openStore, tempDir } from './fixtures/env.ts';
import { runWithLocalRunner } from './fixtures/local.ts';
import { loadRun, type Dag, type RetryPolicy } from '@dro/pipeline';

let server: TemporalServerHandle;
let worker: DroWorker;
let client: Client;
const storeDir = tempDir('dro-wf-store-');
const scratch = tempDir('dro-wf-scratch-');
const store = openStore(storeDir.dir);
const finishedRunIds: string[] = [];

beforeAll(async () => {
  installQuietRuntime('ERROR');
  server = await startTemporalServer();
  const t0 = Date.now();
  await workflowBundle();
  console.log(`temporal ${server.kind} at ${server.address}; workflow bundle built in ${Date.now() - t0} ms`);
  worker = await startWorker({
    queues: ['cpu', 'model'],
    address: server.address,
    namespace: server.namespace,
    stages: testStages,
    execute: createNodeExecutor({ store, stages: testStages }),
    handleSignals: false,
    shutdownGraceMs: 2_000,
    // More than any test's DAG concurrency, so the workflow's limit is the one that binds.
    concurrency: { cpu: 6 },
  });
  client = await connectClient({ address: server.address, namespace: server.namespace });
});

afterAll(async () => {
  await client?.connection.close();
  await worker?.shutdown();
  await server?.stop();
  storeDir.remove();
  scratch.remove();
});

describe('dagWorkflow on a real Temporal server', () => {
  it('runs the DAG across dro-cpu and dro-model, reports heartbeat progress, and matches the digests of the local runner', async () => {
    const dag = squaresDag('digests', { square: { steps: 8, stepMs: 400 } });
    const seen: DagRunStatus[] = [];
    const runId = `digests-${Date.now()}`;
    const result = await runDagOnTemporal({
      dag,
      runId,
      address: server.address,
      namespace: server.namespace,
      storeRoot: storeDir.dir,
      heartbeatTimeoutMs: 2_000,
      pollMs: 200,
      onStatus: (s) => seen.push(s),
    });
    finishedRunIds.push(runId);

    const local = tempDir('dro-wf-local-');
    try {
      const reference = await runWithLocalRunner(dag, local.dir);
      expect(result.outputs).toEqual(reference);
    } finally {
      local.remove();
    }
    const total = await store.getJson<{ sum: number }>(result.outputs.total!.total!);
    expect(total.sum).toBeGreaterThan(0);
    expect(result.outputs.total!.total!.schema).toBe(totalSchema.name);

    const queues = Object.fromEntries(result.nodes.map((n) => [n.id, n.queue]));
    expect(queues).toEqual({ numbers: 'dro-cpu', square: 'dro-model', total: 'dro-cpu' });
    // The stage's progress reached the client through heartbeats while the model node ran.
    const squareProgress = seen.flatMap((s) => s.nodes.filter((n) => n.id === 'square' && n.state === 'running' && n.progress));
    expect(squareProgress.length).toBeGreaterThan(0);
    expect(Math.max(...squareProgress.map((n) => n.progress!.done))).toBeGreaterThan(0);
    expect(squareProgress.at(-1)!.progress).toMatchObject({ nodeId: 'square', total: 8 });

    const status = await queryDagStatus(client, runId);
    expect(status.state).toBe('succeeded');
    expect(status.done).toBe(3);

    const text = formatTemporalStatus(status);
    expect(text.split('\n')[0]).toBe(`run ${runId}  DAG "digests"  succeeded  3/3 nodes done (engine temporal)`);
    expect(text).toMatch(new RegExp(`square +test-slow-square +dro-model +succeeded +miss +\\S+ +squares=${result.outputs.square!.squares!.digest.slice(0, 12)}`));
    const live = squareProgress.at(-1)!;
    expect(formatTemporalStatus({ ...status, state: 'running', nodes: [live] })).toContain(`running ${live.progress!.done}/8 step ${live.progress!.done}/8`);

    // Recorded in the store like a local run, so `dro status` and gc see it.
    const record = await loadRun(store, runId);
    expect(record).toMatchObject({ runId, engine: 'temporal', status: 'succeeded', dagName: 'digests' });
    expect(Object.fromEntries(record.nodes.map((n) => [n.id, n.outputs]))).toEqual(result.outputs);
    expect(record.nodes.map((n) => [n.status, n.cacheHit, n.attempts, n.stageVersion])).toEqual([
      ['succeeded', false, 1, '1'],
      ['succeeded', false, 1, '1'],
      ['succeeded', false, 1, '1'],
    ]);
    expect(status.nodes.every((n) => n.state === 'succeeded' && n.worker)).toBe(true);
  });

  it('never runs more nodes at once than the DAG concurrency limit, and does run that many', async () => {
    const dag: Dag = {
      name: 'parallel',
      nodes: ['a', 'b', 'c', 'd', 'e'].map((tag) => ({ id: tag, stage: 'test-sleep', params: { ms: 400, tag: `${tag}-${Date.now()}` }, inputs: {} })),
    };
    const runId = `parallel-${Date.now()}`;
    const result = await runDagOnTemporal({ dag, runId, address: server.address, concurrency: 2 });
    finishedRunIds.push(runId);
    // Node intervals in workflow time: from scheduling to the completion the workflow saw.
    const events = result.nodes.flatMap((n) => [
      { t: Date.parse(n.startedAt!), delta: 1 },
      { t: Date.parse(n.finishedAt!), delta: -1 },
    ]);
    events.sort((x, y) => x.t - y.t || x.delta - y.delta); // an end at the same instant frees its slot first
    let running = 0;
    let peak = 0;
    for (const e of events) peak = Math.max(peak, (running += e.delta));
    expect(peak).toBe(2);
  });

  it('fails with a non-retryable BadInputError naming the field when params are bad (before running anything)', async () => {
    const dag: Dag = { name: 'bad-params', nodes: [{ id: 'strict', stage: 'test-strict', params: { threshold: 'high' }, inputs: {} }] };
    const runId = `bad-params-${Date.now()}`;
    const err = await runDagOnTemporal({ dag, runId, address: server.address }).catch((e: unknown) => e);
    finishedRunIds.push(runId);
    expect(err).toBeInstanceOf(DagRunFailedError);
    expect((err as DagRunFailedError).type).toBe('BadInputError');
    expect((err as Error).message).toBe('DAG "bad-params": node "strict" params: params.threshold: expected a number, got "high"');
  });

  it('surfaces a BadInputError thrown by a running stage unchanged, without retrying it', async () => {
    const counterDir = scratch.dir;
    const dag: Dag = {
      name: 'bad-input',
      nodes: [
        { id: 'numbers', stage: 'test-numbers', params: { count: 3, seed: 1 }, inputs: {} },
        { id: 'check', stage: 'test-reject-input', params: { counterDir }, inputs: { numbers: { node: 'numbers', output: 'numbers' } } },
      ],
    };
    const runId = `bad-input-${Date.now()}`;
    const err = await runDagOnTemporal({ dag, runId, address: server.address, storeRoot: storeDir.dir, retry: { initialDelayMs: 50 } }).catch(
      (e: unknown) => e,
    );
    finishedRunIds.push(runId);
    expect(err).toBeInstanceOf(DagRunFailedError);
    expect((err as DagRunFailedError).type).toBe('BadInputError');
    expect((err as Error).message).toMatch(/^node "check" \(stage test-reject-input\) failed: input "numbers" \([0-9a-f]{12}\): row 0: expected a negative value$/);
    expect(readFileSync(path.join(counterDir, 'reject-input.calls'), 'utf8').trim().split('\n')).toHaveLength(1);
    const status = await queryDagStatus(client, runId);
    expect(status.state).toBe('failed');
    expect(status.nodes.map((n) => n.state)).toEqual(['succeeded', 'failed']);
    const record = await loadRun(store, runId);
    expect(record.status).toBe('failed');
    expect(record.nodes[1]!.error).toEqual({ name: 'BadInputError', message: (err as Error).message.replace(/^node "check" \(stage test-reject-input\) failed: /, '') });
  });

  it('retries transient errors with backoff until the stage succeeds', async () => {
    const dag: Dag = { name: 'flaky', nodes: [{ id: 'flaky', stage: 'test-flaky', params: { counterDir: scratch.dir, failTimes: 2 }, inputs: {} }] };
    const runId = `flaky-${Date.now()}`;
    const result = await runDagOnTemporal({ dag, runId, address: server.address, retry: { initialDelayMs: 100, maxAttempts: 4 } });
    finishedRunIds.push(runId);
    expect(await store.getJson(result.outputs.flaky!.total!)).toEqual({ sum: 3 });
    expect(readFileSync(path.join(scratch.dir, 'flaky.calls'), 'utf8').trim().split('\n')).toHaveLength(3);
  });

  it("takes the local runner's RetryPolicy: maxAttempts 1 is one attempt, the transient error fails the run", async () => {
    const dag: Dag = { name: 'flaky-once', nodes: [{ id: 'flaky', stage: 'test-flaky', params: { counterDir: path.join(scratch.dir, 'once'), failTimes: 1 }, inputs: {} }] };
    mkdirSync(path.join(scratch.dir, 'once'), { recursive: true });
    const runId = `flaky-once-${Date.now()}`;
    const retry: Partial<RetryPolicy> = { initialDelayMs: 100, maxAttempts: 1 };
    await expect(runDagOnTemporal({ dag, runId, address: server.address, retry })).rejects.toThrow();
    finishedRunIds.push(runId);
    expect(readFileSync(path.join(scratch.dir, 'once', 'flaky.calls'), 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('cancellation stops the running stage cleanly: nodes cancelled, nothing partial in the store', async () => {
    const dag = squaresDag('cancel', { seed: 99, square: { steps: 100, stepMs: 200 } });
    const handle = await startDagRun(client, dag, { runId: `cancel-${Date.now()}`, heartbeatTimeoutMs: 1_000 });
    await waitFor(async () => (await queryDagStatus(client, handle.workflowId)).nodes.find((n) => n.id === 'square')?.state === 'running');
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    finishedRunIds.push(handle.workflowId);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    const status = await queryDagStatus(client, handle.workflowId);
    expect(status.state).toBe('cancelled');
    expect(status.nodes.map((n) => [n.id, n.state])).toEqual([['numbers', 'succeeded'], ['square', 'cancelled'], ['total', 'cancelled']]);
    const audit = auditStore(storeDir.dir);
    expect(audit.corrupt).toEqual([]);
    expect(audit.orphanManifests).toEqual([]);
  });

  it('a multi-model experiment runs one child workflow per model', async () => {
    const runId = `experiment-${Date.now()}`;
    const handle = await startExperimentRun(client, {
      runId,
      models: [
        { name: 'alpha', dag: squaresDag('alpha', { seed: 1 }) },
        { name: 'beta', dag: squaresDag('beta', { seed: 2 }) },
      ],
      child: { concurrency: 2 },
    });
    const result = (await handle.result()) as ExperimentResult;
    finishedRunIds.push(runId, `${runId}.alpha`, `${runId}.beta`);
    expect(Object.keys(result.models).sort()).toEqual(['alpha', 'beta']);
    const alpha: DagWorkflowResult = result.models.alpha!;
    const beta: DagWorkflowResult = result.models.beta!;
    expect(alpha.outputs.total!.total!.digest).not.toBe(beta.outputs.total!.total!.digest);
    expect((await queryDagStatus(client, `${runId}.alpha`)).state).toBe('succeeded');
    const experiment = await handle.query<{ models: { name: string; state: string }[] }>('experimentStatus');
    expect(experiment.models.map((m) => [m.name, m.state])).toEqual([['alpha', 'succeeded'], ['beta', 'succeeded']]);
    // Status by the experiment's run id: every model's nodes as one DAG.
    const merged = await queryDagStatus(client, runId);
    expect(merged).toMatchObject({ runId, state: 'succeeded', done: 6, total: 6 });
    expect(merged.nodes.map((n) => n.outputs?.total?.digest).filter(Boolean)).toEqual([alpha.outputs.total!.total!.digest, beta.outputs.total!.total!.digest]);
  });

  it('cancelling an experiment cancels every per-model child run', async () => {
    const runId = `experiment-cancel-${Date.now()}`;
    const slow = { steps: 100, stepMs: 100 };
    const handle = await startExperimentRun(client, {
      runId,
      models: [
        { name: 'alpha', dag: squaresDag('alpha', { seed: 11, square: slow }) },
        { name: 'beta', dag: squaresDag('beta', { seed: 12, square: slow }) },
      ],
      child: { heartbeatTimeoutMs: 1_000 },
    });
    await waitFor(async () => (await queryDagStatus(client, runId)).nodes.some((n) => n.id === 'square' && n.state === 'running'));
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    finishedRunIds.push(runId, `${runId}.alpha`, `${runId}.beta`);
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    for (const child of ['alpha', 'beta']) {
      const status = await queryDagStatus(client, `${runId}.${child}`);
      expect(status.state, child).toBe('cancelled');
      expect(status.nodes.find((n) => n.id === 'square')!.state).toBe('cancelled');
    }
    expect((await queryDagStatus(client, runId)).state).toBe('cancelled');
  });

  it('recorded histories of every run above replay deterministically against the current workflow code', async () => {
    expect(finishedRunIds.length).toBeGreaterThanOrEqual(8);
    const bundle = await workflowBundle();
    for (const workflowId of finishedRunIds) {
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: bundle }, history, workflowId);
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
