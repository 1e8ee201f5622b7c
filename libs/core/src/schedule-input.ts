/**
 * Validation of recurring-schedule requests (POST and PATCH /v1/schedules). Pure: the clock is
 * passed in. The `message` template is validated by {@link parseScheduleRequest}, exactly like a
 * POST /v1/messages body without its id and due time, so a template that is accepted here gives
 * occurrences the message API would accept too.
 */
import type { ErrorDetail } from './errors';
import { HourglassError } from './errors';
import type { MessageLimits, ScheduleRequest } from './message';
import { parseScheduleRequest } from './message';
import type { Cadence, MisfirePolicy, RecurrenceSpec } from './recurrence';
import { cronProblem, isKnownTimezone } from './recurrence';

/** Schedule ids: like message ids but without `:` (it separates an occurrence id's parts) and shorter. */
export const SCHEDULE_ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,96}$/;
export const MIN_EVERY_MS = 1000;
export const DEFAULT_MISFIRE_LIMIT = 100;
/** Most missed occurrences `misfire: all` may catch up (one insert statement holds them all). */
export const MAX_MISFIRE_LIMIT = 1000;
/** A day: longer jitters would only blur a schedule. */
export const MAX_JITTER_MS = 86_400_000;

const SPEC_FIELDS = [
  'every',
  'everyMs',
  'cron',
  'timezone',
  'startAt',
  'endAt',
  'limit',
  'misfire',
  'misfireLimit',
  'jitterMs',
] as const;
const CREATE_FIELDS = new Set<string>(['id', 'message', 'paused', ...SPEC_FIELDS]);
const PATCH_FIELDS = new Set<string>(['message', 'paused', ...SPEC_FIELDS]);
const TEMPLATE_EXCLUDED = ['id', 'deliverAt', 'delayMs'];
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:\d{2})$/;

/** The schedule's fields as sent (the spec part), for views and PATCH merges. */
export interface ScheduleSpecInput {
  every?: string;
  everyMs?: number;
  cron?: string;
  timezone?: string;
  startAt?: string | number | null;
  endAt?: string | number | null;
  limit?: number | null;
  misfire?: MisfirePolicy;
  misfireLimit?: number;
  jitterMs?: number;
}

export interface ParsedSchedule {
  readonly id: string | undefined;
  readonly spec: RecurrenceSpec;
  /** The template as sent. */
  readonly message: Record<string, unknown>;
  /** The template validated (due time: epoch 0, a placeholder). */
  readonly template: ScheduleRequest;
  readonly paused: boolean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `"90s"`, `"5m"`, `"1h30m"`, `"1d"`, `"250ms"` in milliseconds; null when not such a string. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text);
  if (!match || text.length === 0) return null;
  const [, d, h, m, s, ms] = match.map((part) => (part === undefined ? 0 : Number(part)));
  const total = (d ?? 0) * 86_400_000 + (h ?? 0) * 3_600_000 + (m ?? 0) * 60_000;
  return total + (s ?? 0) * 1000 + (ms ?? 0);
}

function parseInstant(value: unknown, field: string, problems: ErrorDetail[]): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && ISO_WITH_ZONE.test(value) && !Number.isNaN(Date.parse(value)))
    return Date.parse(value);
  problems.push({
    path: field,
    message: 'must be ISO-8601 with a zone (e.g. 2030-01-01T10:00:00Z) or epoch milliseconds',
  });
  return null;
}

function positiveInteger(
  value: unknown,
  field: string,
  min: number,
  max: number,
  problems: ErrorDetail[],
): number | null {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max)
    return value;
  problems.push({ path: field, message: `must be an integer from ${min} to ${max}` });
  return null;
}

/**
 * Validates the spec fields of `body` (all of them, as after a PATCH merge). `createdAtMs`
 * anchors an `every` schedule without `startAt`: its first occurrence is one interval later.
 */
