/**
 * Retry strategies of delivery targets: how long a target waits after a failed attempt, and when
 * it gives up. Pure; the random source is passed in so tests can pin jitter.
 */

export type RetryStrategyKind = 'fixed' | 'linear' | 'exponential';

export interface RetryStrategy {
  readonly strategy: RetryStrategyKind;
  /** The delay after the first failed attempt. */
  readonly initialDelayMs: number;
  /** No delay is longer, whatever the strategy or a `Retry-After` asks for. */
  readonly maxDelayMs: number;
  /** Attempts in all, the first included: 1 means never retried. */
  readonly maxAttempts: number;
  /** Spread each delay over [delay/2, delay] so receivers are not hit in lockstep. */
  readonly jitter: boolean;
}

/** delay-callback's default: 10 attempts, exponential from 10 s, capped at a day, with jitter. */
export const DEFAULT_RETRY_STRATEGY: RetryStrategy = Object.freeze({
  strategy: 'exponential',
  initialDelayMs: 10_000,
  maxDelayMs: 86_400_000,
  maxAttempts: 10,
  jitter: true,
});

export const RETRY_LIMITS = Object.freeze({
  maxAttempts: 100,
  /** 30 days: the longest any delay may be. */
  maxDelayMs: 30 * 86_400_000,
});

/**
 * The wait after the `failedAttempts`-th failed attempt (1 after the first), or the receiver's
 * `Retry-After` when it sent one, never above `maxDelayMs`.
 */
export function retryDelayMs(
  strategy: RetryStrategy,
  failedAttempts: number,
  retryAfterMs: number | null,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== null && retryAfterMs >= 0)
    return Math.min(strategy.maxDelayMs, Math.ceil(retryAfterMs));
  const n = Math.max(1, failedAttempts);
  let delay: number;
  switch (strategy.strategy) {
    case 'fixed':
      delay = strategy.initialDelayMs;
      break;
    case 'linear':
      delay = strategy.initialDelayMs * n;
      break;
    case 'exponential':
      delay = strategy.initialDelayMs * 2 ** Math.min(n - 1, 40);
      break;
  }
  delay = Math.min(strategy.maxDelayMs, delay);
  if (strategy.jitter) delay = delay / 2 + random() * (delay / 2);
  return Math.round(delay);
}

/**
 * `Retry-After` as milliseconds from `nowMs`: delta-seconds or an HTTP date. Null when absent or
 * unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}
