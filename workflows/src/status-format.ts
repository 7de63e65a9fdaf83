/** Plain-text view of a live Temporal run for `dro status RUN_ID` (engine temporal). */
import { formatDuration, formatShards } from '@dro/pipeline';
import type { DagRunStatus, NodeStatus } from './shared.ts';

function progressText(n: NodeStatus): string {
  const shards = n.shards ? ` ${formatShards(n.shards)}` : '';
  if (n.state !== 'running') return `${n.state}${shards}`;
  if (shards) return `running${shards}`;
  const p = n.progress;
  const attempt = n.attempt && n.attempt > 1 ? ` (attempt ${n.attempt})` : '';
  if (n.activityState === 'scheduled') return `waiting for a ${n.queue ?? ''} worker${attempt}`;
  if (!p) return `running${attempt}`;
  const count = p.total !== undefined ? `${p.done}/${p.total}` : String(p.done);
  return `running ${count}${p.message ? ` ${p.message}` : ''}${attempt}`;
}

export function formatTemporalStatus(status: DagRunStatus): string {
  const header = `run ${status.runId}  DAG "${status.dag}"  ${status.state}  ${status.done}/${status.total} nodes done (engine temporal)` +
    (status.error ? `\nerror: ${status.error}` : '');
  const rows = status.nodes.map((n) => [
    n.id,
    n.stage,
    n.queue ?? '-',
    progressText(n),
    n.cacheHit === undefined ? '-' : n.cacheHit ? 'hit' : 'miss',
    formatDuration(n.durationMs ?? null),
    n.error
      ? `${n.errorType ?? 'Error'}: ${n.error}`
      : Object.entries(n.outputs ?? {})
          .map(([name, ref]) => `${name}=${ref.digest.slice(0, 12)}`)
          .join(' '),
  ]);
  const head = ['NODE', 'STAGE', 'QUEUE', 'STATUS', 'CACHE', 'TIME', 'OUTPUTS / ERROR'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return `${header}\n${[line(head), ...rows.map(line)].join('\n')}\n`;
}
