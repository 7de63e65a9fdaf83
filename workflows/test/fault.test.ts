/**
 * Fault tolerance against a real server: SIGKILL the worker process running a model activity; a fresh
 * worker picks the node up after the heartbeat timeout; the run completes with the same artifacts as an
 * undisturbed run, and the store holds nothing partial. Also: SIGTERM drains a worker gracefully.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, type DroWorker } from '../src/worker.ts';
import { connectClient, queryDagStatus, startDagRun } from '../src/client.ts';
import { createNodeExecutor } from '../src/executor.ts';
import { formatTemporalStatus } from '../src/status-format.ts';
import type { DagWorkflowResult } from '../src/shared.ts';
import { testStages } from './fixtures/stages.ts';
import { squaresDag } from './fixtures/dags.ts';
import { auditStore, openStore, tempDir } from './fixtures/env.ts';
import { runWithLocalRunner } from './fixtures/local.ts';
import { killChildren, spawnWorkerChild, type WorkerChild } from './fixtures/child-worker.ts';

const workerMain = fileURLToPath(new URL('./fixtures/worker-main.ts', import.meta.url));
let server: TemporalServerHandle;
let cpuWorker: DroWorker;
let client: Client;
const storeDir = tempDir('dro-fault-store-');
const traceDir = tempDir('dro-fault-trace-');
const children: ChildProcess[] = [];

/** Starts a worker child process serving `queues`; resolves when it polls. */
async function spawnWorker(queues: string, graceMs = 5_000): Promise<WorkerChild> {
  const child = await spawnWorkerChild(workerMain, [server.address, storeDir.dir, queues, '-', String(graceMs)]);
  children.push(child);
  return child;
}

const exited = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

beforeAll(async () => {
  installQuietRuntime('ERROR');
  server = await startTemporalServer();
  // This process drives workflows and cpu stages; model stages run only in child processes.
  cpuWorker = await startWorker({
    queues: ['cpu'],
    address: server.address,
    stages: testStages,
    execute: createNodeExecutor({ store: openStore(storeDir.dir), stages: testStages }),
    handleSignals: false,
    shutdownGraceMs: 2_000,
  });
  client = await connectClient({ address: server.address });
});

afterAll(async () => {
  killChildren(children);
  await client?.connection.close();
  await cpuWorker?.shutdown();
  await server?.stop();
  storeDir.remove();
  traceDir.remove();
});

describe('worker faults on a real Temporal server', () => {
  it('SIGKILL of the model worker mid-activity: a new worker completes the run with identical outputs, nothing partial', async () => {
    // ~5 MB output per attempt so the kill can land while the stage computes or writes.
    const square = { steps: 12, stepMs: 250, width: 100_000, traceDir: traceDir.dir };
    const dag = squaresDag('fault', { seed: 42, square });
    const handle = await startDagRun(client, dag, {
      runId: `fault-${Date.now()}`,
      heartbeatTimeoutMs: 2_000,
      retry: { initialDelayMs: 200 },
    });
    // No model worker yet: the model node waits in its queue, and status says so.
    await waitFor(async () => (await queryDagStatus(client, handle.workflowId)).nodes.find((n) => n.id === 'square')?.activityState === 'scheduled');
    const waiting = await queryDagStatus(client, handle.workflowId);
    expect(formatTemporalStatus(waiting)).toMatch(/square +test-slow-square +dro-model +waiting for a dro-model worker/);
    const first = await spawnWorker('model');
    await waitFor(async () => ((await queryDagStatus(client, handle.workflowId)).nodes.find((n) => n.id === 'square')?.progress?.done ?? 0) >= 2);
    first.kill('SIGKILL');
    expect((await exited(first)).signal).toBe('SIGKILL');
    const second = await spawnWorker('model');

    const result = (await handle.result()) as DagWorkflowResult;
    const calls = readFileSync(path.join(traceDir.dir, 'slow-square.calls'), 'utf8').trim().split('\n');
    expect(calls).toEqual([String(first.pid), String(second.pid)]);

    second.kill('SIGTERM');
    expect((await exited(second)).code).toBe(0);
    // The same DAG run undisturbed by the local runner into a fresh store produces the same artifacts.
    const clean = tempDir('dro-fault-clean-');
    try {
      expect(await runWithLocalRunner(dag, clean.dir)).toEqual(result.outputs);
    } finally {
      clean.remove();
    }

    const audit = auditStore(storeDir.dir);
    expect(audit.corrupt).toEqual([]);
    expect(audit.orphanManifests).toEqual([]);
    for (const refs of Object.values(result.outputs)) {
      for (const ref of Object.values(refs)) expect(audit.digests).toContain(ref.digest);
    }
    const status = await queryDagStatus(client, handle.workflowId);
    expect(status.nodes.map((n) => n.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(status.nodes.find((n) => n.id === 'square')!.worker).toContain(String(second.pid));
  });

  it('SIGTERM drains: the running activity finishes and is recorded before the worker exits', async () => {
    const square = { steps: 6, stepMs: 200, width: 64 };
    const dag = squaresDag('drain', { seed: 5, square });
    const worker = await spawnWorker('model');
    const handle = await startDagRun(client, dag, { runId: `drain-${Date.now()}`, heartbeatTimeoutMs: 5_000 });
    await waitFor(async () => (await queryDagStatus(client, handle.workflowId)).nodes.find((n) => n.id === 'square')?.state === 'running');
    worker.kill('SIGTERM');
    expect(await exited(worker)).toEqual({ code: 0, signal: null });
    expect(worker.output).toContain('drained');
    // The node completed on the draining worker (no other model worker exists), so the run can finish.
    const result = (await handle.result()) as DagWorkflowResult;
    expect(Object.keys(result.outputs).sort()).toEqual(['numbers', 'square', 'total']);
  });
});

describe('worker shutdown beyond the grace time', () => {
  it('a stage still running when the grace time ends is retried on another worker, not cancelled', async () => {
    const square = { steps: 20, stepMs: 200, width: 64, traceDir: traceDir.dir };
    const dag = squaresDag('grace', { seed: 6, square });
    const impatient = await spawnWorker('model', 300);
    const handle = await startDagRun(client, dag, { runId: `grace-${Date.now()}`, heartbeatTimeoutMs: 2_000, retry: { initialDelayMs: 200 } });
    await waitFor(async () => ((await queryDagStatus(client, handle.workflowId)).nodes.find((n) => n.id === 'square')?.progress?.done ?? 0) >= 2);
    impatient.kill('SIGTERM');
    expect(await exited(impatient)).toEqual({ code: 0, signal: null });
    const patient = await spawnWorker('model');
    const result = (await handle.result()) as DagWorkflowResult;
    expect(result.nodes.map((n) => n.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(result.nodes.find((n) => n.id === 'square')!.worker).toContain(String(patient.pid));
    const calls = readFileSync(path.join(traceDir.dir, 'slow-square.calls'), 'utf8').trim().split('\n');
    expect(calls.slice(-2)).toEqual([String(impatient.pid), String(patient.pid)]);
    patient.kill('SIGTERM');
    await exited(patient);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
