/**
 * Run records: what happened in one run of a DAG (per-node status, timing, cache hits, attempts, output
 * refs, errors), saved as a JSON artifact and indexed by run id, so `dro status` can show it and gc keeps
 * everything a recorded run produced. Either engine can save one (engine: "local" | "temporal").
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  CorruptRecordError,
  NotFoundError,
  defineJsonSchema,
  type ArtifactRef,
  type CodeVersion,
  type IndexedArtifactStore,
} from '@dro/artifacts';
import type { Dag } from './stage.ts';

export type NodeStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface NodeRecord {
  id: string;
  stage: string;
  stageVersion: string;
  status: NodeStatus;
  /** null until the node has been looked up in the cache. */
  cacheHit: boolean | null;
  cacheKey: string | null;
  /** Times the stage was started (0 for a cache hit). */
  attempts: number;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  outputs: Record<string, ArtifactRef>;
  error: { name: string; message: string } | null;
  /** A sharded node's shards: how many, how many finished, how many of those were cache hits. */
  shards?: ShardCounts;
}

export interface ShardCounts {
  total: number;
  done: number;
  cacheHits: number;
}

export interface RunRecord {
  runId: string;
  dagName: string;
  engine: 'local' | 'temporal';
  status: RunStatus;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  code: CodeVersion;
  /** The process driving the run, so a "running" record whose process died can be told apart. */
  owner: { host: string; pid: number };
  dag: Dag;
  /** In execution (topological) order. */
  nodes: NodeRecord[];
}

/** The index entry per run: enough to list runs without loading each record. */
export interface RunSummary {
  runId: string;
  dagName: string;
  engine: RunRecord['engine'];
  status: RunStatus;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  nodes: number;
  cacheHits: number;
  failed: number;
  owner: RunRecord['owner'];
  /** The run-record artifact: the last complete snapshot of the run. */
  record: ArtifactRef;
  /** Set when the summary knows more than that snapshot (the final save failed; see saveRunEnding). */
  note?: string;
}

export const RUNS_NAMESPACE = 'runs';

const NODE_STATUSES = new Set<NodeStatus>(['pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped']);
const RUN_STATUSES = new Set<RunStatus>(['running', 'succeeded', 'failed', 'cancelled']);

export const runRecordSchema = defineJsonSchema<RunRecord>({
  name: 'run-record/v1',
  validate(value) {
    const run = value as RunRecord;
    if (typeof run !== 'object' || run === null) return ['expected an object'];
    const problems: string[] = [];
    if (typeof run.runId !== 'string') problems.push('runId: expected a string');
    if (typeof run.dagName !== 'string') problems.push('dagName: expected a string');
    if (!RUN_STATUSES.has(run.status)) problems.push(`status: expected one of ${[...RUN_STATUSES].join(', ')}`);
    if (typeof run.startedAt !== 'string') problems.push('startedAt: expected an ISO time');
    if (!Array.isArray(run.nodes)) return [...problems, 'nodes: expected an array'];
    run.nodes.forEach((node, i) => {
      if (typeof node?.id !== 'string') problems.push(`nodes[${i}].id: expected a string`);
      if (!NODE_STATUSES.has(node?.status)) problems.push(`nodes[${i}].status: expected one of ${[...NODE_STATUSES].join(', ')}`);
      if (typeof node?.attempts !== 'number') problems.push(`nodes[${i}].attempts: expected a number`);
      if (typeof node?.outputs !== 'object' || node.outputs === null) problems.push(`nodes[${i}].outputs: expected an object`);
    });
    return problems;
  },
});

/**
 * Whether a run still marked "running" has lost its process (killed, machine rebooted). Only decidable
 * for runs owned by this host; others are assumed alive.
 */
