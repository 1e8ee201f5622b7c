/**
 * Message search and filter cancel (issue 14), each ONE statement over a bounded window of rows.
 *
 * ## The window
 *
 * Both statements read at most `scanLimit` rows in key order (the CTE `scanned`), test the filter
 * on them (`hit`), and keep the first `limit` hits. The walk's WHERE holds only what the index
 * itself answers (the app, the keyset position and, for scheduled-only filters, the pending
 * index's predicate), so the LIMIT bounds the rows read, never just the rows returned: a filter
 * that matches nothing costs one window, not a scan of the table (which, at 10 million rows,
 * would run into the statement timeout and answer 503 for a request that did nothing wrong).
 * Every other condition is in `hit`. The window keeps only (app, id, hit): payloads are read for
 * the page's rows alone.
 *
 * Indexes (see migrations/007_search.ts for the measurements):
 * - a filter with only scheduled states walks `messages_app_pending_idx` (app, id) WHERE
 *   state IN (0, 1) AND app > '', which holds only unfinished rows; the no-op `app > ''` is what
 *   lets the planner prove that predicate;
 * - anything else walks the primary key (app, id).
 * The key, topic, due and created filters have no index of their own: each would cost every
 * insert, and the window bounds what they cost a search.
 *
 * States are written into the text as literals (they come from a fixed enum, never from the
 * client), because the planner proves a partial index's predicate only from constants.
 */
import type { MessageFilter, MessageState, SearchPosition } from '@hourglass/core';
import type { MessageRow } from '../rows';
import { MESSAGE_COLUMNS, STATE_CODES } from '../rows';
import type { Queryable } from './db';

/** The condition of a filter's non-index fields on `m`, with its parameters from `$first` on. */
export function filterCondition(
  filter: MessageFilter,
  values: unknown[],
): { hit: string; pendingOnly: boolean } {
  const parts: string[] = [];
  const param = (value: unknown): string => {
    values.push(value);
    return `$${values.length}`;
  };
  let pendingOnly = false;
  if (filter.states !== null) {
    const codes = filter.states.map(stateCode);
    pendingOnly = codes.every((code) => code === 0 || code === 1);
    // Both pending states: the pending index holds exactly those, nothing to test.
    if (!(pendingOnly && codes.length === 2)) parts.push(`m.state IN (${codes.join(', ')})`);
  }
  if (filter.topic !== null) parts.push(`m.topic = ${param(filter.topic)}::text`);
  if (filter.key !== null) parts.push(`m.msg_key = ${param(filter.key)}::text`);
  // The due time as accepted (what the view shows as deliverAt), not a retry's.
  if (filter.dueAfterMs !== null)
    parts.push(`coalesce(m.first_deliver_at, m.deliver_at) >= ${param(filter.dueAfterMs)}::bigint`);
  if (filter.dueBeforeMs !== null)
    parts.push(`coalesce(m.first_deliver_at, m.deliver_at) < ${param(filter.dueBeforeMs)}::bigint`);
  if (filter.createdAfterMs !== null)
    parts.push(`m.created_at >= ${param(filter.createdAfterMs)}::bigint`);
  if (filter.target === 'kafka')
    parts.push(`(m.targets IS NULL OR m.targets @> '[{"type": "kafka"}]'::jsonb)`);
  if (filter.target === 'http')
    parts.push(`coalesce(m.targets @> '[{"type": "http"}]'::jsonb, false)`);
  return { hit: parts.length === 0 ? 'true' : parts.join(' AND '), pendingOnly };
}

function stateCode(state: MessageState): number {
  const code = STATE_CODES.indexOf(state);
  if (code < 0) throw new Error(`unknown state ${state}`);
  return code;
}

/** A row of a search window: a hit, or the window's last row (`n` = scanLimit), or both. */
type SearchRow = MessageRow & { hit: boolean; n: string };

export interface SearchRows {
  /** The page's messages, in order. */
  readonly rows: MessageRow[];
  /** Where the next page starts; null: the walk reached the end of what can match. */
  readonly next: SearchPosition | null;
}

/**
 * The walk, numbered in key order. `n` is computed in the walk's own order, so the window
 * function streams: with the outer LIMIT, a dense filter stops reading after `limit` hits, and
 * only a sparse one reads the whole window (its last row, `n = scanLimit`, comes back as the
 * marker of where the window ended).
 */
