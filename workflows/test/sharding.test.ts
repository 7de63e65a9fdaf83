/**
 * Row-parallel nodes as shards on a real Temporal server (tiny random model, real DRO stages), two model
 * workers in child processes:
 *  - the sharded run's digests equal the local runner's unsharded ones (sampling, extract, and the model
 *    pass of evaluate: eval-forward), and the shards of one node ran on both workers;
 *  - SIGKILL of the worker running a shard: that shard (alone) is retried on the other worker, the final
 *    digests are unchanged, and the store holds nothing partial;
 *  - one model worker loads the model once; each node's shards are scheduled costliest first.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import type { ArtifactRef } from '@dro/artifacts';
import { dagFor, droStageRegistry, prepareExperiment, type ExperimentConfig } from '@dro/experiment';
import { initBackend, modelLoads, tf } from '@dro/llm';
import { createProgressReporter, planShards, runDag, shardDispatchOrder, type Dag } from '@dro/pipeline';
import { startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, workflowBundle, type DroWorker } from '../src/worker.ts';
import { connectClient, queryDagStatus, startDagRun } from '../src/client.ts';
import { createNodeExecutor } from '../src/executor.ts';
import { formatTemporalStatus } from '../src/status-format.ts';
import type { DagWorkflowResult } from '../src/shared.ts';
import { auditStore, openStore, tempDir } from './fixtures/env.ts';
import { tinyExperimentConfig } from './fixtures/dro-experiment.ts';
import { killChildren, spawnWorkerChild, type WorkerChild } from './fixtures/child-worker.ts';

const workerMain = fileURLToPath(new URL('./fixtures/worker-dro-main.ts', import.meta.url));
const scratch = tempDir('dro-shard-');
let server: TemporalServerHandle;
let client: Client;
let config: ExperimentConfig;
let localOutputs: Record<string, Record<string, ArtifactRef>>;
const children: ChildProcess[] = [];

/** 24 training rows (12 queries × 2 prompt variants) in shards of 6; long enough samples that a kill lands mid-shard. */
function shardedConfig(shardSize: number | null): ExperimentConfig {
  const base = tinyExperimentConfig(scratch.dir);
  return {
    ...base,
    shardSize,
    overrides: {
      ...base.overrides,
      sampling: { samples: 4, minNewTokens: 48, maxNewTokens: { harmful: 48, harmless: 48 }, chunkSize: 1 },
      extract: { chunkSize: 2, batchSize: 2 },
      'reference-answers': { maxNewTokens: 4, batch: 1 },
      // 12 eval rows of the "none" condition in 2 shards of 3 chunks.
      'eval-forward': { chunk: 2 },
    },
  };
}

/**
 * The training-set row-parallel nodes (sampling, extract), the model pass of the unprompted condition's
 * evaluation (eval-forward), and their data-prep and reference-answers ancestors.
 */
function rowParallelDag(dag: Dag): Dag {
  const keep = new Set(['sample-train@tiny', 'extract@tiny', 'eval-forward-none@tiny'].flatMap((id) => dagFor(dag, id).nodes.map((n) => n.id)));
  return { name: 'tiny-shards', nodes: dag.nodes.filter((n) => keep.has(n.id)) };
}

async function spawnModelWorker(storeRoot: string): Promise<WorkerChild> {
  const child = await spawnWorkerChild(workerMain, [server.address, storeRoot, 'model']);
  children.push(child);
  return child;
}

const exited = (child: ChildProcess): Promise<unknown> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));

/** A Temporal run of `dag` with a cpu + workflow worker in this process; `during` runs while it goes. */
async function runOnTemporal(dag: Dag, storeRoot: string, during: (workflowId: string) => Promise<void>): Promise<{ result: DagWorkflowResult; workflowId: string }> {
  const stages = droStageRegistry();
  const cpu: DroWorker = await startWorker({ queues: ['cpu'], address: server.address, stages, execute: createNodeExecutor({ store: openStore(storeRoot), stages }), handleSignals: false });
  try {
    const handle = await startDagRun(client, dag, { runId: `shards-${Date.now()}`, heartbeatTimeoutMs: 3_000, retry: { initialDelayMs: 200 } });
    await during(handle.workflowId);
    return { result: (await handle.result()) as DagWorkflowResult, workflowId: handle.workflowId };
  } finally {
    await cpu.shutdown();
  }
}

