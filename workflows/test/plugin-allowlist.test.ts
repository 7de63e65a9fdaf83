/**
 * A worker imports only the stage plugins its allowlist admits (real dev server, tiny model, the real
 * stages, `dro worker` itself where it matters). Whoever can start a workflow writes the DAG, and the DAG
 * names the module every worker would import; so without --allow-plugins / DRO_WORKER_PLUGINS a worker
 * refuses every plugin, and with a directory it refuses any path whose real path leaves it (a symlink
 * inside pointing out, a ".." path). Refused means: bad input, never retried, and the module never
 * imported — each plugin module here appends "<pid> <its path>" to a marker file when it is imported.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dagFor, droStageRegistry, prepareExperiment, type ExperimentConfig } from '@dro/experiment';
import { parsePluginAllowlist, type Dag } from '@dro/pipeline';
import { startTemporalServer, type TemporalServerHandle } from '../src/testing/server.ts';
import { installQuietRuntime, startWorker, workflowBundle } from '../src/worker.ts';
import { DagRunFailedError, connectClient, runDagOnTemporal, startDagRun, unwrapWorkflowError } from '../src/client.ts';
import { tempDir } from './fixtures/env.ts';
import { tinyExperimentConfig } from './fixtures/dro-experiment.ts';
import { killChildren, spawnWorkerChild } from './fixtures/child-worker.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
const examplePlugin = path.join(repo, 'examples', 'stage-plugin', 'middle-layer-extract.ts');
const workerMain = fileURLToPath(new URL('./fixtures/worker-dro-main.ts', import.meta.url));
const scratch = tempDir('dro-plugin-allowlist-');
const root = fs.realpathSync(scratch.dir);
const marker = path.join(root, 'imports.log');
// Children inherit it: every process that imports a plugin module below records it.
process.env.DRO_TEST_PLUGIN_MARKER = marker;
let server: TemporalServerHandle;
const children: ChildProcess[] = [];

/** A directory holding the example plugin, preceded by the marker line; returns the module path. */
function pluginIn(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  const module = path.join(dir, 'plugin.ts');
  const mark = "import markerFs from 'node:fs';\nif (process.env.DRO_TEST_PLUGIN_MARKER) markerFs.appendFileSync(process.env.DRO_TEST_PLUGIN_MARKER, `${process.pid} ${new URL(import.meta.url).pathname}\\n`);\n";
  fs.writeFileSync(module, mark + fs.readFileSync(examplePlugin, 'utf8'));
  return module;
}
const allowedDir = path.join(root, 'allowed');
const allowedPlugin = pluginIn(allowedDir);
const outsidePlugin = pluginIn(path.join(root, 'outside'));
fs.symlinkSync(outsidePlugin, path.join(allowedDir, 'link.ts'));
fs.symlinkSync(path.dirname(outsidePlugin), path.join(allowedDir, 'out'));

/** "<pid> <path>" lines of every plugin import so far. */
function imports(): Array<{ pid: number; file: string }> {
  if (!fs.existsSync(marker)) return [];
  return fs.readFileSync(marker, 'utf8').trim().split('\n').map((line) => {
    const [pid, file] = line.split(' ');
    return { pid: Number(pid), file: file! };
  });
}

/** The tiny experiment with `extract` replaced by the plugin at `module`. */
function pluginConfig(module: string): ExperimentConfig {
  const base = tinyExperimentConfig(scratch.dir);
  return { ...base, name: 'tiny-allowlist', labelSource: 'logprob', stages: { extract: { module } }, overrides: { ...base.overrides, extract: { layer: 'middle' } } };
}

/** `dag` with extract's plugin named by `module` (same identity: these paths all hold the same bytes). */
function naming(dag: Dag, module: string): Dag {
  return { ...dag, nodes: dag.nodes.map((n) => (n.plugin ? { ...n, plugin: { ...n.plugin, module } } : n)) };
}

/** `dro worker ARGS` in a child process with `env` (DRO_WORKER_PLUGINS unset unless given); resolves once serving. */
async function droWorker(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; stderr: () => string; stop(): Promise<void> }> {
  const inherited = { ...process.env };
  delete inherited.DRO_WORKER_PLUGINS;
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'dro.mjs'), 'worker', '--address', server.address, '--log-level', 'ERROR', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...inherited, ...env },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onData = () => stderr.includes('dro worker: serving') && resolve();
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`dro worker exited (${code}) before serving:\n${stderr}`)));
  });
  return { child, stderr: () => stderr, stop: async () => void (child.kill('SIGTERM'), await exited) };
}

const notAllowed = (module: string, allowed: string, real?: string) =>
  `stage plugin ${module}${real ? ` (real path ${real})` : ''} is not allowed on this worker (dro worker --allow-plugins DIR or DRO_WORKER_PLUGINS); allowed: ${allowed}`;

/**
 * A refused DAG fails at planning; code that plans it instead waits for a model worker these tests do not
 * start: stop waiting after this (a failure, not a hang).
 */
const REFUSAL_WAIT_MS = 30_000;

let dag: Dag;
let storeRoot: string;

