/** What clients see of a recurring schedule (GET /v1/schedules/{id}). Times are ISO-8601 UTC. */
import type { MisfirePolicy, StoredSchedule } from '@hourglass/core';
import { Recurrence, isoTime, previewOccurrences } from '@hourglass/core';

export interface ScheduleView {
  id: string;
  app: string;
  slot: number;
  state: 'active' | 'paused' | 'ended';
  every?: string;
  everyMs?: number;
  cron?: string;
  timezone?: string;
  startAt?: string;
  endAt?: string;
  limit?: number;
  misfire: MisfirePolicy;
  misfireLimit?: number;
  jitterMs: number;
  message: Record<string, unknown>;
  /** The next occurrence from now (materialised or not); null when none is coming. */
  nextOccurrenceAt: string | null;
  /** The first occurrence not yet materialised as a message; null when ended. */
  materializedUntil: string | null;
  /** Occurrences materialised as messages so far. */
  occurrences: number;
  /** The message id of the latest materialised occurrence (GET /v1/messages/{id} shows it). */
  lastOccurrenceId: string | null;
  lastOccurrenceAt: string | null;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

export function toScheduleView(schedule: StoredSchedule, nowMs: number): ScheduleView {
  const { spec, input } = schedule;
  const recurrence = new Recurrence(spec);
  const [next] =
    schedule.state === 'active'
      ? previewOccurrences(
          recurrence,
          { nextAtMs: schedule.nextAtMs, occurrences: schedule.occurrences },
          nowMs,
          1,
        )
      : [];
  const view: ScheduleView = {
    id: schedule.id,
    app: schedule.app,
    slot: schedule.slot,
    state: schedule.state,
    misfire: spec.misfire,
    jitterMs: spec.jitterMs,
    message: schedule.message,
    nextOccurrenceAt: next === undefined ? null : isoTime(next),
    materializedUntil: schedule.nextAtMs === null ? null : isoTime(schedule.nextAtMs),
    occurrences: schedule.occurrences,
    lastOccurrenceId: schedule.lastOccurrenceId,
    lastOccurrenceAt:
      schedule.lastOccurrenceAtMs === null ? null : isoTime(schedule.lastOccurrenceAtMs),
    revision: schedule.revision,
    createdAt: isoTime(schedule.createdAtMs),
    updatedAt: isoTime(schedule.updatedAtMs),
  };
  if (spec.cadence.kind === 'cron') {
    view.cron = spec.cadence.cron;
    view.timezone = spec.cadence.timezone;
  } else if (input.every !== undefined) view.every = input.every;
  else view.everyMs = spec.cadence.everyMs;
  if (spec.startAtMs !== null) view.startAt = isoTime(spec.startAtMs);
  if (spec.endAtMs !== null) view.endAt = isoTime(spec.endAtMs);
  if (spec.limit !== null) view.limit = spec.limit;
  if (spec.misfire === 'all') view.misfireLimit = spec.misfireLimit;
  return view;
}
