/**
 * 001_init: the message table, slot epochs (fencing tokens), wheel hints and cluster metadata.
 *
 * Everything is created unqualified, in the connection's current schema (search_path), so a
 * deployment may pick its schema and each test file gets its own.
 *
 * ## Growth and dead tuples (messages)
 *
 * Every message costs one INSERT and about two UPDATEs (scheduled → delivering → delivered, or
 * scheduled → cancelled). `state` appears in the partial-index predicates, so these updates are
 * never HOT: each one writes a new heap version plus entries in the primary key and in the partial
 * index the new state belongs to. The plan that keeps that bounded:
 * - `fillfactor = 90` leaves room for the new version on the same heap page, so an update does
 *   not scatter a message over two pages and B-tree bottom-up deletion (PG 14+) can reclaim the
 *   primary key's version churn locally.
 * - Aggressive per-table autovacuum (2 % dead rows instead of 20 %, inserts trigger vacuum at 5 %
 *   so the visibility map stays fresh for index-only scans and freezing happens in small steps).
 * - Finished rows (delivered/cancelled/failed) are removed in small batches through the partial
 *   `messages_finished_idx` on `finished_at`, which holds only finished rows, so the removal job
 *   never scans pending ones. The archiving job (later) moves them to a day-partitioned archive
 *   table, where retention is `DROP` of a whole partition: free, no dead tuples at all.
 * - The two hot partial indexes (`state = 0` by slot and due time, `state = 1` by slot) only
 *   contain live work, so they stay small however large the history grows.
 *
 * States and encodings are smallints (see ../rows.ts for the mapping): 0 scheduled,
 * 1 delivering, 2 delivered, 3 cancelled, 4 failed; encoding 0 json, 1 binary.
 * Times are epoch milliseconds (bigint), like everywhere else in Hourglass.
 * `app` and `id` use the "C" collation: byte order is what clients and the wheel expect for the
 * ASCII ids Hourglass allows, and it is the cheapest comparison for the primary key.
 */
export const sql = `
CREATE TABLE cluster_meta (
  key   text PRIMARY KEY,
  value text NOT NULL
);

-- One fencing token per slot. acquireSlots raises it; every slot-scoped write of the firing path
-- (claim, markDelivered, releaseClaims) and every insert takes a FOR SHARE lock on its slots' rows,
-- so a takeover serializes with them (see ../sql/*.ts).
CREATE TABLE slot_epochs (
  slot  integer PRIMARY KEY,
  epoch bigint  NOT NULL
);

CREATE TABLE messages (
  app              text COLLATE "C" NOT NULL,
  id               text COLLATE "C" NOT NULL,
  slot             integer  NOT NULL,
  topic            text     NOT NULL,
  msg_key          text,
  payload          bytea    NOT NULL,
  payload_encoding smallint NOT NULL CHECK (payload_encoding IN (0, 1)),
  headers          jsonb    NOT NULL DEFAULT '{}'::jsonb,
  deliver_at       bigint   NOT NULL,
  state            smallint NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 4),
  created_at       bigint   NOT NULL DEFAULT (floor(extract(epoch FROM now()) * 1000))::bigint,
  finished_at      bigint,
  attempts         integer  NOT NULL DEFAULT 0,
  last_error       text,
  fingerprint      text     NOT NULL,
  -- The epoch of the slot lease that claimed the row (state 1); markDelivered/releaseClaims match it.
  claimed_epoch    bigint,
  PRIMARY KEY (app, id)
) WITH (
  fillfactor = 90,
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02
);

-- loadDue: "scheduled messages of these slots due in [from, until)".
CREATE INDEX messages_due_idx ON messages (slot, deliver_at) WHERE state = 0;
-- acquireSlots: reset the claims an earlier owner left behind.
CREATE INDEX messages_claimed_idx ON messages (slot) WHERE state = 1;
-- The removal/archiving job: finished rows, oldest first, in batches.
CREATE INDEX messages_finished_idx ON messages (finished_at) WHERE state IN (2, 3, 4);

-- "A near-due message was committed by a node that does not own its slot": the owner drains these
-- (LISTEN/NOTIFY wakes it; draining is the guarantee). Rows live for milliseconds.
CREATE TABLE wheel_hints (
  slot       integer NOT NULL,
  app        text COLLATE "C" NOT NULL,
  id         text COLLATE "C" NOT NULL,
  deliver_at bigint  NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
CREATE INDEX wheel_hints_slot_idx ON wheel_hints (slot);
`;
