/**
 * When to send a failed call again. Pure: randomness is passed in, so tests are deterministic.
 *
 * Backoff is exponential with "full jitter" (a uniformly random wait between 0 and the exponential
 * cap), which spreads the retries of many clients hit by the same outage; see Marc Brooker,
 * "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
 */
import type { HourglassClientError } from './errors';

export interface RetryPolicy {
  /** Retries after the first attempt; 0 disables retrying. */
  readonly retries: number;
  /** Cap of the first wait. */
  readonly initialBackoffMs: number;
  /** Largest wait between two attempts (Retry-After excepted). */
  readonly maxBackoffMs: number;
  /** A Retry-After longer than this is not waited for: the error is thrown instead. */
  readonly maxRetryAfterMs: number;
}

/** The wait before retry number `retry` (0 for the first retry): uniform in [0, min(max, initial·2^retry)). */
export function backoffMs(retry: number, policy: RetryPolicy, random: () => number): number {
  const cap = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.min(retry, 30));
  return Math.floor(random() * cap);
}

/**
 * How long to wait before sending again after `error`, or undefined to give up: the error is not
 * retriable (every 4xx but 429), retries are used up, or the server asked for a longer wait than
 * allowed. A 429's Retry-After is honoured as given (it is the server's measured need, so jitter
 * would only make the retry fail again).
 */
export function retryDelayMs(
  error: HourglassClientError,
  retry: number,
  policy: RetryPolicy,
  random: () => number,
): number | undefined {
  if (!error.retriable || retry >= policy.retries) return undefined;
  if (error.retryAfterMs !== undefined) {
    return error.retryAfterMs > policy.maxRetryAfterMs ? undefined : error.retryAfterMs;
  }
  return backoffMs(retry, policy, random);
}
