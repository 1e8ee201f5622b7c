/**
 * The recurring-schedule API, transport-neutral (the HTTP routes are libs/http-api/src/schedules.ts):
 * validation, permissions, the per-app quota, and the views. Occurrences are materialised by the
 * owner of the schedule's slot (./materializer.ts); this node only asks its own materialiser for a
 * pass when it owns that slot, so a new schedule's first occurrences exist within moments.
 */
import { createHash, randomBytes } from 'node:crypto';
import type {
  Clock,
  MessageLimits,
  OccurrenceTemplate,
  ParsedSchedule,
  ScheduleRevision,
  ScheduleStore,
  SlotLease,
} from '@hourglass/core';
import {
  HourglassError,
  Recurrence,
  SCHEDULE_ID_PATTERN,
  occurrenceId,
  parseSchedulePatch,
  parseScheduleCreate,
  previewOccurrences,
  isoTime,
  slotOf,
  specInputOf,
  uuidv7,
} from '@hourglass/core';
import type { AppIdentity } from '../service';
import { checkTargets } from '../service';
import type { ScheduleView } from './views';
import { toScheduleView } from './views';

export type { ScheduleView } from './views';

/** Most schedules in one list page, and most previewed occurrences. */
export const MAX_SCHEDULE_PAGE = 100;
export const MAX_PREVIEW = 100;

export interface ScheduleServiceOptions {
  readonly slotCount: number;
  /** The message limits (as MessageService's): templates are validated against them. */
  readonly limits: MessageLimits;
  /** `limits.maxSchedulesPerApp`. */
  readonly maxSchedulesPerApp: number;
}

export interface ScheduleServiceDeps {
  readonly store: ScheduleStore;
  readonly clock: Clock;
  /** This node's slot leases, and a pass of its materialiser when it owns a changed schedule's slot. */
  readonly slots: { ownedSlots(): SlotLease[] };
  readonly materializer?: { requestPass(): void };
}

function notFound(app: AppIdentity, id: string): HourglassError {
  return new HourglassError('not_found', `no schedule "${id}" for app "${app.name}"`);
}

export class ScheduleService {
  constructor(
    private readonly deps: ScheduleServiceDeps,
    private readonly options: ScheduleServiceOptions,
  ) {}

  async create(
    app: AppIdentity,
    body: unknown,
  ): Promise<{ created: boolean; schedule: ScheduleView }> {
    const now = this.deps.clock.now();
    const parsed = parseScheduleCreate(body, this.limitsFor(app), now);
    checkTargets(app, parsed.template, 'message/');
    const id = parsed.id ?? uuidv7(now, randomBytes);
    const nextAtMs = new Recurrence(parsed.spec).nextAtOrAfter(now);
    if (nextAtMs === null)
      throw new HourglassError('invalid_request', 'the schedule has no occurrence from now on', [
        { path: 'endAt', message: 'no occurrence falls before it' },
      ]);
    const slot = slotOf(app.name, id, this.options.slotCount);
    const outcome = await this.deps.store.createSchedule(
      {
        app: app.name,
        id,
        slot,
        input: specInputOf(body as Record<string, unknown>),
        spec: parsed.spec,
        message: parsed.message,
        template: templateOf(parsed),
        state: parsed.paused ? 'paused' : 'active',
        nextAtMs,
        fingerprint: fingerprintOf(body),
      },
      this.options.maxSchedulesPerApp,
      now,
    );
    switch (outcome.kind) {
      case 'quota_exceeded':
        throw new HourglassError(
          'schedule_quota_exceeded',
          `app "${app.name}" has ${outcome.count} schedules, the most allowed (limits.maxSchedulesPerApp is ${this.options.maxSchedulesPerApp}); delete one first`,
        );
      case 'conflict':
        throw new HourglassError(
          'id_conflict',
          `schedule "${id}" already exists with different content`,
          [{ path: 'id', message: 'reuse an id only to re-send identical content' }],
        );
      case 'existing':
        return { created: false, schedule: toScheduleView(outcome.schedule, now) };
      case 'created':
        this.kick(slot);
        return { created: true, schedule: toScheduleView(outcome.schedule, now) };
    }
  }

  async get(app: AppIdentity, id: string): Promise<ScheduleView> {
    checkId(id);
    const schedule = await this.deps.store.getSchedule(app.name, id);
    if (!schedule) throw notFound(app, id);
    return toScheduleView(schedule, this.deps.clock.now());
  }

