/**
 * Wires the retention job (issue 14): config → PgRetentionStore → RetentionJob, fed with the
 * engine's owned slots. Started with the node once the engine runs, stopped before the stores.
 */
import type { HourglassConfig } from '@hourglass/config';
import type { Clock, Logger, SlotLease } from '@hourglass/core';
import { DAY_MS } from '@hourglass/core';
import type { EngineMetrics } from '@hourglass/engine';
import { RetentionJob } from '@hourglass/engine';
import { PgRetentionStore } from '@hourglass/postgres';

export interface NodeRetention {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly job: RetentionJob;
}

export function createRetention(
  config: HourglassConfig,
  deps: {
    ownedSlots: () => readonly SlotLease[];
    clock: Clock;
    logger: Logger;
    metrics: EngineMetrics;
  },
): NodeRetention {
  const store = new PgRetentionStore({
    connectionString: config.postgres.url,
    // A batch is bounded by batchSize; give it room above the hot path's timeout on a slow disk.
    statementTimeoutMs: Math.max(config.postgres.statementTimeoutMs, 30_000),
    now: () => deps.clock.now(),
  });
  const { retention, archive } = config;
  const job = new RetentionJob(
    { store, ...deps },
    {
      scheduler: archive.scheduler,
      mode: archive.mode,
      periods: {
        delivered: Math.round(retention.deliveredDays * DAY_MS),
        cancelled: Math.round(retention.cancelledDays * DAY_MS),
        failed: Math.round(retention.failedDays * DAY_MS),
      },
      archiveRetentionDays: archive.retentionDays,
      batchSize: archive.batchSize,
      pauseMs: archive.pauseMs,
      compactIntervalMs: archive.compactIntervalMs,
    },
  );
  let started = false;
  return {
    job,
    async start() {
      await store.start();
      started = true;
      await job.start();
    },
    async stop() {
      await job.stop();
      if (started) await store.stop();
      started = false;
    },
  };
}
