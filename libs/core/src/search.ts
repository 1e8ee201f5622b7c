/**
 * Message search and bulk cancel (issue 14): the filter model, the validation of search
 * parameters and bulk cancel bodies, and the opaque paging cursor. Pure: no I/O (hashing only).
 *
 * ## Order and cursors
 *
 * Pages are in descending (app, id) order, the primary key's: newest first for the default
 * UUIDv7 ids, and no index beyond those the table has (docs: migration 007). The cursor carries
 * the last (app, id) returned and a hash of the filter, so it can only continue the listing it
 * came from. Keyset paging over an immutable, unique key is stable under concurrent inserts:
 * every message that matches and existed when paging began is returned exactly once (a message
 * inserted meanwhile is returned at most once, if its id sorts after the position reached).
 *
 * ## Bounded pages
 *
 * A page reads at most a fixed number of rows in key order (the store's `scanLimit`), whatever
 * the filter, so a filter that matches few rows cannot make one request walk the whole table: the
 * page then holds fewer than `limit` messages (possibly none) and a `nextCursor` that resumes
 * after the rows it read. The listing is over only when `nextCursor` is null.
 */
import type { ErrorDetail } from './errors';
import { HourglassError } from './errors';
import type { StoredMessage } from './message';
import { MESSAGE_ID_PATTERN } from './message';
import { TOPIC_PATTERN, textProblem } from './input';
import { APP_NAME, decodeCursor } from './search-cursor';
import type { MessageState, PublicMessageState } from './state-machine';

/** What a search or a filter cancel selects. Null fields do not filter. */
export interface MessageFilter {
  /** Null: every app (the admin variant only). */
  readonly app: string | null;
  /** Internal states (public `scheduled` is scheduled and delivering); null: any state. */
  readonly states: readonly MessageState[] | null;
  /** The message's `topic` as its view shows it (for a target list, the first Kafka target's). */
  readonly topic: string | null;
  /** The message's `key` as its view shows it (for a target list, the first Kafka target's). */
  readonly key: string | null;
  /** Due at or after (ms); the due time as accepted, like the view's `deliverAt`. */
  readonly dueAfterMs: number | null;
  /** Due strictly before (ms). */
  readonly dueBeforeMs: number | null;
  /** Created at or after (ms). */
  readonly createdAfterMs: number | null;
  /** Messages with a Kafka target (the fast path included) or with an HTTP callback. */
  readonly target: 'kafka' | 'http' | null;
}

/** A position in (app, id) order: the last row a page or a cancel batch reached. */
export interface SearchPosition {
  readonly app: string;
  readonly id: string;
}

/** @default 100 */
export const DEFAULT_SEARCH_LIMIT = 100;
export const MAX_SEARCH_LIMIT = 1000;
/** Ids one bulk cancel may name. */
export const MAX_CANCEL_IDS = 1000;

const PUBLIC_STATES: readonly PublicMessageState[] = [
  'scheduled',
  'delivered',
  'cancelled',
  'failed',
];
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:\d{2})$/;
const MAX_FILTER_TEXT = 4096;

const FILTER_FIELDS = [
  'state',
  'topic',
  'key',
  'dueAfter',
  'dueBefore',
  'createdAfter',
  'target',
] as const;

/** The internal states a public state stands for. */
export function internalStates(state: PublicMessageState): MessageState[] {
  return state === 'scheduled' ? ['scheduled', 'delivering'] : [state];
}

