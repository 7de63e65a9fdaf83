/**
 * `dro worker` end to end against a real Temporal server: it starts, serves its queues (it answers a DAG
 * planning request through the workflow queue), and SIGTERM drains it to a clean exit 0. Bad options → exit 2
 * (its stage plugin allowlist included; plugin-allowlist.test.ts of @dro/workflows runs it with one).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTemporalServer, DagRunFailedError, runDagOnTemporal, type TemporalServerHandle } from '@dro/workflows';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-worker-cli-'));
let server: TemporalServerHandle;

beforeAll(async () => {
  server = await startTemporalServer();
});
afterAll(async () => {
  await server?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('dro worker', () => {
  it('serves the queues with the DRO stage registry and drains on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin', 'dro.mjs'), 'worker', '--queues', 'cpu', '--address', server.address, '--store', tmp, '--log-level', 'WARN'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 90_000;
      while (!stderr.includes('dro worker: serving') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
      expect(stderr).toContain(`dro worker: serving dro-cpu, dro-workflows at ${server.address}, store ${tmp}`);

      // A DAG naming a stage this worker does not know is rejected by its registry, through the server.
      const err = await runDagOnTemporal({
        address: server.address,
        dag: { name: 'probe', nodes: [{ id: 'x', stage: 'no-such-stage', params: {}, inputs: {} }] },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DagRunFailedError);
      expect((err as Error).message).toBe('DAG "probe": node "x" uses unknown stage "no-such-stage"');
      // A DRO stage is known: its own parseParams rejects bad params, naming the node.
      const bad = await runDagOnTemporal({
        address: server.address,
        dag: { name: 'probe2', nodes: [{ id: 'd', stage: 'directions', params: { components: 'four' }, inputs: {} }] },
      }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(DagRunFailedError);
      expect((bad as DagRunFailedError).type).toBe('BadInputError');
      expect((bad as Error).message).toMatch(/^DAG "probe2": node "d" /);
      expect((bad as Error).message).not.toContain('unknown stage');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toContain('dro worker: drained and stopped');
  });

  it('rejects an unknown queue with exit code 2 and says what is expected', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), 'worker', '--queues', 'cpu,gpu'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--queues: unknown queue "gpu" (expected cpu, model)');
    const slots = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), 'worker', '--model-slots', '0'], { encoding: 'utf8', timeout: 60_000 });
    expect(slots.status).toBe(2);
    expect(slots.stderr).toContain('--model-slots expects a whole number ≥ 1, got 0');
  });

  it('rejects an allowlist entry that is neither an existing directory nor a package name, naming the flag or DRO_WORKER_PLUGINS', () => {
    const dro = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), 'worker', ...args], { encoding: 'utf8', timeout: 60_000, cwd: tmp, env: { ...process.env, ...env } });
    const missing = dro([], { DRO_WORKER_PLUGINS: './no-such-dir' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`DRO_WORKER_PLUGINS: "./no-such-dir": cannot read the directory ${path.join(fs.realpathSync(tmp), 'no-such-dir')} (ENOENT)`);
    const malformed = dro(['--allow-plugins', 'plugins/'], { DRO_WORKER_PLUGINS: '' });
    expect(malformed.status).toBe(2);
    expect(malformed.stderr).toContain('--allow-plugins: "plugins/": expected a directory (starting with "/", "./", "../" or "~") or a package name');
  });
});
