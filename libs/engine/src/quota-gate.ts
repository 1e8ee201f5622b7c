/** Rate and pending quotas, shared by every node through Redis (see README, "Apps, topics and quotas"). */

import type { AppStore, QuotaBackend } from '@hourglass/core';
import { DependencyUnavailableError, HourglassError } from '@hourglass/core';

import type { Clock, Logger } from '@hourglass/core';
import type { AppIdentity, QuotaGate } from './service';

export type QuotaFailMode = 'open' | 'closed';

export interface SharedQuotaGateOptions {
  backend: QuotaBackend;
  store: AppStore;
  clock: Clock;
  logger: Logger;
  /** What a Redis outage means for apps with a rate or pending quota. */
  failMode: QuotaFailMode;
}

/**
 * The rate and max-pending quotas, shared by every node through the {@link QuotaBackend} (Redis).
 * Apps without those quotas never touch Redis. When Redis is unreachable, `failMode` decides:
 * `open` admits (quotas are not enforced meanwhile), `closed` refuses with 503 `unavailable`.
 */
export class SharedQuotaGate implements QuotaGate {
  private warnedAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: SharedQuotaGateOptions) {}

  async admit(app: AppIdentity, count: number): Promise<void> {
    const quotas = app.quotas;
    if (!quotas || count <= 0) return;
    const { backend, store, clock } = this.options;
    try {
      if (quotas.ratePerSecond !== null) {
        const burst = quotas.burst ?? Math.max(1, Math.ceil(quotas.ratePerSecond));
        const decision = await backend.takeTokens(
          app.name,
          count,
          quotas.ratePerSecond,
          burst,
          clock.now(),
        );
        if (!decision.allowed) {
          throw rateLimited(
            `app "${app.name}" is over its rate of ${quotas.ratePerSecond} messages per second`,
            decision.retryAfterMs,
          );
        }
      }
      if (quotas.maxPending !== null) {
        const decision = await backend.reservePending(app.name, count, quotas.maxPending, () =>
          store.countPending(app.name),
        );
        if (!decision.allowed) {
          throw rateLimited(
            `app "${app.name}" has reached its maximum of ${quotas.maxPending} pending messages`,
            decision.retryAfterMs,
          );
        }
      }
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError) || error.dependency !== 'redis')
        throw error;
      this.warn(error);
      if (this.options.failMode === 'closed') throw error;
    }
  }

  private warn(error: DependencyUnavailableError): void {
    const now = this.options.clock.now();
    if (now - this.warnedAtMs < 10_000) return;
    this.warnedAtMs = now;
    this.options.logger.warn(
      { err: (error.cause as Error | undefined)?.message, failMode: this.options.failMode },
      this.options.failMode === 'open'
        ? 'Redis unavailable: quotas not enforced (fail open)'
        : 'Redis unavailable: refusing quota-limited apps (fail closed)',
    );
  }
}

function rateLimited(message: string, retryAfterMs: number): HourglassError {
  return new HourglassError(
    'rate_limited',
    message,
    undefined,
    Math.max(1, Math.ceil(retryAfterMs / 1000)),
  );
}