  /** By id; `cursor` is the previous page's `nextCursor`. */
  async list(
    app: AppIdentity,
    cursor: string | undefined,
    limit: number | undefined,
  ): Promise<{ schedules: ScheduleView[]; nextCursor: string | null }> {
    const size = limit ?? 50;
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_SCHEDULE_PAGE)
      throw new HourglassError('invalid_request', `limit must be 1 to ${MAX_SCHEDULE_PAGE}`, [
        { path: 'limit', message: `an integer from 1 to ${MAX_SCHEDULE_PAGE}` },
      ]);
    let afterId: string | null = null;
    if (cursor !== undefined) {
      afterId = Buffer.from(cursor, 'base64url').toString('utf8');
      if (!SCHEDULE_ID_PATTERN.test(afterId))
        throw new HourglassError('invalid_request', 'cursor is not one this API gave out', [
          { path: 'cursor', message: 'pass the nextCursor of the previous page' },
        ]);
    }
    const rows = await this.deps.store.listSchedules(app.name, afterId, size + 1);
    const now = this.deps.clock.now();
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      schedules: page.map((schedule) => toScheduleView(schedule, now)),
      nextCursor:
        rows.length > size && last ? Buffer.from(last.id, 'utf8').toString('base64url') : null,
    };
  }

  /**
   * Pause (`paused: true`), resume (`paused: false`) or change. Any of these starts a new revision:
   * the occurrences of the previous one that are not due yet are cancelled (the response counts
   * them), and the new revision's occurrences (new ids) are materialised from now on.
   */
  async patch(
    app: AppIdentity,
    id: string,
    body: unknown,
  ): Promise<ScheduleView & { cancelledOccurrences: number }> {
    checkId(id);
    const now = this.deps.clock.now();
    const limits = this.limitsFor(app);
    const outcome = await this.deps.store.reviseSchedule(
      app.name,
      id,
      (current): ScheduleRevision | null => {
        const paused = current.state === 'paused';
        const parsed = parseSchedulePatch(
          body,
          { input: current.input, spec: current.spec, message: current.message, paused },
          limits,
          now,
        );
        checkTargets(app, parsed.template, 'message/');
        const onlyPause = Object.keys(body as object).every((field) => field === 'paused');
        if (onlyPause && parsed.paused === paused && current.state !== 'ended') return null;
        const recurrence = new Recurrence(parsed.spec);
        const exhausted = parsed.spec.limit !== null && current.occurrences >= parsed.spec.limit;
        const merged = { ...current.input, ...specInputOf(body as Record<string, unknown>) };
        return {
          input: patchedInput(merged, body as Record<string, unknown>),
          spec: parsed.spec,
          message: parsed.message,
          template: templateOf(parsed),
          state: exhausted ? 'ended' : parsed.paused ? 'paused' : 'active',
          // Never an occurrence time an earlier revision has fired (or is firing) already.
          nextAt: (uncancelledDueMs) =>
            recurrence.nextAtOrAfter(
              uncancelledDueMs === null ? now : Math.max(now, uncancelledDueMs + 1),
            ),
        };
      },
      now,
    );
    if (!outcome) throw notFound(app, id);
    this.kick(outcome.schedule.slot);
    return {
      ...toScheduleView(outcome.schedule, now),
      cancelledOccurrences: outcome.cancelledOccurrences,
    };
  }

  /** Deletes the schedule and cancels its occurrences not yet delivered. */
  async delete(
    app: AppIdentity,
    id: string,
  ): Promise<{ id: string; deleted: true; cancelledOccurrences: number }> {
    checkId(id);
    const outcome = await this.deps.store.deleteSchedule(app.name, id, this.deps.clock.now());
    if (!outcome) throw notFound(app, id);
    return { id, deleted: true, cancelledOccurrences: outcome.cancelledOccurrences };
  }

  /** The coming occurrences (computed, not stored), with the message ids they get. */
  async next(
    app: AppIdentity,
    id: string,
    count: number | undefined,
  ): Promise<{ id: string; state: string; occurrences: { at: string; messageId: string }[] }> {
    checkId(id);
    const n = count ?? 10;
    if (!Number.isSafeInteger(n) || n < 1 || n > MAX_PREVIEW)
      throw new HourglassError('invalid_request', `count must be 1 to ${MAX_PREVIEW}`, [
        { path: 'count', message: `an integer from 1 to ${MAX_PREVIEW}` },
      ]);
    const schedule = await this.deps.store.getSchedule(app.name, id);
    if (!schedule) throw notFound(app, id);
    const times =
      schedule.state === 'ended'
        ? []
        : previewOccurrences(
            new Recurrence(schedule.spec),
            { nextAtMs: schedule.nextAtMs, occurrences: schedule.occurrences },
            this.deps.clock.now(),
            n,
          );
    return {
      id,
      state: schedule.state,
      occurrences: times.map((at) => ({
        at: isoTime(at),
        messageId: occurrenceId(id, schedule.revision, at),
      })),
    };
  }

  private kick(slot: number): void {
    if (this.deps.slots.ownedSlots().some((lease) => lease.slot === slot))
      this.deps.materializer?.requestPass();
  }

  /** The global limits, lowered by the app's own where it has them (as MessageService does). */
  private limitsFor(app: AppIdentity): MessageLimits {
    const global = this.options.limits;
    return {
      ...global,
      retryBase: app.delivery?.retry ?? global.retryBase,
      maxPayloadBytes: Math.min(
        global.maxPayloadBytes,
        app.quotas?.maxPayloadBytes ?? Number.POSITIVE_INFINITY,
      ),
    };
  }
}

function checkId(id: string): void {
  if (!SCHEDULE_ID_PATTERN.test(id))
    throw new HourglassError(
      'invalid_request',
      'schedule ids are 1-96 characters of A-Z a-z 0-9 . _ -',
      [{ path: 'id', message: 'invalid characters or length' }],
    );
}

function templateOf(parsed: ParsedSchedule): OccurrenceTemplate {
  const { template } = parsed;
  return {
    topic: template.topic,
    key: template.key,
    payload: template.payload,
    payloadEncoding: template.payloadEncoding,
    headers: template.headers,
    targets: template.targets,
    retry: template.retry,
    contentType: template.contentType,
    fingerprint: template.fingerprint,
  };
}

/** A cadence field replaces the others; `null` removes a bound. */
function patchedInput(merged: Record<string, unknown>, patch: Record<string, unknown>) {
  const input = { ...merged };
  if (['every', 'everyMs', 'cron'].some((field) => patch[field] !== undefined)) {
    for (const field of ['every', 'everyMs', 'cron'])
      if (patch[field] === undefined) delete input[field];
    if (patch.cron === undefined) delete input.timezone;
  }
  for (const field of ['startAt', 'endAt', 'limit']) if (patch[field] === null) delete input[field];
  return specInputOf(input);
}

/** The create request as sent: an identical re-send (same id, same body) is the same schedule. */
function fingerprintOf(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('base64url');
}
