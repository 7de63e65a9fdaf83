import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BadInputError, LocalArtifactStore } from '@dro/artifacts';
import {
  CACHE_NAMESPACE,
  backoffDelayMs,
  createProgressReporter,
  formatRunList,
  formatRunStatus,
  listRuns,
  loadRun,
  runDag,
  validateDag,
  type Dag,
  type RunRecord,
} from '../src/index.ts';
import { runCounts, testStages } from './fixtures/stages.ts';
import { captureStream, makeTempDir } from './helpers.ts';

const temp = makeTempDir('runner');
afterAll(temp.cleanup);
let storeCount = 0;
const freshStore = () => new LocalArtifactStore({ root: path.join(temp.dir, `store-${storeCount++}`) });
const quiet = () => createProgressReporter({ mode: 'silent' });
const fastRetry = { initialDelayMs: 5, maxDelayMs: 20 };

beforeEach(() => runCounts.clear());

/**   numbers ─┬─► scale-a ─┐
 *             └─► scale-b ─┴─► sum        other (independent) */
function diamond(factorA = 2): Dag {
  return {
    name: 'diamond',
    nodes: [
      { id: 'numbers', stage: 'numbers', params: { count: 5 }, inputs: {} },
      { id: 'scale-a', stage: 'scale', params: { factor: factorA }, inputs: { numbers: { node: 'numbers', output: 'numbers' } } },
      { id: 'scale-b', stage: 'scale', params: { factor: 10 }, inputs: { numbers: { node: 'numbers', output: 'numbers' } } },
      { id: 'sum', stage: 'sum', params: {}, inputs: { a: { node: 'scale-a', output: 'scaled' }, b: { node: 'scale-b', output: 'scaled' } } },
      { id: 'other', stage: 'numbers', params: { count: 3, start: 100 }, inputs: {} },
    ],
  };
}

const byId = (run: RunRecord) => Object.fromEntries(run.nodes.map((n) => [n.id, n]));

