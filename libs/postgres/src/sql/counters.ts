/**
 * The message counters of 008_retention: `message_counts` plus the deltas the triggers on
 * `messages` append to `message_count_deltas`. One function per query.
 *
 * - {@link selectCounts}: counters plus uncompacted deltas, summed. One snapshot sees either a
 *   delta row or the counter it was folded into (compaction moves them in one transaction), never
 *   both or neither, so the sum is exact. Cost: the counter rows (apps × states) plus the deltas
 *   written since the last compaction, never the size of `messages`.
 * - {@link compactCounts}: folds every delta into the counters in one statement. It takes a
 *   transaction-scoped advisory lock first and does nothing when another node holds it: two
 *   compactions at once would be correct (the second waits for the first's row locks and finds
 *   the deltas gone), only wasted work.
 */
import type { Queryable } from './db';

/** "HGLC": the advisory lock class of counter compaction, keyed by schema like the migrations'. */
const COMPACTION_LOCK = 0x48474c43;

export interface CountRow {
  app: string;
  state: number;
  n: string;
}

/** Exported for EXPLAIN in tests. */
export const SELECT_COUNTS = `SELECT app, state, sum(n) AS n FROM (
         SELECT app, state, n FROM message_counts
         UNION ALL
         SELECT app, state, n FROM message_count_deltas
       ) c
       GROUP BY app, state
       HAVING sum(n) <> 0
       ORDER BY app, state`;

export async function selectCounts(db: Queryable): Promise<CountRow[]> {
  return (await db.query<CountRow>(SELECT_COUNTS)).rows;
}

/**
 * Returns how many delta rows were folded, or null when another compaction holds the lock. Must
 * run in a transaction of its own (the lock is released at its end). Counters that reach 0 are
 * deleted, so apps whose messages are all removed leave nothing behind.
 */
export async function compactCounts(db: Queryable): Promise<number | null> {
  const locked = await db.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema())) AS locked',
    [COMPACTION_LOCK],
  );
  if (!locked.rows[0]?.locked) return null;
  const folded = await db.query<{ rows: string }>(
    `WITH taken AS (
       DELETE FROM message_count_deltas RETURNING app, state, n
     ),
     summed AS (
       SELECT app, state, sum(n) AS n, count(*) AS rows FROM taken GROUP BY app, state
     ),
     applied AS (
       INSERT INTO message_counts AS c (app, state, n)
       SELECT app, state, n FROM summed
       ON CONFLICT (app, state) DO UPDATE SET n = c.n + excluded.n
       RETURNING 1
     )
     SELECT coalesce(sum(rows), 0) AS rows FROM summed CROSS JOIN (SELECT count(*) FROM applied) a`,
  );
  await db.query('DELETE FROM message_counts WHERE n = 0');
  return Number(folded.rows[0]?.rows ?? 0);
}
