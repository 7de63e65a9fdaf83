import { describe, expect, it, vi } from 'vitest';
import { createProgressReporter } from '../src/index.ts';
import { captureStream } from './helpers.ts';

describe('progress reporters', () => {
  it('auto mode writes JSON lines when the stream is not a TTY, throttled per node', () => {
    const stream = captureStream(false);
    const reporter = createProgressReporter({ stream, throttleMs: 60_000 });
    reporter.runStarted({ runId: 'r1', dagName: 'd', nodes: 2 });
    reporter.nodeStarted('a', 'numbers');
    reporter.nodeStarted('b', 'scale');
    for (let i = 0; i < 1000; i++) {
      reporter.nodeProgress('a', { done: i, total: 1000 });
      reporter.nodeProgress('b', { done: i, message: 'rows' });
    }
    reporter.log('a', 'warn', 'slow disk', { mb: 3 });
    reporter.nodeFinished('a', { status: 'succeeded', cacheHit: false, attempts: 1, durationMs: 12 });
    reporter.runFinished({ runId: 'r1', status: 'succeeded', durationMs: 20 });
    reporter.close();
    const lines = stream.lines();
    expect(lines.map((l) => l.event)).toEqual([
      'run-started',
      'node-started',
      'node-started',
      'node-progress',
      'node-progress',
      'log',
      'node-finished',
      'run-finished',
    ]);
    expect(lines.every((l) => l.run === 'r1' && typeof l.time === 'string')).toBe(true);
    expect(lines[3]).toMatchObject({ node: 'a', done: 0, total: 1000 });
    expect(lines[5]).toMatchObject({ node: 'a', level: 'warn', message: 'slow disk', fields: { mb: 3 } });
    expect(lines[6]).toMatchObject({ node: 'a', status: 'succeeded', cacheHit: false, attempts: 1, durationMs: 12 });
  });

  it('draws one bar per running stage on a TTY and redraws in place', () => {
    vi.useFakeTimers();
    const stream = captureStream(true);
    const reporter = createProgressReporter({ stream });
    reporter.runStarted({ runId: 'r2', dagName: 'd', nodes: 2 });
    reporter.nodeStarted('extract', 'extract');
    reporter.nodeStarted('sampling', 'sampling');
    for (let i = 0; i <= 50; i++) reporter.nodeProgress('extract', { done: i, total: 200, message: `batch ${Math.floor(i / 10)}` });
    expect(stream.text()).not.toContain('batch'); // throttled: nothing drawn until the redraw timer fires
    vi.advanceTimersByTime(100);
    expect(stream.text().match(/batch/g)).toHaveLength(1); // 51 updates, one redraw
    reporter.nodeFinished('sampling', { status: 'succeeded', cacheHit: true, attempts: 0, durationMs: 3 });
    reporter.nodeFinished('extract', { status: 'failed', cacheHit: false, attempts: 3, durationMs: 1500, error: 'disk full' });
    reporter.close();
    vi.useRealTimers();
    const text = stream.text();
    expect(text).toContain('run r2: DAG "d", 2 nodes');
    expect(text).toMatch(/extract\s+\[█{6}░{18}\]\s+25% 50\/200 \d+s batch 5/);
    expect(text).toContain('\x1b[2A\x1b[0J'); // two bars erased before redrawing
    expect(text).toContain('✔ sampling succeeded 0.0s (cached)');
    expect(text).toContain('✖ extract failed 1.5s (3 attempts): disk full');
  });

  it('silent mode writes nothing', () => {
    const stream = captureStream(true);
    const reporter = createProgressReporter({ stream, mode: 'silent' });
    reporter.runStarted({ runId: 'r', dagName: 'd', nodes: 1 });
    reporter.nodeProgress('a', { done: 1 });
    reporter.close();
    expect(stream.text()).toBe('');
  });
});