describe('runDag', () => {
  it('runs a DAG in dependency order; a second run is 100% cache hits with identical outputs', async () => {
    const store = freshStore();
    const first = await runDag(diamond(), { store, stages: testStages, progress: quiet(), concurrency: 2 });
    expect(first.status).toBe('succeeded');
    expect(first.nodes.map((n) => n.cacheHit)).toEqual([false, false, false, false, false]);
    expect(first.nodes.findIndex((n) => n.id === 'sum')).toBeGreaterThan(first.nodes.findIndex((n) => n.id === 'scale-b'));
    const total = await store.getJson<{ values: number[] }>(byId(first).sum.outputs.total);
    expect(total.values).toEqual([(0 + 1 + 2 + 3 + 4) * 2 + (0 + 1 + 2 + 3 + 4) * 10]);
    expect(Object.fromEntries(runCounts)).toEqual({ numbers: 2, scale: 2, sum: 1 });

    runCounts.clear();
    const second = await runDag(diamond(), { store, stages: testStages, progress: quiet() });
    expect(second.status).toBe('succeeded');
    expect(second.nodes.every((n) => n.cacheHit === true && n.attempts === 0)).toBe(true);
    expect(runCounts.size).toBe(0);
    for (const n of second.nodes) expect(n.outputs).toEqual(byId(first)[n.id].outputs);
    expect(second.runId).not.toBe(first.runId);
  });

  it('changing one stage’s params reruns exactly it and its descendants', async () => {
    const store = freshStore();
    await runDag(diamond(2), { store, stages: testStages, progress: quiet() });
    runCounts.clear();
    const changed = await runDag(diamond(3), { store, stages: testStages, progress: quiet() });
    const hits = Object.fromEntries(changed.nodes.map((n) => [n.id, n.cacheHit]));
    expect(hits).toEqual({ numbers: true, 'scale-a': false, 'scale-b': true, sum: false, other: true });
    expect(Object.fromEntries(runCounts)).toEqual({ scale: 1, sum: 1 });
    const total = await store.getJson<{ values: number[] }>(byId(changed).sum.outputs.total);
    expect(total.values).toEqual([10 * 3 + 10 * 10]);
  });

  it('retries a transient failure with backoff: fails twice, then succeeds on attempt 3', async () => {
    const store = freshStore();
    const progress = captureStream();
    const dag: Dag = { name: 'flaky', nodes: [{ id: 'flaky', stage: 'flaky', params: { token: 'retry-test', failures: 2 }, inputs: {} }] };
    const run = await runDag(dag, { store, stages: testStages, progress: createProgressReporter({ stream: progress }), retry: fastRetry });
    expect(run.status).toBe('succeeded');
    expect(byId(run).flaky).toMatchObject({ status: 'succeeded', attempts: 3, cacheHit: false, error: null });
    const retries = progress.lines().filter((l) => l.event === 'node-retrying');
    expect(retries.map((l) => [l.attempt, l.delayMs])).toEqual([
      [2, 5],
      [3, 10],
    ]);
    expect(retries[0].error).toBe('connection reset (transient failure 1 of 2)');
  });

  it('gives up on a transient failure after maxAttempts', async () => {
    const store = freshStore();
    const dag: Dag = { name: 'flaky', nodes: [{ id: 'flaky', stage: 'flaky', params: { token: 'exhaust', failures: 5 }, inputs: {} }] };
    const run = await runDag(dag, { store, stages: testStages, progress: quiet(), retry: { ...fastRetry, maxAttempts: 2 } });
    expect(run.status).toBe('failed');
    expect(byId(run).flaky).toMatchObject({ status: 'failed', attempts: 2, error: { name: 'Error', message: 'connection reset (transient failure 2 of 5)' } });
  });

  it('does not retry a bad-input failure, surfaces its message unchanged and skips descendants', async () => {
    const store = freshStore();
    const dag: Dag = {
      name: 'bad',
      nodes: [
        { id: 'numbers', stage: 'numbers', params: { count: 2 }, inputs: {} },
        { id: 'check', stage: 'rejects-input', params: {}, inputs: { numbers: { node: 'numbers', output: 'numbers' } } },
        { id: 'after', stage: 'scale', params: {}, inputs: { numbers: { node: 'check', output: 'numbers' } } },
      ],
    };
    const run = await runDag(dag, { store, stages: testStages, progress: quiet(), retry: fastRetry, concurrency: 1 });
    expect(run.status).toBe('failed');
    expect(byId(run).check).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { name: 'BadInputError', message: 'numbers.values[3]: expected a positive number, got -2' },
    });
    expect(byId(run).after.status).toBe('skipped');
    expect(runCounts.get('rejects-input')).toBe(1);
    expect(formatRunStatus(run)).toContain('BadInputError: numbers.values[3]: expected a positive number, got -2');
  });

  it('rejects an invalid DAG before running anything, naming the node', async () => {
    const store = freshStore();
    const base = diamond();
    const cases: [string, Dag, RegExp][] = [
      ['unknown stage', { ...base, nodes: [...base.nodes, { id: 'x', stage: 'nope', params: {}, inputs: {} }] }, /node "x" uses unknown stage "nope"/],
      ['bad params', { ...base, nodes: [{ ...base.nodes[0], params: { count: 'five' } }, ...base.nodes.slice(1)] }, /node "numbers" params: count: expected a number, got "five"/],
      ['missing input', { ...base, nodes: [...base.nodes, { id: 's2', stage: 'sum', params: {}, inputs: { a: { node: 'numbers', output: 'numbers' } } }] }, /node "s2" is missing input "b"/],
      ['wrong output', { ...base, nodes: [...base.nodes, { id: 's3', stage: 'scale', params: {}, inputs: { numbers: { node: 'numbers', output: 'nums' } } }] }, /wants output "nums" of node "numbers"/],
      ['unknown input name', { ...base, nodes: [...base.nodes, { id: 's4', stage: 'numbers', params: { count: 1 }, inputs: { extra: { node: 'numbers', output: 'numbers' } } }] }, /node "s4" has input "extra"/],
      ['duplicate id', { ...base, nodes: [...base.nodes, base.nodes[0]] }, /duplicate node id "numbers"/],
      [
        'cycle',
        {
          name: 'loop',
          nodes: [
            { id: 'p', stage: 'scale', params: {}, inputs: { numbers: { node: 'q', output: 'scaled' } } },
            { id: 'q', stage: 'scale', params: {}, inputs: { numbers: { node: 'p', output: 'scaled' } } },
          ],
        },
        /cycle among nodes "p", "q"/,
      ],
    ];
    for (const [label, dag, pattern] of cases) {
      expect(() => validateDag(dag, testStages), label).toThrow(BadInputError);
      await expect(runDag(dag, { store, stages: testStages, progress: quiet() }), label).rejects.toThrow(pattern);
    }
    expect(runCounts.size).toBe(0);
    expect(await listRuns(store)).toEqual([]);
  });

  it('rejects options that cannot mean anything (concurrency 0/-1/1.5, forcing a node not in the DAG) instead of clamping or ignoring them', async () => {
    const store = freshStore();
    const run = (options: object) => runDag(diamond(), { store, stages: testStages, progress: quiet(), ...options });
    for (const concurrency of [0, -1, 1.5]) await expect(run({ concurrency })).rejects.toThrow(`runDag: concurrency must be a whole number ≥ 1, got ${concurrency}`);
    await expect(run({ modelConcurrency: 0 })).rejects.toThrow('runDag: modelConcurrency must be a whole number ≥ 1, got 0');
    await expect(run({ force: ['sum', 'summ'] })).rejects.toThrow('runDag: force names "summ", not nodes of DAG "diamond" (nodes: numbers, scale-a, scale-b, sum, other)');
    expect(runCounts.size).toBe(0);
    expect(await listRuns(store)).toEqual([]);
  });

  it('stops on abort: running stages see the signal, nothing new starts, the run is recorded as cancelled', async () => {
    const store = freshStore();
    const controller = new AbortController();
    const progress = captureStream();
    const dag: Dag = {
      name: 'abortable',
      nodes: [
        { id: 'numbers', stage: 'numbers', params: { count: 2 }, inputs: {} },
        { id: 'slow', stage: 'slow', params: { steps: 100_000 }, inputs: { numbers: { node: 'numbers', output: 'numbers' } }, model: { path: '/models/none', digest: 'f'.repeat(64) } },
        { id: 'after', stage: 'scale', params: {}, inputs: { numbers: { node: 'slow', output: 'scaled' } } },
      ],
    };
    const reporter = createProgressReporter({ stream: progress });
    const watched = Object.assign(Object.create(reporter) as typeof reporter, {
      nodeProgress(nodeId: string, event: { done: number }) {
        if (event.done === 20) controller.abort(new DOMException('test abort', 'AbortError'));
        reporter.nodeProgress(nodeId, event);
      },
    });
    const run = await runDag(dag, { store, stages: testStages, progress: watched, signal: controller.signal });
    expect(run.status).toBe('cancelled');
    expect(run.nodes.map((n) => n.status)).toEqual(['succeeded', 'cancelled', 'cancelled']);
    expect(byId(run).slow.attempts).toBe(1); // cancellation is not retried
    expect((await loadRun(store, run.runId)).status).toBe('cancelled');
  });

  it('records every run: listRuns, loadRun, formatted status, and gc keeps what runs produced', async () => {
    const store = freshStore();
    const first = await runDag(diamond(2), { store, stages: testStages, progress: quiet() });
    const second = await runDag(diamond(2), { store, stages: testStages, progress: quiet() });
    const runs = await listRuns(store);
    expect(runs.map((r) => r.runId)).toEqual([first.runId, second.runId]);
    expect(runs[1]).toMatchObject({ dagName: 'diamond', status: 'succeeded', nodes: 5, cacheHits: 5, failed: 0 });
    expect(await loadRun(store)).toEqual(second);
    expect(await loadRun(store, first.runId)).toEqual(first);
    await expect(loadRun(store, 'no-such-run')).rejects.toThrow(/no run "no-such-run"/);
    await expect(loadRun(store, '../escape')).rejects.toThrow(/record key/);

    const text = formatRunStatus(first);
    expect(text.split('\n')[0]).toContain(`run ${first.runId}  DAG "diamond"  succeeded`);
    expect(text).toMatch(/^NODE\s+STAGE\s+STATUS\s+CACHE\s+ATTEMPTS\s+TIME\s+OUTPUTS \/ ERROR$/m);
    expect(text).toMatch(new RegExp(`^scale-a\\s+scale@1\\s+succeeded\\s+miss\\s+1\\s+\\S+\\s+scaled=${byId(first)['scale-a'].outputs.scaled.digest.slice(0, 12)}$`, 'm'));
    expect(formatRunStatus(second)).toMatch(/^sum\s+sum@1\s+succeeded\s+hit\s+0/m);
    expect(formatRunList(runs)).toContain(`${second.runId}  diamond  succeeded`);

    // gc: an artifact no run references goes; every output of a recorded run stays.
    const stray = await store.putJson('test-numbers/v1', { values: [42] }, { producer: { stage: 'stray', version: '1' }, params: {}, inputs: {} });
    const planned = await store.gc({ graceMs: 0, dryRun: true });
    // Besides the stray artifact, only superseded snapshots of run records (saved as each node finished) go.
    expect(planned.deleted).toContain(stray.digest);
    for (const digest of planned.deleted.filter((d) => d !== stray.digest)) {
      expect((await store.manifest(digest)).schema).toBe('run-record/v1');
    }
    const report = await store.gc({ graceMs: 0 });
    expect(report.deleted).toEqual(planned.deleted);
    for (const run of runs) expect(await store.has(run.record.digest)).toBe(true);
    for (const n of first.nodes) for (const ref of Object.values(n.outputs)) expect(await store.has(ref.digest)).toBe(true);
    // Cache entries survive with their outputs, so the next run is still all hits.
    expect((await store.records.list(CACHE_NAMESPACE)).length).toBe(5);
    const third = await runDag(diamond(2), { store, stages: testStages, progress: quiet() });
    expect(third.nodes.every((n) => n.cacheHit)).toBe(true);
  });

  it('reruns a node whose cached output was garbage-collected', async () => {
    const store = freshStore();
    const first = await runDag(diamond(), { store, stages: testStages, progress: quiet() });
    // Forget the runs (unpin everything), collect, and run again: every node reruns, nothing breaks.
    for (const runId of await store.records.list('runs')) await store.records.delete('runs', runId);
    await store.gc({ graceMs: 0 });
    expect(await store.has(byId(first).sum.outputs.total.digest)).toBe(false);
    runCounts.clear();
    const again = await runDag(diamond(), { store, stages: testStages, progress: quiet() });
    expect(again.nodes.every((n) => n.cacheHit === false)).toBe(true);
    expect(byId(again).sum.outputs).toEqual(byId(first).sum.outputs);
  });

  it('backoff grows exponentially up to the cap', () => {
    const policy = { maxAttempts: 6, initialDelayMs: 100, maxDelayMs: 500, backoffCoefficient: 2 };
    expect([2, 3, 4, 5, 6].map((n) => backoffDelayMs(policy, n))).toEqual([100, 200, 400, 500, 500]);
  });
});