export function isOrphanedRun(run: Pick<RunRecord, 'status' | 'owner'>): boolean {
  if (run.status !== 'running' || !run.owner || run.owner.host !== hostname()) return false;
  try {
    process.kill(run.owner.pid, 0); // signal 0: existence check only
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Sortable, readable and unique enough: 20261128-014502-3f9a1c. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function summarizeRun(record: RunRecord, ref: ArtifactRef): RunSummary {
  return {
    runId: record.runId,
    dagName: record.dagName,
    engine: record.engine,
    status: record.status,
    startedAt: record.startedAt,
    endedAt: record.endedAt,
    durationMs: record.durationMs,
    nodes: record.nodes.length,
    cacheHits: record.nodes.filter((n) => n.cacheHit === true).length,
    failed: record.nodes.filter((n) => n.status === 'failed').length,
    owner: record.owner,
    record: ref,
  };
}

/**
 * Save the record as an artifact and point runs/<runId> at it. The index entry is pinned and lists the
 * record, every node output and every external input, so gc keeps all of it.
 */
export async function saveRunRecord(store: IndexedArtifactStore, record: RunRecord): Promise<ArtifactRef> {
  const ref = await store.putJson(runRecordSchema.name, record, {
    producer: { stage: `${record.engine}-runner`, version: '1' },
    params: { runId: record.runId, dag: record.dagName },
    inputs: {},
  });
  const refs = new Set<string>([ref.digest, ...runRefs(record)]);
  await store.records.put(RUNS_NAMESPACE, record.runId, summarizeRun(record, ref), { refs: [...refs], pin: true });
  return ref;
}

/** Every node output and every external input of a run: what its index entry pins. */
function runRefs(record: RunRecord): string[] {
  const refs: string[] = [];
  for (const node of record.nodes) for (const output of Object.values(node.outputs)) refs.push(output.digest);
  for (const node of record.dag.nodes) {
    for (const source of Object.values(node.inputs ?? {})) if ('ref' in source) refs.push(source.ref.digest);
  }
  return refs;
}

/**
 * The final save of a run failed (`cause`: a full disk, a vanished mount). Record at least how the run
 * ended: its index entry gets the terminal status, pointing at the last snapshot that was saved. Tries an
 * atomic write, then — a full disk has no room for a temp file — an in-place rewrite of the entry, whose
 * block is already allocated. Returns whether either worked.
 */
export async function saveRunEnding(store: IndexedArtifactStore, record: RunRecord, lastSaved: ArtifactRef | null, cause: unknown): Promise<boolean> {
  if (!lastSaved) return false;
  const summary: RunSummary = {
    ...summarizeRun(record, lastSaved),
    note: `the final run record could not be saved (${cause instanceof Error ? cause.message : String(cause)}); node details are from the last saved snapshot`,
  };
  const refs = [...new Set([lastSaved.digest, ...runRefs(record)])];
  try {
    await store.records.put(RUNS_NAMESPACE, record.runId, summary, { refs, pin: true });
    return true;
  } catch {
    return store.records.overwriteInPlace(RUNS_NAMESPACE, record.runId, summary, { refs, pin: true }).catch(() => false);
  }
}

/** runDag's error when a run ended but its final record could not be saved. */
export class RunRecordSaveError extends Error {
  override name = 'RunRecordSaveError';
  constructor(
    readonly record: RunRecord,
    cause: unknown,
    readonly endingSaved: boolean,
  ) {
    super(
      `run ${record.runId} ended ${record.status}, but its final record could not be saved: ${cause instanceof Error ? cause.message : String(cause)}. ` +
        (endingSaved
          ? `The run index shows it as ${record.status}; node details are from the last saved snapshot.`
          : 'The run index could not be updated either; `dro status` shows the run as interrupted once this process has exited.'),
      { cause },
    );
  }
}

/**
 * Every recorded run, oldest first. An index entry that cannot be parsed is skipped and passed to
 * `onBadRecord` (path and reason), so one torn file does not hide every other run.
 */
export async function listRuns(store: IndexedArtifactStore, onBadRecord?: (error: CorruptRecordError) => void): Promise<RunSummary[]> {
  const summaries: RunSummary[] = [];
  for (const entry of await store.records.scan<RunSummary>(RUNS_NAMESPACE)) {
    if ('error' in entry) onBadRecord?.(entry.error);
    else if (isSummary(entry.record.value)) summaries.push(entry.record.value);
    else onBadRecord?.(new CorruptRecordError(entry.file, 'expected a run summary { runId, status, startedAt, record }'));
  }
  return summaries.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0));
}

function isSummary(value: unknown): value is RunSummary {
  const s = value as RunSummary;
  return typeof s === 'object' && s !== null && typeof s.runId === 'string' && typeof s.startedAt === 'string' && typeof s.record?.digest === 'string';
}

/**
 * The run `runId`, or the most recent run when omitted. When the index entry knows the ending and the
 * snapshot does not (saveRunEnding), the entry's status, end time and note win.
 */
export async function loadRun(store: IndexedArtifactStore, runId?: string, onBadRecord?: (error: CorruptRecordError) => void): Promise<RunRecord & { note?: string }> {
  let summary: RunSummary | null;
  if (runId === undefined) {
    const runs = await listRuns(store, onBadRecord);
    if (runs.length === 0) throw new NotFoundError(`no runs recorded in store ${store.root}`);
    summary = runs[runs.length - 1];
  } else {
    summary = await store.records.get<RunSummary>(RUNS_NAMESPACE, runId);
    if (!summary) throw new NotFoundError(`no run "${runId}" in store ${store.root}`);
    if (!isSummary(summary)) throw new CorruptRecordError(`${store.records.dir}/${RUNS_NAMESPACE}/${runId}.json`, 'expected a run summary');
  }
  const record = await store.getJson<RunRecord>(summary.record);
  if (summary.note && record.status === 'running' && summary.status !== 'running') {
    return { ...record, status: summary.status, endedAt: summary.endedAt, durationMs: summary.durationMs, note: summary.note };
  }
  return record;
}
