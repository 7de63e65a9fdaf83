/**
 * Stopping a long run from outside: the first SIGINT (Ctrl-C), SIGTERM (kill, systemd, a container
 * runtime) or SIGHUP (the terminal went away) aborts cleanly — stages stop between batches, the run record
 * is saved as cancelled — and a second one exits at once, since every write is atomic anyway. Exit codes
 * follow the shell's 128 + signal number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.
 */
import os from 'node:os';

export type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

export interface StopSignalHandle {
  signal: AbortSignal;
  /** The signal that stopped the run, or null while none has arrived. */
  received(): StopSignal | null;
  /** Exit code for a run stopped by a signal: 128 + its number (130 when none arrived, as for Ctrl-C). */
  exitCode(): number;
  /** Remove the handlers (call when the run is over). */
  dispose(): void;
}

export function signalExitCode(signal: StopSignal): number {
  return 128 + os.constants.signals[signal];
}

export function abortOnSignals(onFirst?: (signal: StopSignal) => void, signals: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP']): StopSignalHandle {
  const controller = new AbortController();
  let received: StopSignal | null = null;
  const handlers = signals.map((name) => {
    const handler = () => {
      if (controller.signal.aborted) process.exit(signalExitCode(name));
      received = name;
      onFirst?.(name);
      controller.abort(new DOMException(`interrupted by ${name}`, 'AbortError'));
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return {
    signal: controller.signal,
    received: () => received,
    exitCode: () => signalExitCode(received ?? 'SIGINT'),
    dispose: () => {
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}
