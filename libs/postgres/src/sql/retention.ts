/**
 * Retention and archiving of finished messages (008_retention, docs/adr/0008). One function per
 * query; PgRetentionStore sequences them.
 *
 * ## One batch ({@link removeFinishedBatch})
 * ONE statement: the `fence` CTE locks the caller's slot rows in `slot_epochs` FOR SHARE where
 * the epoch still equals the lease (as claims do, sql/claims.ts "The fence"), so a node that lost
 * a slot removes none of its rows once the takeover committed, and a takeover waits for the batch
 * in flight (one batch: milliseconds). Then at most `limit` rows of one app and state finished
 * before the cutoff, of the lease slots, are picked through `messages_retention_idx` (a range
 * scan that reads only rows due), and those of fenced slots are deleted by ctid with the
 * predicate re-checked under the row lock (an
 * admin retry that made a failed row scheduled again in between wins: the row stays), and their
 * attempt log goes with them. In move mode the same statement inserts the deleted rows, with
 * their attempt log as a jsonb array, into `messages_archive`: the archive holds a row exactly
 * when `messages` lost it, whatever else runs.
 *
 * Two nodes running it at once for the same rows (a slot moving while both hold a stale view)
 * cannot remove a row twice: the second DELETE waits for the first's row lock, then skips the
 * row, so it archives nothing either.
 *
 * Plan: the explicit `state IN (2, 3, 4)` lets a generic plan of the prepared statement (where
 * `$4` is unknown) still match the partial index, and `ORDER BY finished_at` (oldest first) keeps
 * the planner on it when nearly every row of the table is finished: with a bare LIMIT, a generic
 * plan preferred a sequential scan that "finds 5000 matches early", which after vacuum reuses old
 * pages means reading the whole table per batch. The candidates are filtered by the lease slots
 * (`$1`), and the fence is applied to the DELETE itself, as one array computed once: joined to
 * the `fence` CTE (estimated at one row), the candidate scan looked so selective that the planner
 * sorted a sequential scan of the whole table instead (450 ms per batch on a million rows), and a
 * semi join of the deleted rows with it became a nested loop (150 ms). A candidate of a slot that
 * was just fenced out is not deleted; the statement returns the lease slots the fence refused
 * (`lost`) and how many rows it picked, so the job leaves those slots out of its next batches and
 * knows when nothing more is due. The outer DELETE is a TID scan of the picked rows
 * (retention.test.ts checks the plan on a filled table).
 */
import type { AppRetention, RemovedBatch } from '@hourglass/core';
import { DAY_MS } from '@hourglass/core';
import { leaseArrays } from '../rows';
import type { Queryable } from './db';

/** "HGLA": the advisory lock class of archive partition maintenance, keyed by schema. */
const ARCHIVE_LOCK = 0x48474c41;

const ARCHIVE_COLUMNS = `app, id, finished_day, archived_at, seq, slot, topic, msg_key, payload,
  payload_encoding, headers, deliver_at, first_deliver_at, state, created_at, finished_at, attempts,
  last_error, fingerprint, version, targets, target_states, retry, content_type, attempt_log`;

const REMOVE_BATCH = `
WITH fence AS MATERIALIZED (
  SELECT e.slot
  FROM slot_epochs e
  JOIN unnest($1::int[], $2::bigint[]) AS l(slot, epoch) ON l.slot = e.slot
  WHERE e.epoch = l.epoch
  ORDER BY e.slot
  FOR SHARE OF e
),
picked AS MATERIALIZED (
  SELECT ARRAY(
    SELECT c.ctid FROM messages c
    WHERE c.app = $3::text AND c.state IN (2, 3, 4) AND c.state = $4::smallint
      AND c.finished_at < $5::bigint AND c.slot = ANY ($1::int[])
    ORDER BY c.finished_at
    LIMIT $6::int) AS row_ids
),
removed AS (
  DELETE FROM messages m
  WHERE m.ctid = ANY ((SELECT row_ids FROM picked)::tid[])
    AND m.state = $4::smallint AND m.finished_at < $5::bigint
    AND m.slot = ANY ((SELECT array_agg(slot) FROM fence)::int[])
  RETURNING m.*
),
attempts AS (
  DELETE FROM message_attempts a USING removed r
  WHERE r.targets IS NOT NULL AND a.app = r.app AND a.id = r.id
  RETURNING a.*
),
logs AS (
  SELECT app, id,
         jsonb_agg(jsonb_build_object('target', target, 'attempt', attempt, 'at', at,
                                      'durationMs', duration_ms, 'status', status, 'error', error,
                                      'response', response)
                   ORDER BY at, target, attempt) AS log
  FROM attempts GROUP BY app, id
),
archived AS (
  INSERT INTO messages_archive (${ARCHIVE_COLUMNS})
  SELECT r.app, r.id, (r.finished_at / ${DAY_MS})::int, $8::bigint, r.seq, r.slot, r.topic,
         r.msg_key, r.payload, r.payload_encoding, r.headers, r.deliver_at, r.first_deliver_at,
         r.state, r.created_at, r.finished_at, r.attempts, r.last_error, r.fingerprint, r.version,
         r.targets, r.target_states, r.retry, r.content_type, l.log
  FROM removed r LEFT JOIN logs l ON l.app = r.app AND l.id = r.id
  WHERE $7::bigint IS NOT NULL AND r.finished_at >= $7::bigint
  RETURNING 1
)
SELECT (SELECT count(*) FROM removed) AS removed, (SELECT count(*) FROM archived) AS archived,
       (SELECT cardinality(row_ids) FROM picked) AS picked,
       ARRAY(SELECT l.slot FROM unnest($1::int[]) AS l(slot)
             WHERE l.slot NOT IN (SELECT slot FROM fence)) AS lost`;

