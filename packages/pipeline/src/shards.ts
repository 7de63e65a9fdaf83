/**
 * Row-parallel nodes: a node of a stage that declares `rowParallel` (see stage.ts) and has a `shardSize`
 * runs as shards plus a merge, the same way on both engines:
 *
 *   planShards  — the node's own cache entry first (a hit ends it); else the rows the stage computes are
 *                 cut into shards of whole chunks, each shard's rows written as an ordinary artifact of the
 *                 input's schema (so editing one query changes one shard's input digest, and only that
 *                 shard's cache key);
 *   shards      — each an ordinary executeNode of the same stage and params on its rows: its own cache
 *                 entry, retried alone, on any worker (a Temporal activity each);
 *   mergeShards — every output's shard tables concatenated in order and written with the manifest the
 *                 unsharded run writes, then recorded under the NODE's cache key: a sharded and an
 *                 unsharded run of the same node share the cache, and their outputs have one digest (each
 *                 shard computes exactly the chunks the unsharded run computes, and tableToParquet's bytes
 *                 do not depend on batching).
 */
import { BadInputError, type ArtifactRef, type ManifestInput } from '@dro/artifacts';
import type { DagNode, RowParallel } from './stage.ts';
import { findCachedNode, prepareNode, recordCachedNode, type ExecuteNodeRequest, type NodeExecution } from './execute-node.ts';
import { checkOutputs } from './run-stage.ts';

type Table = Awaited<ReturnType<ExecuteNodeRequest['store']['getTable']>>;

/** One shard: a node of the same stage and params whose row-parallel input is the shard's rows. */
export interface Shard {
  node: DagNode;
  inputs: Record<string, ArtifactRef>;
  /** Estimated relative cost (RowParallel.rowCost over its chunks): shards start costliest first. */
  cost: number;
}

export type ShardPlan =
  /** The node's outputs are cached: nothing to run. */
  | { kind: 'cached'; execution: NodeExecution }
  /** Not sharded (not row-parallel, no shardSize, or one shard's worth of rows): run the node as it is. */
  | { kind: 'whole' }
  | { kind: 'sharded'; shards: Shard[]; rows: number; shardRows: number };

/** Version of the shard-input artifacts' producer (recorded in their manifests). */
const SHARD_PRODUCER = { stage: 'shard-rows', version: '1' };

/** Shard k's node id, "<node>#<k+1>/<n>": what status views, logs and Temporal activity ids show. */
export function shardNodeId(nodeId: string, index: number, count: number): string {
  return `${nodeId}#${index + 1}/${count}`;
}

/**
 * A shardSize that can mean something: a whole number ≥ 1 (BadInputError naming the node otherwise). On a
 * stage that is not row-parallel (a stage plugin may replace one that is) it is ignored: the node runs whole.
 */
export function checkShardSize(node: Pick<DagNode, 'id' | 'shardSize'>): void {
  if (node.shardSize === undefined) return;
  if (!Number.isInteger(node.shardSize) || node.shardSize < 1) {
    throw new BadInputError(`node "${node.id}": shardSize must be a whole number ≥ 1, got ${JSON.stringify(node.shardSize)}`);
  }
}

/** Rows per shard: shardSize rounded up to whole chunks, so no chunk is split across shards. */
export function shardRows(shardSize: number, chunkRows: number): number {
  return Math.ceil(shardSize / chunkRows) * chunkRows;
}

