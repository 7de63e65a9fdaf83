/**
 * The Temporal client tells the truth and ends, against a REAL dev server keeping history in a SQLite
 * file: the server is SIGKILLed mid-run and restarted on the same file and port, and the client reports
 * the run's real outcome (and the store's run record ends "succeeded"); with no worker polling a queue
 * the run needs, it says so and stops waiting; an unreachable address or a missing namespace names
 * the address and what to check.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { loadRun } from '@dro/pipeline';
import { freeLoopbackPort, startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, type DroWorker } from '../src/worker.ts';
import { connectClient, getTemporalRunStatus, queryDagStatus, runDagOnTemporal } from '../src/client.ts';
import { createNodeExecutor } from '../src/executor.ts';
import type { DagRunStatus } from '../src/shared.ts';
import { testStages } from './fixtures/stages.ts';
import { squaresDag } from './fixtures/dags.ts';
import { openStore, tempDir } from './fixtures/env.ts';
import { runWithLocalRunner } from './fixtures/local.ts';

const scratch = tempDir('dro-client-truth-');
const storeDir = tempDir('dro-client-truth-store-');
const dbFile = path.join(scratch.dir, 'temporal-dev.db');
let server: TemporalServerHandle;
let port: number;
let client: Client;
const workers: DroWorker[] = [];

function startTestWorker(queues: Array<'cpu' | 'model'>, serveWorkflows = true): Promise<DroWorker> {
  return startWorker({
    queues,
    serveWorkflows,
    address: server.address,
    stages: testStages,
    execute: createNodeExecutor({ store: openStore(storeDir.dir), stages: testStages }),
    handleSignals: false,
    shutdownGraceMs: 2_000,
  }).then((w) => (workers.push(w), w));
}

/** Every server this file starts, so afterAll stops them all even when a test fails or times out mid-restart. */
const servers: TemporalServerHandle[] = [];
async function restartServer(): Promise<TemporalServerHandle> {
  const started = await startTemporalServer({ dbFile, port });
  servers.push(started);
  return started;
}

beforeAll(async () => {
  installQuietRuntime('ERROR');
  server = await startTemporalServer({ dbFile });
  servers.push(server);
  port = Number(server.address.split(':').at(-1));
  client = await connectClient({ address: server.address });
});

afterAll(async () => {
  await client?.connection.close();
  for (const w of workers) await w.shutdown().catch(() => undefined);
  for (const s of servers) await s.stop();
  scratch.remove();
  storeDir.remove();
});

describe('no worker polls a queue the run needs', () => {
  it('no worker at all: the status says why there is none, the client says so plainly and stops waiting', async () => {
    const runId = `no-worker-${Date.now()}`;
    const notices: string[] = [];
    const statuses: DagRunStatus[] = [];
    const waiting = runDagOnTemporal({
      dag: squaresDag('no-worker'),
      runId,
      address: server.address,
      storeRoot: storeDir.dir,
      pollMs: 500,
      workerNoticeMs: 1_000,
      workerTimeoutMs: 6_000,
      onNotice: (m) => notices.push(m),
      onStatus: (s) => statuses.push(s),
    }).then(
      () => null,
      (err: unknown) => err as Error,
    );
    // `dro status` meanwhile: no worker can answer the query; it says so instead of waiting forever.
    await waitFor(async () => (await client.workflow.getHandle(runId).describe()).status.name === 'RUNNING');
    const status = await getTemporalRunStatus({ address: server.address, runId });
    expect(status.state).toBe('running');
    expect(status.error).toMatch(/no worker answered the status query within 10 s — is a worker polling dro-workflows\?/);

    const err = await waiting;
    expect(err?.name).toBe('TemporalWaitError');
    expect(err?.message).toMatch(new RegExp(`no worker polled task queue dro-workflows at ${server.address} \\(namespace default\\) for \\d+ s; the run ${runId} stays queued`));
    expect(notices.join('\n')).toMatch(/no worker is polling task queue dro-workflows at .* nothing runs until one does/);
    expect(statuses.length).toBeGreaterThan(0);
    await client.workflow.getHandle(runId).terminate('test: no worker');
    // The local record still says what is true: the run is queued (running) on the server.
    expect((await loadRun(openStore(storeDir.dir), runId)).status).toBe('running');
  });

  it('a worker for the workflow queue but none for dro-model: the client names dro-model', async () => {
    await startTestWorker(['cpu']);
    const runId = `no-model-worker-${Date.now()}`;
    const notices: string[] = [];
    const err = await runDagOnTemporal({
      dag: squaresDag('no-model-worker'),
      runId,
      address: server.address,
      pollMs: 300,
      workerNoticeMs: 1_000,
      workerTimeoutMs: 5_000,
      onNotice: (m) => notices.push(m),
      onStatus: () => undefined,
    }).catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe('TemporalWaitError');
    expect((err as Error).message).toMatch(/no worker polled task queue dro-model/);
    expect(notices.join('\n')).toMatch(/no worker is polling task queue dro-model .* serving model/);
    expect(notices.join('\n')).not.toMatch(/task queue dro-workflows/);
    await client.workflow.getHandle(runId).terminate('test: no model worker');
  });
});

