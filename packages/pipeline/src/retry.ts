/** Retries with exponential backoff for transient errors; bad input and cancellation are never retried. */
import { BadInputError } from '@dro/artifacts';

export interface RetryPolicy {
  /** Attempts including the first. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  backoffCoefficient: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 3, initialDelayMs: 1_000, maxDelayMs: 30_000, backoffCoefficient: 2 };

/** Delay before attempt `nextAttempt` (2, 3, ...): initial × coefficient^(n-2), capped. */
export function backoffDelayMs(policy: RetryPolicy, nextAttempt: number): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.backoffCoefficient ** Math.max(0, nextAttempt - 2));
}

export function isRetryable(error: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return false;
  if (error instanceof BadInputError) return false;
  return !(error instanceof Error && error.name === 'AbortError');
}

/** Wait `ms`, or reject with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
