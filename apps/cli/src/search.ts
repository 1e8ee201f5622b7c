/**
 * `hourglass messages list` (GET /v1/admin/messages, the admin search across apps) and the bulk
 * form of `hourglass messages cancel` (POST /v1/messages/cancel as the app). Both may take more
 * than one call: `list --all` follows `nextCursor`, and a filter cancel repeats itself with the
 * answer's `cursor` while the server says `more` (each request is bounded in time). Pure: the
 * calls are described here and made by main.ts.
 */
import type { Values } from './flags';
import { number } from './flags';
import { UsageError } from './usage';

/** The filter flags and the query or body field each one sets. */
const FILTER_FLAGS = {
  state: 'state',
  topic: 'topic',
  key: 'key',
  'due-after': 'dueAfter',
  'due-before': 'dueBefore',
  'created-after': 'createdAfter',
  target: 'target',
} as const;

export const LIST_FLAGS: readonly string[] = [
  'app',
  ...Object.keys(FILTER_FLAGS),
  'limit',
  'all',
  'cursor',
];
export const BULK_CANCEL_FLAGS: readonly string[] = ['app-token', ...Object.keys(FILTER_FLAGS)];

/** What follow-up calls a command makes: the next page, or the rest of a filter cancel. */
export type Follow = 'pages' | 'more';

export interface SearchCall {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: Record<string, unknown>;
  readonly appToken?: string;
  readonly follow?: Follow;
}

function filterFields(values: Values): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [flag, field] of Object.entries(FILTER_FLAGS)) {
    const value = values[flag as keyof Values];
    if (value === undefined) continue;
    // --topic is declared multiple (apps create takes several); a filter takes one.
    const one = Array.isArray(value) ? value : [value];
    if (one.length > 1) throw new UsageError(`--${flag}: give it once`);
    fields[field] = String(one[0]);
  }
  return fields;
}

/** `messages list`: the admin search. */
export function listCall(values: Values): SearchCall {
  const query = new URLSearchParams();
  if (values.app !== undefined) query.set('app', values.app);
  for (const [field, value] of Object.entries(filterFields(values))) query.set(field, value);
  const limit = number(values, 'limit', true);
  if (limit !== undefined) {
    if (limit < 1 || limit > 1000) throw new UsageError('--limit expects 1 to 1000');
    query.set('limit', String(limit));
  }
  if (values.cursor !== undefined) {
    if (values.all) throw new UsageError('--all starts at the beginning; leave out --cursor');
    query.set('cursor', values.cursor);
  }
  const text = query.toString();
  return {
    method: 'GET',
    path: `/v1/admin/messages${text ? `?${text}` : ''}`,
    ...(values.all ? { follow: 'pages' as const } : {}),
  };
}

/**
 * Whether `messages cancel` is the bulk form: an app token flag or a filter flag. Without
 * either it is the admin form, `messages cancel <app> <id>`.
 */
export function isBulkCancel(values: Values): boolean {
  return BULK_CANCEL_FLAGS.some((flag) => values[flag as keyof Values] !== undefined);
}

/** `messages cancel --app-token T ID...` or `messages cancel --app-token T --key K ...`. */
export function bulkCancelCall(
  values: Values,
  ids: readonly string[],
  env: NodeJS.ProcessEnv,
): SearchCall {
  const appToken = values['app-token'] ?? env.HOURGLASS_APP_TOKEN;
  if (appToken === undefined || appToken === '')
    throw new UsageError(
      'messages cancel: give the app token (--app-token or $HOURGLASS_APP_TOKEN) to cancel several messages, or <app> <id> for one (admin)',
    );
  const filter = filterFields(values);
  const hasFilter = Object.keys(filter).length > 0;
  if (hasFilter === ids.length > 0)
    throw new UsageError(
      'messages cancel: give either ids or filter flags (--key, --topic, --due-before, ...), not both',
    );
  if (ids.length > 1000) throw new UsageError('messages cancel: at most 1000 ids per call');
  if (filter.state !== undefined && filter.state !== 'scheduled')
    throw new UsageError('--state: only scheduled messages can be cancelled');
  return {
    method: 'POST',
    path: '/v1/messages/cancel',
    body: hasFilter ? { filter } : { ids: [...ids] },
    appToken,
    ...(hasFilter ? { follow: 'more' as const } : {}),
  };
}

type Json = Record<string, unknown>;

/** The call that continues `previous` after its answer `body`, or null when it is complete. */
export function followUp<
  C extends {
    readonly path: string;
    readonly body?: Record<string, unknown>;
    readonly follow?: Follow;
  },
>(previous: C, body: unknown): C | null {
  const answer = (body ?? {}) as Json;
  if (previous.follow === 'pages' && typeof answer.nextCursor === 'string') {
    const [path, query = ''] = previous.path.split('?');
    const params = new URLSearchParams(query);
    params.set('cursor', answer.nextCursor);
    return { ...previous, path: `${path}?${params.toString()}` };
  }
  if (previous.follow === 'more' && answer.more === true && typeof answer.cursor === 'string')
    return { ...previous, body: { ...previous.body, cursor: answer.cursor } };
  return null;
}

/** Several answers of one command as one: the pages' messages, or the cancels' counts. */
export function mergeAnswers(earlier: unknown, later: unknown): unknown {
  const a = (earlier ?? {}) as Json;
  const b = (later ?? {}) as Json;
  if (Array.isArray(a.messages) && Array.isArray(b.messages))
    return {
      messages: [...(a.messages as unknown[]), ...(b.messages as unknown[])],
      nextCursor: b.nextCursor ?? null,
    };
  const merged: Json = { ...b };
  for (const field of ['cancelled', 'notCancellable'])
    if (typeof a[field] === 'number' && typeof b[field] === 'number')
      merged[field] = a[field] + b[field];
  return merged;
}