export async function selectSearchPage(
  db: Queryable,
  filter: MessageFilter,
  after: SearchPosition | null,
  limit: number,
  scanLimit: number,
): Promise<SearchRows> {
  const values: unknown[] = [];
  const { hit, pendingOnly } = filterCondition(filter, values);
  const walk: string[] = [];
  if (filter.app !== null) {
    values.push(filter.app);
    walk.push(`m.app = $${values.length}::text`);
  }
  if (pendingOnly) walk.push(`m.state IN (0, 1) AND m.app > ''`);
  if (after !== null && filter.app !== null) {
    // With the app fixed, a plain `id <` is what lets the index scan start at the cursor: next to
    // `app =`, a row comparison is only checked row by row, from the app's last entry down.
    values.push(after.id);
    walk.push(`m.id < $${values.length}::text`);
  } else if (after !== null) {
    values.push(after.app, after.id);
    walk.push(`(m.app, m.id) < ($${values.length - 1}::text, $${values.length}::text)`);
  }
  values.push(scanLimit, limit);
  const scanParam = `$${values.length - 1}::int`;
  const limitParam = `$${values.length}::int`;
  const text = `
SELECT * FROM (
  SELECT ${MESSAGE_COLUMNS}, (${hit}) AS hit,
         row_number() OVER (ORDER BY m.app DESC, m.id DESC) AS n
  FROM messages m
  ${walk.length > 0 ? `WHERE ${walk.join(' AND ')}` : ''}
  ORDER BY m.app DESC, m.id DESC
  LIMIT ${scanParam}
) w
WHERE w.hit OR w.n = ${scanParam}
-- The walk's order, in the terms the planner knows the subquery yields it (with one app, the app
-- is a constant and only id orders), so no sort reads the whole window first.
ORDER BY ${filter.app !== null ? 'w.id DESC' : 'w.app DESC, w.id DESC'}
LIMIT ${limitParam}`;
  const result = await db.query<SearchRow>(text, values);
  const rows = result.rows;
  const last = rows[rows.length - 1];
  const next =
    last !== undefined && (rows.length >= limit || Number(last.n) >= scanLimit)
      ? { app: last.app, id: last.id }
      : null;
  return { rows: rows.filter((row) => row.hit), next };
}

interface CancelRow {
  /** 'c': cancelled here; 'h': a hit scheduled in the snapshot; 'p': only the batch's summary. */
  kind: 'c' | 'h' | 'p';
  id: string | null;
  seq: string | null;
  deliver_at: string | null;
  rows: string;
  last_id: string | null;
  last_n: string | null;
  delivering: string;
}

export interface CancelWindow {
  /** Cancelled by this statement. */
  readonly cancelled: Array<{ id: string; seq: string; deliverAt: string }>;
  /**
   * Hits that were scheduled in the statement's snapshot but could not be locked at once (a
   * claim, a change or another cancel held them) or had changed: the caller settles each with
   * the single cancel, which waits for the lock.
   */
  readonly contended: string[];
  /** Hits claimed for delivery (`delivering`): not cancellable now. */
  readonly delivering: number;
  /** Where the next batch starts; null: every pending row after `afterId` was visited. */
  readonly nextId: string | null;
}

/**
 * One batch of a filter cancel: the hits among at most `scanLimit` pending rows of the app after
 * `afterId` (ascending id), at most `batchSize`, cancelled in this statement. The walk is
 * numbered and cut like the search's (see {@link selectSearchPage}).
 *
 * Definitive like the single cancel (./messages.ts): the UPDATE takes only `state = 0` rows and
 * re-checks that under the row lock, so against a racing claim exactly one wins. The rows are
 * first locked `FOR UPDATE SKIP LOCKED`: a batch locks up to 1000 rows in id order, the claim
 * locks its rows in due order, and two multi-row lockers that wait for each other in different
 * orders can deadlock. Skipping what another transaction holds means this statement never waits
 * for a row lock; what it skipped comes back as `contended` and is settled one row at a time.
 */
