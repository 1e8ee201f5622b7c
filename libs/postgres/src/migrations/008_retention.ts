/**
 * 008_retention: removing finished messages after their retention, the day-partitioned archive,
 * per-app retention overrides and maintained message counters (issue 14; docs/adr/0008).
 *
 * ## The removal index
 * `messages_retention_idx (app, state, finished_at) WHERE state IN (2, 3, 4)` replaces 001's
 * `messages_finished_idx (finished_at)`. Retention differs per state and per app, so the job asks
 * "finished rows of this app in this state, finished before its cutoff": with the key in that
 * order each batch is one range scan that reads only rows due for removal. On `finished_at` alone,
 * every batch of a short retention (delivered, 7 days) walked past every row of a longer one
 * (failed, 30 days; an app that keeps 90) again and again. Same write cost as the old index: one
 * entry per row that becomes finished, none for scheduled rows, so inserts are untouched.
 * Built inside the migration transaction (writes to `messages` wait for it): on a large table,
 * create it CONCURRENTLY by hand first; the IF NOT EXISTS skips it.
 *
 * ## Counters (GET /v1/admin/stats)
 * `message_counts (app, state, n)` holds the number of rows per app and state, so the statistics
 * never count `messages`. It is maintained by STATEMENT-level triggers with transition tables on
 * `messages`: each INSERT, UPDATE and DELETE statement appends one aggregated delta row per
 * (app, state) it changed to `message_count_deltas` (an insert of 1000 messages of one app adds
 * one row), and never updates a counter row, so concurrent statements do not queue on a hot row.
 * The retention job folds the deltas into `message_counts` (sql/counters.ts, under an advisory
 * lock); readers sum both, which is exact at any moment. A TRUNCATE of `messages` clears both.
 * The trigger functions pin the search_path they were created with, so they find the counter
 * tables of their own schema whatever the caller's search_path.
 *
 * The counters start from the existing rows: CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock on
 * `messages`, held until commit, so no write runs between the triggers' creation and the count
 * (a write committed before the lock is in the count; one after it goes through the triggers).
 *
 * ## Archive (archive.mode: move)
 * `messages_archive` is partitioned by `finished_day` (`finished_at / 86400000`, the UTC day), one
 * partition per day created ahead by the job, so its own retention is a `DROP TABLE` of whole
 * partitions: no DELETE, no dead tuples. Rows carry the message's columns, when they were
 * archived, and the attempt log as a jsonb array (`attempt_log`, oldest first). There is no
 * primary key: an id can be used again once its message is removed, so the same (app, id) may be
 * archived more than once.
 *
 * ## Apps
 * `retention_{delivered,cancelled,failed}_ms`: the app's override of the configured retention
 * (`retention.*Days`); NULL keeps the default.
 */
export const sql = `
DROP INDEX IF EXISTS messages_finished_idx;
CREATE INDEX IF NOT EXISTS messages_retention_idx ON messages (app, state, finished_at) WHERE state IN (2, 3, 4);

ALTER TABLE apps
  ADD COLUMN retention_delivered_ms bigint CHECK (retention_delivered_ms > 0),
  ADD COLUMN retention_cancelled_ms bigint CHECK (retention_cancelled_ms > 0),
  ADD COLUMN retention_failed_ms bigint CHECK (retention_failed_ms > 0);

CREATE TABLE message_counts (
  app   text COLLATE "C" NOT NULL,
  state smallint NOT NULL,
  n     bigint   NOT NULL,
  PRIMARY KEY (app, state)
);

-- Append-only between compactions; read whole (no index to maintain on the write path).
CREATE TABLE message_count_deltas (
  app   text COLLATE "C" NOT NULL,
  state smallint NOT NULL,
  n     bigint   NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);

CREATE FUNCTION message_counts_inserted() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
BEGIN
  INSERT INTO message_count_deltas (app, state, n)
  SELECT app, state, count(*) FROM inserted_rows GROUP BY app, state;
  RETURN NULL;
END
$fn$;

CREATE FUNCTION message_counts_updated() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
BEGIN
  -- Most updates (retries, target states, content changes) keep the state: nothing is written.
  INSERT INTO message_count_deltas (app, state, n)
  SELECT app, state, sum(n) FROM (
    SELECT app, state, 1::bigint AS n FROM new_rows
    UNION ALL
    SELECT app, state, -1::bigint FROM old_rows
  ) d
  GROUP BY app, state
  HAVING sum(n) <> 0;
  RETURN NULL;
END
$fn$;

CREATE FUNCTION message_counts_deleted() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
BEGIN
  INSERT INTO message_count_deltas (app, state, n)
  SELECT app, state, -count(*) FROM deleted_rows GROUP BY app, state;
  RETURN NULL;
END
$fn$;

CREATE FUNCTION message_counts_truncated() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
BEGIN
  DELETE FROM message_counts;
  DELETE FROM message_count_deltas;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
  REFERENCING NEW TABLE AS inserted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION message_counts_inserted();
CREATE TRIGGER message_counts_update AFTER UPDATE ON messages
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION message_counts_updated();
CREATE TRIGGER message_counts_delete AFTER DELETE ON messages
  REFERENCING OLD TABLE AS deleted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION message_counts_deleted();
CREATE TRIGGER message_counts_truncate AFTER TRUNCATE ON messages
  FOR EACH STATEMENT EXECUTE FUNCTION message_counts_truncated();

INSERT INTO message_counts (app, state, n)
SELECT app, state, count(*) FROM messages GROUP BY app, state;

CREATE TABLE messages_archive (
  app              text COLLATE "C" NOT NULL,
  id               text COLLATE "C" NOT NULL,
  finished_day     integer  NOT NULL,
  archived_at      bigint   NOT NULL,
  seq              bigint   NOT NULL,
  slot             integer  NOT NULL,
  topic            text     NOT NULL,
  msg_key          text,
  payload          bytea    NOT NULL,
  payload_encoding smallint NOT NULL,
  headers          jsonb    NOT NULL,
  deliver_at       bigint   NOT NULL,
  first_deliver_at bigint,
  state            smallint NOT NULL,
  created_at       bigint   NOT NULL,
  finished_at      bigint   NOT NULL,
  attempts         integer  NOT NULL,
  last_error       text,
  fingerprint      text     NOT NULL,
  version          integer  NOT NULL,
  targets          jsonb,
  target_states    jsonb,
  retry            jsonb,
  content_type     text,
  attempt_log      jsonb
) PARTITION BY RANGE (finished_day);
CREATE INDEX messages_archive_message_idx ON messages_archive (app, id);
`;