/** Exported for EXPLAIN in tests. */
export const removeBatchStatement = REMOVE_BATCH;

export interface RemoveBatchParams {
  readonly app: string;
  readonly stateCode: number;
  readonly beforeMs: number;
  readonly limit: number;
  readonly archiveFromMs: number | null;
  readonly nowMs: number;
}

export function removeBatchValues(
  leases: ReadonlyMap<number, number>,
  params: RemoveBatchParams,
): unknown[] {
  const [slots, epochs] = leaseArrays(leases);
  return [
    slots,
    epochs,
    params.app,
    params.stateCode,
    params.beforeMs,
    params.limit,
    params.archiveFromMs,
    params.nowMs,
  ];
}

export async function removeFinishedBatch(
  db: Queryable,
  leases: ReadonlyMap<number, number>,
  params: RemoveBatchParams,
): Promise<RemovedBatch> {
  const result = await db.query<{
    removed: string;
    archived: string;
    picked: number | null;
    lost: number[];
  }>({
    name: 'hourglass_retention_remove',
    text: REMOVE_BATCH,
    values: removeBatchValues(leases, params),
  });
  const row = result.rows[0];
  return {
    removed: Number(row?.removed ?? 0),
    archived: Number(row?.archived ?? 0),
    picked: row?.picked ?? 0,
    lostSlots: row?.lost ?? [],
  };
}

/** (app, state) pairs with finished rows, from the counters (sql/counters.ts) and their deltas. */
export async function selectFinishedGroups(
  db: Queryable,
): Promise<Array<{ app: string; state: number }>> {
  return (
    await db.query<{ app: string; state: number }>(
      `SELECT app, state FROM (
         SELECT app, state, n FROM message_counts WHERE state IN (2, 3, 4)
         UNION ALL
         SELECT app, state, n FROM message_count_deltas WHERE state IN (2, 3, 4)
       ) c
       GROUP BY app, state HAVING sum(n) > 0
       ORDER BY app, state`,
    )
  ).rows;
}

interface OverrideRow {
  name: string;
  retention_delivered_ms: string | null;
  retention_cancelled_ms: string | null;
  retention_failed_ms: string | null;
}

function ms(value: string | null): number | null {
  return value === null ? null : Number(value);
}

export function toAppRetention(row: Omit<OverrideRow, 'name'>): AppRetention {
  return {
    deliveredMs: ms(row.retention_delivered_ms),
    cancelledMs: ms(row.retention_cancelled_ms),
    failedMs: ms(row.retention_failed_ms),
  };
}

export async function selectRetentionOverrides(db: Queryable): Promise<Map<string, AppRetention>> {
  const result = await db.query<OverrideRow>(
    `SELECT name, retention_delivered_ms, retention_cancelled_ms, retention_failed_ms FROM apps
     WHERE retention_delivered_ms IS NOT NULL OR retention_cancelled_ms IS NOT NULL
        OR retention_failed_ms IS NOT NULL`,
  );
  return new Map(result.rows.map((row) => [row.name, toAppRetention(row)]));
}

/** The name of a day's partition: `messages_archive_2026_12_02`. */
export function partitionName(day: number): string {
  return `messages_archive_${new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '_')}`;
}

const PARTITION_NAME = /^messages_archive_(\d{4})_(\d{2})_(\d{2})$/;

function dayOfPartition(name: string): number | null {
  const match = PARTITION_NAME.exec(name);
  if (!match) return null;
  return Math.floor(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) / DAY_MS);
}

/**
 * Must run in a transaction of its own: the advisory lock serializes nodes (two concurrent
 * `CREATE TABLE IF NOT EXISTS` of one partition can still collide in the catalog), released at
 * its end. Partitions are named by {@link partitionName}; other tables attached by hand are left
 * alone. Names are built from integers only, so nothing needs quoting.
 */
export async function maintainPartitions(
  db: Queryable,
  fromDay: number,
  untilDay: number,
): Promise<number[]> {
  await db.query('SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))', [ARCHIVE_LOCK]);
  const existing = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'messages_archive'::regclass`,
  );
  const days = new Set<number>();
  const dropped: number[] = [];
  for (const { name } of existing.rows) {
    const day = dayOfPartition(name);
    if (day === null) continue;
    if (day < fromDay) {
      await db.query(`DROP TABLE ${name}`);
      dropped.push(day);
    } else days.add(day);
  }
  for (let day = fromDay; day <= untilDay; day++) {
    if (days.has(day)) continue;
    await db.query(
      `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF messages_archive
       FOR VALUES FROM (${day}) TO (${day + 1})`,
    );
  }
  return dropped.sort((a, b) => a - b);
}

/**
 * Applies an app's retention patch: each field given is set (null: back to the default), the
 * others stay. Returns whether the app exists.
 */
export async function updateAppRetention(
  db: Queryable,
  name: string,
  patch: { deliveredMs?: number | null; cancelledMs?: number | null; failedMs?: number | null },
): Promise<boolean> {
  const result = await db.query(
    `UPDATE apps SET
       retention_delivered_ms = CASE WHEN $2 THEN $3::bigint ELSE retention_delivered_ms END,
       retention_cancelled_ms = CASE WHEN $4 THEN $5::bigint ELSE retention_cancelled_ms END,
       retention_failed_ms = CASE WHEN $6 THEN $7::bigint ELSE retention_failed_ms END
     WHERE name = $1`,
    [
      name,
      patch.deliveredMs !== undefined,
      patch.deliveredMs ?? null,
      patch.cancelledMs !== undefined,
      patch.cancelledMs ?? null,
      patch.failedMs !== undefined,
      patch.failedMs ?? null,
    ],
  );
  return result.rowCount === 1;
}
