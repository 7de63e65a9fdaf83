/** Ctrl-C for long runs: the first SIGINT aborts cleanly (stages stop between batches, the run record is
 * saved as cancelled); a second one exits at once (130), since every write is atomic anyway. */

export interface SigintHandle {
  signal: AbortSignal;
  /** Remove the handler (call when the run is over). */
  dispose(): void;
}

export function abortOnSigint(onFirst?: () => void): SigintHandle {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    onFirst?.();
    controller.abort(new DOMException('interrupted by SIGINT', 'AbortError'));
  };
  process.on('SIGINT', handler);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', handler) };
}