/**
 * Per shard activity id: the pid of the worker that ran its final attempt and that attempt's number, from
 * the run's history (the server records one started event per activity, of its last attempt).
 */
async function shardAttempts(workflowId: string): Promise<Map<string, { pid: string; attempt: number }>> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  const attempts = new Map<string, { pid: string; attempt: number }>();
  for (const event of history.events ?? []) {
    const s = event.activityTaskScheduledEventAttributes;
    if (s?.activityId) scheduled.set(String(event.eventId), s.activityId);
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const id = scheduled.get(String(started.scheduledEventId))!;
      if (/#\d+\/\d+$/.test(id)) attempts.set(id, { pid: (started.identity ?? '?').split('@')[0]!, attempt: started.attempt ?? 1 });
    }
  }
  return attempts;
}

beforeAll(async () => {
  installQuietRuntime('ERROR');
  const [srv] = await Promise.all([startTemporalServer(), workflowBundle()]);
  server = srv;
  client = await connectClient({ address: server.address });
  config = shardedConfig(6);
  const whole = await prepareExperiment(shardedConfig(null), `${scratch.dir}/store-local`);
  const local = await runDag(rowParallelDag(whole.dag), { store: whole.store, stages: droStageRegistry(), progress: createProgressReporter({ mode: 'silent' }) });
  expect(local.status, JSON.stringify(local.nodes.map((n) => n.error).filter(Boolean))).toBe('succeeded');
  localOutputs = Object.fromEntries(local.nodes.map((n) => [n.id, n.outputs]));
});

afterAll(async () => {
  killChildren(children);
  await client?.connection.close();
  await server?.stop();
  scratch.remove();
});

