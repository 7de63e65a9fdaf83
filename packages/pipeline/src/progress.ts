/**
 * Progress of a local run, on stderr: one bar per running stage on a TTY, JSON lines otherwise (for logs
 * and CI). Stages may report progress as often as they like; both renderers throttle.
 */
import type { ProgressEvent } from './stage.ts';
import type { NodeStatus } from './run-record.ts';

export interface NodeFinishedInfo {
  status: NodeStatus;
  cacheHit: boolean | null;
  attempts: number;
  durationMs: number | null;
  error?: string;
}

export interface RunProgressReporter {
  runStarted(run: { runId: string; dagName: string; nodes: number }): void;
  nodeStarted(nodeId: string, stage: string): void;
  nodeProgress(nodeId: string, event: ProgressEvent): void;
  nodeRetrying(nodeId: string, info: { attempt: number; delayMs: number; error: string }): void;
  nodeFinished(nodeId: string, info: NodeFinishedInfo): void;
  runFinished(run: { runId: string; status: string; durationMs: number }): void;
  /** A stage's log line (ctx.log), shown in the same stream so it does not tear the bars. */
  log(nodeId: string, level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void;
  /** Stop timers and leave the terminal clean. */
  close(): void;
}

/** The part of a stream the reporters use (process.stderr, or a capture in tests). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  /** "auto": bars on a TTY, JSON lines otherwise. */
  mode?: 'auto' | 'tty' | 'json' | 'silent';
  /** Least time between two progress lines (JSON) or redraws (TTY) for a node; default 1000 / 100 ms. */
  throttleMs?: number;
}

export function createProgressReporter(options: ProgressOptions = {}): RunProgressReporter {
  const stream = options.stream ?? process.stderr;
  const mode = options.mode === undefined || options.mode === 'auto' ? (stream.isTTY ? 'tty' : 'json') : options.mode;
  if (mode === 'silent') return silentReporter();
  if (mode === 'tty') return new TtyBars(stream, options.throttleMs ?? 100);
  return new JsonLines(stream, options.throttleMs ?? 1_000);
}

function silentReporter(): RunProgressReporter {
  const nothing = () => {};
  return {
    runStarted: nothing,
    nodeStarted: nothing,
    nodeProgress: nothing,
    nodeRetrying: nothing,
    nodeFinished: nothing,
    runFinished: nothing,
    log: nothing,
    close: nothing,
  };
}

class JsonLines implements RunProgressReporter {
  private runId = '';
  private readonly lastEmitted = new Map<string, number>();

  constructor(
    private readonly stream: ProgressStream,
    private readonly throttleMs: number,
  ) {}

  private emit(event: string, fields: Record<string, unknown>): void {
    this.stream.write(`${JSON.stringify({ time: new Date().toISOString(), event, run: this.runId, ...fields })}\n`);
  }

  runStarted(run: { runId: string; dagName: string; nodes: number }): void {
    this.runId = run.runId;
    this.emit('run-started', { dag: run.dagName, nodes: run.nodes });
  }

  nodeStarted(nodeId: string, stage: string): void {
    this.emit('node-started', { node: nodeId, stage });
  }

  nodeProgress(nodeId: string, event: ProgressEvent): void {
    const now = performance.now();
    const last = this.lastEmitted.get(nodeId);
    if (last !== undefined && now - last < this.throttleMs) return;
    this.lastEmitted.set(nodeId, now);
    this.emit('node-progress', { node: nodeId, ...event });
  }

  nodeRetrying(nodeId: string, info: { attempt: number; delayMs: number; error: string }): void {
    this.emit('node-retrying', { node: nodeId, ...info });
  }

  nodeFinished(nodeId: string, info: NodeFinishedInfo): void {
    this.lastEmitted.delete(nodeId);
    this.emit('node-finished', { node: nodeId, ...info });
  }

  runFinished(run: { runId: string; status: string; durationMs: number }): void {
    this.emit('run-finished', { status: run.status, durationMs: run.durationMs });
  }

