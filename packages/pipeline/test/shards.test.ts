/**
 * Shards on the local runner with a row-parallel test stage (real store): a shard that fails is retried
 * alone (the others run once), the merged outputs equal the unsharded run's, `dro status` shows shard
 * counts, shards stay within their chunks, and a shardSize that cannot mean anything is an error.
 */
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BadInputError, LocalArtifactStore, defineTableSchema, tableForSchema } from '@dro/artifacts';
import { StageRegistry, createProgressReporter, formatRunStatus, planShards, runDag, shardDispatchOrder, shardRows, validateDag, type Dag, type RowParallel, type Stage } from '../src/index.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('shards');
afterAll(temp.cleanup);
let storeCount = 0;
const freshStore = () => new LocalArtifactStore({ root: path.join(temp.dir, `store-${storeCount++}`) });

const rowsSchema = defineTableSchema({ name: 'test-shard-rows/v1', columns: [{ name: 'id', type: 'int32' }, { name: 'group', type: 'utf8' }] });
const squaresSchema = defineTableSchema({ name: 'test-shard-squares/v1', columns: [{ name: 'id', type: 'int32' }, { name: 'square', type: 'float64' }, { name: 'chunk_rows', type: 'int32' }] });

/** Calls per first row id of each run, and ids that fail once the first time they are computed. */
const calls = new Map<number, number>();
const failOnce = new Set<number>();
/** Ids whose shard fails for good (bad input: never retried). */
const failAlways = new Set<number>();

const rowsStage: Stage<{ count: number }> = {
  name: 'rows',
  version: '1',
  needs: 'cpu',
  inputs: [],
  outputs: ['rows'],
  outputSchemas: { rows: rowsSchema.name },
  async run(ctx, _inputs, params) {
    const ids = Array.from({ length: params.count }, (_, i) => i);
    const table = tableForSchema(rowsSchema, { id: ids, group: ids.map((i) => (i % 3 === 0 ? 'skip' : 'keep')) });
    return { rows: await ctx.store.putTable(rowsSchema.name, table, ctx.manifest()) };
  },
};

/**
 * Squares the "keep" rows, in chunks of `chunk`; each row records the size of the chunk it was computed in.
 * With `costById` a row's estimated cost is its id (else every row costs the default 1).
 */
const squaresStage: Stage<{ chunk: number; costById?: boolean }> = {
  name: 'squares',
  version: '1',
  needs: 'cpu',
  inputs: ['rows'],
  inputSchemas: { rows: rowsSchema.name },
  outputs: ['squares'],
  outputSchemas: { squares: squaresSchema.name },
  rowParallel: {
    input: 'rows',
    chunkRows: (params) => params.chunk,
    selectRows: (table) => Array.from({ length: table.numRows }, (_, i) => i).filter((i) => table.getChild('group')!.get(i) === 'keep'),
    ...({ rowCost: (table, row, params) => (params.costById ? (table.getChild('id')!.get(row) as number) : 1) } satisfies Partial<RowParallel<{ costById?: boolean }>>),
  },
  async run(ctx, inputs, params) {
    const table = await ctx.store.getTable(inputs.rows!);
    const ids = (Array.from(table.getChild('id')!.toArray()) as number[]).filter((_, i) => table.getChild('group')!.get(i) === 'keep');
    calls.set(ids[0]!, (calls.get(ids[0]!) ?? 0) + 1);
    if (ids.some((id) => failOnce.delete(id))) throw new Error(`transient failure at rows ${ids[0]}…`);
    if (ids.some((id) => failAlways.has(id))) throw new BadInputError(`row ${ids.find((id) => failAlways.has(id))} is bad`);
    const chunkRows = ids.map((_, i) => Math.min(params.chunk, ids.length - Math.floor(i / params.chunk) * params.chunk));
    const squares = tableForSchema(squaresSchema, { id: ids, square: ids.map((id) => id * id), chunk_rows: chunkRows });
    return { squares: await ctx.store.putTable(squaresSchema.name, squares, ctx.manifest()) };
  },
};

const stages = new StageRegistry([rowsStage, squaresStage]);
const dag = (shardSize?: number, chunk = 2, costById = false): Dag => ({
  name: 'shards',
  nodes: [
    { id: 'rows', stage: 'rows', params: { count: 30 }, inputs: {} },
    { id: 'squares', stage: 'squares', params: { chunk, ...(costById ? { costById } : {}) }, inputs: { rows: { node: 'rows', output: 'rows' } }, ...(shardSize !== undefined ? { shardSize } : {}) },
  ],
});
const run = (d: Dag, store = freshStore(), concurrency = 3) => runDag(d, { store, stages, concurrency, retry: { initialDelayMs: 5, maxDelayMs: 20 }, progress: createProgressReporter({ mode: 'silent' }) });

beforeEach(() => {
  calls.clear();
  failOnce.clear();
  failAlways.clear();
});