describe('row-parallel nodes as shards on Temporal (tiny model)', () => {
  it('the sharded run gives the unsharded local digests, its shards spread over both model workers, status shows shard counts', async () => {
    const storeRoot = `${scratch.dir}/store-temporal`;
    const dag = rowParallelDag((await prepareExperiment(config, storeRoot)).dag);
    expect(dag.nodes.find((n) => n.id === 'sample-train@tiny')!.shardSize).toBe(6);
    const workers = [await spawnModelWorker(storeRoot), await spawnModelWorker(storeRoot)];
    let shownShards = '';
    const { result, workflowId } = await runOnTemporal(dag, storeRoot, async () => {});
    shownShards = formatTemporalStatus(await queryDagStatus(client, workflowId));
    expect(result.outputs).toEqual(localOutputs);
    const sampling = result.nodes.find((n) => n.id === 'sample-train@tiny')!;
    expect(sampling.shards).toEqual({ total: 4, done: 4, cacheHits: 0 });
    expect(shownShards).toMatch(/sample-train@tiny +sampling +dro-model +succeeded 4\/4 shards/);
    expect(result.nodes.find((n) => n.id === 'eval-forward-none@tiny')!.shards).toEqual({ total: 2, done: 2, cacheHits: 0 });
    const attempts = await shardAttempts(workflowId);
    const samplingShards = [...attempts].filter(([id]) => id.startsWith('sample-train@tiny#'));
    expect(samplingShards.map(([id]) => id).sort()).toEqual(['1/4', '2/4', '3/4', '4/4'].map((k) => `sample-train@tiny#${k}`));
    const ranOn = new Set([...attempts.values()].map((a) => a.pid));
    expect(ranOn).toEqual(new Set(workers.map((w) => String(w.pid))));
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(exited));
  }, 300_000);

  it('SIGKILL of the worker running a shard: that shard alone is retried on the other worker; same digests, nothing partial', async () => {
    const storeRoot = `${scratch.dir}/store-kill`;
    const dag = rowParallelDag((await prepareExperiment(config, storeRoot)).dag);
    const workers = [await spawnModelWorker(storeRoot), await spawnModelWorker(storeRoot)];
    let killed: { shard: string; pid: number } | null = null;
    let liveStatus = '';
    const { result, workflowId } = await runOnTemporal(dag, storeRoot, async (id) => {
      // Wait until a sampling shard runs on a worker, then kill that worker.
      const deadline = Date.now() + 120_000;
      while (killed === null && Date.now() < deadline) {
        const description = await client.workflow.getHandle(id).describe();
        for (const pending of description.raw.pendingActivities ?? []) {
          const shard = pending.activityId ?? '';
          const victim = workers.find((w) => pending.lastWorkerIdentity?.startsWith(`${w.pid}@`));
          // Started and heartbeating on a worker (the SDK throttles later heartbeats, so the server's copy
          // may still say 0 rows done); a shard takes seconds, so the kill lands inside it.
          if (!shard.startsWith('sample-train@tiny#') || !victim || Number(pending.state) !== 2 || !pending.heartbeatDetails?.payloads?.length) continue;
          victim.kill('SIGKILL');
          killed = { shard, pid: victim.pid! };
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(killed).not.toBeNull();
      liveStatus = formatTemporalStatus(await queryDagStatus(client, id));
    });
    // While it ran, `dro status` showed the node's shard progress.
    expect(liveStatus).toMatch(/sample-train@tiny +sampling +dro-model +running [0-3]\/4 shards/);
    const { shard, pid } = killed!;
    expect(result.outputs).toEqual(localOutputs);
    const attempts = await shardAttempts(workflowId);
    const survivor = workers.find((w) => w.pid !== pid)!;
    // The killed shard's second attempt (after the heartbeat timeout) ran on the survivor; every other shard ran once.
    expect(attempts.get(shard)).toEqual({ pid: String(survivor.pid), attempt: 2 });
    expect([...attempts].filter(([id, a]) => id !== shard && a.attempt !== 1)).toEqual([]);
    expect(attempts.size).toBe(10); // 4 sampling + 4 extract + 2 eval-forward shards
    const audit = auditStore(storeRoot);
    expect(audit.corrupt).toEqual([]);
    expect(audit.orphanManifests).toEqual([]);
    survivor.kill('SIGTERM');
    await exited(survivor);
  }, 300_000);

  it('a model worker that runs every shard loads the model once, shards are scheduled costliest first, the model is disposed when the worker stops', async () => {
    const storeRoot = `${scratch.dir}/store-one-worker`;
    const dag = rowParallelDag((await prepareExperiment(config, storeRoot)).dag);
    const stages = droStageRegistry();
    const tensorsBefore = tf.memory().numTensors;
    const loadsBefore = modelLoads();
    const worker = await startWorker({
      queues: ['model'], address: server.address, stages, initBackend, serveWorkflows: false, handleSignals: false,
      execute: createNodeExecutor({ store: openStore(storeRoot), stages }),
    });
    try {
      const { result, workflowId } = await runOnTemporal(dag, storeRoot, async () => {});
      expect(result.outputs).toEqual(localOutputs);
      const shards = result.nodes.reduce((sum, n) => sum + (n.shards?.total ?? 0), 0);
      expect(shards).toBe(10);
      // 10 shards and the whole reference-answers node, one model: one load.
      expect(modelLoads() - loadsBefore).toBe(1);
      // Each node's shards were scheduled costliest first by the plan's estimate (prompted rows are longer,
      // so that is not shard order). Which one a free worker gets first is the server's: see shard-order.ts.
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      const scheduled = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityId ?? []);
      const outputsOf = new Map(result.nodes.map((n) => [n.id, n.outputs ?? {}]));
      let reordered = false;
      for (const node of dag.nodes.filter((n) => result.nodes.find((r) => r.id === n.id)?.shards)) {
        const inputs = Object.fromEntries(Object.entries(node.inputs).map(([name, src]) => [name, 'ref' in src ? src.ref : outputsOf.get(src.node)![src.output]!]));
        const planned = await planShards({ store: openStore(storeRoot), node, inputs, stages, force: true });
        if (planned.kind !== 'sharded') throw new Error(`${node.id} did not plan shards`);
        const costliestFirst = shardDispatchOrder(planned.shards.map((s) => s.cost)).map((k) => planned.shards[k]!.node.id);
        expect(scheduled.filter((id) => id.startsWith(`${node.id}#`) && /#\d+\/\d+$/.test(id))).toEqual(costliestFirst);
        reordered ||= costliestFirst.some((id, k) => id !== planned.shards[k]!.node.id);
      }
      expect(reordered).toBe(true);
    } finally {
      await worker.shutdown();
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  }, 300_000);
});