export async function cancelMatchingWindow(
  db: Queryable,
  filter: MessageFilter & { app: string },
  afterId: string | null,
  batchSize: number,
  scanLimit: number,
  nowMs: number,
): Promise<CancelWindow> {
  const values: unknown[] = [filter.app, afterId ?? '', scanLimit, batchSize, nowMs];
  const { hit } = filterCondition(filter, values);
  const text = `
WITH walk AS (
  SELECT m.id, m.state, (${hit}) AS hit, row_number() OVER (ORDER BY m.app, m.id) AS n
  FROM messages m
  WHERE m.app = $1::text AND m.state IN (0, 1) AND m.app > '' AND m.id > $2::text
  ORDER BY m.app, m.id
  LIMIT $3::int
),
picked AS MATERIALIZED (
  SELECT id, state, hit, n FROM walk WHERE hit OR n = $3::int ORDER BY id LIMIT $4::int
),
locked AS (
  SELECT m.id FROM messages m
  WHERE m.app = $1::text AND m.id IN (SELECT id FROM picked WHERE hit AND state = 0)
    AND m.state = 0
  FOR UPDATE OF m SKIP LOCKED
),
cancelled AS (
  UPDATE messages m SET state = 3, finished_at = $5::bigint
  FROM locked l
  WHERE m.app = $1::text AND m.id = l.id AND m.state = 0
  RETURNING m.id, m.seq, m.deliver_at
),
summary AS (
  SELECT count(*) AS rows, max(id) AS last_id, max(n) AS last_n,
         count(*) FILTER (WHERE hit AND state = 1) AS delivering
  FROM picked
)
SELECT r.kind, r.id, r.seq, r.deliver_at, s.rows, s.last_id, s.last_n, s.delivering
FROM summary s
CROSS JOIN LATERAL (
  SELECT 'p' AS kind, NULL::text AS id, NULL::bigint AS seq, NULL::bigint AS deliver_at
  UNION ALL
  SELECT 'c', c.id, c.seq, c.deliver_at FROM cancelled c
  UNION ALL
  -- Every hit that was scheduled in the snapshot; those not cancelled above are contended. The
  -- difference is taken by the caller: as an anti-join of two CTE scans the planner, without
  -- statistics for either, chose a nested loop (1000 × 1000 comparisons, 47 ms).
  SELECT 'h', p.id, NULL, NULL FROM picked p WHERE p.hit AND p.state = 0
) r`;
  const result = await db.query<CancelRow>(text, values);
  const cancelled: CancelWindow['cancelled'] = [];
  const scheduledHits: string[] = [];
  let summary: CancelRow | undefined;
  for (const row of result.rows) {
    if (row.kind === 'p') summary = row;
    else if (row.kind === 'c' && row.id !== null && row.seq !== null && row.deliver_at !== null)
      cancelled.push({ id: row.id, seq: row.seq, deliverAt: row.deliver_at });
    else if (row.kind === 'h' && row.id !== null) scheduledHits.push(row.id);
  }
  const cancelledIds = new Set(cancelled.map((c) => c.id));
  const contended = scheduledHits.filter((id) => !cancelledIds.has(id));
  const rows = Number(summary?.rows ?? 0);
  const windowFull = Number(summary?.last_n ?? 0) >= scanLimit;
  return {
    cancelled,
    contended,
    delivering: Number(summary?.delivering ?? 0),
    nextId: (rows >= batchSize || windowFull) && summary?.last_id ? summary.last_id : null,
  };
}

interface IdsRow {
  id: string;
  state: number | null;
  seq: string | null;
  deliver_at: string | null;
}

export interface IdsCancelRows {
  readonly cancelled: Array<{ id: string; seq: string; deliverAt: string }>;
  /** Per id that was not cancelled: its state in the statement's snapshot (null: no such id). */
  readonly others: Array<{ id: string; state: number | null }>;
}

/**
 * Cancels those of the app's ids that are scheduled, in one statement, with the same guard and
 * the same SKIP LOCKED rule as {@link cancelMatchingWindow}. An id that was scheduled in the
 * snapshot and is not cancelled here (locked by someone else, or claimed meanwhile) comes back
 * with state 0 for the caller to settle one at a time.
 */
export async function cancelIdRows(
  db: Queryable,
  app: string,
  ids: readonly string[],
  nowMs: number,
): Promise<IdsCancelRows> {
  const result = await db.query<IdsRow>(
    `
WITH input AS (
  SELECT DISTINCT i.id COLLATE "C" AS id FROM unnest($2::text[]) AS i(id)
),
snapshot AS MATERIALIZED (
  SELECT i.id, m.state FROM input i LEFT JOIN messages m ON m.app = $1::text AND m.id = i.id
),
locked AS (
  SELECT m.id FROM messages m
  WHERE m.app = $1::text AND m.id IN (SELECT id FROM snapshot WHERE state = 0) AND m.state = 0
  FOR UPDATE OF m SKIP LOCKED
),
cancelled AS (
  UPDATE messages m SET state = 3, finished_at = $3::bigint
  FROM locked l
  WHERE m.app = $1::text AND m.id = l.id AND m.state = 0
  RETURNING m.id, m.seq, m.deliver_at
)
SELECT s.id, s.state, c.seq, c.deliver_at
FROM snapshot s LEFT JOIN cancelled c ON c.id = s.id`,
    [app, ids, nowMs],
  );
  const cancelled: IdsCancelRows['cancelled'] = [];
  const others: IdsCancelRows['others'] = [];
  for (const row of result.rows) {
    if (row.seq !== null && row.deliver_at !== null)
      cancelled.push({ id: row.id, seq: row.seq, deliverAt: row.deliver_at });
    else others.push({ id: row.id, state: row.state });
  }
  return { cancelled, others };
}
