/**
 * Recurring schedules: when occurrences fall (pure; the clock is passed in). Cron expressions are
 * evaluated by croner (a maintained library with IANA time-zone support); this module adds the
 * explicit DST rules croner does not follow on its own, and the catch-up (misfire) rules.
 *
 * DST rules (tested in libs/core/test/unit/recurrence.test.ts):
 * - A local time that does not exist (the spring gap) is skipped. croner moves a fixed-time job
 *   in the gap to the first valid time after it (`30 2 * * *` in Europe/Berlin on 2026-03-29 gives
 *   03:00 local); such a candidate no longer matches the expression in the zone's wall clock
 *   (`Cron.match` compares local fields), so it is dropped.
 * - A local time that occurs twice (the autumn fold) fires once, at its first instant. croner runs
 *   interval jobs (`*\/30 * * * *`) on both instants; a candidate whose wall-clock time already
 *   occurred 30, 60 or 120 minutes earlier (every DST shift in the tz database is one of these) is
 *   the second instant and is dropped.
 *
 * `every` schedules fire at fixed intervals of absolute time (anchor + k · every), so DST does not
 * concern them.
 */
import { Cron } from 'croner';
import { fnv1a32 } from './slots';

export type MisfirePolicy = 'skip' | 'once' | 'all';

export type Cadence =
  | { readonly kind: 'every'; readonly everyMs: number; readonly anchorMs: number }
  | { readonly kind: 'cron'; readonly cron: string; readonly timezone: string };

/** A schedule's timing, as stored. Times are epoch milliseconds. */
export interface RecurrenceSpec {
  readonly cadence: Cadence;
  /** No occurrence before this (inclusive bound). */
  readonly startAtMs: number | null;
  /** No occurrence at or after this (exclusive bound). */
  readonly endAtMs: number | null;
  /** At most this many occurrences in all (materialised ones, catch-ups included). */
  readonly limit: number | null;
  readonly misfire: MisfirePolicy;
  /** With `misfire: all`: at most this many missed occurrences are caught up (the latest ones). */
  readonly misfireLimit: number;
  /** Each occurrence is due up to this much after its time, the same amount on every materialisation. */
  readonly jitterMs: number;
}

/** Candidates croner may propose in a row that the DST rules reject (a whole fold of `* * * * * *`). */
const MAX_REJECTED_CANDIDATES = 20_000;
/** Every DST shift in the tz database is 30, 60 or 120 minutes. */
const DST_SHIFTS_MS = [30 * 60_000, 60 * 60_000, 120 * 60_000];

const wallClocks = new Map<string, Intl.DateTimeFormat>();

/** A formatter of a zone's wall-clock time to the second (cached per zone). */
function wallClock(timezone: string): Intl.DateTimeFormat {
  let format = wallClocks.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    wallClocks.set(timezone, format);
  }
  return format;
}

/** Whether `timezone` is an IANA zone this runtime knows. */
export function isKnownTimezone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** The cron expression's problem, or null when croner accepts it (5 or 6 fields). */
export function cronProblem(cron: string): string | null {
  try {
    new Cron(cron, { mode: '5-or-6-parts', paused: true });
    return null;
  } catch (error) {
    return (error as Error).message.replace(/^CronPattern: /, '');
  }
}

/** The id of an occurrence's message: `<scheduleId>:<revision>:<occurrence epoch ms>`. */
export function occurrenceId(scheduleId: string, revision: number, atMs: number): string {
  return `${scheduleId}:${revision}:${atMs}`;
}

/**
 * How long after its time an occurrence is due: a hash of its id, so re-materialising it (after a
 * failover, say) gives the same due time, and so the same message.
 */
export function jitterOf(id: string, jitterMs: number): number {
  return jitterMs <= 0 ? 0 : fnv1a32(id) % (jitterMs + 1);
}

/** A schedule's occurrence times. */
export class Recurrence {
  private readonly cron: Cron | null;
  private readonly format: Intl.DateTimeFormat | null;

