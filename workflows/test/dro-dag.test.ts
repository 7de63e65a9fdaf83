/**
 * The full DRO experiment DAG (data-prep → sampling → extract → directions → DRO training → evaluation →
 * report) on the tiny random model, through Temporal on a real server, against the local runner:
 *  - same artifact digests, node for node;
 *  - SIGKILL of the model worker process during a model activity, a fresh worker → the run completes with
 *    the same digests and the store holds nothing partial;
 *  - workers that share no filesystem, each in its own empty directory, with only an S3 store (a real
 *    SeaweedFS): same digests; an output corrupted through the S3 API is a cache miss on the next run,
 *    recomputed to the same digest.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { S3Objects, openStore, parseS3Uri, type ArtifactRef } from '@dro/artifacts';
import { startSeaweedFs, type SeaweedFsHandle } from '@dro/artifacts/testing';
import { droStageRegistry, prepareExperiment, runExperimentLocally, type ExperimentConfig } from '@dro/experiment';
import { initBackend } from '@dro/llm';
import { createProgressReporter, listRuns } from '@dro/pipeline';
import { startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, workflowBundle } from '../src/worker.ts';
import { connectClient, getTemporalRunStatus, queryDagStatus, runDagOnTemporal, startDagRun } from '../src/client.ts';
import { Worker } from '@temporalio/worker';
import { createNodeExecutor } from '../src/executor.ts';
import type { DagWorkflowResult } from '../src/shared.ts';
import { auditStore, tempDir } from './fixtures/env.ts';
import { tinyExperimentConfig } from './fixtures/dro-experiment.ts';
import { killChildren, spawnWorkerChild } from './fixtures/child-worker.ts';

const workerMain = fileURLToPath(new URL('./fixtures/worker-dro-main.ts', import.meta.url));
const scratch = tempDir('dro-e2e-');
let server: TemporalServerHandle;
let config: ExperimentConfig;
let localOutputs: Record<string, Record<string, ArtifactRef>>;
const children: ChildProcess[] = [];

beforeAll(async () => {
  installQuietRuntime('ERROR');
  config = tinyExperimentConfig(scratch.dir);
  const [srv] = await Promise.all([startTemporalServer(), workflowBundle()]);
  server = srv;
  const local = await runExperimentLocally(await prepareExperiment(config, `${scratch.dir}/store-local`), {
    progress: createProgressReporter({ mode: 'silent' }),
  });
  expect(local.record.status, JSON.stringify(local.record.nodes.map((n) => n.error).filter(Boolean))).toBe('succeeded');
  localOutputs = Object.fromEntries(local.record.nodes.map((n) => [n.id, n.outputs]));
});

afterAll(async () => {
  killChildren(children);
  await server?.stop();
  scratch.remove();
});

describe('the DRO DAG on Temporal (tiny model)', () => {
  it('produces the same artifact digests as the local runner, node for node', async () => {
    const prepared = await prepareExperiment(config, `${scratch.dir}/store-temporal`);
    const stages = droStageRegistry();
    const worker = await startWorker({
      queues: ['cpu', 'model'],
      address: server.address,
      stages,
      initBackend,
      execute: createNodeExecutor({ store: prepared.store, stages }),
      handleSignals: false,
    });
    let runId: string;
    try {
      const result = await runDagOnTemporal({ dag: prepared.dag, address: server.address, storeRoot: prepared.store.root });
      runId = result.runId;
      expect(Object.keys(result.outputs).sort()).toEqual(Object.keys(localOutputs).sort());
      expect(result.outputs).toEqual(localOutputs);
      const queues = new Set(result.nodes.map((n) => n.queue));
      expect(queues).toEqual(new Set(['dro-cpu', 'dro-model']));
    } finally {
      await worker.shutdown();
    }
    // With no worker left, a finished run's status still comes back (from its result), and its
    // recorded history replays against the current workflow code.
    const status = await getTemporalRunStatus({ address: server.address, runId });
    expect(status).toMatchObject({ runId, dag: 'tiny-temporal', state: 'succeeded', done: 18, total: 18 });
    const client = await connectClient({ address: server.address });
    try {
      const history = await client.workflow.getHandle(runId).fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, runId);
    } finally {
      await client.connection.close();
    }
  });

  it('survives SIGKILL of the model worker mid-activity: same digests, nothing partial', async () => {
    const prepared = await prepareExperiment(config, `${scratch.dir}/store-fault`);
    const stages = droStageRegistry();
    const cpuWorker = await startWorker({
      queues: ['cpu'],
      address: server.address,
      stages,
      execute: createNodeExecutor({ store: prepared.store, stages }),
      handleSignals: false,
    });
    const client = await connectClient({ address: server.address });
    try {
      const first = await spawnWorker(prepared.store.root);
      const handle = await startDagRun(client, prepared.dag, { heartbeatTimeoutMs: 3_000, retry: { initialDelayMs: 200 } });
      // The training-set sampling node (seconds long, on dro-model) has started on the child and
      // heartbeated, so the kill lands inside it rather than after it.
      const victim = 'sample-train@tiny';
      await waitFor(async () => {
        const node = (await queryDagStatus(client, handle.workflowId)).nodes.find((n) => n.id === victim);
        return node?.state === 'running' && node.activityState === 'started' && node.progress !== undefined;
      });
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      await spawnWorker(prepared.store.root);
      const result = (await handle.result()) as DagWorkflowResult;
      expect(result.outputs).toEqual(localOutputs);
      const retried = result.nodes.find((n) => n.id === victim)!;
      expect(retried.attempt, `node ${victim} should have run again after the kill`).toBeGreaterThan(1);
      const audit = auditStore(prepared.store.root);
      expect(audit.corrupt).toEqual([]);
      expect(audit.orphanManifests).toEqual([]);
    } finally {
      await client.connection.close();
      await cpuWorker.shutdown();
    }
  });
});

describe('the DRO DAG on Temporal with an S3 store (workers share no filesystem)', () => {
  const uri = 's3://dro-e2e/experiments/tiny';
  let seaweed: SeaweedFsHandle;
  const savedEnv: Record<string, string | undefined> = {};
  const workerDirs: string[] = [];

  beforeAll(async () => {
    // Worker processes left by the tests above poll the same queues with a directory store: stop them,
    // so every node of these runs lands on a worker that has only the bucket.
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    seaweed = await startSeaweedFs();
    await seaweed.createBucket('dro-e2e');
    // This process is the client: it imports the inputs and records the run in the same bucket.
    for (const [name, value] of Object.entries(seaweed.env)) {
      savedEnv[name] = process.env[name];
      process.env[name] = value;
    }
    // Two worker processes, one per queue, each in its own empty directory; the store is the bucket.
    for (const queue of ['cpu', 'model']) {
      const dir = path.join(scratch.dir, `worker-${queue}`);
      mkdirSync(dir);
      workerDirs.push(dir);
      children.push(await spawnWorkerChild(workerMain, [server.address, uri, queue], { ...seaweed.env, DRO_STORE: uri }, dir));
    }
  });

  afterAll(async () => {
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await seaweed?.stop();
  });

  it('produces the same artifact digests as the local runner, and writes nothing on the workers’ machines', async () => {
    const prepared = await prepareExperiment(config, uri);
    expect(prepared.store.root).toBe(uri);
    const worker = await startWorker({ queues: [], address: server.address, stages: droStageRegistry(), storeRoot: uri, handleSignals: false });
    try {
      const result = await runDagOnTemporal({ dag: prepared.dag, address: server.address, storeRoot: uri });
      expect(result.outputs).toEqual(localOutputs);
      expect(new Set(result.nodes.map((n) => n.queue))).toEqual(new Set(['dro-cpu', 'dro-model']));
    } finally {
      await worker.shutdown();
    }
    const store = openStore(uri);
    const report = await store.verifyAll();
    expect([report.badObjects, report.badManifests, report.badRecords, report.skipped]).toEqual([[], [], [], []]);
    for (const outputs of Object.values(localOutputs)) for (const ref of Object.values(outputs)) expect(await store.has(ref.digest)).toBe(true);
    expect((await listRuns(store)).map((r) => [r.engine, r.status])).toEqual([['temporal', 'succeeded']]);
    for (const dir of workerDirs) expect(readdirSync(dir), dir).toEqual([]);
  });

  it('an output whose bytes were flipped through the S3 API is a miss on the next run: recomputed alone, same digests, store repaired', async () => {
    const prepared = await prepareExperiment(config, uri);
    const victim = 'directions@tiny';
    const ref = Object.values(localOutputs[victim]!)[0]!;
    const objects = new S3Objects(parseS3Uri(uri));
    const rel = `objects/${ref.digest.slice(0, 2)}/${ref.digest}`;
    const bytes = (await objects.get(rel))!;
    bytes[bytes.length >> 1] ^= 0x01;
    await objects.put(rel, bytes);
    await expect(openStore(uri).verify(ref.digest)).rejects.toThrow(/digest mismatch/);

    const worker = await startWorker({ queues: [], address: server.address, stages: droStageRegistry(), storeRoot: uri, handleSignals: false });
    try {
      const result = await runDagOnTemporal({ dag: prepared.dag, address: server.address, storeRoot: uri });
      expect(result.outputs).toEqual(localOutputs);
      expect(result.nodes.filter((n) => !n.cacheHit).map((n) => n.id)).toEqual([victim]);
    } finally {
      await worker.shutdown();
    }
    await openStore(uri).verify(ref.digest);
  });
});

async function spawnWorker(storeRoot: string): Promise<ChildProcess> {
  const child = await spawnWorkerChild(workerMain, [server.address, storeRoot, 'model']);
  children.push(child);
  return child;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
