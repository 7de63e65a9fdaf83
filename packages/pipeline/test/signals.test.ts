/** SIGINT on a real child process running a real DAG against a real store. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore, isTempName } from '@dro/artifacts';
import { CACHE_NAMESPACE, formatRunList, formatRunStatus, listRuns, loadRun, type RunRecord } from '../src/index.ts';
import { collect, makeTempDir, spawnTsx } from './helpers.ts';
import './fixtures/stages.ts'; // declares test-numbers/v1 for reading the result

const RUN_DAG = fileURLToPath(new URL('./fixtures/run-dag.ts', import.meta.url));
const temp = makeTempDir('sigint');
afterAll(temp.cleanup);

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

const resultOf = (stdout: string) => JSON.parse(stdout.split('\n').find((l) => l.startsWith('RESULT '))!.slice(7)) as RunRecord;

describe('SIGINT', () => {
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