/** The node's cache hit, or its shards, or "run it whole". Writes the shards' input artifacts. */
export async function planShards(request: ExecuteNodeRequest): Promise<ShardPlan> {
  const { store, node, inputs } = request;
  const prepared = await prepareNode(request);
  if (!request.force) {
    const cached = await findCachedNode(store, node, prepared);
    if (cached) return { kind: 'cached', execution: cached };
  }
  const rowParallel = prepared.stage.rowParallel as RowParallel<unknown> | undefined;
  if (!rowParallel || node.shardSize === undefined) return { kind: 'whole' };
  checkShardSize(node);
  const chunkRows = rowParallel.chunkRows(prepared.params);
  if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new Error(`stage ${prepared.stage.name}: rowParallel.chunkRows gave ${chunkRows}, expected a whole number ≥ 1`);
  const perShard = shardRows(node.shardSize, chunkRows);
  const source = inputs[rowParallel.input];
  if (!source) throw new BadInputError(`node "${node.id}" is missing input "${rowParallel.input}"`);
  const table = await store.getTable(source);
  const rows = rowParallel.selectRows ? rowParallel.selectRows(table, prepared.params) : Array.from({ length: table.numRows }, (_, i) => i);
  if (rows.length <= perShard) return { kind: 'whole' };
  const count = Math.ceil(rows.length / perShard);
  const rowCost = (row: number): number => {
    const cost = rowParallel.rowCost ? rowParallel.rowCost(table, row, prepared.params) : 1;
    if (!Number.isFinite(cost) || cost < 0) throw new Error(`stage ${prepared.stage.name}: rowParallel.rowCost gave ${cost} for row ${row}, expected a finite number ≥ 0`);
    return cost;
  };
  const shards: Shard[] = [];
  for (let k = 0; k < count; k++) {
    prepared.signal.throwIfAborted();
    const picked = rows.slice(k * perShard, (k + 1) * perShard);
    const manifest: ManifestInput = {
      producer: SHARD_PRODUCER,
      params: { node: node.id, input: rowParallel.input, shard: k, shards: count, rows: picked.length },
      inputs: { [rowParallel.input]: source.digest },
      modelDigest: null,
    };
    const ref = await store.putTable(source.schema, takeRows(table, picked), manifest);
    const { shardSize: _, ...rest } = node;
    const id = shardNodeId(node.id, k, count);
    shards.push({ node: { ...rest, id, inputs: { ...node.inputs, [rowParallel.input]: { ref } } }, inputs: { ...inputs, [rowParallel.input]: ref }, cost: shardCost(picked, chunkRows, rowCost) });
  }
  return { kind: 'sharded', shards, rows: rows.length, shardRows: perShard };
}

/** A shard's estimated cost: each of its chunks costs its rows × its costliest row (padding). */
function shardCost(rows: readonly number[], chunkRows: number, rowCost: (row: number) => number): number {
  let cost = 0;
  for (let start = 0; start < rows.length; start += chunkRows) {
    const chunk = rows.slice(start, start + chunkRows);
    cost += chunk.length * chunk.reduce((most, row) => Math.max(most, rowCost(row)), 0);
  }
  return cost;
}

/** The table's rows at `indices`, in that order (zero-copy slices of each contiguous run). */
function takeRows(table: Table, indices: readonly number[]): Table {
  const runs: Table[] = [];
  for (let i = 0; i < indices.length; ) {
    let j = i + 1;
    while (j < indices.length && indices[j] === indices[j - 1]! + 1) j++;
    runs.push(table.slice(indices[i], indices[j - 1]! + 1));
    i = j;
  }
  return runs[0]!.concat(...runs.slice(1));
}

/**
 * Every output of the node as its shards' tables concatenated in shard order, written with the manifest
 * the unsharded run writes (the first shard's, with the node's own inputs), and recorded under the node's
 * cache key.
 */
export async function mergeShards(request: ExecuteNodeRequest, shardOutputs: ReadonlyArray<Record<string, ArtifactRef>>): Promise<NodeExecution> {
  const { store, node, inputs } = request;
  const prepared = await prepareNode(request);
  const { stage } = prepared;
  if (shardOutputs.length === 0) throw new Error(`node "${node.id}": no shard outputs to merge`);
  const inputDigests = Object.fromEntries(Object.entries(inputs).map(([name, ref]) => [name, ref.digest]));
  const outputs: Record<string, ArtifactRef> = {};
  for (const name of stage.outputs) {
    const refs = shardOutputs.map((o, k) => {
      const ref = o[name];
      if (!ref) throw new Error(`node "${node.id}": shard ${k + 1} has no output "${name}"`);
      if (ref.format !== 'parquet') throw new BadInputError(`node "${node.id}" (stage ${stage.name}): row-parallel output "${name}" is ${ref.format}, not a table`);
      return ref;
    });
    prepared.signal.throwIfAborted();
    const tables = [];
    for (const ref of refs) tables.push(await store.getTable(ref));
    const first = await store.manifest(refs[0]!.digest);
    const manifest: ManifestInput = {
      producer: first.producer,
      params: first.params,
      inputs: inputDigests,
      modelDigest: first.modelDigest,
      backend: first.backend,
      // No summary: a shard's describes its rows only.
    };
    outputs[name] = await store.putTable(refs[0]!.schema, tables[0]!.concat(...tables.slice(1)), manifest);
  }
  await checkOutputs(store, stage, outputs, node.id);
  return recordCachedNode(store, node, prepared, outputs);
}
