/**
 * Signals and run endings on a real child process running a real DAG against a real store: SIGINT and
 * SIGTERM stop cleanly with a cancelled record, SIGKILL leaves a record `dro status` shows as
 * interrupted, and a final save that fails on a really full disk still leaves a terminal record.
 */
import { closeSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore, isTempName } from '@dro/artifacts';
import { CACHE_NAMESPACE, formatRunList, formatRunStatus, listRuns, loadRun, type RunRecord } from '../src/index.ts';
import { collect, makeTempDir, spawnTsx } from './helpers.ts';
import './fixtures/stages.ts'; // declares test-numbers/v1 for reading the result

const RUN_DAG = fileURLToPath(new URL('./fixtures/run-dag.ts', import.meta.url));
const LIST_RUNS = fileURLToPath(new URL('./fixtures/list-runs.ts', import.meta.url));
const canUnshare = spawnSync('unshare', ['-Urm', 'true']).status === 0;
if (!canUnshare) console.warn('signals: `unshare -Urm` is not available here; the full-disk test is skipped');
const temp = makeTempDir('sigint');
afterAll(temp.cleanup);

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

const resultOf = (stdout: string) => JSON.parse(stdout.split('\n').find((l) => l.startsWith('RESULT '))!.slice(7)) as RunRecord;

describe('stop signals', () => {
  it('stops a run cleanly with nothing partial, and the next run resumes from the cache', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });
    const child = spawnTsx(RUN_DAG, [store.root], { DRO_TEST_STEP_MS: '20' });
    let interrupted = false;
    const result = await collect(child, (line) => {
      const event = JSON.parse(line) as { event: string; node?: string };
      // Interrupt once the slow stage is mid-way through its work.
      if (!interrupted && event.event === 'node-progress' && event.node === 'slow') {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    expect(interrupted).toBe(true);
    expect(result.code, result.stderr).toBe(130);
    const cancelled = resultOf(result.stdout);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.nodes.map((n) => [n.id, n.status])).toEqual([
      ['numbers', 'succeeded'],
      ['slow', 'cancelled'],
      ['scale', 'cancelled'],
    ]);
    expect(result.stderr).toContain('"event":"run-finished"');

    // Nothing partial: no temp files anywhere, every artifact verifies, only the finished node is cached.
    expect(allFiles(store.root).filter((f) => isTempName(path.basename(f)))).toEqual([]);
    for (const digest of await store.list()) await store.verify(digest);
    const cacheKeys = await store.records.list(CACHE_NAMESPACE);
    expect(cacheKeys).toEqual([cancelled.nodes[0].cacheKey]);
    expect((await loadRun(store, cancelled.runId)).status).toBe('cancelled');

    // Resume: the finished node is a cache hit, the rest run to completion.
    const rerun = collect(spawnTsx(RUN_DAG, [store.root], { DRO_TEST_STEP_MS: '0' }));
    const resumed = await rerun;
    expect(resumed.code, resumed.stderr).toBe(0);
    const completed = resultOf(resumed.stdout);
    expect(completed.status).toBe('succeeded');
    expect(completed.nodes.map((n) => [n.id, n.cacheHit])).toEqual([
      ['numbers', true],
      ['slow', false],
      ['scale', false],
    ]);
    const scaled = await store.getJson<{ values: number[] }>(completed.nodes[2].outputs.scaled);
    expect(scaled.values).toEqual([0, 1, 2, 3].map((v) => (v + 200) * 3));
  });

  it.each([['SIGTERM', 143], ['SIGHUP', 129]] as const)('%s stops a run like SIGINT: a cancelled record, exit %i, and the next run resumes', async (signal, exitCode) => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, `stopped-by-${signal}`) });
    const child = spawnTsx(RUN_DAG, [store.root], { DRO_TEST_STEP_MS: '20' });
    let terminated = false;
    const result = await collect(child, (line) => {
      const event = JSON.parse(line) as { event: string; node?: string };
      if (!terminated && event.event === 'node-progress' && event.node === 'slow') {
        terminated = true;
        child.kill(signal);
      }
    });
    expect(terminated).toBe(true);
    expect(result.signal).toBeNull(); // handled, not killed by the default action
    expect(result.code, result.stderr).toBe(exitCode);
    expect(resultOf(result.stdout).status).toBe('cancelled');
    const [run] = await listRuns(store);
    expect(run.status).toBe('cancelled');
    expect((await loadRun(store, run.runId)).nodes.map((n) => n.status)).toEqual(['succeeded', 'cancelled', 'cancelled']);
    const resumed = await collect(spawnTsx(RUN_DAG, [store.root], { DRO_TEST_STEP_MS: '0' }));
    expect(resumed.code, resumed.stderr).toBe(0);
  });

  it('after SIGKILL the run shows as interrupted, nothing is corrupt, and a rerun resumes', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'killed') });
    const child = spawnTsx(RUN_DAG, [store.root], { DRO_TEST_STEP_MS: '20' });
    let killed = false;
    const result = await collect(child, (line) => {
      const event = JSON.parse(line) as { event: string; node?: string };
      if (!killed && event.event === 'node-progress' && event.node === 'slow') {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    expect(result.signal).toBe('SIGKILL');

    const [run] = await listRuns(store);
    expect(run.status).toBe('running'); // never got to record an ending
    expect(formatRunList([run])).toContain(`interrupted (process ${child.pid} is gone; rerun to resume)`);
    const record = await loadRun(store, run.runId);
    expect(formatRunStatus(record)).toMatch(/^numbers\s+numbers@1\s+succeeded\s+miss/m);
    for (const digest of await store.list()) await store.verify(digest);

    const resumed = await collect(spawnTsx(RUN_DAG, [store.root], { DRO_TEST_STEP_MS: '0' }));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resultOf(resumed.stdout).nodes.map((n) => [n.id, n.cacheHit])).toEqual([
      ['numbers', true],
      ['slow', false],
      ['scale', false],
    ]);
  });
});