  constructor(readonly spec: RecurrenceSpec) {
    const { cadence } = spec;
    if (cadence.kind === 'cron') {
      this.cron = new Cron(cadence.cron, {
        mode: '5-or-6-parts',
        timezone: cadence.timezone,
        paused: true,
      });
      this.format = cadence.timezone === 'UTC' ? null : wallClock(cadence.timezone);
    } else {
      this.cron = null;
      this.format = null;
    }
  }

  /** The first occurrence at or after `fromMs`, or null when there is none (endAt). */
  nextAtOrAfter(fromMs: number): number | null {
    const { startAtMs, endAtMs, cadence } = this.spec;
    const from = startAtMs !== null ? Math.max(fromMs, startAtMs) : fromMs;
    let at: number | null;
    if (cadence.kind === 'every') {
      const steps =
        from <= cadence.anchorMs ? 0 : Math.ceil((from - cadence.anchorMs) / cadence.everyMs);
      at = cadence.anchorMs + steps * cadence.everyMs;
    } else at = this.nextCron(from);
    return at !== null && (endAtMs === null || at < endAtMs) ? at : null;
  }

  /** Up to `count` occurrences in [fromMs, beforeMs), the latest ones, in ascending order. */
  latestBefore(fromMs: number, beforeMs: number, count: number): number[] {
    const { startAtMs, endAtMs, cadence } = this.spec;
    const from = startAtMs !== null ? Math.max(fromMs, startAtMs) : fromMs;
    const before = endAtMs !== null ? Math.min(beforeMs, endAtMs) : beforeMs;
    if (count <= 0 || from >= before) return [];
    const found: number[] = [];
    if (cadence.kind === 'every') {
      let k = Math.ceil((before - cadence.anchorMs) / cadence.everyMs) - 1;
      for (; found.length < count && k >= 0; k--) {
        const at = cadence.anchorMs + k * cadence.everyMs;
        if (at < from) break;
        if (at < before) found.push(at);
      }
    } else if (this.cron) {
      // croner lists runs before a reference, most recent first; the DST rules may drop a few.
      for (const date of this.cron.previousRuns(count * 2 + 8, new Date(before))) {
        const at = date.getTime();
        if (at < from) break;
        if (at < before && this.acceptable(at)) found.push(at);
        if (found.length >= count) break;
      }
    }
    return found.sort((a, b) => a - b);
  }

  private nextCron(fromMs: number): number | null {
    const cron = this.cron;
    if (!cron) return null;
    // croner works in whole seconds and looks strictly after its reference: one millisecond
    // before `fromMs` makes a run exactly at `fromMs` count.
    let date = cron.nextRun(new Date(fromMs - 1));
    for (let rejected = 0; date !== null; rejected++) {
      const at = date.getTime();
      if (at >= fromMs && this.acceptable(at)) return at;
      if (rejected >= MAX_REJECTED_CANDIDATES)
        throw new Error(`cron "${cron.getPattern() ?? ''}": no acceptable run found`);
      date = cron.nextRun(date);
    }
    return null;
  }

  /** The DST rules (module comment): the wall clock matches the expression and was not seen before. */
  private acceptable(atMs: number): boolean {
    const format = this.format;
    if (!format || !this.cron) return true;
    const date = new Date(atMs);
    if (!this.cron.match(date)) return false;
    const wall = format.format(date);
    return !DST_SHIFTS_MS.some((shift) => format.format(new Date(atMs - shift)) === wall);
  }
}

/** Where a schedule stands: the first occurrence not materialised yet, and how many were. */
export interface RecurrenceCursor {
  /** null: ended (no further occurrence). */
  readonly nextAtMs: number | null;
  readonly occurrences: number;
}

export interface PlannedOccurrence {
  readonly id: string;
  /** The occurrence's time (in the id). */
  readonly atMs: number;
  /** When its message is due: the time plus the jitter. */
  readonly dueMs: number;
  /** Caught up after a misfire (its time had passed by more than the grace). */
  readonly missed: boolean;
}