describe('shards on the local runner', () => {
  it('a failing shard is retried alone; the merged output is the unsharded one; status shows the shard counts', async () => {
    const whole = await run(dag());
    calls.clear();
    // 20 "keep" rows (ids not divisible by 3) in shards of 5 → 6 rows (3 chunks of 2): 4 shards.
    failOnce.add(10);
    const store = freshStore();
    const sharded = await run(dag(5), store);
    expect(sharded.status).toBe('succeeded');
    const node = sharded.nodes.find((n) => n.id === 'squares')!;
    expect(node.shards).toEqual({ total: 4, done: 4, cacheHits: 0 });
    expect(node.outputs).toEqual(whole.nodes.find((n) => n.id === 'squares')!.outputs);
    // Shards start at keep-rows 1, 10, 19, 28 (6 of them each, 2 in the last); the one holding id 10 ran twice, the others once.
    expect(Object.fromEntries(calls)).toEqual({ 1: 1, 10: 2, 19: 1, 28: 1 });
    expect(node.attempts).toBe(2);
    expect(formatRunStatus(sharded)).toMatch(/squares +squares@1 +succeeded 4\/4 shards +miss/);
    // A rerun is one node-level cache hit; an unsharded rerun of the same store too.
    calls.clear();
    const again = await run(dag(5), store);
    expect(again.nodes.find((n) => n.id === 'squares')).toMatchObject({ cacheHit: true });
    expect((await run(dag(), store)).nodes.find((n) => n.id === 'squares')).toMatchObject({ cacheHit: true });
    expect(calls.size).toBe(0);
  });

  it('shards hold whole chunks: a shardSize between chunks rounds up, so every chunk has the unsharded size', async () => {
    expect(shardRows(5, 4)).toBe(8);
    expect(shardRows(8, 4)).toBe(8);
    const whole = await run(dag(undefined, 4));
    const sharded = await run(dag(5, 4));
    expect(sharded.nodes.find((n) => n.id === 'squares')!.shards).toMatchObject({ total: 3 });
    expect(sharded.nodes.find((n) => n.id === 'squares')!.outputs).toEqual(whole.nodes.find((n) => n.id === 'squares')!.outputs);
  });

  it('a shard that fails for good fails its node with the shard\'s message, and shards not yet started never start', async () => {
    failAlways.add(11);
    const record = await run(dag(5), freshStore(), 1);
    expect(record.status).toBe('failed');
    const node = record.nodes.find((n) => n.id === 'squares')!;
    expect(node).toMatchObject({ status: 'failed', error: { name: 'BadInputError', message: 'row 11 is bad' } });
    expect(node.shards).toEqual({ total: 4, done: 1, cacheHits: 0 });
    // One slot: shard 1 ran, shard 2 failed (once: bad input is not retried), shards 3 and 4 never started.
    expect(Object.fromEntries(calls)).toEqual({ 1: 1, 10: 1 });
  });

  it('shards start costliest first (a chunk costs its rows × its costliest row); the merge keeps shard order', async () => {
    expect(shardDispatchOrder([3, 9, 9, 1])).toEqual([1, 2, 0, 3]);
    expect(shardDispatchOrder([])).toEqual([]);
    // Keep-rows in shards of 6 (chunks of 2), a row costing its id: shard 1 [1 2|4 5|7 8] = 2·2 + 2·5 + 2·8
    // = 30, shard 2 [10 11|13 14|16 17] = 84, shard 3 [19 20|22 23|25 26] = 138, shard 4 [28 29] = 58.
    const store = freshStore();
    const first = await run(dag(5, 2, true), store, 1);
    const planned = await planShards({ store, node: dag(5, 2, true).nodes[1]!, inputs: { rows: first.nodes[0]!.outputs!.rows! }, stages, force: true });
    expect(planned.kind === 'sharded' && planned.shards.map((s) => s.cost)).toEqual([30, 84, 138, 58]);
    // One slot: shards ran in that order (the calls map keeps first-row ids in insertion order).
    expect([...calls.keys()]).toEqual([19, 10, 28, 1]);
    const whole = await run(dag(undefined, 2, true));
    expect(first.nodes.find((n) => n.id === 'squares')!.outputs).toEqual(whole.nodes.find((n) => n.id === 'squares')!.outputs);
  });

  it('too few rows for two shards runs the node whole', async () => {
    const record = await run(dag(100));
    expect(record.nodes.find((n) => n.id === 'squares')!.shards).toBeUndefined();
    expect(Object.fromEntries(calls)).toEqual({ 1: 1 });
  });

  it('a shardSize that is not a whole number ≥ 1 is an error naming the node', () => {
    for (const bad of [0, -2, 1.5]) expect(() => validateDag(dag(bad), stages)).toThrow(`node "squares": shardSize must be a whole number ≥ 1, got ${bad}`);
  });
});