function parseSpec(
  body: ScheduleSpecInput & Record<string, unknown>,
  createdAtMs: number,
  problems: ErrorDetail[],
): RecurrenceSpec | null {
  const given = ['every', 'everyMs', 'cron'].filter((field) => body[field] !== undefined);
  let cadence: Cadence | null = null;
  const startAtMs = parseInstant(body.startAt, 'startAt', problems);
  const endAtMs = parseInstant(body.endAt, 'endAt', problems);
  if (given.length !== 1) {
    problems.push({
      path: given[1] ?? 'every',
      message:
        'exactly one of "every" (a duration such as "30s", "5m", "1h30m"), "everyMs" (milliseconds) or "cron" (5 or 6 fields) is required',
    });
  } else if (body.cron !== undefined) {
    const timezone = body.timezone ?? 'UTC';
    if (typeof body.cron !== 'string') problems.push({ path: 'cron', message: 'must be a string' });
    else if (cronProblem(body.cron) !== null)
      problems.push({ path: 'cron', message: cronProblem(body.cron) as string });
    if (typeof timezone !== 'string' || !isKnownTimezone(timezone))
      problems.push({
        path: 'timezone',
        message: 'must be an IANA time zone such as "Europe/Berlin" or "UTC"',
      });
    if (typeof body.cron === 'string' && typeof timezone === 'string' && problems.length === 0)
      cadence = { kind: 'cron', cron: body.cron, timezone };
  } else {
    if (body.timezone !== undefined)
      problems.push({ path: 'timezone', message: 'only with "cron": "every" is absolute time' });
    let everyMs: number | null = null;
    if (body.every !== undefined) {
      everyMs = typeof body.every === 'string' ? parseDuration(body.every) : null;
      if (everyMs === null)
        problems.push({
          path: 'every',
          message: 'must be a duration such as "30s", "5m", "1h30m", "1d" (units d h m s ms)',
        });
    } else if (typeof body.everyMs === 'number' && Number.isSafeInteger(body.everyMs))
      everyMs = body.everyMs;
    else problems.push({ path: 'everyMs', message: 'must be an integer number of milliseconds' });
    if (everyMs !== null && everyMs < MIN_EVERY_MS)
      problems.push({
        path: body.every !== undefined ? 'every' : 'everyMs',
        message: `must be at least ${MIN_EVERY_MS} ms (1 s)`,
      });
    else if (everyMs !== null)
      cadence = { kind: 'every', everyMs, anchorMs: startAtMs ?? createdAtMs + everyMs };
  }
  if (startAtMs !== null && endAtMs !== null && endAtMs <= startAtMs)
    problems.push({ path: 'endAt', message: 'must be after startAt' });
  const limit =
    body.limit === undefined || body.limit === null
      ? null
      : positiveInteger(body.limit, 'limit', 1, Number.MAX_SAFE_INTEGER, problems);
  const misfire = body.misfire ?? 'skip';
  if (misfire !== 'skip' && misfire !== 'once' && misfire !== 'all')
    problems.push({ path: 'misfire', message: 'must be "skip", "once" or "all"' });
  const misfireLimit =
    body.misfireLimit === undefined
      ? DEFAULT_MISFIRE_LIMIT
      : positiveInteger(body.misfireLimit, 'misfireLimit', 1, MAX_MISFIRE_LIMIT, problems);
  if (body.misfireLimit !== undefined && misfire !== 'all')
    problems.push({ path: 'misfireLimit', message: 'only with "misfire": "all"' });
  const jitterMs =
    body.jitterMs === undefined
      ? 0
      : positiveInteger(body.jitterMs, 'jitterMs', 0, MAX_JITTER_MS, problems);
  if (cadence === null || problems.length > 0) return null;
  return {
    cadence,
    startAtMs,
    endAtMs,
    limit,
    misfire: misfire,
    misfireLimit: misfireLimit ?? DEFAULT_MISFIRE_LIMIT,
    jitterMs: jitterMs ?? 0,
  };
}

/** The template: a message body without id and due time, validated like POST /v1/messages. */
function parseTemplate(
  value: unknown,
  limits: MessageLimits,
  nowMs: number,
  problems: ErrorDetail[],
): ScheduleRequest | null {
  if (!isPlainObject(value)) {
    problems.push({ path: 'message', message: 'required: the message template (an object)' });
    return null;
  }
  for (const field of TEMPLATE_EXCLUDED)
    if (value[field] !== undefined)
      problems.push({
        path: `message/${field}`,
        message: 'not in a template: each occurrence gets its own id and due time',
      });
  if (problems.length > 0) return null;
  try {
    return parseScheduleRequest(
      { ...value, deliverAt: 0 },
      { ...limits, maxDelayMs: Number.MAX_SAFE_INTEGER },
      nowMs,
      'message/',
    );
  } catch (error) {
    if (!(error instanceof HourglassError) || error.code !== 'invalid_request') throw error;
    problems.push(...(error.details ?? []));
    return null;
  }
}

