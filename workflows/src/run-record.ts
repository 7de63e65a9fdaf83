/**
 * Temporal runs recorded in the store like local runs (engine "temporal"), so `dro status` lists both and
 * gc keeps a Temporal run's outputs. The workflow's status view maps onto the spine's RunRecord.
 */
import { codeVersion, type IndexedArtifactStore } from '@dro/artifacts';
import { saveRunRecord, type Dag, type NodeRecord, type RunRecord } from '@dro/pipeline';
import type { DagRunStatus, NodeStatus } from './shared.ts';

function nodeRecord(n: NodeStatus): NodeRecord {
  const ran = n.state === 'succeeded' || n.state === 'failed' || n.state === 'running' || n.state === 'cancelled';
  return {
    id: n.id,
    stage: n.stage,
    stageVersion: n.stageVersion ?? '?',
    status: n.state,
    cacheHit: n.cacheHit ?? null,
    cacheKey: n.cacheKey ?? null,
    // Local-runner convention: a cache hit started the stage 0 times.
    attempts: n.cacheHit ? 0 : ran ? (n.attempt ?? 1) : 0,
    startedAt: n.startedAt ?? null,
    endedAt: n.finishedAt ?? null,
    // The stage's own wall time on the worker when known (workflow timestamps include queueing).
    durationMs: n.durationMs ?? (n.startedAt && n.finishedAt ? Date.parse(n.finishedAt) - Date.parse(n.startedAt) : null),
    outputs: n.outputs ?? {},
    error: n.error !== undefined ? { name: n.errorType ?? 'Error', message: n.error } : null,
    ...(n.shards ? { shards: { ...n.shards } } : {}),
  };
}

export function runRecordFromStatus(
  dag: Dag,
  status: Pick<DagRunStatus, 'runId' | 'state' | 'nodes'>,
  times: { startedAt: Date; endedAt: Date | null },
): RunRecord {
  const byId = new Map(status.nodes.map((n) => [n.id, n]));
  const record = {
    // A Temporal run is driven by its workflow on the server, not by a local process: it outlives the
    // client that started it, so no local pid may be used to call it "interrupted".
    owner: { host: 'temporal', pid: 0 },
    runId: status.runId,
    dagName: dag.name,
    engine: 'temporal',
    status: status.state,
    startedAt: times.startedAt.toISOString(),
    endedAt: times.endedAt?.toISOString() ?? null,
    durationMs: times.endedAt ? times.endedAt.getTime() - times.startedAt.getTime() : null,
    code: codeVersion(),
    dag,
    nodes: dag.nodes.map((node) => nodeRecord(byId.get(node.id) ?? { id: node.id, stage: node.stage, queue: null, state: 'pending' })),
  };
  return record as RunRecord;
}

export async function saveTemporalRunRecord(
  store: IndexedArtifactStore,
  dag: Dag,
  status: Pick<DagRunStatus, 'runId' | 'state' | 'nodes'>,
  times: { startedAt: Date; endedAt: Date | null },
): Promise<void> {
  await saveRunRecord(store, runRecordFromStatus(dag, status, times));
}
