/**
 * 005_targets: delivery targets (HTTP callbacks, fan-out), durable per-target retries, the
 * attempt log, and the apps' delivery settings (issue 12).
 *
 * messages:
 * - `targets` (jsonb array of target specs) and `target_states` (jsonb array, one state per
 *   target: status, attempts, next attempt time, last error). Both NULL for a message with only a
 *   `topic`: the Kafka fast path, stored and fired exactly as before.
 * - `retry` (jsonb): the retry strategy resolved at accept time (message, app or global default).
 * - `content_type`: what an HTTP callback's body is sent as, when the message says.
 * - `first_deliver_at`: the due time as accepted. A retry moves `deliver_at` to the next attempt,
 *   so the loader, wheel, claim and sweep bring retries back exactly like first deliveries;
 *   `first_deliver_at` (NULL: never moved) keeps what clients asked for.
 *
 * message_attempts: one row per attempt of a target that has a target list (Kafka fast-path
 * messages only count theirs in `messages.attempts`). Written in the statement that settles the
 * attempt, so the log and the state never disagree. `response` is the first 1 KiB of the answer.
 *
 * apps: the signing secret (and the previous one during a rotation's grace period), the host
 * allowlist for callbacks, the dead-letter topic, alert settings and the default retry strategy.
 */
export const sql = `
ALTER TABLE messages
  ADD COLUMN targets jsonb,
  ADD COLUMN target_states jsonb,
  ADD COLUMN retry jsonb,
  ADD COLUMN content_type text,
  ADD COLUMN first_deliver_at bigint;

CREATE TABLE message_attempts (
  app         text COLLATE "C" NOT NULL,
  id          text COLLATE "C" NOT NULL,
  target      smallint NOT NULL,
  attempt     integer  NOT NULL,
  at          bigint   NOT NULL,
  duration_ms integer  NOT NULL,
  status      smallint,
  error       text,
  response    text
) WITH (autovacuum_vacuum_insert_scale_factor = 0.05);
CREATE INDEX message_attempts_message_idx ON message_attempts (app, id, at);

ALTER TABLE apps
  ADD COLUMN signing_secret text,
  ADD COLUMN signing_secret_created_at bigint,
  ADD COLUMN previous_signing_secret text,
  ADD COLUMN previous_secret_expires_at bigint,
  ADD COLUMN callback_hosts text[],
  ADD COLUMN dead_letter_topic text,
  ADD COLUMN alerts jsonb,
  ADD COLUMN retry jsonb;
`;
