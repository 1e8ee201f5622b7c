/**
 * 006_versions: changing scheduled messages and debouncing them (issue 14).
 *
 * - `messages.version`, raised by every change of a scheduled message (PATCH
 *   /v1/messages/{id}). Clients see it as the message's `version` and its ETag, and send it back
 *   in `If-Match` to make a change conditional. Existing rows start at 1.
 * - `messages.debounce_key` and `debounce_started_at`: a message scheduled with `debounce` holds
 *   its key while it is `scheduled` and not yet claimed; `messages_debounce_idx` makes the key
 *   unique among those, which is what makes debouncing race-free across nodes (an insert of the
 *   same key waits for, and then merges into or yields to, the one holding it). The claim clears
 *   the key, so once a message is being delivered the next one starts a new window, and a claim
 *   released back to `scheduled` can never collide with it. The index is partial: messages
 *   without a key (nearly all) never enter it, so inserts and claims of them pay nothing.
 *
 * Constant defaults and nullable columns do not rewrite the table (Postgres 11+ stores the default
 * in the catalog), and the new index is empty, so the migration is instant at any size.
 */
export const sql = `
ALTER TABLE messages
  ADD COLUMN version integer NOT NULL DEFAULT 1,
  ADD COLUMN debounce_key text COLLATE "C",
  ADD COLUMN debounce_started_at bigint;
CREATE UNIQUE INDEX messages_debounce_idx ON messages (app, debounce_key)
  WHERE debounce_key IS NOT NULL AND state = 0;
`;