  log(nodeId: string, level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void {
    this.emit('log', { node: nodeId, level, message, ...(fields ? { fields } : {}) });
  }

  close(): void {}
}

const SYMBOL: Partial<Record<NodeStatus, string>> = { succeeded: '✔', failed: '✖', cancelled: '■', skipped: '-' };

class TtyBars implements RunProgressReporter {
  private readonly running = new Map<string, { stage: string; event: ProgressEvent; since: number }>();
  private readonly finishedLines: string[] = [];
  private drawnLines = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly stream: ProgressStream,
    private readonly throttleMs: number,
  ) {}

  runStarted(run: { runId: string; dagName: string; nodes: number }): void {
    this.finishedLines.push(`run ${run.runId}: DAG "${run.dagName}", ${run.nodes} nodes`);
    this.render();
  }

  nodeStarted(nodeId: string, stage: string): void {
    this.running.set(nodeId, { stage, event: { done: 0 }, since: performance.now() });
    this.schedule();
  }

  nodeProgress(nodeId: string, event: ProgressEvent): void {
    const entry = this.running.get(nodeId);
    if (entry) entry.event = event;
    this.schedule();
  }

  nodeRetrying(nodeId: string, info: { attempt: number; delayMs: number; error: string }): void {
    this.finishedLines.push(`  ↻ ${nodeId}: attempt ${info.attempt} in ${(info.delayMs / 1000).toFixed(1)}s after: ${info.error}`);
    this.schedule();
  }

  nodeFinished(nodeId: string, info: NodeFinishedInfo): void {
    this.running.delete(nodeId);
    const duration = info.durationMs === null ? '' : ` ${(info.durationMs / 1000).toFixed(1)}s`;
    const how = info.cacheHit ? ' (cached)' : info.attempts > 1 ? ` (${info.attempts} attempts)` : '';
    const error = info.error ? `: ${info.error}` : '';
    this.finishedLines.push(`${SYMBOL[info.status] ?? '?'} ${nodeId} ${info.status}${duration}${how}${error}`);
    this.render();
  }

  runFinished(run: { runId: string; status: string; durationMs: number }): void {
    this.finishedLines.push(`run ${run.runId} ${run.status} in ${(run.durationMs / 1000).toFixed(1)}s`);
    this.render();
  }

  log(nodeId: string, level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void {
    const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
    this.finishedLines.push(`  ${level === 'warn' ? '⚠' : '·'} ${nodeId}: ${message}${extra}`);
    this.schedule();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.render();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.render();
    }, this.throttleMs);
  }

  /** Erase the bars drawn last time, print newly finished lines above, redraw the bars. */
  private render(): void {
    // A pseudo-terminal without a size reports 0 columns: assume a classic 80.
    const width = this.stream.columns ? Math.max(40, this.stream.columns) : 80;
    let out = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A\x1b[0J` : '';
    for (const line of this.finishedLines.splice(0)) out += `${line.slice(0, width - 1)}\n`;
    const bars = [...this.running].map(([nodeId, { event, since }]) => barLine(nodeId, event, since, width));
    out += bars.map((line) => `${line}\n`).join('');
    this.drawnLines = bars.length;
    if (out !== '') this.stream.write(out);
  }
}

function barLine(nodeId: string, event: ProgressEvent, since: number, width: number): string {
  const elapsed = `${((performance.now() - since) / 1000).toFixed(0)}s`;
  const label = nodeId.length > 18 ? `${nodeId.slice(0, 17)}…` : nodeId.padEnd(18);
  const barWidth = 24;
  let bar: string;
  let count: string;
  if (event.total && event.total > 0) {
    const fraction = Math.min(1, Math.max(0, event.done / event.total));
    const filled = Math.round(fraction * barWidth);
    bar = `[${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%`;
    count = `${event.done}/${event.total}`;
  } else {
    bar = `[${'░'.repeat(barWidth)}]    `;
    count = String(event.done);
  }
  const line = `${label} ${bar} ${count} ${elapsed}${event.message ? ` ${event.message}` : ''}`;
  return line.slice(0, width - 1);
}
