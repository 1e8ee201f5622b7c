/**
 * How one attempt changes one target's state. Pure: the caller passes the clock's reading and
 * the random source for jitter.
 *
 * - Delivered: the target is done.
 * - An outage (a Kafka broker that cannot be reached): retried after `outageDelayMs`, and the
 *   attempt does not count, so an outage never uses a retry budget up.
 * - A refusal (any failed HTTP attempt, a Kafka refusal): counts; the target fails at the
 *   strategy's `maxAttempts` or at once on 410 Gone, and otherwise waits the strategy's delay (or
 *   the receiver's `Retry-After`, capped at `maxDelayMs`).
 */
import type { RetryStrategy } from './retry-strategy';
import { retryDelayMs } from './retry-strategy';
import type { TargetState } from './targets';

export interface AttemptResult {
  readonly ok: boolean;
  /** Not the target's answer but an outage: the attempt does not count. */
  readonly outage: boolean;
  readonly error: string | null;
  readonly status: number | null;
  readonly retryAfterMs: number | null;
  /** The receiver asked never to be called again (410). */
  readonly gone: boolean;
}

export interface TransitionContext {
  readonly nowMs: number;
  readonly strategy: RetryStrategy;
  readonly outageDelayMs: number;
  readonly random?: () => number;
}

export interface Transition {
  readonly state: TargetState;
  /** Whether this attempt counted (and belongs in the attempt count). */
  readonly counted: boolean;
  /** The target has just finished as failed. */
  readonly finallyFailed: boolean;
}

export function applyAttempt(
  previous: TargetState,
  result: AttemptResult,
  context: TransitionContext,
): Transition {
  const { nowMs, strategy } = context;
  if (result.ok) {
    return {
      state: {
        ...previous,
        status: 'delivered',
        attempts: previous.attempts + 1,
        nextAttemptAtMs: null,
        lastStatus: result.status,
        finishedAtMs: nowMs,
      },
      counted: true,
      finallyFailed: false,
    };
  }
  if (result.outage) {
    return {
      state: {
        ...previous,
        nextAttemptAtMs: nowMs + context.outageDelayMs,
        lastError: result.error,
        lastStatus: result.status,
      },
      counted: false,
      finallyFailed: false,
    };
  }
  const attempts = previous.attempts + 1;
  if (result.gone || attempts >= strategy.maxAttempts) {
    return {
      state: {
        ...previous,
        status: 'failed',
        attempts,
        nextAttemptAtMs: null,
        lastError: result.gone ? `${result.error ?? 'HTTP 410'} (gone: not retried)` : result.error,
        lastStatus: result.status,
        finishedAtMs: nowMs,
      },
      counted: true,
      finallyFailed: true,
    };
  }
  const delay = retryDelayMs(strategy, attempts, result.retryAfterMs, context.random);
  return {
    state: {
      ...previous,
      attempts,
      nextAttemptAtMs: nowMs + delay,
      lastError: result.error,
      lastStatus: result.status,
    },
    counted: true,
    finallyFailed: false,
  };
}
