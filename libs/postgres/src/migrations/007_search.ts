/**
 * 007_search: message search and bulk cancel (issue 14) without a new index.
 *
 * Listings page in (app, id) order (libs/core/src/search.ts), which the primary key serves.
 * What needed more was "the scheduled messages of an app, in that order" (the default of a
 * listing filtered on `state=scheduled`, and the walk of every filter cancel): through the primary
 * key it reads the app's finished rows too, so it costs as much as the app's history, and with a
 * week of retention that is most of the table. `messages_app_pending_idx` already holds exactly
 * the unfinished rows by app; this migration adds `id` to its key, so the same index also yields
 * them in key order. Its quota count and statistics stay index-only scans (sql/apps.ts: same
 * predicate, `deliver_at` still INCLUDEd).
 *
 * Measured on a 300k-row table (80 % of it one app, 30 % scheduled), Postgres 15, this machine:
 * - scheduled messages of the big app, from the start of its key range: 58 ms through the primary
 *   key (168k finished rows read and dropped), 0.1 ms through the new index;
 * - inserting 200k messages (INSERT … SELECT, the index work dominating): 2.27 s before, 2.27 s
 *   after; the index grows from 29 to 50 bytes per pending row (app-name deduplication is lost);
 * - a partial (app, msg_key, id) index for the key filter was measured and left out: it made the
 *   same insert 1.3 s slower (+6.5 µs per keyed message, keys land all over the index), against
 *   issue 13's insert budget. A key filter walks the app's pending rows instead, at about 3M
 *   rows/s, bounded per request (sql/search.ts, "The window").
 *
 * Cost of the migration: the index is rebuilt inside the migration transaction, which blocks
 * inserts and firing while it builds (its size is the backlog, not the table: about a second per
 * few million pending rows). Upgrade a node with a large backlog when a pause of that length is
 * acceptable.
 */
export const sql = `
DROP INDEX IF EXISTS messages_app_pending_idx;
CREATE INDEX messages_app_pending_idx ON messages (app, id) INCLUDE (deliver_at)
  WHERE state IN (0, 1) AND app > '';
`;