beforeAll(async () => {
  installQuietRuntime('ERROR');
  const [srv] = await Promise.all([startTemporalServer(), workflowBundle()]);
  server = srv;
  // Loads (imports) the allowed plugin in this process, as `dro run --engine temporal` does from the config.
  const prepared = await prepareExperiment(pluginConfig(allowedPlugin), path.join(root, 'store'));
  dag = dagFor(prepared.dag, 'extract');
  storeRoot = prepared.store.root;
});

afterAll(async () => {
  killChildren(children);
  await server?.stop();
  scratch.remove();
});

describe('the stage plugin allowlist of a worker (tiny model)', () => {
  it('dro worker without an allowlist refuses a plugin when it plans the DAG, before importing it', async () => {
    const worker = await droWorker(['--queues', 'cpu', '--store', storeRoot]);
    try {
      expect(worker.stderr()).toContain(', stage plugins allowed: none (ready in');
      const failure = await runDagOnTemporal({ dag, address: server.address, workerTimeoutMs: REFUSAL_WAIT_MS }).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(DagRunFailedError);
      expect((failure as DagRunFailedError).type).toBe('BadInputError');
      expect((failure as Error).message).toBe(`DAG "${dag.name}": node "extract@tiny": ${notAllowed(allowedPlugin, 'none')}`);
      expect(imports().filter((i) => i.pid === worker.child.pid)).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it('a worker without an allowlist refuses to run a plugin node (planned elsewhere): bad input, once, never imported', async () => {
    const planner = await startWorker({ queues: [], address: server.address, stages: droStageRegistry(), allowPlugins: parsePluginAllowlist(allowedDir, 'test'), handleSignals: false });
    const child = await spawnWorkerChild(workerMain, [server.address, storeRoot, 'cpu,model'], { DRO_WORKER_PLUGINS: '' });
    children.push(child);
    const client = await connectClient({ address: server.address });
    try {
      const handle = await startDagRun(client, dag, { retry: { initialDelayMs: 100 } });
      const failure = unwrapWorkflowError(await handle.result().then(() => null, (err: unknown) => err));
      expect(failure).toBeInstanceOf(DagRunFailedError);
      expect((failure as DagRunFailedError).type).toBe('BadInputError');
      expect((failure as Error).message).toBe(`node "extract@tiny" (stage extract) failed: ${notAllowed(allowedPlugin, 'none')}`);
      const history = await handle.fetchHistory();
      const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt);
      expect(attempts.length).toBeGreaterThanOrEqual(2); // data-prep ran on the child, then extract was refused
      expect(attempts.every((a) => a === 1)).toBe(true);
      expect(imports().filter((i) => i.pid === child.pid)).toEqual([]);
    } finally {
      await client.connection.close();
      child.kill('SIGTERM');
      await planner.shutdown();
    }
  });

  it('a worker allowing a directory refuses a path whose real path leaves it: a symlink to a file or directory outside, "..", outside', async () => {
    const worker = await startWorker({ queues: [], address: server.address, stages: droStageRegistry(), allowPlugins: parsePluginAllowlist(allowedDir, 'test'), handleSignals: false });
    try {
      const cases: Array<[string, string | undefined]> = [
        [path.join(allowedDir, 'link.ts'), outsidePlugin],
        [path.join(allowedDir, 'out', 'plugin.ts'), outsidePlugin],
        [`${allowedDir}/../outside/plugin.ts`, outsidePlugin],
        [outsidePlugin, undefined],
      ];
      for (const [module, real] of cases) {
        const failure = await runDagOnTemporal({ dag: naming(dag, module), address: server.address, workerTimeoutMs: REFUSAL_WAIT_MS }).catch((e: unknown) => e);
        expect(failure, module).toBeInstanceOf(DagRunFailedError);
        expect((failure as DagRunFailedError).type).toBe('BadInputError');
        expect((failure as Error).message).toBe(`DAG "${dag.name}": node "extract@tiny": ${notAllowed(module, allowedDir, real)}`);
      }
      // No process ever imported the outside module (the same bytes: it would have loaded and run).
      expect(imports().filter((i) => i.file === outsidePlugin)).toEqual([]);
    } finally {
      await worker.shutdown();
    }
  });

  it('dro worker --allow-plugins DIR runs the plugin end to end (the flag wins over DRO_WORKER_PLUGINS)', async () => {
    // DRO_WORKER_PLUGINS names a directory that does not exist: read, it would stop the worker at start.
    const worker = await droWorker(['--queues', 'cpu,model', '--store', storeRoot, '--allow-plugins', allowedDir], { DRO_WORKER_PLUGINS: path.join(root, 'missing') });
    try {
      expect(worker.stderr()).toContain(`, stage plugins allowed: ${allowedDir} (ready in`);
      const result = await runDagOnTemporal({ dag, address: server.address, storeRoot });
      expect(result.nodes.find((n) => n.id === 'extract@tiny')!.outputs!.hiddenStates).toBeDefined();
      expect(imports().filter((i) => i.pid === worker.child.pid)).toEqual([{ pid: worker.child.pid, file: allowedPlugin }]);
    } finally {
      await worker.stop();
    }
  });
});
