/**
 * 002_apps: apps (appkeys), their tokens and topic grants move from config into Postgres.
 *
 * - `app_tokens.token_hash` is the SHA-256 (base64url) of the token; the clear token exists only in
 *   the response that issued it. Lookups go by hash, the primary key.
 * - Rotation keeps old tokens valid for a grace period through `expires_at` (epoch ms; NULL: valid
 *   until the next rotation). `source` tells config-bootstrapped tokens (1) from issued ones (0), so
 *   a node started with a changed config token replaces only that one.
 * - Quotas are typed columns, NULL meaning "no app-specific limit" (the global limits still apply).
 * - `messages_app_pending_idx` answers "pending messages of an app" (the max-pending quota and the
 *   admin statistics) from the index alone. It holds only unfinished rows, so it stays as small as
 *   the backlog. It must never serve the loader's due-time scan, which belongs to
 *   `messages_due_idx` (store.test.ts checks that plan): its predicate carries `app > ''`, always
 *   true (app names are never empty) but implied only by queries that state it, which are the
 *   two in sql/apps.ts. `deliver_at` rides along as an INCLUDE column for the due-time statistics.
 * - `cluster_meta.cluster_id`: a random id of this database's cluster. Redis keys carry it, so two
 *   clusters (or test schemas) sharing one Redis never read each other's cache or quota counters. Created inside the migration transaction, so it blocks inserts while it builds:
 *   on a large existing table, create it CONCURRENTLY by hand first (the IF NOT EXISTS skips it).
 */
export const sql = `
CREATE TABLE apps (
  name              text COLLATE "C" PRIMARY KEY,
  description       text    NOT NULL DEFAULT '',
  created_at        bigint  NOT NULL,
  disabled          boolean NOT NULL DEFAULT false,
  rate_per_second   double precision CHECK (rate_per_second > 0),
  burst             integer CHECK (burst > 0),
  max_pending       bigint  CHECK (max_pending > 0),
  max_payload_bytes integer CHECK (max_payload_bytes > 0),
  max_delay_ms      bigint  CHECK (max_delay_ms >= 0)
);

CREATE TABLE app_tokens (
  token_hash text PRIMARY KEY,
  app        text COLLATE "C" NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
  source     smallint NOT NULL DEFAULT 0 CHECK (source IN (0, 1)),
  created_at bigint NOT NULL,
  expires_at bigint
);
CREATE INDEX app_tokens_app_idx ON app_tokens (app);

CREATE TABLE app_topics (
  app        text COLLATE "C" NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
  topic      text NOT NULL,
  granted_at bigint NOT NULL,
  PRIMARY KEY (app, topic)
);

INSERT INTO cluster_meta (key, value)
VALUES ('cluster_id', substr(md5(random()::text || clock_timestamp()::text), 1, 12))
ON CONFLICT (key) DO NOTHING;

CREATE INDEX IF NOT EXISTS messages_app_pending_idx ON messages (app) INCLUDE (deliver_at) WHERE state IN (0, 1) AND app > '';
`;
