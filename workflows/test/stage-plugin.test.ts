/**
 * A stage plugin on Temporal (real dev server, tiny model, the real stages): workers load it from the
 * path named in the workflow input, and the plugin's sub-DAG (data-prep → labels, the example's
 * middle-layer extract → directions) gives the same digests as the local runner. A worker that cannot
 * load it fails the node as bad input, once — not retried. Each worker allows the plugin's directory
 * (plugin-allowlist.test.ts holds what a worker refuses).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dagFor, droStageRegistry, prepareExperiment, runExperimentLocally, type ExperimentConfig } from '@dro/experiment';
import { initBackend } from '@dro/llm';
import { createProgressReporter, parsePluginAllowlist } from '@dro/pipeline';
import { startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, workflowBundle } from '../src/worker.ts';
import { DagRunFailedError, connectClient, runDagOnTemporal, startDagRun, unwrapWorkflowError } from '../src/client.ts';
import { createNodeExecutor } from '../src/executor.ts';
import { tempDir } from './fixtures/env.ts';
import { tinyExperimentConfig } from './fixtures/dro-experiment.ts';
import { killChildren, spawnWorkerChild } from './fixtures/child-worker.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
const examplePlugin = path.join(repo, 'examples', 'stage-plugin', 'middle-layer-extract.ts');
const workerMain = fileURLToPath(new URL('./fixtures/worker-dro-main.ts', import.meta.url));
const scratch = tempDir('dro-plugin-temporal-');
let server: TemporalServerHandle;
const children: ChildProcess[] = [];

/** The tiny experiment with `extract` replaced by the plugin at `module` (the middle layer). */
function pluginConfig(module: string): ExperimentConfig {
  const base = tinyExperimentConfig(scratch.dir);
  return {
    ...base,
    name: 'tiny-plugin',
    labelSource: 'logprob',
    stages: { extract: { module } },
    overrides: { ...base.overrides, extract: { layer: 'middle' }, directions: { boundary: { folds: 3, maxEpochs: 30 } } },
  };
}

beforeAll(async () => {
  installQuietRuntime('ERROR');
  const [srv] = await Promise.all([startTemporalServer(), workflowBundle()]);
  server = srv;
});

afterAll(async () => {
  killChildren(children);
  await server?.stop();
  scratch.remove();
});

describe('stage plugins on Temporal (tiny model)', () => {
  it('a plugin replaces a stage with the same digests as on the local runner', async () => {
    const config = pluginConfig(examplePlugin);
    const local = await prepareExperiment(config, path.join(scratch.dir, 'store-local'));
    const localRun = await runExperimentLocally({ ...local, dag: dagFor(local.dag, 'directions') }, { progress: createProgressReporter({ mode: 'silent' }) });
    expect(localRun.record.nodes.filter((n) => n.status !== 'succeeded').map((n) => n.error?.message)).toEqual([]);
    const localOutputs = Object.fromEntries(localRun.record.nodes.map((n) => [n.id, n.outputs]));

    const remote = await prepareExperiment(config, path.join(scratch.dir, 'store-temporal'));
    const dag = dagFor(remote.dag, 'directions');
    expect(dag.nodes.find((n) => n.id === 'extract@tiny')!.plugin?.module).toBe(examplePlugin);
    const stages = droStageRegistry();
    const worker = await startWorker({
      queues: ['cpu', 'model'],
      address: server.address,
      stages,
      allowPlugins: parsePluginAllowlist(path.dirname(examplePlugin), 'test'),
      initBackend,
      execute: createNodeExecutor({ store: remote.store, stages }),
      handleSignals: false,
    });
    try {
      const result = await runDagOnTemporal({ dag, address: server.address, storeRoot: remote.store.root });
      expect(result.outputs).toEqual(localOutputs);
      const extract = result.nodes.find((n) => n.id === 'extract@tiny')!;
      expect(extract.cacheKey).toBe(localRun.record.nodes.find((n) => n.id === 'extract@tiny')!.cacheKey);
      const manifest = await remote.store.manifest(extract.outputs!.hiddenStates!.digest);
      expect(manifest.producer.plugin).toEqual({ module: examplePlugin, identity: dag.nodes.find((n) => n.id === 'extract@tiny')!.plugin!.identity });
    } finally {
      await worker.shutdown();
    }
  });

  it('a worker that cannot load the plugin fails the node as bad input, without retrying it', async () => {
    // The same plugin, except that it refuses to load on a machine without what it needs (here: an env var).
    const dir = path.join(scratch.dir, 'picky-plugin');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
    const module = path.join(dir, 'picky.ts');
    fs.writeFileSync(module, `if (process.env.DRO_TEST_NO_DRIVER === '1') throw new Error('no GPU driver on this worker');\n${fs.readFileSync(examplePlugin, 'utf8')}`);

    const prepared = await prepareExperiment(pluginConfig(module), path.join(scratch.dir, 'store-picky'));
    const dag = dagFor(prepared.dag, 'extract');
    // Planning (which loads the plugin too) runs here; the stages run on a worker without the driver.
    const planner = await startWorker({ queues: [], address: server.address, stages: droStageRegistry(), allowPlugins: parsePluginAllowlist(dir, 'test'), handleSignals: false });
    const child = await spawnWorkerChild(workerMain, [server.address, prepared.store.root, 'cpu,model'], { DRO_TEST_NO_DRIVER: '1', DRO_WORKER_PLUGINS: dir });
    children.push(child);
    const client = await connectClient({ address: server.address });
    try {
      const handle = await startDagRun(client, dag, { retry: { initialDelayMs: 100 } });
      const failure = unwrapWorkflowError(await handle.result().then(() => null, (err: unknown) => err));
      expect(failure).toBeInstanceOf(DagRunFailedError);
      expect((failure as DagRunFailedError).type).toBe('BadInputError');
      expect((failure as Error).message).toBe(`node "extract@tiny" (stage extract) failed: stage plugin ${module}: throws on load: no GPU driver on this worker`);
      // One attempt: the retry policy never retries bad input.
      const history = await handle.fetchHistory();
      const attempts = (history.events ?? [])
        .filter((e) => e.activityTaskStartedEventAttributes)
        .map((e) => e.activityTaskStartedEventAttributes!.attempt);
      expect(attempts.length).toBeGreaterThanOrEqual(2); // data-prep, then extract
      expect(attempts.every((a) => a === 1)).toBe(true);
    } finally {
      await client.connection.close();
      child.kill('SIGTERM');
      await planner.shutdown();
    }
  });
});
