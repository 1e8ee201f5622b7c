/**
 * Wires recurring schedules (issue 14, docs/adr/0009-materialising-occurrences.md): config →
 * PgScheduleStore → ScheduleMaterializer (the pass over the engine's owned slots) and the
 * ScheduleService behind /v1/schedules. The store starts with the other stores; the materializer
 * once the engine runs, and it stops before the engine.
 */
import type { HourglassConfig } from '@hourglass/config';
import type { Clock, Logger, MessageLimits, SlotLease } from '@hourglass/core';
import type { EngineMetrics } from '@hourglass/engine';
import { ScheduleMaterializer, ScheduleMetrics, ScheduleService } from '@hourglass/engine';
import { PgScheduleStore } from '@hourglass/postgres';

export interface NodeSchedules {
  readonly store: PgScheduleStore;
  /** Creates the materializer and the service; call once the engine runs. */
  start(limits: MessageLimits): Promise<ScheduleService>;
  stop(): Promise<void>;
}

export function createSchedules(
  config: HourglassConfig,
  deps: {
    slots: { ownedSlots(): SlotLease[] };
    clock: Clock;
    logger: Logger;
    metrics: EngineMetrics;
  },
): NodeSchedules {
  const store = new PgScheduleStore({
    connectionString: config.postgres.url,
    statementTimeoutMs: config.postgres.statementTimeoutMs,
  });
  let materializer: ScheduleMaterializer | undefined;
  return {
    store,
    async start(limits) {
      materializer = new ScheduleMaterializer(
        {
          store,
          slots: deps.slots,
          clock: deps.clock,
          logger: deps.logger,
          metrics: new ScheduleMetrics(deps.metrics.registry),
        },
        {
          slotCount: config.cluster.slots,
          horizonMs: config.core.horizonMinutes * 60_000,
          passIntervalMs: config.schedules.passIntervalMs,
          misfireGraceMs: config.schedules.misfireGraceMs,
        },
      );
      const service = new ScheduleService(
        { store, clock: deps.clock, slots: deps.slots, materializer },
        {
          slotCount: config.cluster.slots,
          limits,
          maxSchedulesPerApp: config.limits.maxSchedulesPerApp,
        },
      );
      await materializer.start();
      return service;
    },
    async stop() {
      await materializer?.stop();
    },
  };
}