function refuse(problems: readonly ErrorDetail[]): never {
  throw new HourglassError(
    'invalid_request',
    `invalid schedule: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    problems,
  );
}

function checkFields(body: Record<string, unknown>, allowed: Set<string>, problems: ErrorDetail[]) {
  for (const field of Object.keys(body))
    if (!allowed.has(field))
      problems.push({ path: field, message: `unknown field; allowed: ${[...allowed].join(', ')}` });
}

/** POST /v1/schedules. Throws `invalid_request` listing every problem, or `payload_too_large`. */
export function parseScheduleCreate(
  body: unknown,
  limits: MessageLimits,
  nowMs: number,
): ParsedSchedule {
  if (!isPlainObject(body)) refuse([{ path: '/', message: 'the schedule must be a JSON object' }]);
  const problems: ErrorDetail[] = [];
  checkFields(body, CREATE_FIELDS, problems);
  let id: string | undefined;
  if (body.id !== undefined) {
    if (typeof body.id === 'string' && SCHEDULE_ID_PATTERN.test(body.id)) id = body.id;
    else
      problems.push({
        path: 'id',
        message: 'must be 1-96 characters of A-Z a-z 0-9 . _ - (and not "." or "..")',
      });
  }
  if (body.paused !== undefined && typeof body.paused !== 'boolean')
    problems.push({ path: 'paused', message: 'must be true or false' });
  const spec = parseSpec(body, nowMs, problems);
  const template = parseTemplate(body.message, limits, nowMs, problems);
  if (problems.length > 0 || spec === null || template === null) refuse(problems);
  return {
    id,
    spec,
    message: body.message as Record<string, unknown>,
    template,
    paused: body.paused === true,
  };
}

/**
 * PATCH /v1/schedules/{id}: the stored fields with the patch's over them. A cadence field
 * (`every`, `everyMs`, `cron`) replaces the cadence; `null` removes `startAt`, `endAt` or `limit`.
 */
export function parseSchedulePatch(
  patch: unknown,
  stored: {
    input: ScheduleSpecInput;
    spec: RecurrenceSpec;
    message: Record<string, unknown>;
    paused: boolean;
  },
  limits: MessageLimits,
  nowMs: number,
): ParsedSchedule {
  if (!isPlainObject(patch)) refuse([{ path: '/', message: 'the patch must be a JSON object' }]);
  const problems: ErrorDetail[] = [];
  checkFields(patch, PATCH_FIELDS, problems);
  if (Object.keys(patch).length === 0)
    problems.push({ path: '/', message: `give at least one of ${[...PATCH_FIELDS].join(', ')}` });
  if (patch.paused !== undefined && typeof patch.paused !== 'boolean')
    problems.push({ path: 'paused', message: 'must be true or false' });
  if (problems.length > 0) refuse(problems);
  const merged: Record<string, unknown> = { ...stored.input };
  const cadenceChanged = ['every', 'everyMs', 'cron'].some((field) => patch[field] !== undefined);
  if (cadenceChanged) {
    delete merged.every;
    delete merged.everyMs;
    delete merged.cron;
    if (patch.cron === undefined) delete merged.timezone;
  }
  for (const field of SPEC_FIELDS) if (patch[field] !== undefined) merged[field] = patch[field];
  for (const field of ['startAt', 'endAt', 'limit'])
    if (merged[field] === null) delete merged[field];
  if (merged.misfire !== 'all' && patch.misfireLimit === undefined) delete merged.misfireLimit;
  const parsed = parseSpec(merged, nowMs, problems);
  // An `every` keeps its anchor (its phase) unless its cadence or start changes.
  const spec =
    parsed && !cadenceChanged && patch.startAt === undefined && stored.spec.cadence.kind === 'every'
      ? { ...parsed, cadence: stored.spec.cadence }
      : parsed;
  const message = patch.message ?? stored.message;
  const template = parseTemplate(message, limits, nowMs, problems);
  if (problems.length > 0 || spec === null || template === null) refuse(problems);
  return {
    id: undefined,
    spec,
    message: message as Record<string, unknown>,
    template,
    paused: typeof patch.paused === 'boolean' ? patch.paused : stored.paused,
  };
}

/** The spec fields as sent, for the view and for a later PATCH merge. */
export function specInputOf(body: Record<string, unknown>): ScheduleSpecInput {
  const input: Record<string, unknown> = {};
  for (const field of SPEC_FIELDS)
    if (body[field] !== undefined && body[field] !== null) input[field] = body[field];
  return input;
}
