/**
 * The paging cursor of search and filter cancel (see ./search.ts, "Order and cursors"): an opaque
 * base64url text carrying the last (app, id) reached and a hash of the filter, so a cursor only
 * continues the listing it came from. Pure (hashing only).
 */
import * as crypto from 'node:crypto'; // hashing only: no I/O
import { HourglassError } from './errors';
import { MESSAGE_ID_PATTERN } from './message';
import type { MessageFilter, SearchPosition } from './search';

/** App names as the admin API and the config allow them. */
export const APP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_CURSOR_LENGTH = 1024;

function invalid(path: string, message: string): HourglassError {
  return new HourglassError('invalid_request', `invalid search: ${path}: ${message}`, [
    { path, message },
  ]);
}

/** What a cursor is for: a listing's and a filter cancel's cursors never stand in for each other. */
export type CursorUse = 'list' | 'cancel';

/** The filter's identity: equal filters (same app scope) give equal hashes. */
export function filterHash(filter: MessageFilter, use: CursorUse): string {
  const canonical = JSON.stringify([
    use,
    filter.app,
    filter.states,
    filter.topic,
    filter.key,
    filter.dueAfterMs,
    filter.dueBeforeMs,
    filter.createdAfterMs,
    filter.target,
  ]);
  return crypto.createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

/** base64url of `[1, app, id, filterHash]`. */
export function encodeCursor(
  position: SearchPosition,
  filter: MessageFilter,
  use: CursorUse,
): string {
  return Buffer.from(
    JSON.stringify([1, position.app, position.id, filterHash(filter, use)]),
  ).toString('base64url');
}

/**
 * The position a cursor carries. Throws `invalid_request` (at `path`) for anything that is not a
 * cursor of this very filter.
 */
export function decodeCursor(
  cursor: string,
  filter: MessageFilter,
  use: CursorUse,
  path: string,
): SearchPosition {
  const refuse = (message: string): HourglassError => invalid(path, message);
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor))
    throw refuse('not a cursor; pass nextCursor as it was returned');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw refuse('not a cursor; pass nextCursor as it was returned');
  }
  if (
    !Array.isArray(decoded) ||
    decoded.length !== 4 ||
    decoded[0] !== 1 ||
    typeof decoded[1] !== 'string' ||
    typeof decoded[2] !== 'string' ||
    typeof decoded[3] !== 'string' ||
    !MESSAGE_ID_PATTERN.test(decoded[2]) ||
    !APP_NAME.test(decoded[1])
  )
    throw refuse('not a cursor; pass nextCursor as it was returned');
  if (decoded[3] !== filterHash(filter, use))
    throw refuse('this cursor belongs to another filter; send the filter it was issued for');
  if (filter.app !== null && decoded[1] !== filter.app)
    throw refuse('this cursor belongs to another app');
  return { app: decoded[1], id: decoded[2] };
}
