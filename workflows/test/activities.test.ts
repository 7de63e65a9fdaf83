/**
 * The activity adapters in isolation (MockActivityEnvironment: a real activity Context without a server),
 * over the real store and the test stages: heartbeats carry progress, cancellation reaches ctx.signal,
 * errors are classified for the retry policy, DAG planning names the offending node.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import type { Dag } from '@dro/pipeline';
import { createActivities, toActivityFailure } from '../src/activities.ts';
import { createNodeExecutor } from '../src/executor.ts';
import type { RunStageResult, StageHeartbeat } from '../src/shared.ts';
import { numbersStage, testStages } from './fixtures/stages.ts';
import { squaresDag } from './fixtures/dags.ts';
import { auditStore, openStore, tempDir } from './fixtures/env.ts';

const storeDir = tempDir('dro-act-store-');
const scratch = tempDir('dro-act-scratch-');
const store = openStore(storeDir.dir);
const activities = createActivities({ stages: testStages, execute: createNodeExecutor({ store, stages: testStages }), workerIdentity: 'test-worker' });
afterAll(() => {
  storeDir.remove();
  scratch.remove();
});

async function numbersRef(seed: number) {
  const run: RunStageResult = await new MockActivityEnvironment().run(activities.runStageActivity, {
    runId: 'r',
    node: { id: 'numbers', stage: 'test-numbers', params: { count: 8, seed }, inputs: {} },
    inputs: {},
  });
  return run.outputs.numbers!;
}

describe('runStageActivity', () => {
  it('turns stage progress into heartbeats tagged with the node id and returns output refs', async () => {
    const numbers = await numbersRef(3);
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 10_000 });
    const beats: StageHeartbeat[] = [];
    env.on('heartbeat', (d: StageHeartbeat) => beats.push(d));
    const node = squaresDag('x').nodes[1]!;
    const result: RunStageResult = await env.run(activities.runStageActivity, { runId: 'r', node: { ...node, params: { steps: 3, stepMs: 1, width: 4 } }, inputs: { numbers } });
    expect(result.worker).toBe('test-worker');
    expect(result.outputs.squares!.schema).toBe('test-squares/v1');
    expect(await store.has(result.outputs.squares!.digest)).toBe(true);
    expect(beats[0]).toEqual({ nodeId: 'square', done: 0 });
    expect(beats.filter((b) => b.total !== undefined)).toEqual([1, 2, 3].map((done) => ({ nodeId: 'square', done, total: 3, message: `step ${done}/3` })));
    const squares = await store.getTensors(result.outputs.squares!);
    expect(squares.squares!.shape).toEqual([3, 4]);
  });

  it('re-executing a finished node is a cache hit with the same refs (retries are idempotent)', async () => {
    const node = { id: 'numbers', stage: 'test-numbers', params: { count: 5, seed: 11 }, inputs: {} };
    const first: RunStageResult = await new MockActivityEnvironment().run(activities.runStageActivity, { runId: 'r', node, inputs: {} });
    const again: RunStageResult = await new MockActivityEnvironment({ attempt: 2 }).run(activities.runStageActivity, { runId: 'r', node, inputs: {} });
    expect(first.cacheHit).toBe(false);
    expect(again.cacheHit).toBe(true);
    expect(again.outputs).toEqual(first.outputs);
  });

  it('activity cancellation aborts ctx.signal: the stage stops and writes nothing', async () => {
    const numbers = await numbersRef(4);
    const before = auditStore(storeDir.dir).digests;
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 10_000 });
    env.on('heartbeat', (d: StageHeartbeat) => {
      if (d.done >= 2) env.cancel('CANCELLED');
    });
    const node = squaresDag('x').nodes[1]!;
    const run = env.run(activities.runStageActivity, { runId: 'r', node: { ...node, params: { steps: 1000, stepMs: 5, width: 4 } }, inputs: { numbers } });
    await expect(run).rejects.toMatchObject({ name: 'CancelledFailure' });
    expect(auditStore(storeDir.dir).digests).toEqual(before);
  });

  it('a BadInputError from the stage becomes a non-retryable ApplicationFailure with the same message', async () => {
    const numbers = await numbersRef(5);
    const err = await new MockActivityEnvironment()
      .run(activities.runStageActivity, {
        runId: 'r',
        node: { id: 'check', stage: 'test-reject-input', params: { counterDir: scratch.dir }, inputs: {} },
        inputs: { numbers },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'BadInputError', nonRetryable: true, message: `input "numbers" (${numbers.digest.slice(0, 12)}): row 0: expected a negative value` });
  });

  it('other errors pass through unchanged so the retry policy retries them', async () => {
    const err = await new MockActivityEnvironment()
      .run(activities.runStageActivity, {
        runId: 'r',
        node: { id: 'flaky', stage: 'test-flaky', params: { counterDir: scratch.dir, failTimes: 5 }, inputs: {} },
        inputs: {},
      })
      .catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect((err as Error).message).toBe('transient failure 1 of 5');
    const plain = new Error('disk full');
    expect(toActivityFailure(plain)).toBe(plain);
  });
});

describe('planDag', () => {
  const plan = (dag: Dag) => new MockActivityEnvironment().run(activities.planDag, dag);

  it('returns each node’s resource class and a dependency order', async () => {
    const dag = squaresDag('ok');
    const reversed = { ...dag, nodes: [...dag.nodes].reverse() };
    expect(await plan(reversed)).toEqual({ needs: { total: 'cpu', square: 'model', numbers: 'cpu' }, order: ['numbers', 'square', 'total'], sharded: {} });
  });

  const cases: [string, (dag: Dag) => void, string][] = [
    ['unknown stage', (d) => (d.nodes[0]!.stage = 'test-nope'), 'DAG "bad": node "numbers" uses unknown stage "test-nope"'],
    ['duplicate id', (d) => (d.nodes[2]!.id = 'square'), 'DAG "bad": duplicate node id "square"'],
    ['missing input', (d) => delete d.nodes[2]!.inputs.squares, 'DAG "bad": node "total" is missing input "squares" of stage test-total'],
    ['unexpected input', (d) => (d.nodes[0]!.inputs.extra = { node: 'total', output: 'total' }), 'DAG "bad": node "numbers" has input "extra" but stage test-numbers expects []'],
    ['unknown output', (d) => (d.nodes[2]!.inputs.squares = { node: 'square', output: 'cubes' }), 'DAG "bad": node "total" input "squares" wants output "cubes" of node "square", which produces [squares]'],
    ['dangling node', (d) => (d.nodes[2]!.inputs.squares = { node: 'ghost', output: 'x' }), 'DAG "bad": node "total" input "squares" refers to unknown node "ghost"'],
    ['cycle', (d) => (d.nodes[1]!.inputs.numbers = { node: 'total', output: 'total' }), 'DAG "bad": cycle among nodes "square", "total"'],
  ];
  for (const [what, mutate, message] of cases) {
    it(`rejects a DAG with a ${what} as non-retryable bad input`, async () => {
      const dag = structuredClone(squaresDag('bad'));
      mutate(dag);
      await expect(plan(dag)).rejects.toMatchObject({ type: 'BadInputError', nonRetryable: true, message });
    });
  }

  it('rejects a self-loop, naming it and the nodes blocked behind it', async () => {
    const dag: Dag = {
      name: 'loop',
      nodes: [
        { id: 'a', stage: 'test-total', params: {}, inputs: { numbers: { node: 'n', output: 'numbers' }, squares: { node: 'b', output: 'squares' } } },
        { id: 'b', stage: 'test-slow-square', params: {}, inputs: { numbers: { node: 'n', output: 'numbers' } }, model: { path: '/models/none', digest: 'f'.repeat(64) } },
        { id: 'n', stage: numbersStage.name, params: {}, inputs: {} },
      ],
    };
    dag.nodes[1]!.inputs = { numbers: { node: 'b', output: 'squares' } };
    await expect(plan(dag)).rejects.toMatchObject({ type: 'BadInputError', message: 'DAG "loop": cycle among nodes "a", "b"' });
  });
});