export interface MaterialisationPlan {
  readonly occurrences: readonly PlannedOccurrence[];
  /** The cursor after these occurrences. */
  readonly cursor: RecurrenceCursor;
  /** The cursor's time had passed by more than the grace: occurrences were missed. */
  readonly late: boolean;
}

export interface PlanWindow {
  readonly nowMs: number;
  /** Materialise occurrences before this (now + at least one horizon). */
  readonly untilMs: number;
  /** An occurrence whose time passed less than this long ago is still fired as usual. */
  readonly misfireGraceMs: number;
  /** Most occurrences in one plan (the rest in the next). */
  readonly maxOccurrences: number;
}

/**
 * The occurrences to materialise now. Occurrences whose time passed more than `misfireGraceMs`
 * ago were missed (the cluster was down, say); the misfire policy decides what becomes of them:
 * `skip` drops them, `once` fires the latest of them, `all` fires the latest `misfireLimit`.
 * Then every occurrence up to `untilMs`, within `limit` and `endAt`.
 */
export function planOccurrences(
  recurrence: Recurrence,
  scheduleId: string,
  revision: number,
  cursor: RecurrenceCursor,
  window: PlanWindow,
): MaterialisationPlan {
  const { spec } = recurrence;
  if (cursor.nextAtMs === null) return { occurrences: [], cursor, late: false };
  let remaining = spec.limit === null ? Number.POSITIVE_INFINITY : spec.limit - cursor.occurrences;
  const planned: PlannedOccurrence[] = [];
  const add = (atMs: number, missed: boolean): void => {
    const id = occurrenceId(scheduleId, revision, atMs);
    planned.push({ id, atMs, dueMs: atMs + jitterOf(id, spec.jitterMs), missed });
    remaining--;
  };
  const missedBefore = window.nowMs - window.misfireGraceMs;
  const late = cursor.nextAtMs < missedBefore;
  let from = cursor.nextAtMs;
  if (late) {
    const catchUp =
      spec.misfire === 'skip' ? 0 : spec.misfire === 'once' ? 1 : Math.max(1, spec.misfireLimit);
    const missed = recurrence.latestBefore(cursor.nextAtMs, missedBefore, catchUp);
    // Not cut at maxOccurrences: the cursor moves past all of them in this plan (misfireLimit
    // bounds them instead).
    for (const atMs of missed.slice(0, Math.max(0, remaining))) add(atMs, true);
    from = missedBefore;
  }
  let next = remaining > 0 ? recurrence.nextAtOrAfter(from) : null;
  while (
    next !== null &&
    next < window.untilMs &&
    remaining > 0 &&
    planned.length < window.maxOccurrences
  ) {
    add(next, false);
    next = remaining > 0 ? recurrence.nextAtOrAfter(next + 1) : null;
  }
  return {
    occurrences: planned,
    cursor: { nextAtMs: next, occurrences: cursor.occurrences + planned.length },
    late,
  };
}

/**
 * The coming occurrence times from `nowMs` (GET /v1/schedules/{id}/next), computed, not stored.
 * Those before the cursor are materialised already; later ones count against the limit.
 */
export function previewOccurrences(
  recurrence: Recurrence,
  cursor: RecurrenceCursor,
  nowMs: number,
  count: number,
): number[] {
  const times: number[] = [];
  let remaining =
    recurrence.spec.limit === null
      ? Number.POSITIVE_INFINITY
      : recurrence.spec.limit - cursor.occurrences;
  const materialisedBefore = cursor.nextAtMs ?? Number.POSITIVE_INFINITY;
  let at = recurrence.nextAtOrAfter(nowMs);
  while (at !== null && times.length < count) {
    if (at >= materialisedBefore) {
      if (remaining <= 0 || cursor.nextAtMs === null) break;
      remaining--;
    }
    times.push(at);
    at = recurrence.nextAtOrAfter(at + 1);
  }
  return times;
}