describe('a final save that fails', () => {
  // A real full disk: the store is a 1 MiB tmpfs in a private user + mount namespace; once the slow
  // stage is under way the test fills it (through /proc/<pid>/root), so the stage's output, every later
  // save and the final run record all fail with ENOSPC. The run index entry must still end terminal.
  it.skipIf(!canUnshare)('on a full disk still leaves a terminal run record, and says which file and why', async () => {
    const dir = path.join(temp.dir, 'full-disk');
    mkdirSync(dir);
    const root = path.join(dir, 'store');
    const tsx = (script: string, ...args: string[]) => [process.execPath, '--import', 'tsx', script, ...args].map((a) => `'${a}'`).join(' ');
    const script = [
      `mount -t tmpfs -o size=1m tmpfs ${dir} || exit 9`,
      `DRO_TEST_STEP_MS=10 DRO_TEST_MAX_ATTEMPTS=1 ${tsx(RUN_DAG, root)}; echo "EXIT $?"`,
      `rm -f ${dir}/filler`,
      tsx(LIST_RUNS, root),
    ].join('\n');
    const child = spawn('unshare', ['-Urm', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let filled = false;
    const result = await collect(child, (line) => {
      if (filled || !line.includes('"node-progress"') || !line.includes('"slow"')) return;
      filled = true;
      const fd = openSync(`/proc/${child.pid}/root${dir}/filler`, 'w');
      try {
        for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 1));
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
    });
    expect(filled, result.stderr).toBe(true);
    const lines = result.stdout.trim().split('\n');
    expect(lines, result.stdout + result.stderr.slice(-3000)).toContain('EXIT 1');
    const error = lines.find((l) => l.startsWith('ERROR '));
    expect(error).toMatch(/^ERROR RunRecordSaveError: run \S+ ended failed, but its final record could not be saved: cannot write .*: no space left on device \(ENOSPC\)\. The run index shows it as failed/);
    expect(error).toContain(root);
    // The stage that hit the full disk failed with the file and the cause in its error.
    expect(result.stderr).toMatch(/"node":"slow".*no space left on device \(ENOSPC\)/);

    const listed = JSON.parse(lines.at(-1)!) as { runs: { status: string }[]; latest: { status: string; note: string; nodes: string[][] }; skipped: string[] };
    expect(listed.runs.map((r) => r.status)).toEqual(['failed']);
    expect(listed.skipped).toEqual([]);
    expect(listed.latest.status).toBe('failed');
    expect(listed.latest.note).toMatch(/final run record could not be saved .*ENOSPC/);
  });
});