describe('the Temporal server restarts mid-run', () => {
  it('SIGKILL + restart on the same database: the client reconnects and reports the real outcome; the record ends succeeded', async () => {
    await startTestWorker(['model'], false);
    const dag = squaresDag('restart', { seed: 11, square: { steps: 24, stepMs: 250, width: 256 } });
    const runId = `restart-${Date.now()}`;
    const notices: string[] = [];
    const run = runDagOnTemporal({
      dag,
      runId,
      address: server.address,
      storeRoot: storeDir.dir,
      heartbeatTimeoutMs: 3_000,
      retry: { initialDelayMs: 200 },
      pollMs: 500,
      serverTimeoutMs: 120_000,
      onNotice: (m) => notices.push(m),
      onStatus: () => undefined,
    });
    await waitFor(async () => ((await queryDagStatus(client, runId)).nodes.find((n) => n.id === 'square')?.progress?.done ?? 0) >= 2);
    await server.kill();
    // Away for longer than the SDK's own gRPC retries (10 attempts, ≈ 20 s of backoff): a shorter outage
    // is bridged inside one call; this one is what made the old client report "failed" and hang.
    await new Promise((r) => setTimeout(r, 35_000));
    server = await restartServer();

    const result = await run;
    expect(Object.keys(result.outputs).sort()).toEqual(['numbers', 'square', 'total']);
    const local = tempDir('dro-client-truth-local-');
    try {
      expect(await runWithLocalRunner(dag, local.dir)).toEqual(result.outputs);
    } finally {
      local.remove();
    }
    expect(notices.join('\n')).toMatch(new RegExp(`lost the Temporal server at ${server.address}`));
    expect(notices.join('\n')).toMatch(new RegExp(`the Temporal server at ${server.address} answers again after \\d+ s`));
    const record = await loadRun(openStore(storeDir.dir), runId);
    expect(record.status).toBe('succeeded');
    expect(record.nodes.map((n) => n.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  });

  it('a server that stays away: the client gives up after --server-timeout, naming the run to follow', async () => {
    const runId = `gone-${Date.now()}`;
    // A client the caller owns: runDagOnTemporal uses it and leaves it open.
    const own = await connectClient({ address: server.address });
    const waiting = runDagOnTemporal({ dag: squaresDag('gone', { square: { steps: 40, stepMs: 250 } }), client: own, runId, serverTimeoutMs: 3_000, pollMs: 300 }).catch(
      (e: unknown) => e as Error,
    );
    await waitFor(async () => (await queryDagStatus(client, runId)).nodes.some((n) => n.state === 'running'));
    await server.kill();
    const err = (await waiting) as Error;
    await own.connection.close();
    expect(err.name).toBe('TemporalWaitError');
    expect(err.message).toMatch(new RegExp(`the Temporal server at ${server.address} has not answered for \\d+ s; the run ${runId} may still be going there`));
    server = await restartServer();
  });
});

describe('connecting', () => {
  it('an unreachable address names the address and what to check', async () => {
    const address = `127.0.0.1:${await freeLoopbackPort()}`;
    const err = (await connectClient({ address }).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('TemporalConnectError');
    expect(err.message).toMatch(new RegExp(`^cannot reach the Temporal server at ${address} \\(.*\\)\\. Check that the server is running and listening there`));
    expect(err.message).toMatch(/--address HOST:PORT .*namespace "default" \(--namespace\)/);
    const viaRun = (await runDagOnTemporal({ dag: squaresDag('x'), address }).catch((e: unknown) => e)) as Error;
    expect(viaRun.message).toContain(`cannot reach the Temporal server at ${address}`);
  });

  it('a namespace the server does not have is named, with how to create it', async () => {
    const err = (await connectClient({ address: server.address, namespace: 'no-such-ns' }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(new RegExp(`namespace "no-such-ns" does not exist on the Temporal server at ${server.address}: pass --namespace`));
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // the run may not be queryable yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
