/** Plain-text views of run records for `dro status`: one table per run, and a list of runs. */
import { isOrphanedRun, type RunRecord, type RunSummary, type ShardCounts } from './run-record.ts';

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  return minutes < 60 ? `${minutes}m${Math.round((ms % 60_000) / 1000)}s` : `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}

/** "running" for a run whose process is gone says so: it will never finish; rerun to resume. */
function statusText(run: Pick<RunRecord, 'status' | 'owner'>): string {
  return isOrphanedRun(run) ? `interrupted (process ${run.owner.pid} is gone; rerun to resume)` : run.status;
}

/** "37/100 shards" (and how many of the finished ones were cache hits). */
export function formatShards(shards: ShardCounts): string {
  return `${shards.done}/${shards.total} shards${shards.cacheHits > 0 ? ` (${shards.cacheHits} cached)` : ''}`;
}

/** One run: a header line, then a row per node (status, cache hit, attempts, duration, outputs or error). */
export function formatRunStatus(run: RunRecord & { note?: string }): string {
  const hits = run.nodes.filter((n) => n.cacheHit === true).length;
  const code = run.code.gitSha ? `${run.code.gitSha.slice(0, 10)}${run.code.dirty ? '+dirty' : ''}` : 'no git';
  const header =
    `run ${run.runId}  DAG "${run.dagName}"  ${statusText(run)}  ${formatDuration(run.durationMs)}  ` +
    `(${run.nodes.length} nodes, ${hits} cache hits; engine ${run.engine}; code ${code}; started ${run.startedAt})`;
  const rows = run.nodes.map((n) => [
    n.id,
    `${n.stage}@${n.stageVersion}`,
    n.shards ? `${n.status} ${formatShards(n.shards)}` : n.status,
    n.cacheHit === null ? '-' : n.cacheHit ? 'hit' : 'miss',
    String(n.attempts),
    formatDuration(n.durationMs),
    n.error
      ? `${n.error.name}: ${n.error.message}`
      : Object.entries(n.outputs)
          .map(([name, ref]) => `${name}=${ref.digest.slice(0, 12)}`)
          .join(' '),
  ]);
  const note = run.note ? `note: ${run.note}\n` : '';
  return `${header}\n${note}${table(['NODE', 'STAGE', 'STATUS', 'CACHE', 'ATTEMPTS', 'TIME', 'OUTPUTS / ERROR'], rows)}\n`;
}

/** Recorded runs, oldest first. */
export function formatRunList(runs: RunSummary[]): string {
  if (runs.length === 0) return 'no runs recorded\n';
  const rows = runs.map((r) => [
    r.runId,
    r.dagName,
    statusText(r),
    r.startedAt,
    formatDuration(r.durationMs),
    `${r.nodes} nodes, ${r.cacheHits} cached${r.failed ? `, ${r.failed} failed` : ''}`,
  ]);
  return `${table(['RUN', 'DAG', 'STATUS', 'STARTED', 'TIME', 'NODES'], rows)}\n`;
}