function invalid(details: ErrorDetail[]): HourglassError {
  return new HourglassError(
    'invalid_request',
    `invalid search: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
    details,
  );
}

function text(
  source: Record<string, unknown>,
  name: string,
  where: string,
  problems: ErrorDetail[],
): string | null {
  const value = source[name];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') {
    problems.push({
      path: `${where}${name}`,
      message: Array.isArray(value) ? 'give it once' : 'must be a string',
    });
    return null;
  }
  return value;
}

function time(
  source: Record<string, unknown>,
  name: string,
  where: string,
  problems: ErrorDetail[],
): number | null {
  const value = text(source, name, where, problems);
  if (value === null) return null;
  const ms = ISO_WITH_ZONE.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    problems.push({
      path: `${where}${name}`,
      message: 'must be an ISO-8601 time with a zone, such as 2030-01-01T10:00:00Z',
    });
    return null;
  }
  return ms;
}

/**
 * The filter fields of a query string or a cancel body. `where` prefixes detail paths
 * (`filter/` in a cancel body); problems are collected, not thrown.
 */
function parseFilterFields(
  source: Record<string, unknown>,
  app: string | null,
  where: string,
  problems: ErrorDetail[],
): MessageFilter {
  let states: MessageState[] | null = null;
  const state = text(source, 'state', where, problems);
  if (state !== null) {
    const names = state.split(',');
    const unknown = names.filter((name) => !PUBLIC_STATES.includes(name as PublicMessageState));
    if (unknown.length > 0 || names.length === 0)
      problems.push({
        path: `${where}state`,
        message: `one or more (comma-separated) of ${PUBLIC_STATES.join(', ')}`,
      });
    else
      states = [
        ...new Set(names.flatMap((name) => internalStates(name as PublicMessageState))),
      ].sort((a, b) => STATE_ORDER.indexOf(a) - STATE_ORDER.indexOf(b));
  }
  const topic = text(source, 'topic', where, problems);
  if (topic !== null && !TOPIC_PATTERN.test(topic))
    problems.push({ path: `${where}topic`, message: 'not a valid topic name' });
  const key = text(source, 'key', where, problems);
  if (key !== null) {
    const problem = key.length > MAX_FILTER_TEXT ? 'at most 4096 characters' : textProblem(key);
    if (problem !== null) problems.push({ path: `${where}key`, message: problem });
  }
  const target = text(source, 'target', where, problems);
  if (target !== null && target !== 'kafka' && target !== 'http')
    problems.push({ path: `${where}target`, message: 'kafka or http' });
  const dueAfterMs = time(source, 'dueAfter', where, problems);
  const dueBeforeMs = time(source, 'dueBefore', where, problems);
  const createdAfterMs = time(source, 'createdAfter', where, problems);
  return {
    app,
    states,
    topic,
    key,
    dueAfterMs,
    dueBeforeMs,
    createdAfterMs,
    target: target === 'kafka' || target === 'http' ? target : null,
  };
}

const STATE_ORDER: readonly MessageState[] = [
  'scheduled',
  'delivering',
  'delivered',
  'cancelled',
  'failed',
];

function unknownFields(
  source: Record<string, unknown>,
  known: readonly string[],
  where: string,
  problems: ErrorDetail[],
): void {
  for (const name of Object.keys(source))
    if (!known.includes(name)) problems.push({ path: `${where}${name}`, message: 'unknown field' });
}

export interface SearchRequest {
  readonly filter: MessageFilter;
  readonly limit: number;
  /** Where to continue (from the cursor); null: from the start. */
  readonly after: SearchPosition | null;
}

/**
 * The parameters of `GET /v1/messages` (`scope.app`: the caller's app) or of
 * `GET /v1/admin/messages` (`scope.app` null: the optional `app` parameter filters). Query
 * values arrive as strings (an array when repeated). Throws `invalid_request` naming every bad
 * parameter.
 */
export function parseSearchQuery(
  query: Record<string, unknown>,
  scope: { readonly app: string | null },
): SearchRequest {
  const problems: ErrorDetail[] = [];
  const admin = scope.app === null;
  unknownFields(
    query,
    [...FILTER_FIELDS, 'limit', 'cursor', ...(admin ? ['app'] : [])],
    '',
    problems,
  );
  let app = scope.app;
  if (admin) {
    app = text(query, 'app', '', problems);
    if (app !== null && !APP_NAME.test(app))
      problems.push({ path: 'app', message: 'app names are 1-64 of a-z 0-9 . _ -' });
  }
  const filter = parseFilterFields(query, app, '', problems);
  let limit = DEFAULT_SEARCH_LIMIT;
  const limitText = text(query, 'limit', '', problems);
  if (limitText !== null) {
    limit = /^[0-9]{1,4}$/.test(limitText) ? Number(limitText) : Number.NaN;
    if (!(limit >= 1 && limit <= MAX_SEARCH_LIMIT))
      problems.push({ path: 'limit', message: `an integer from 1 to ${MAX_SEARCH_LIMIT}` });
  }
  const cursor = text(query, 'cursor', '', problems);
  if (problems.length > 0) throw invalid(problems);
  return {
    filter,
    limit,
    after: cursor === null ? null : decodeCursor(cursor, filter, 'list', 'cursor'),
  };
}

export type CancelRequest =
  | { readonly kind: 'ids'; readonly ids: readonly string[] }
  | {
      readonly kind: 'filter';
      /** Always restricted to `scheduled`: nothing else can be cancelled. */
      readonly filter: MessageFilter;
      readonly after: SearchPosition | null;
    };

/**
 * The body of `POST /v1/messages/cancel`: `{ids: [...]}` (1 to 1000 ids) or
 * `{filter: {...}, cursor?}` where the filter takes the search fields and its `state`, when
 * given, is `scheduled`. Throws `invalid_request` naming every bad field.
 */
export function parseCancelRequest(body: unknown, app: string): CancelRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid([{ path: '/', message: 'must be an object with "ids" or "filter"' }]);
  const source = body as Record<string, unknown>;
  const problems: ErrorDetail[] = [];
  unknownFields(source, ['ids', 'filter', 'cursor'], '', problems);
  const hasIds = source.ids !== undefined;
  const hasFilter = source.filter !== undefined;
  if (hasIds === hasFilter) {
    problems.push({
      path: hasIds ? 'filter' : 'ids',
      message: 'give exactly one of ids or filter',
    });
    throw invalid(problems);
  }
  if (hasIds) {
    if (source.cursor !== undefined)
      problems.push({ path: 'cursor', message: 'only with a filter' });
    const ids = source.ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_CANCEL_IDS) {
      problems.push({ path: 'ids', message: `an array of 1 to ${MAX_CANCEL_IDS} message ids` });
      throw invalid(problems);
    }
    ids.forEach((id, index) => {
      if (typeof id !== 'string' || !MESSAGE_ID_PATTERN.test(id))
        problems.push({
          path: `ids/${index}`,
          message: 'message ids are 1-128 characters of A-Z a-z 0-9 . _ : -',
        });
    });
    if (problems.length > 0) throw invalid(problems);
    return { kind: 'ids', ids: [...new Set(ids as string[])] };
  }
  const raw = source.filter;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({ path: 'filter', message: 'must be an object' });
    throw invalid(problems);
  }
  const fields = raw as Record<string, unknown>;
  unknownFields(fields, FILTER_FIELDS, 'filter/', problems);
  if (fields.state !== undefined && fields.state !== 'scheduled')
    problems.push({
      path: 'filter/state',
      message: 'only scheduled messages can be cancelled; leave it out or say "scheduled"',
    });
  const parsed = parseFilterFields({ ...fields, state: 'scheduled' }, app, 'filter/', problems);
  const cursor = text(source, 'cursor', '', problems);
  if (problems.length > 0) throw invalid(problems);
  return {
    kind: 'filter',
    filter: parsed,
    after: cursor === null ? null : decodeCursor(cursor, parsed, 'cancel', 'cursor'),
  };
}

/** A message a bulk cancel cancelled: enough for the engine to drop it from its wheel. */
export interface CancelledRef {
  readonly id: string;
  readonly seq: number;
  /** The due time the wheel holds it under (the current attempt's). */
  readonly deliverAtMs: number;
}

/** One page of a search, newest (app, id) first. */
export interface SearchPage {
  readonly messages: readonly StoredMessage[];
  /** Where the next page starts; null when the listing is over. */
  readonly next: SearchPosition | null;
}

/** The outcome of cancelling named ids (each distinct id counts once). */
export interface IdsCancelOutcome {
  readonly cancelled: readonly CancelledRef[];
  /** Delivered, cancelled or failed before. */
  readonly alreadyFinished: number;
  /** Claimed for delivery at this moment (it may still fail and come back). */
  readonly deliveryInProgress: number;
  readonly notFound: number;
}

/** One batch of a filter cancel. */
export interface FilterCancelBatch {
  readonly cancelled: readonly CancelledRef[];
  /** Matched but could not be cancelled: claimed for delivery, or changed by a racing claim. */
  readonly notCancellable: number;
  /** Where the next batch starts; null when every matching message was visited. */
  readonly next: SearchPosition | null;
}
